using CowEngine.Tests.Support;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// The mapping budget: mappings are a cache of the page table. Over its budget the engine evicts
/// (unmaps) whole 2 MiB segments, which are mapped again on their next touch, so fragmenting writes
/// alone never make an API call fail; it fails only when nothing can be evicted. Pages prepared for
/// writing are pinned (never evicted before their view's next snapshot), which is how these tests
/// make the budget binding.
/// </summary>
public sealed class EvictionTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    [Fact]
    public async Task ASnapshotBeyondTheMappingBudgetThrowsWhenNothingCanBeEvictedAndLeavesEveryViewIntactAndWritable()
    {
        // In a child process: writing while pinned mappings hold the whole budget is exactly what
        // can hang a thread in the fault handler (see AStoreStraddlingTwoPagesWhileOtherViewsHoldTheWholeBudgetCompletes).
        if (!IsolatedTest.IsChildFor(nameof(ASnapshotBeyondTheMappingBudgetThrowsWhenNothingCanBeEvictedAndLeavesEveryViewIntactAndWritable)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(EvictionTests), nameof(ASnapshotBeyondTheMappingBudgetThrowsWhenNothingCanBeEvictedAndLeavesEveryViewIntactAndWritable), TimeSpan.FromSeconds(20));
            return;
        }
        const int pages = 64;
        const int budget = 40;
        using var engine = NewFragmentingEngine(mappingBudget: budget);
        using CowView region = engine.CreateRegion(pages * PageSize);
        byte[] regionModel = new byte[pages * PageSize];
        new Random(40).NextBytes(regionModel);
        regionModel.CopyTo(region.AsSpan());
        using CowView kept = region.Snapshot();
        byte[] keptModel = (byte[])regionModel.Clone();

        // Every other page of the kept snapshot gets a private, pinned copy; its neighbours stay
        // unmapped (a snapshot maps pages on first touch), so each prepared page is a mapping of its
        // own, and none of them may be evicted.
        for (int page = 0; page < pages; page += 2)
            kept.PrepareForWrite(page * PageSize, 1);
        Assert.True(engine.GetStats().Mappings > budget, $"the engine uses only {engine.GetStats().Mappings} mappings");
        Console.WriteLine($"every other page of the kept snapshot prepared (pinned): {engine.GetStats()}");

        var fromRegion = Assert.Throws<CowMappingBudgetExceededException>(() => region.Snapshot());
        Assert.Contains("vm.max_map_count", fromRegion.Message, StringComparison.Ordinal);
        var fromEngine = Assert.Throws<CowMappingBudgetExceededException>(() => engine.CreateRegion(PageSize));
        Assert.Contains("vm.max_map_count", fromEngine.Message, StringComparison.Ordinal);

        Assert.Equal(2, engine.GetStats().LiveViews);
        Assert.Equal(1, engine.GetStats().Snapshots);
        Assert.True(region.AsSpan().SequenceEqual(regionModel), "the region changed after the refused snapshot");
        Assert.True(kept.AsSpan().SequenceEqual(keptModel), "the kept snapshot changed after the refused snapshot");
        Console.WriteLine($"refused as expected, contents intact: {engine.GetStats()}");

        // Both views are still writable, and their writes stay their own.
        for (int page = 0; page < pages; page++)
        {
            Console.WriteLine($"writing page {page} of both views");
            region.AsSpan(page * PageSize + 1, 1)[0] = (byte)page;
            regionModel[page * PageSize + 1] = (byte)page;
            kept.AsSpan(page * PageSize + 2, 1)[0] = (byte)~page;
            keptModel[page * PageSize + 2] = (byte)~page;
        }
        Assert.True(region.AsSpan().SequenceEqual(regionModel), "the region lost a write");
        Assert.True(kept.AsSpan().SequenceEqual(keptModel), "the kept snapshot lost a write");
    }

    [Fact]
    public async Task AWriteWhileOtherViewsHoldTheWholeBudgetCompletes()
    {
        // As many untouched snapshots as a budget of 40 allows (one mapping and one gap each, 18 of
        // them): they cannot be evicted, but nothing needs them to be. A write to the region then
        // gives it a private page, two mappings more: over the budget. The fault path may evict the
        // region's segment to get back under it, but the write must still complete (evicting the
        // page it has just mapped makes the instruction fault again, forever).
        if (!IsolatedTest.IsChildFor(nameof(AWriteWhileOtherViewsHoldTheWholeBudgetCompletes)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(EvictionTests), nameof(AWriteWhileOtherViewsHoldTheWholeBudgetCompletes), TimeSpan.FromSeconds(20));
            return;
        }
        using var engine = NewFragmentingEngine(mappingBudget: 40);
        using CowView region = engine.CreateRegion(64 * PageSize);
        region.AsSpan().Fill(1);
        var snapshots = new List<CowView>();
        try
        {
            SnapshotUntilTheBudgetRefuses(region, snapshots);
            Assert.True(snapshots.Count >= 10, $"only {snapshots.Count} snapshots fit in a budget of 40");
            Console.WriteLine($"{snapshots.Count} snapshots; writing one byte of the region; {engine.GetStats()}");
            region.AsSpan(5 * PageSize, 1)[0] = 2;
            Console.WriteLine($"the write completed; {engine.GetStats()}");
            Assert.Equal(2, region.AsSpan(5 * PageSize, 1)[0]);
            foreach (CowView snapshot in snapshots)
                Assert.Equal(-1, snapshot.AsSpan().IndexOfAnyExcept((byte)1));
        }
        finally
        {
            foreach (CowView snapshot in snapshots)
                snapshot.Dispose();
        }
    }

    [Fact]
    public async Task AStoreStraddlingTwoPagesWhileOtherViewsHoldTheWholeBudgetCompletes()
    {
        // The same budget as above, but one 8-byte store straddles two pages, so a single
        // instruction needs both mapped at once: first two pages of one 2 MiB segment, then the last
        // page of one segment and the first of the next. Making room for one half must not unmap
        // the other half (the instruction would fault on each in turn, forever).
        if (!IsolatedTest.IsChildFor(nameof(AStoreStraddlingTwoPagesWhileOtherViewsHoldTheWholeBudgetCompletes)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(EvictionTests), nameof(AStoreStraddlingTwoPagesWhileOtherViewsHoldTheWholeBudgetCompletes), TimeSpan.FromSeconds(20));
            return;
        }
        StoreStraddlingWhileTheBudgetIsHeld(pages: 64, storeOffset: 5L * PageSize - 4, preparePages: []);
        // One private page in each segment first, the second segment's first, so that the two
        // segments' private copies are not file-contiguous and cannot share a mapping.
        StoreStraddlingWhileTheBudgetIsHeld(pages: 1024, storeOffset: 512L * PageSize - 4, preparePages: [600, 100]);
    }

    private static void StoreStraddlingWhileTheBudgetIsHeld(int pages, long storeOffset, long[] preparePages)
    {
        using var engine = NewFragmentingEngine(mappingBudget: 40);
        using CowView region = engine.CreateRegion(pages * PageSize);
        region.AsSpan().Fill(1);
        var snapshots = new List<CowView>();
        try
        {
            SnapshotUntilTheBudgetRefuses(region, snapshots);
            foreach (long page in preparePages)
                region.AsSpan(page * PageSize, 1)[0] = 2;
            Console.WriteLine($"{pages}-page region, {snapshots.Count} snapshots; storing 8 bytes at {storeOffset} (pages {storeOffset / PageSize}-{(storeOffset + 7) / PageSize}); {engine.GetStats()}");
            region.AsSpan<long>(storeOffset, 1)[0] = -1;
            Console.WriteLine($"the store completed; {engine.GetStats()}");
            Assert.Equal(-1L, region.AsSpan<long>(storeOffset, 1)[0]);
            foreach (CowView snapshot in snapshots)
                Assert.Equal(-1, snapshot.AsSpan().IndexOfAnyExcept((byte)1));
        }
        finally
        {
            foreach (CowView snapshot in snapshots)
                snapshot.Dispose();
        }
    }

    [Fact]
    public void WritesFarBeyondTheMappingBudgetAreAbsorbedByEvictionAndLoseNothing()
    {
        const int pages = 4 * 512; // four 2 MiB segments
        const int budget = 40;
        using var engine = NewFragmentingEngine(mappingBudget: budget);
        using CowView region = engine.CreateRegion(pages * PageSize);
        byte[] regionModel = new byte[pages * PageSize];
        new Random(41).NextBytes(regionModel);
        regionModel.CopyTo(region.AsSpan());
        using CowView kept = region.Snapshot();
        byte[] keptModel = (byte[])regionModel.Clone();

        // 1,024 isolated private pages in each view would need 4,000 mappings without eviction.
        for (int page = 0; page < pages; page += 2)
        {
            region.AsSpan(page * PageSize + 7, 1)[0] ^= 0x5A;
            regionModel[page * PageSize + 7] ^= 0x5A;
            kept.AsSpan((page + 1) * PageSize + 9, 1)[0] ^= 0xA5;
            keptModel[(page + 1) * PageSize + 9] ^= 0xA5;
        }
        CowEngineStats stats = engine.GetStats();
        TestContext.Current.TestOutputHelper?.WriteLine($"after the writes: {stats}");
        Assert.True(stats.Evictions > 0, "no segment was ever evicted although the writes needed 100 times the budget");
        Assert.True(region.AsSpan().SequenceEqual(regionModel), "the region lost or gained a write through eviction");
        Assert.True(kept.AsSpan().SequenceEqual(keptModel), "the kept snapshot lost or gained a write through eviction");
        MappingCounts.AssertAgree(region, "the region after the writes");
        MappingCounts.AssertAgree(kept, "the kept snapshot after the writes");
    }

    [Fact]
    public async Task ASnapshotOfAFragmentedViewMakesRoomByEvictingThatViewsOwnSegments()
    {
        // The documented contract: API calls evict before they need mappings and throw only when
        // nothing can be evicted. The view being snapshotted is frozen (read-only) by the snapshot
        // itself, and nothing of it is pinned, so its fragmented segment is the obvious victim.
        // In a child process, so that the eviction clock sees only this test's views.
        if (!IsolatedTest.IsChildFor(nameof(ASnapshotOfAFragmentedViewMakesRoomByEvictingThatViewsOwnSegments)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(EvictionTests), nameof(ASnapshotOfAFragmentedViewMakesRoomByEvictingThatViewsOwnSegments), TimeSpan.FromSeconds(20));
            return;
        }
        const int pages = 256;
        const int budget = 40;
        using var engine = NewFragmentingEngine(mappingBudget: budget);
        using CowView region = engine.CreateRegion(pages * PageSize);
        region.AsSpan().Fill(1);
        byte[] before = new byte[pages * PageSize];
        before.AsSpan().Fill(1);
        using CowView kept = region.Snapshot();
        // (Not read back before the snapshot: reading would map pages and change what is evictable.)
        FragmentToJustBelowTheBudget(engine, region, budget, before);
        Console.WriteLine($"before the snapshot: {engine.GetStats()}; region {region.GetStats()}");

        CowView snapshot;
        try
        {
            snapshot = region.Snapshot();
        }
        catch (CowMappingBudgetExceededException e)
        {
            CowViewStats stats = region.GetStats();
            Assert.Fail($"the snapshot was refused although the source's own {stats.Mappings} mappings (none pinned) could be evicted: {e.Message}");
            throw;
        }
        using (snapshot)
        {
            Assert.True(snapshot.AsSpan().SequenceEqual(before), "the snapshot differs from what its source held");
            Assert.True(region.AsSpan().SequenceEqual(before), "the source changed");
        }
    }

    [Fact]
    public async Task ApiCallsFindEvictableSegmentsEvenWhenTheProcessHasThousandsOfOtherViews()
    {
        // The eviction clock walks the engine's own list of live views; it once walked the whole
        // process view table, where thousands of views of another engine (here kept alive on
        // purpose) could hide this engine's evictable segment from a call that needs room. In a
        // child process, so that the view table holds exactly this test's views: the crowd first,
        // then this engine's, the order in which a process-wide walk would meet them.
        if (!IsolatedTest.IsChildFor(nameof(ApiCallsFindEvictableSegmentsEvenWhenTheProcessHasThousandsOfOtherViews)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(EvictionTests), nameof(ApiCallsFindEvictableSegmentsEvenWhenTheProcessHasThousandsOfOtherViews), TimeSpan.FromSeconds(30));
            return;
        }
        const int pages = 256;
        const int budget = 40;
        using var other = new CowMemoryEngine();
        using CowView otherRegion = other.CreateRegion(PageSize);
        var crowd = new List<CowView>(3000);
        try
        {
            for (int i = 0; i < 3000; i++)
                crowd.Add(otherRegion.Snapshot());

            using var engine = NewFragmentingEngine(mappingBudget: budget);
            using CowView region = engine.CreateRegion(pages * PageSize);
            region.AsSpan().Fill(1);
            using CowView fragmented = region.Snapshot();
            FragmentToJustBelowTheBudget(engine, fragmented, budget, model: null);
            Console.WriteLine($"before the snapshot: {engine.GetStats()}; fragmented snapshot {fragmented.GetStats()}");

            // The region is one clean mapping; the fragmented snapshot (nothing pinned) can be evicted.
            try
            {
                using CowView snapshot = region.Snapshot();
                using CowView small = engine.CreateRegion(PageSize);
            }
            catch (CowMappingBudgetExceededException e)
            {
                Assert.Fail($"refused with an evictable segment of {fragmented.GetStats().Mappings} mappings available: {e.Message}");
            }
        }
        finally
        {
            foreach (CowView view in crowd)
                view.Dispose();
        }
    }

    [Fact]
    public void ViewsWithEvictedSegmentsPreparedForReadCanBeWrittenToAFileBySystemCalls()
    {
        // An evicted segment reads correctly from managed code (the read fault maps it again), but
        // the kernel raises no fault for its own accesses: write(2) needs PrepareForRead first, and
        // then must see exactly the view's contents, even under a budget that keeps evicting.
        const int pages = 4 * 512;
        using var engine = NewFragmentingEngine(mappingBudget: 40);
        using CowView region = engine.CreateRegion(pages * PageSize);
        new Random(42).NextBytes(region.AsSpan());
        using CowView kept = region.Snapshot();
        for (int page = 0; page < pages; page += 2)
            region.AsSpan(page * PageSize, 1)[0] ^= 1;
        Assert.True(engine.GetStats().Evictions > 0, "nothing was evicted");

        foreach (CowView view in new[] { region, kept })
        {
            view.PrepareForRead(0, view.Length);
            FileWrites.AssertSavedByWrite(view, view.AsSpan());
        }
    }

    /// <summary>
    /// Adds snapshots of <paramref name="region"/> to <paramref name="snapshots"/> (which the caller
    /// disposes) until the engine refuses the next one for its mapping budget: untouched snapshots
    /// are one mapping and one gap each and cannot be evicted, so they end up holding the whole budget.
    /// </summary>
    private static void SnapshotUntilTheBudgetRefuses(CowView region, List<CowView> snapshots)
    {
        while (true)
        {
            try
            {
                snapshots.Add(region.Snapshot());
            }
            catch (CowMappingBudgetExceededException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Writes every other page of <paramref name="view"/> (whose pages are shared with a snapshot,
    /// so each written page is a mapping of its own) while the engine stays within its budget, until
    /// it uses all but one or two mappings of it: the next call that needs two mappings must evict.
    /// </summary>
    private static void FragmentToJustBelowTheBudget(CowMemoryEngine engine, CowView view, int budget, byte[]? model)
    {
        for (long page = 0; page < view.PageCount && engine.GetStats().Mappings + 2 <= budget; page += 2)
        {
            view.AsSpan(page * PageSize, 1)[0] ^= 0xFF;
            if (model is not null)
                model[page * PageSize] ^= 0xFF;
        }
        CowEngineStats stats = engine.GetStats();
        Assert.True(stats.Mappings >= budget - 1 && stats.Mappings <= budget, $"could not bring the engine just below its budget: {stats}");
    }
}
