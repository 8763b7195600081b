using CowEngine.TestSupport;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// Dirty pages (<see cref="CowView.TakeDirtyPages"/>) and diffs (<see cref="CowView.GetChangedPages"/>).
/// Both answers may be larger than the set of pages whose bytes changed, never smaller; the
/// imprecision goes one way only, and only for pages that were touched for writing:
/// <list type="bullet">
/// <item>dirty = pages made writable, or given another slot by a restore, since the reference point
/// (creation, the last Snapshot() or TakeDirtyPages()), so a page written with the bytes it already
/// held, or only <see cref="CowView.PrepareForWrite"/>'d, counts;</item>
/// <item>diff = pages whose slots differ, so a page written with the same bytes counts, and two
/// unrelated regions differ in every page even where both hold zeros.</item>
/// </list>
/// </summary>
public sealed unsafe class ChangeTrackingTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    /// <summary>Two full segments and part of a third.</summary>
    private const int Pages = 2 * 512 + 40;

    public static TheoryData<int> WriteCounts => new() { 0, 1, 2, 63, 64, 65, 511, 513, Pages };

    // ---- TakeDirtyPages ----

    [Theory]
    [MemberData(nameof(WriteCounts))]
    public void TakeDirtyPages_TrackedRegion_ReturnsExactlyThePagesWrittenSinceCreation(int writes)
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);
        long[] written = SpreadPages(writes);
        foreach (long page in written)
            Touch(region, page, value: 1);

        CowPageSet dirty = region.TakeDirtyPages();

        AssertPageSet(written, dirty);
        Assert.Empty(region.TakeDirtyPages());
    }

    [Theory]
    [MemberData(nameof(WriteCounts))]
    public void TakeDirtyPages_AfterASnapshot_ReturnsExactlyThePagesWrittenSince(int writes)
    {
        using CowMemoryEngine engine = NewPageByPageEngine(); // exact: no pages resolved ahead of a run
        using CowView region = engine.CreateRegion(Pages * PageSize);
        FillAll(region, 1);
        using CowView snapshot = region.Snapshot();
        long[] written = SpreadPages(writes);
        foreach (long page in written)
            Touch(region, page, value: 2);

        AssertPageSet(written, region.TakeDirtyPages());
        Assert.Empty(snapshot.TakeDirtyPages());
    }

    /// <summary>
    /// The documented imprecision of a region made without trackWrites: it is mapped writable, so
    /// until its first snapshot or TakeDirtyPages every page counts as dirty (a superset). From
    /// then on the answer is exact.
    /// </summary>
    [Fact]
    public void TakeDirtyPages_UntrackedRegion_FirstReturnsEveryPage_ThenExactlyTheLaterWrites()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Touch(region, 5, value: 1);

        CowPageSet first = region.TakeDirtyPages();
        Assert.Equal(Pages, first.Count);
        Assert.True(first.Contains(5));

        long[] written = [0, 5, 512, Pages - 1];
        foreach (long page in written)
            Touch(region, page, value: 2);
        AssertPageSet(written, region.TakeDirtyPages());
    }

    [Fact]
    public void TakeDirtyPages_IsGetAndReset_WritesAfterACallAppearInTheNext()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);
        Touch(region, 1, value: 1);
        Touch(region, 600, value: 1);

        AssertPageSet([1, 600], region.TakeDirtyPages());
        Assert.Empty(region.TakeDirtyPages());

        Touch(region, 1, value: 2);   // dirty again: the first call write-protected it
        Touch(region, 2, value: 2);
        AssertPageSet([1, 2], region.TakeDirtyPages());
        Assert.Empty(region.TakeDirtyPages());
        // The pages were only re-protected: the data stayed.
        Assert.Equal(2, region.Pointer[1L * PageSize + TouchOffset]);
        Assert.Equal(1, region.Pointer[600L * PageSize + TouchOffset]);
    }

    [Fact]
    public void TakeDirtyPages_OfASnapshot_ReportsTheSnapshotsOwnWritesOnly()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        FillAll(region, 1);
        using CowView snapshot = region.Snapshot();
        Touch(snapshot, 7, value: 3);
        Touch(snapshot, 1000, value: 3);
        Touch(region, 8, value: 4);

        AssertPageSet([7, 1000], snapshot.TakeDirtyPages());
        AssertPageSet([8], region.TakeDirtyPages());
    }

    [Fact]
    public void TakeDirtyPages_ReadsDoNotCount_NotEvenTheFirstTouchThatMapsASnapshotPage()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);
        using CowView snapshot = region.Snapshot();
        long sum = 0;
        for (long page = 0; page < Pages; page += 3)
            sum += region.Pointer[page * PageSize] + snapshot.Pointer[page * PageSize];

        Assert.Equal(0, sum);
        Assert.True(snapshot.GetStats().MappedPages > 0, "the reads did not map the snapshot: the test would test nothing");
        Assert.Empty(region.TakeDirtyPages());
        Assert.Empty(snapshot.TakeDirtyPages());
        Assert.Empty(region.GetChangedPages(snapshot));
    }

    /// <summary>Documented imprecision: a prepared page is dirty even if nothing is written to it (superset).</summary>
    [Fact]
    public void TakeDirtyPages_PreparedButUnwrittenPages_CountAsDirty()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);
        Touch(region, 3, value: 1);

        region.PrepareForWrite(10L * PageSize + 100, 2 * PageSize); // pages 10, 11, 12 (unaligned)

        AssertPageSet([3, 10, 11, 12], region.TakeDirtyPages());
    }

    /// <summary>Documented imprecision: a page written with the bytes it held is dirty (superset).</summary>
    [Fact]
    public void TakeDirtyPages_PageWrittenWithTheBytesItHeld_CountsAsDirty()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);

        region.Pointer[9L * PageSize] = 0; // it held 0 already

        AssertPageSet([9], region.TakeDirtyPages());
    }

    /// <summary>
    /// A restore changes a view's contents without writes. For TakeDirtyPages to stay a superset of
    /// the pages whose contents changed since the last call (what incremental work - e.g. saving
    /// only changed pages - relies on), the pages the restore changed must be reported by the next
    /// call.
    /// </summary>
    [Fact]
    public void TakeDirtyPages_AfterRestoreTo_ReportsThePagesTheRestoreChanged()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);
        using CowView snapshot = region.Snapshot();
        Touch(region, 4, value: 1);
        Touch(region, 700, value: 1);
        AssertPageSet([4, 700], region.TakeDirtyPages()); // the reference point: pages 4 and 700 hold 1

        region.RestoreTo(snapshot); // pages 4 and 700 hold 0 again

        Assert.Equal(0, region.Pointer[4L * PageSize + TouchOffset]);
        // Exactly those: pages the restore left on the same slot (every other page) are not dirty.
        AssertPageSet([4, 700], region.TakeDirtyPages());
        Assert.Empty(region.TakeDirtyPages());
    }

    /// <summary>
    /// TakeDirtyPages reports the pages written since the view's last Snapshot() or
    /// TakeDirtyPages(). Being the source of another view's RestoreTo is neither, so the source's
    /// own writes must still be reported afterwards.
    /// </summary>
    [Fact]
    public void TakeDirtyPages_OfARestoreSource_StillReportsItsWrites()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);
        using CowView snapshot = region.Snapshot();
        Touch(snapshot, 6, value: 1);
        Touch(snapshot, 900, value: 1);

        region.RestoreTo(snapshot);

        AssertPageSet([6, 900], snapshot.TakeDirtyPages());
        // The target's pages 6 and 900 changed (its slots are the snapshot's now): dirty for it too.
        AssertPageSet([6, 900], region.TakeDirtyPages());
    }

    /// <summary>
    /// A Snapshot() refused for the mapping budget "left the views unchanged" (its documentation),
    /// so it is not a reference point: the source's dirty pages must still be reported afterwards.
    /// Setup: a 16-mapping budget, used up exactly by the region's six pinned (prepared) pages and
    /// the snapshot's written page, so that evicting what can be evicted still leaves no room for
    /// one more view.
    /// </summary>
    [Fact]
    public void TakeDirtyPages_AfterASnapshotRefusedForTheMappingBudget_StillReportsTheSourcesWrites()
    {
        const int Budget = 16;
        using var engine = NewFragmentingEngine(mappingBudget: Budget);
        using CowView region = engine.CreateRegion(512 * PageSize);
        FillAll(region, 1);
        using CowView snapshot = region.Snapshot();
        Touch(snapshot, 0, value: 2);                       // the page whose dirtiness is at stake
        foreach (long page in new long[] { 0, 2, 4, 6, 8, 511 })
            region.PrepareForWrite(page * PageSize, 1);     // pinned: eviction may not unmap them
        CowEngineStats before = engine.GetStats();
        Assert.True(before.Mappings == Budget, $"the setup should use the budget exactly: {before}");

        Assert.Throws<CowMappingBudgetExceededException>(() => snapshot.Snapshot());

        Assert.Equal(2, snapshot.Pointer[TouchOffset]);
        CowPageSet dirty = snapshot.TakeDirtyPages();
        Assert.True(dirty.Contains(0),
            $"the snapshot wrote page 0 and was never asked nor snapshotted (the Snapshot() call was refused), but TakeDirtyPages reported [{string.Join(", ", dirty)}]");
    }

    /// <summary>
    /// The same refused Snapshot(), seen from PrepareForWrite: a prepared page is pinned (recorded
    /// like a dirty page, until the view's next snapshot or TakeDirtyPages) and documented to stay
    /// writable until the next Snapshot, so that the kernel can write into it. A refused snapshot is
    /// not one: read(2) into the prepared page must still succeed rather than fail with EFAULT.
    /// </summary>
    [Fact]
    public void PreparedPages_StayWritableForTheKernel_AfterASnapshotRefusedForTheMappingBudget()
    {
        const int Budget = 16;
        using var engine = NewFragmentingEngine(mappingBudget: Budget);
        using CowView region = engine.CreateRegion(512 * PageSize);
        FillAll(region, 1);
        using CowView snapshot = region.Snapshot();
        snapshot.PrepareForWrite(0, 4);                     // the buffer a read(2) is about to fill
        foreach (long page in new long[] { 0, 2, 4, 6, 8, 511 })
            region.PrepareForWrite(page * PageSize, 1);
        CowEngineStats before = engine.GetStats();
        Assert.True(before.Mappings == Budget, $"the setup should use the budget exactly: {before}");
        Assert.Throws<CowMappingBudgetExceededException>(() => snapshot.Snapshot());

        (int readEnd, int writeEnd) = LibC.CreatePipe();
        try
        {
            LibC.WriteAll(writeEnd, [9, 8, 7, 6]);
            nint read = LibC.Read(readEnd, snapshot.Pointer, 4);
            int error = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();

            Assert.True(read == 4, $"read(2) into the prepared page returned {read} (errno {error}; {LibC.EFAULT} is EFAULT) after the refused snapshot: {snapshot.GetStats()}");
            Assert.Equal([9, 8, 7, 6], snapshot.AsSpan(0, 4).ToArray());
            Assert.Equal(1, region.Pointer[0]);
        }
        finally
        {
            LibC.Close(readEnd);
            LibC.Close(writeEnd);
        }
    }

    [Fact]
    public void TakeDirtyPages_DisposedView_ThrowsObjectDisposedException()
    {
        using CowMemoryEngine engine = NewEngine();
        CowView region = engine.CreateRegion(PageSize);
        region.Dispose();

        Assert.Throws<ObjectDisposedException>(() => region.TakeDirtyPages());
    }

    // ---- GetChangedPages ----

    [Theory]
    [MemberData(nameof(WriteCounts))]
    public void GetChangedPages_ViewAndItsSnapshot_AreExactlyTheWrittenPages_InBothDirections(int writes)
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        FillAll(region, 1);
        using CowView snapshot = region.Snapshot();
        long[] written = SpreadPages(writes);
        foreach (long page in written)
            Touch(region, page, value: 2);

        AssertPageSet(written, region.GetChangedPages(snapshot));
        AssertPageSet(written, snapshot.GetChangedPages(region));
        AssertTrulyChangedPagesAreIncluded(region, snapshot, region.GetChangedPages(snapshot));
    }

    /// <summary>
    /// Documented imprecision (superset direction): the diff compares slots, not bytes, so a page
    /// written with the bytes it held, or prepared for writing, is reported although its contents
    /// equal the other view's.
    /// </summary>
    [Fact]
    public void GetChangedPages_PagesWrittenWithTheSameBytesOrPrepared_AreNotReported()
    {
        // Documented: GetChangedPages compares the bytes of pages whose slots differ, so a page written
        // with the bytes it held, or only prepared for writing, is not reported.
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        FillAll(region, 1);
        using CowView snapshot = region.Snapshot();

        region.Pointer[3L * PageSize] = region.Pointer[3L * PageSize]; // same byte
        region.PrepareForWrite(600L * PageSize, 1);
        Touch(region, 700, value: 9);

        Assert.NotEqual(snapshot.SlotOf(3), region.SlotOf(3)); // both were copied: the slots differ
        Assert.NotEqual(snapshot.SlotOf(600), region.SlotOf(600));
        AssertPageSet([700], region.GetChangedPages(snapshot));
        AssertPageSet([3, 600, 700], region.TakeDirtyPages()); // they were made writable, though
    }

    [Fact]
    public void GetChangedPages_TwoSiblings_IsTheUnionOfBothSidesWrites()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        FillAll(region, 1);
        using CowView left = region.Snapshot();
        using CowView right = region.Snapshot();
        long[] leftWrites = [0, 10, 512, 1000];
        long[] rightWrites = [10, 11, 513, Pages - 1];
        foreach (long page in leftWrites)
            Touch(left, page, value: 2);
        foreach (long page in rightWrites)
            Touch(right, page, value: 3);

        long[] union = leftWrites.Union(rightWrites).Order().ToArray();
        AssertPageSet(union, left.GetChangedPages(right));
        AssertPageSet(union, right.GetChangedPages(left));
        AssertPageSet(leftWrites, left.GetChangedPages(region));
        AssertPageSet(rightWrites, region.GetChangedPages(right));
        AssertTrulyChangedPagesAreIncluded(left, right, left.GetChangedPages(right));
    }

    [Fact]
    public void GetChangedPages_ViewAndADeepDescendant_IsEveryPageWrittenOnTheWay()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        FillAll(region, 1);
        using CowView child = region.Snapshot();
        Touch(child, 1, value: 2);
        using CowView grandchild = child.Snapshot();
        Touch(grandchild, 2, value: 3);
        Touch(child, 3, value: 4); // after the grandchild was taken: a difference between child and grandchild only
        Touch(region, 4, value: 5);

        AssertPageSet([1, 2, 4], region.GetChangedPages(grandchild));
        AssertPageSet([2, 3], child.GetChangedPages(grandchild));
        AssertPageSet([1, 3, 4], region.GetChangedPages(child));
    }

    /// <summary>
    /// Documented: two regions created separately share no slot, so their pages are compared by their
    /// bytes; pages neither ever wrote read zero in both, which the engine knows without reading them
    /// (reading would allocate them), so they do not differ.
    /// </summary>
    [Fact]
    public void GetChangedPages_UnrelatedRegions_IsEveryPageWhoseBytesDiffer()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView first = engine.CreateRegion(Pages * PageSize);
        using CowView second = engine.CreateRegion(Pages * PageSize);
        long committed = engine.GetStats().CommittedBytes;

        // Never written: equal, and nothing was read (allocated) to say so.
        Assert.Empty(first.GetChangedPages(second));
        Assert.Equal(0, second.GetChangedPages(first).LongCount);
        Assert.Equal(committed, engine.GetStats().CommittedBytes);

        // Written in one only: that page differs (its bytes against the other's zeros).
        Touch(second, 7, value: 3);
        AssertPageSet([7], first.GetChangedPages(second));

        // Written in both: compared byte for byte.
        FillAll(first, 1);
        FillAll(second, 1);
        Touch(second, 5, value: 2);
        AssertPageSet([5], first.GetChangedPages(second));
    }

    [Fact]
    public void GetChangedPages_WithItself_IsEmpty()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Touch(region, 1, value: 1);

        Assert.Empty(region.GetChangedPages(region));
    }

    [Fact]
    public void GetChangedPages_BadInput_Throws()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowMemoryEngine other = NewEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);
        using CowView smaller = engine.CreateRegion(3 * PageSize);
        using CowView foreign = other.CreateRegion(4 * PageSize);
        CowView disposed = region.Snapshot();
        disposed.Dispose();

        Assert.Throws<ArgumentException>("other", () => region.GetChangedPages(smaller));
        Assert.Throws<ArgumentException>("other", () => region.GetChangedPages(foreign));
        Assert.Throws<ArgumentNullException>("other", () => region.GetChangedPages(null!));
        Assert.Throws<ObjectDisposedException>(() => region.GetChangedPages(disposed));
        Assert.Throws<ObjectDisposedException>(() => disposed.GetChangedPages(region));
    }

    // ---- CowPageSet ----

    [Fact]
    public void CowPageSet_DescribesItsPages()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize, trackWrites: true);
        long[] written = [0, 63, 64, 127, 512, Pages - 1];
        foreach (long page in written)
            Touch(region, page, value: 1);

        CowPageSet set = region.TakeDirtyPages();

        Assert.Equal(Pages, set.PageCount);
        Assert.Equal(written.Length, set.Count);
        Assert.Equal(written.Length, set.LongCount);
        Assert.Equal(written.Length * (long)PageSize, set.Bytes);
        Assert.Equal(written, set.ToArray());
        Assert.Equal(written, set.ToList()); // the enumerator agrees with ToArray
        Assert.False(set.Contains(-1));
        Assert.False(set.Contains(Pages));
        Assert.False(set.Contains(1));
    }

    // ---- helpers ----

    /// <summary>Where <see cref="Touch"/> writes in a page: not at 0, so a page-offset mix-up shows.</summary>
    private const int TouchOffset = 123;

    private static void Touch(CowView view, long page, byte value) => view.Pointer[page * PageSize + TouchOffset] = value;

    private static void FillAll(CowView view, byte value) => view.AsSpan().Fill(value);

    /// <summary><paramref name="count"/> distinct pages spread over the view, in all three segments.</summary>
    private static long[] SpreadPages(int count)
    {
        var pages = new SortedSet<long>();
        for (long i = 0; pages.Count < count; i++)
            pages.Add(i * 7919 % Pages);
        return pages.ToArray();
    }

    private static void AssertPageSet(long[] expected, CowPageSet actual)
    {
        long[] sortedExpected = expected.Order().ToArray();
        long[] pages = actual.ToArray();
        Assert.True(sortedExpected.SequenceEqual(pages),
            $"expected {sortedExpected.Length} pages, got {pages.Length}; missing [{string.Join(", ", sortedExpected.Except(pages).Take(20))}], extra [{string.Join(", ", pages.Except(sortedExpected).Take(20))}]");
        Assert.Equal(expected.Length, actual.Count);
    }

    /// <summary>Compares bytes: every page whose contents differ must be in the answer.</summary>
    private static void AssertTrulyChangedPagesAreIncluded(CowView a, CowView b, CowPageSet reported)
    {
        for (long page = 0; page < a.PageCount; page++)
        {
            bool differs = !a.AsSpan(page * PageSize, PageSize).SequenceEqual(b.AsSpan(page * PageSize, PageSize));
            if (differs)
                Assert.True(reported.Contains(page), $"page {page} differs but was not reported");
        }
    }
}
