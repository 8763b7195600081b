using System.Globalization;
using CowEngine.Tests.Support;
using CowEngine.TestSupport;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// <see cref="CowView.RestoreTo"/>: afterwards the view holds exactly the source's contents,
/// sharing the source's slots (no copies), both stay independent and writable, and restoring over
/// and over leaks neither slots, memory, page-table leaves, chunks nor kernel mappings.
/// </summary>
public sealed unsafe class RestoreTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    /// <summary>Two full segments and part of a third, so segment skipping and the partial last leaf both take part.</summary>
    private const int Pages = 2 * 512 + 77;

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(300)]
    [InlineData(Pages)]
    public void RestoreTo_OwnSnapshot_AfterKWrites_HoldsTheSnapshotsContentsAndCopiesBackOnlyTheWrittenPages(int writes)
    {
        using CowMemoryEngine engine = NewPageByPageEngine(); // exactly the written pages become the view's own
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView snapshot = region.Snapshot();
        long[] written = Pattern.SpreadPages(Pages, writes);
        var slotsBefore = Enumerable.Range(0, Pages).Select(page => region.SlotOf(page)).ToArray();
        foreach (long page in written)
            Pattern.Fill(region, page, generation: 2);
        Assert.Equal(writes, region.GetChangedPages(snapshot).Count);
        long restoredByCopy = engine.GetStats().PagesRestoredByCopy;

        region.RestoreTo(snapshot);

        Pattern.AssertAll(region, _ => 1);
        Assert.Empty(region.GetChangedPages(snapshot));
        // Documented: the pages the view wrote (its own) got the snapshot's bytes copied back and stay
        // its own, at the slots it always had; every other page is shared with the snapshot.
        Assert.Equal(writes, engine.GetStats().PagesRestoredByCopy - restoredByCopy);
        for (long page = 0; page < Pages; page++)
        {
            if (written.Contains(page))
                Assert.NotEqual(snapshot.SlotOf(page), region.SlotOf(page));
            else
                Assert.Equal(snapshot.SlotOf(page), region.SlotOf(page));
            Assert.Equal(slotsBefore[page], region.SlotOf(page));
        }
        CowViewStats stats = region.GetStats();
        Assert.Equal(writes, stats.PrivatePages);
        Assert.Equal(Pages - writes, stats.SharedPages);
        Assert.Equal(0, stats.WritablePages); // write-protected: the next write is seen
        Assert.Equal(Pages + writes, engine.GetStats().SlotsInUse);

        // Both stay writable and independent: writes after the restore go to the view only.
        long[] later = Pattern.SpreadPages(Pages, 5);
        foreach (long page in later)
            Pattern.Fill(region, page, generation: 3);
        Pattern.AssertAll(region, page => later.Contains(page) ? 3 : 1);
        Pattern.AssertAll(snapshot, _ => 1);
        Assert.Equal(later, region.GetChangedPages(snapshot).ToArray());

        Pattern.Fill(snapshot, Pages - 1, generation: 4);
        Assert.Equal(Pattern.Value(Pages - 1, 0, later.Contains(Pages - 1) ? 3 : 1), Pattern.Read(region, Pages - 1, 0));
    }

    [Fact]
    public void RestoreTo_Sibling_HoldsTheSiblingsContents_AndLeavesTheParentAlone()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView first = region.Snapshot();
        using CowView second = region.Snapshot();
        Pattern.Fill(first, 3, generation: 2);
        Pattern.Fill(first, 600, generation: 2);
        Pattern.Fill(second, 4, generation: 3);
        Pattern.Fill(second, Pages - 1, generation: 3);

        first.RestoreTo(second);

        Pattern.AssertAll(first, page => page is 4 or Pages - 1 ? 3 : 1);
        Pattern.AssertAll(second, page => page is 4 or Pages - 1 ? 3 : 1);
        Pattern.AssertAll(region, _ => 1);
        Assert.Empty(first.GetChangedPages(second));
        Assert.Equal([4L, Pages - 1], first.GetChangedPages(region).ToArray());

        // The source's written pages are now shared: a write to the source must not show through.
        Pattern.Fill(second, 4, generation: 5);
        Assert.Equal(Pattern.Value(4, 17, 3), Pattern.Read(first, 4, 17));
        Pattern.Fill(first, Pages - 1, generation: 6);
        Assert.Equal(Pattern.Value(Pages - 1, 17, 3), Pattern.Read(second, Pages - 1, 17));
    }

    [Fact]
    public void RestoreTo_DeeperDescendant_HoldsItsContents_AndTheIntermediateSnapshotsAreUnchanged()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView child = region.Snapshot();
        Pattern.Fill(child, 10, generation: 2);
        using CowView grandchild = child.Snapshot();
        Pattern.Fill(grandchild, 11, generation: 3);
        Pattern.Fill(grandchild, 900, generation: 3);
        using CowView greatGrandchild = grandchild.Snapshot();
        Pattern.Fill(greatGrandchild, 12, generation: 4);
        Pattern.Fill(region, 13, generation: 9); // the region moved on too: the restore must undo it

        region.RestoreTo(greatGrandchild);

        Func<long, int> deepest = page => page switch { 10 => 2, 11 or 900 => 3, 12 => 4, _ => 1 };
        Pattern.AssertAll(region, deepest);
        Pattern.AssertAll(greatGrandchild, deepest);
        Pattern.AssertAll(grandchild, page => page switch { 10 => 2, 11 or 900 => 3, _ => 1 });
        Pattern.AssertAll(child, page => page == 10 ? 2 : 1);
        Assert.Empty(region.GetChangedPages(greatGrandchild));
    }

    [Fact]
    public void RestoreTo_Ancestor_RollsADescendantBackToTheAncestorsContents()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView child = region.Snapshot();
        Pattern.Fill(child, 20, generation: 2);
        using CowView grandchild = child.Snapshot();
        Pattern.Fill(grandchild, 21, generation: 3);
        Pattern.Fill(grandchild, 1000, generation: 3);
        Pattern.Fill(region, 22, generation: 4);

        grandchild.RestoreTo(region);

        Pattern.AssertAll(grandchild, page => page == 22 ? 4 : 1);
        Pattern.AssertAll(child, page => page == 20 ? 2 : 1);
        Pattern.AssertAll(region, page => page == 22 ? 4 : 1);
        Assert.Empty(grandchild.GetChangedPages(region));

        // The region's write to page 22 is now shared with the grandchild: the region's next write copies.
        long copiesBefore = region.GetStats().PagesCopied;
        Pattern.Fill(region, 22, generation: 5);
        Assert.Equal(copiesBefore + 1, region.GetStats().PagesCopied);
        Assert.Equal(Pattern.Value(22, 0, 4), Pattern.Read(grandchild, 22, 0));
    }

    [Fact]
    public void RestoreTo_SnapshotFromTheLiveView_RollsTheSnapshotForward()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView snapshot = region.Snapshot();
        Pattern.Fill(region, 5, generation: 2);
        Pattern.Fill(region, 700, generation: 2);

        snapshot.RestoreTo(region);

        Pattern.AssertAll(snapshot, page => page is 5 or 700 ? 2 : 1);
        Assert.Empty(snapshot.GetChangedPages(region));
        Pattern.Fill(region, 5, generation: 3); // the live view goes on; the snapshot keeps the restored state
        Assert.Equal(Pattern.Value(5, 9, 2), Pattern.Read(snapshot, 5, 9));
    }

    [Fact]
    public void RestoreTo_BackThenForward_BetweenTwoSnapshots()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView before = region.Snapshot();
        Pattern.Fill(region, 30, generation: 2);
        Pattern.Fill(region, 530, generation: 2);
        using CowView after = region.Snapshot();

        region.RestoreTo(before);
        Pattern.AssertAll(region, _ => 1);
        region.RestoreTo(after);
        Pattern.AssertAll(region, page => page is 30 or 530 ? 2 : 1);
        region.RestoreTo(before);
        Pattern.AssertAll(region, _ => 1);
        Pattern.AssertAll(after, page => page is 30 or 530 ? 2 : 1);
    }

    [Fact]
    public void RestoreTo_Twice_OrToItself_ChangesNothingTheSecondTime()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView snapshot = region.Snapshot();
        Pattern.Fill(region, 40, generation: 2);

        region.RestoreTo(snapshot);
        CowEngineStats once = engine.GetStats();
        CowViewStats viewOnce = region.GetStats();
        region.RestoreTo(snapshot);
        region.RestoreTo(region);
        CowEngineStats twice = engine.GetStats();
        CowViewStats viewTwice = region.GetStats(); // before reading: reads map pages

        Assert.Equal(once.SlotsInUse, twice.SlotsInUse);
        Assert.Equal(once.Mappings, twice.Mappings);
        Assert.Equal(once.CommittedBytes, twice.CommittedBytes);
        Assert.Equal(viewOnce, viewTwice);
        Pattern.AssertAll(region, _ => 1);

        // A write between two restores is undone by the second.
        Pattern.Fill(region, 41, generation: 3);
        region.RestoreTo(snapshot);
        Pattern.AssertAll(region, _ => 1);
    }

    /// <summary>
    /// Snapshots are mapped lazily: a restore must give correct contents whether the target's and
    /// the source's pages were mapped (read) or not, and mapped pages must keep being readable.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void RestoreTo_WithTargetOrSourcePartlyRead_HoldsTheSourcesContents(bool targetPartlyRead, bool sourcePartlyRead)
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView target = region.Snapshot();
        using CowView source = region.Snapshot();
        // Each snapshot differs from the region at its own pages, in several segments.
        long[] targetWrites = [2, 100, 513, 1030];
        long[] sourceWrites = [3, 100, 514, 1031, Pages - 1];
        foreach (long page in targetWrites)
            Pattern.Fill(target, page, generation: 2);
        foreach (long page in sourceWrites)
            Pattern.Fill(source, page, generation: 3);
        using CowView targetReference = target.Snapshot(); // freezes the writes; later reads of target are lazy-mapped in part
        using CowView sourceReference = source.Snapshot();
        using CowView lazyTarget = target.Snapshot();
        using CowView lazySource = source.Snapshot();
        if (targetPartlyRead)
            ReadPages(lazyTarget, [0, 1, 2, 3, 99, 100, 101, 514, 700, 1031]);
        if (sourcePartlyRead)
            ReadPages(lazySource, [3, 4, 100, 513, 1030, 1090, Pages - 1]);
        long mappedBefore = lazyTarget.GetStats().MappedPages;
        Assert.True(targetPartlyRead ? mappedBefore is > 0 and < Pages : mappedBefore == 0,
            $"the target's lazily mapped pages are {mappedBefore}: the test would not test what it says");

        lazyTarget.RestoreTo(lazySource);

        Func<long, int> sourceGenerations = page => sourceWrites.Contains(page) ? 3 : 1;
        Pattern.AssertAll(lazyTarget, sourceGenerations);
        Pattern.AssertAll(lazySource, sourceGenerations);
        Pattern.AssertAll(target, page => targetWrites.Contains(page) ? 2 : 1);
        Assert.Empty(lazyTarget.GetChangedPages(sourceReference));
        Assert.Empty(lazySource.GetChangedPages(sourceReference));
        Assert.Equal(targetWrites.Union(sourceWrites).Order().ToArray(), lazyTarget.GetChangedPages(targetReference).ToArray());

        // Writes after the restore stay where they are made.
        Pattern.Fill(lazyTarget, 100, generation: 7);
        Pattern.Fill(lazySource, 514, generation: 8);
        Pattern.AssertAll(lazyTarget, page => page == 100 ? 7 : sourceGenerations(page));
        Pattern.AssertAll(lazySource, page => page == 514 ? 8 : sourceGenerations(page));
        MappingCounts.AssertAgree(lazyTarget, "the target after the restore and a write");
        MappingCounts.AssertAgree(lazySource, "the source after the restore and a write");
    }

    /// <summary>
    /// The engine keeps its own count of each view's kernel mappings (it budgets vm.max_map_count
    /// with it). After restores the count, the recount from the page table and the kernel's
    /// /proc/self/maps over the view's range must agree.
    /// </summary>
    [Fact]
    public void RestoreTo_KeepsTheViewsMappingCountInStepWithTheKernel()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView snapshot = region.Snapshot();
        foreach (long page in new long[] { 0, 1, 5, 511, 512, 513, 800, Pages - 1 })
            Pattern.Fill(region, page, generation: 2);
        using CowView later = region.Snapshot();
        ReadPages(later, [0, 6, 512, 900]);
        MappingCounts.AssertAgree(region, "the region before any restore");

        region.RestoreTo(snapshot);
        MappingCounts.AssertAgree(region, "the region restored to the first snapshot");
        Pattern.Fill(region, 512, generation: 3);
        region.RestoreTo(later);
        MappingCounts.AssertAgree(region, "the region restored to the later snapshot");
        later.RestoreTo(snapshot);
        MappingCounts.AssertAgree(later, "the later snapshot restored to the first");
        MappingCounts.AssertAgree(snapshot, "the first snapshot, the source of that restore");
        Pattern.AssertAll(region, page => page is 0 or 1 or 5 or 511 or 512 or 513 or 800 or Pages - 1 ? 2 : 1);
        Pattern.AssertAll(later, _ => 1);
    }

    /// <summary>
    /// The "leaks nothing" check: 100,000 rounds of a few writes and a restore on an 8-page region.
    /// Every number that would grow with a leak is sampled right after a restore, when the view
    /// again shares all 8 pages with the snapshot, and must stay at its first value (kernel
    /// mappings within a small constant).
    /// </summary>
    [Fact]
    public void RestoreTo_HundredThousandTimes_LeaksNoSlotsMemoryLeavesChunksOrMappings()
    {
        const int SmallPages = 8, Rounds = 100_000, SampleEvery = 1_000;
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(SmallPages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView snapshot = region.Snapshot();
        var ulongs = (ulong*)region.Pointer;

        LeakSample? baseline = null;
        var worst = new LeakSample(0, 0, 0, 0, 0, 0);
        for (int round = 0; round < Rounds; round++)
        {
            // Two or three pages per round, a different pattern of pages each time.
            long a = round % SmallPages, b = (round * 3 + 1) % SmallPages, c = (round * 5 + 2) % SmallPages;
            ulongs[a * (PageSize / 8) + 1] = (ulong)round;
            ulongs[b * (PageSize / 8) + 2] = (ulong)round;
            if (round % 3 == 0)
                ulongs[c * (PageSize / 8) + 3] = (ulong)round;

            region.RestoreTo(snapshot);

            if (ulongs[a * (PageSize / 8) + 1] != Pattern.Value(a, 1, 1))
                Assert.Fail($"round {round}: page {a} was not restored");
            if (round % SampleEvery == SampleEvery - 1)
            {
                LeakSample sample = LeakSample.Take(engine, region);
                baseline ??= sample;
                worst = worst.Max(sample);
                Assert.True(sample.SlotsInUse == baseline.SlotsInUse && sample.LeavesInUse == baseline.LeavesInUse &&
                            sample.ChunksInUse == baseline.ChunksInUse && sample.CommittedBytes <= baseline.CommittedBytes &&
                            sample.EngineMappings <= baseline.EngineMappings + 2 && sample.KernelMappings <= baseline.KernelMappings + 2,
                    $"round {round}: {sample} grew from {baseline}");
            }
        }

        Pattern.AssertAll(region, _ => 1);
        Pattern.AssertAll(snapshot, _ => 1);
        Assert.NotNull(baseline);
        // The snapshot's 8 pages and the view's own copy of each (a restore copies the snapshot's bytes
        // back into those, and the next write needs no copy), nothing else.
        Assert.Equal(2 * SmallPages, baseline.SlotsInUse);
        Assert.True(baseline.CommittedBytes <= 2 * SmallPages * PageSize, $"{baseline.CommittedBytes} bytes committed for 8 pages and their copies");
        Assert.True(engine.GetStats().PagesRestoredByCopy >= 2L * Rounds, "the restores did not copy back: the loop did not exercise restore");
        TestContext.Current.TestOutputHelper?.WriteLine($"baseline {baseline}; worst {worst}");
    }

    /// <summary>
    /// Under a mapping budget far smaller than what scattered writes need, rounds of writes and
    /// restores keep the engine within the budget (it evicts segments: mappings are a cache of the
    /// page table), the contents stay right, and the counts still agree with the kernel.
    /// </summary>
    [Fact]
    public void RestoreTo_UnderATightMappingBudget_StaysWithinIt_AndKeepsTheContents()
    {
        const int SmallPages = 3 * 512, Budget = 64, Rounds = 12;
        using var engine = NewFragmentingEngine(mappingBudget: Budget);
        using CowView region = engine.CreateRegion(SmallPages * PageSize);
        Pattern.FillAll(region, generation: 1);
        using CowView snapshot = region.Snapshot();

        for (int round = 0; round < Rounds; round++)
        {
            // Every third page, shifted each round: hundreds of separate runs without eviction.
            for (long page = round % 3; page < SmallPages; page += 3)
                Pattern.Fill(region, page, generation: 2 + round);
            Assert.True(engine.GetStats().Mappings <= Budget, $"round {round}: {engine.GetStats()} after the writes");
            Pattern.AssertAll(region, page => page % 3 == round % 3 ? 2 + round : 1);

            region.RestoreTo(snapshot);

            Assert.True(engine.GetStats().Mappings <= Budget, $"round {round}: {engine.GetStats()} after the restore");
            Pattern.AssertAll(region, _ => 1);
        }
        Assert.True(engine.GetStats().Evictions > 0, "nothing was evicted: the budget was not tight enough to test anything");
        Pattern.AssertAll(snapshot, _ => 1);
        MappingCounts.AssertAgree(region, "the region after the rounds");
        MappingCounts.AssertAgree(snapshot, "the snapshot after the rounds");
        // The snapshot's pages, and at most one copy of its own for each page the region wrote (a
        // restore copies the snapshot's bytes back into those, or shares the snapshot's).
        Assert.InRange(engine.GetStats().SlotsInUse, SmallPages, 2 * SmallPages);
    }

    [Fact]
    public void RestoreTo_ViewsOfAnotherEngineOrSize_ThrowsArgumentException_AndChangesNothing()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowMemoryEngine other = NewEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);
        using CowView smaller = engine.CreateRegion(3 * PageSize);
        using CowView larger = engine.CreateRegion(5 * PageSize);
        using CowView foreign = other.CreateRegion(4 * PageSize);
        region.Pointer[0] = 1;
        foreign.Pointer[0] = 2;

        Assert.Throws<ArgumentException>("source", () => region.RestoreTo(foreign));
        Assert.Throws<ArgumentException>("source", () => foreign.RestoreTo(region));
        Assert.Throws<ArgumentException>("source", () => region.RestoreTo(smaller));
        Assert.Throws<ArgumentException>("source", () => region.RestoreTo(larger));
        Assert.Throws<ArgumentNullException>("source", () => region.RestoreTo(null!));
        Assert.Equal(1, region.Pointer[0]);
        Assert.Equal(2, foreign.Pointer[0]);
    }

    [Fact]
    public void RestoreTo_DisposedSourceOrTarget_ThrowsObjectDisposedException()
    {
        using CowMemoryEngine engine = NewEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);
        region.Pointer[0] = 1;
        CowView disposedSnapshot = region.Snapshot();
        disposedSnapshot.Dispose();
        CowView disposedTarget = engine.CreateRegion(4 * PageSize);
        disposedTarget.Dispose();

        Assert.Throws<ObjectDisposedException>(() => region.RestoreTo(disposedSnapshot));
        Assert.Throws<ObjectDisposedException>(() => disposedTarget.RestoreTo(region));
        Assert.Equal(1, region.Pointer[0]);
        region.Pointer[0] = 2; // still live and writable
        Assert.Equal(2, region.Pointer[0]);
    }

    [Fact]
    public void RestoreTo_AfterTheEngineIsDisposed_ThrowsObjectDisposedException()
    {
        CowMemoryEngine engine = NewEngine();
        CowView region = engine.CreateRegion(4 * PageSize);
        CowView snapshot = region.Snapshot();
        engine.Dispose();

        Assert.Throws<ObjectDisposedException>(() => region.RestoreTo(snapshot));
    }

    // ---- helpers ----

    private static void ReadPages(CowView view, long[] pages)
    {
        ulong sum = 0;
        foreach (long page in pages)
            sum += Pattern.Read(view, page, 0);
        GC.KeepAlive(sum);
    }

    private sealed record LeakSample(long SlotsInUse, long CommittedBytes, long LeavesInUse, long ChunksInUse, long EngineMappings, long KernelMappings)
    {
        public static LeakSample Take(CowMemoryEngine engine, CowView view)
        {
            CowEngineStats stats = engine.GetStats();
            return new LeakSample(stats.SlotsInUse, stats.CommittedBytes,
                (long)Volatile.Read(ref engine.Handle.Table->LeavesInUse), (long)Volatile.Read(ref engine.Handle.Table->ChunksInUse),
                stats.Mappings, ProcMaps.CountOverlapping(view.BaseAddress, view.Length));
        }

        public LeakSample Max(LeakSample other) => new(
            Math.Max(SlotsInUse, other.SlotsInUse), Math.Max(CommittedBytes, other.CommittedBytes),
            Math.Max(LeavesInUse, other.LeavesInUse), Math.Max(ChunksInUse, other.ChunksInUse),
            Math.Max(EngineMappings, other.EngineMappings), Math.Max(KernelMappings, other.KernelMappings));
    }
}

/// <summary>
/// Page contents that name their page and a generation: every 8-byte word of page p written in
/// generation g holds (g, p, word index), so a page that shows another page's or generation's
/// contents is caught and the message says whose it shows.
/// </summary>
file static unsafe class Pattern
{
    private const int WordsPerPage = CowMemoryEngine.PageSize / 8;

    public static ulong Value(long page, int word, int generation) =>
        ((ulong)generation << 48) | ((ulong)page << 16) | (uint)word;

    public static ulong Read(CowView view, long page, int word) => ((ulong*)view.Pointer)[page * WordsPerPage + word];

    public static void Fill(CowView view, long page, int generation)
    {
        ulong* words = (ulong*)view.Pointer + page * WordsPerPage;
        for (int word = 0; word < WordsPerPage; word++)
            words[word] = Value(page, word, generation);
    }

    public static void FillAll(CowView view, int generation)
    {
        for (long page = 0; page < view.PageCount; page++)
            Fill(view, page, generation);
    }

    /// <summary>Compares every word of every page; on a mismatch names the page and what it holds.</summary>
    public static void AssertAll(CowView view, Func<long, int> generationOf)
    {
        for (long page = 0; page < view.PageCount; page++)
        {
            int generation = generationOf(page);
            ulong* words = (ulong*)view.Pointer + page * WordsPerPage;
            for (int word = 0; word < WordsPerPage; word++)
            {
                if (words[word] != Value(page, word, generation))
                    Assert.Fail(string.Create(CultureInfo.InvariantCulture,
                        $"page {page} word {word} of the view at 0x{view.BaseAddress:x} holds 0x{words[word]:x16} (generation {words[word] >> 48}, page {(words[word] >> 16) & 0xFFFFFFFF}), expected generation {generation}"));
            }
        }
    }

    /// <summary><paramref name="count"/> distinct pages spread over [0, pageCount), ascending.</summary>
    public static long[] SpreadPages(long pageCount, int count)
    {
        var pages = new SortedSet<long>();
        for (long i = 0; pages.Count < count; i++)
            pages.Add(i * 7919 % pageCount);
        return pages.ToArray();
    }
}
