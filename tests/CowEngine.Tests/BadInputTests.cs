using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// Wrong arguments, use after dispose and exhausted limits fail with the documented exception and
/// leave every view exactly as it was.
/// </summary>
public sealed class BadInputTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    // ---- creating regions ----

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(-4096L)]
    [InlineData(long.MinValue)]
    [InlineData(1L)]
    [InlineData(4095L)]
    [InlineData(4097L)]
    [InlineData(3L * 4096 + 1)]
    public void CreateRegionRejectsSizesThatAreNotPositivePageMultiples(long length)
    {
        using var engine = new CowMemoryEngine();
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.CreateRegion(length));
        Assert.Equal(0, engine.GetStats().LiveViews);
    }

    [Theory]
    [InlineData(17L * 4096)]
    [InlineData(1L << 40)]
    [InlineData(long.MaxValue - long.MaxValue % 4096)]
    public void CreateRegionRejectsSizesLargerThanTheCapacity(long length)
    {
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 16 * PageSize });
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.CreateRegion(length));
        Assert.Equal(0, engine.GetStats().SlotsInUse);
    }

    // ---- ranges ----

    public static TheoryData<long, int> BadSpanRanges => new()
    {
        { -1, 1 },
        { 0, -1 },
        { long.MinValue, 0 },
        { 8 * 4096, 1 },          // starts at the end
        { 8 * 4096 + 1, 0 },      // starts past the end
        { 8 * 4096 - 1, 2 },      // ends one byte past the end
        { 0, 8 * 4096 + 1 },
        { long.MaxValue, 1 },     // offset + length overflows
        { long.MaxValue - 10, int.MaxValue },
    };

    [Theory]
    [MemberData(nameof(BadSpanRanges))]
    public void AsSpanRejectsRangesOutsideTheView(long offset, int length)
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(8 * PageSize);
        using CowView snapshot = region.Snapshot();
        Assert.Throws<ArgumentOutOfRangeException>(() => region.AsSpan(offset, length));
        Assert.Throws<ArgumentOutOfRangeException>(() => snapshot.AsSpan(offset, length));
    }

    [Theory]
    [InlineData(0L, -1)]
    [InlineData(-1L, 1)]
    [InlineData(8L * 4096 - 4, 2)]            // two longs: 16 bytes from 4 bytes before the end
    [InlineData(0L, 4097)]                    // 4097 * 8 bytes
    [InlineData(8L, int.MaxValue)]            // count * sizeof(long) overflows an int
    [InlineData(long.MaxValue - 3, 1)]        // offset + size overflows a long
    public void AsSpanOfTRejectsRangesOutsideTheView(long byteOffset, int count)
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(8 * PageSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => region.AsSpan<long>(byteOffset, count));
    }

    public static TheoryData<long, long> BadPrepareRanges => new()
    {
        { -1, 1 },
        { 0, -1 },
        { long.MinValue, 1 },
        { 0, long.MinValue },
        { 8 * 4096 + 1, 0 },
        { 8 * 4096, 1 },
        { 1, 8 * 4096 },
        { 0, long.MaxValue },
        { long.MaxValue, long.MaxValue },  // offset + length overflows
        { 4096, long.MaxValue - 100 },     // offset + length overflows
    };

    [Theory]
    [MemberData(nameof(BadPrepareRanges))]
    public void PrepareForWriteRejectsRangesOutsideTheViewAndChangesNothing(long offset, long length)
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(8 * PageSize);
        region.AsSpan().Fill(7);
        using CowView snapshot = region.Snapshot();
        CowEngineStats before = engine.GetStats();
        Assert.Throws<ArgumentOutOfRangeException>(() => snapshot.PrepareForWrite(offset, length));
        Assert.Throws<ArgumentOutOfRangeException>(() => region.PrepareForWrite(offset, length));
        CowEngineStats after = engine.GetStats();
        Assert.Equal(before.PagesCopied, after.PagesCopied);
        Assert.Equal(before.SlotsInUse, after.SlotsInUse);
        Assert.Equal(0, snapshot.GetStats().WritablePages);
    }

    [Fact]
    public void ValidEdgeRangesAreAccepted()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(8 * PageSize);
        Assert.Equal(0, region.AsSpan(8 * PageSize, 0).Length);
        Assert.Equal(1, region.AsSpan(8 * PageSize - 1, 1).Length);
        Assert.Equal(8 * PageSize / sizeof(long), region.AsSpan<long>(0, 8 * PageSize / sizeof(long)).Length);
        region.PrepareForWrite(8 * PageSize, 0);
        region.PrepareForWrite(0, 8 * PageSize);
        region.PrepareForWrite(8 * PageSize - 1, 1);
    }

    // ---- use after dispose ----

    [Fact]
    public void EveryViewMemberThrowsObjectDisposedExceptionAfterDispose()
    {
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(4 * PageSize);
        CowView snapshot = region.Snapshot();
        foreach (CowView view in new[] { snapshot, region })
        {
            view.Dispose();
            Assert.True(view.IsDisposed);
            Assert.Throws<ObjectDisposedException>(() => view.Snapshot());
            Assert.Throws<ObjectDisposedException>(() => view.PrepareForWrite(0, PageSize));
            Assert.Throws<ObjectDisposedException>(() => view.GetStats());
            Assert.Throws<ObjectDisposedException>(() => view.AsSpan());
            Assert.Throws<ObjectDisposedException>(() => view.AsSpan(0, 1));
            Assert.Throws<ObjectDisposedException>(() => view.AsSpan<int>(0, 1));
            view.Dispose(); // a second Dispose is harmless
            Assert.True(view.IsDisposed);
        }
        Assert.Equal(0, engine.GetStats().LiveViews);
        Assert.Equal(0, engine.GetStats().SlotsInUse);
    }

    [Fact]
    public void AnEmptyPrepareForWriteAfterDisposeThrowsObjectDisposedExceptionToo()
    {
        // The API promises ObjectDisposedException for every call after Dispose, whatever the
        // arguments; a zero-length range is still a call on a dead view.
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(PageSize);
        region.Dispose();
        Assert.Throws<ObjectDisposedException>(() => region.PrepareForWrite(0, 0));
    }

    [Fact]
    public void DisposingTheEngineDisposesItsLiveViewsAndIsIdempotent()
    {
        var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(4 * PageSize);
        CowView snapshot = region.Snapshot();
        CowView disposedEarlier = region.Snapshot();
        disposedEarlier.Dispose();
        snapshot.AsSpan(0, 1)[0] = 1;

        engine.Dispose();

        Assert.True(region.IsDisposed);
        Assert.True(snapshot.IsDisposed);
        Assert.True(disposedEarlier.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => engine.CreateRegion(PageSize));
        Assert.Throws<ObjectDisposedException>(() => engine.GetStats());
        Assert.Throws<ObjectDisposedException>(() => region.Snapshot());
        Assert.Throws<ObjectDisposedException>(() => snapshot.AsSpan());
        Assert.Throws<ObjectDisposedException>(() => snapshot.GetStats());
        engine.Dispose();
        region.Dispose();
        snapshot.Dispose();
    }

    // ---- options ----

    public static TheoryData<long> BadCapacities => new() { 0, -1, -4096, long.MinValue, 1, 4095, 4097, 3 * 4096 + 7 };

    [Theory]
    [MemberData(nameof(BadCapacities))]
    public void TheEngineRejectsCapacitiesThatAreNotPositivePageMultiples(long capacity)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowMemoryEngine(new CowEngineOptions { CapacityBytes = capacity }).Dispose());
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void TheEngineRejectsMappingBudgetsBelowFour(int budget)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowMemoryEngine(new CowEngineOptions { MappingBudget = budget }).Dispose());
    }

    [Fact]
    public void TheSmallestValidLimitsAreAccepted()
    {
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = PageSize, MappingBudget = 4 });
        Assert.Equal(PageSize, engine.CapacityBytes);
        Assert.Equal(4, engine.MappingBudget);
        using CowView region = engine.CreateRegion(PageSize);
        region.AsSpan()[0] = 1;
        Assert.Equal(1, region.AsSpan()[0]);
    }

    // ---- limits ----

    [Fact]
    public void CapacityExhaustionRefusesNewRegionsUntilPagesAreFreed()
    {
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 16 * PageSize });
        CowView full = engine.CreateRegion(16 * PageSize);
        full.AsSpan().Fill(0x77);
        Assert.Equal(16, engine.GetStats().SlotsInUse);

        Assert.Throws<CowCapacityExceededException>(() => engine.CreateRegion(PageSize));
        CowEngineStats refused = engine.GetStats();
        Assert.Equal(16, refused.SlotsInUse);
        Assert.Equal(1, refused.LiveViews);
        Assert.Equal(-1, full.AsSpan().IndexOfAnyExcept((byte)0x77));

        full.Dispose();
        using CowView again = engine.CreateRegion(PageSize);
        using CowView allButOne = engine.CreateRegion(15 * PageSize);
        Assert.Equal(16, engine.GetStats().SlotsInUse);
        Assert.Equal(-1, again.AsSpan().IndexOfAnyExcept((byte)0));
    }

    [Fact]
    public void ManySnapshotsEachWritingOnePageFitInACapacityFarLargerThanTheirPages()
    {
        // The capacity counts pages (slots). 400 snapshots with one private page each need 401
        // pages, 1.6 MiB, of a 64 MiB capacity: nothing may be refused. PrepareForWrite stands in
        // for the write fault so that a refusal is an exception here, not an abort().
        const int snapshots = 400;
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20 });
        using CowView region = engine.CreateRegion(PageSize);
        region.AsSpan().Fill(0x10);
        var views = new List<CowView>(snapshots);
        try
        {
            for (int i = 0; i < snapshots; i++)
            {
                CowView snapshot = region.Snapshot();
                views.Add(snapshot);
                try
                {
                    snapshot.PrepareForWrite(0, PageSize);
                }
                catch (CowCapacityExceededException e)
                {
                    CowEngineStats stats = engine.GetStats();
                    Assert.Fail($"snapshot {i} could not get one private page with {stats.SlotsInUse} of {stats.CapacityBytes / PageSize} slots in use: {e.Message}");
                }
                snapshot.AsSpan<int>(0, 1)[0] = i;
            }
            for (int i = 0; i < snapshots; i++)
                Assert.Equal(i, views[i].AsSpan<int>(0, 1)[0]);
            Assert.Equal(snapshots + 1, engine.GetStats().SlotsInUse);
        }
        finally
        {
            foreach (CowView view in views)
                view.Dispose();
        }
    }

    [Fact]
    public void PrepareForWriteReportsCapacityExhaustionAndLeavesTheViewsIntact()
    {
        // A snapshot costs no slots, so it is allowed at full capacity; making one of its pages
        // private needs a slot, which PrepareForWrite must refuse with an exception (a write fault
        // would have to abort the process instead, so this test never writes to a shared page).
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 16 * PageSize });
        using CowView region = engine.CreateRegion(16 * PageSize);
        var model = new byte[16 * PageSize];
        new Random(16).NextBytes(model);
        model.CopyTo(region.AsSpan());
        using CowView snapshot = region.Snapshot();

        Assert.Throws<CowCapacityExceededException>(() => snapshot.PrepareForWrite(0, 2 * PageSize));
        Assert.Throws<CowCapacityExceededException>(() => region.PrepareForWrite(5 * PageSize, 1));
        Assert.Equal(16, engine.GetStats().SlotsInUse);
        Assert.True(region.AsSpan().SequenceEqual(model), "the region changed");
        Assert.True(snapshot.AsSpan().SequenceEqual(model), "the snapshot changed");
        Assert.Equal(0, snapshot.GetStats().PagesCopied);
    }

    // ---- the mapping budget ----
    //
    // Mappings are a cache of the page table: over its budget the engine evicts (unmaps) whole 2 MiB
    // segments, which are mapped again on their next touch. So fragmenting writes alone never make
    // an API call fail; it fails only when nothing can be evicted. Pages prepared for writing are
    // pinned (never evicted before their view's next snapshot), which is how these tests make the
    // budget binding.

    [Fact]
    public async Task ASnapshotBeyondTheMappingBudgetThrowsWhenNothingCanBeEvictedAndLeavesEveryViewIntactAndWritable()
    {
        // In a child process: writing while pinned mappings hold the whole budget is exactly what
        // can hang a thread in the fault handler (see AStoreStraddlingTwoPagesWhileOtherViewsHoldTheWholeBudgetCompletes).
        if (!IsolatedTest.IsChildFor(nameof(ASnapshotBeyondTheMappingBudgetThrowsWhenNothingCanBeEvictedAndLeavesEveryViewIntactAndWritable)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(BadInputTests), nameof(ASnapshotBeyondTheMappingBudgetThrowsWhenNothingCanBeEvictedAndLeavesEveryViewIntactAndWritable), TimeSpan.FromSeconds(20));
            return;
        }
        const int pages = 64;
        const int budget = 40;
        using var engine = new CowMemoryEngine(new CowEngineOptions { MappingBudget = budget });
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
            await IsolatedTest.RunAndAssertPassedAsync(typeof(BadInputTests), nameof(AWriteWhileOtherViewsHoldTheWholeBudgetCompletes), TimeSpan.FromSeconds(20));
            return;
        }
        using var engine = new CowMemoryEngine(new CowEngineOptions { MappingBudget = 40 });
        using CowView region = engine.CreateRegion(64 * PageSize);
        region.AsSpan().Fill(1);
        var snapshots = new List<CowView>();
        try
        {
            while (true)
            {
                try
                {
                    snapshots.Add(region.Snapshot());
                }
                catch (CowMappingBudgetExceededException)
                {
                    break;
                }
            }
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
            await IsolatedTest.RunAndAssertPassedAsync(typeof(BadInputTests), nameof(AStoreStraddlingTwoPagesWhileOtherViewsHoldTheWholeBudgetCompletes), TimeSpan.FromSeconds(20));
            return;
        }
        StoreStraddlingWhileTheBudgetIsHeld(pages: 64, storeOffset: 5L * PageSize - 4, preparePages: []);
        // One private page in each segment first, the second segment's first, so that the two
        // segments' private copies are not file-contiguous and cannot share a mapping.
        StoreStraddlingWhileTheBudgetIsHeld(pages: 1024, storeOffset: 512L * PageSize - 4, preparePages: [600, 100]);
    }

    private static void StoreStraddlingWhileTheBudgetIsHeld(int pages, long storeOffset, long[] preparePages)
    {
        using var engine = new CowMemoryEngine(new CowEngineOptions { MappingBudget = 40 });
        using CowView region = engine.CreateRegion(pages * PageSize);
        region.AsSpan().Fill(1);
        var snapshots = new List<CowView>();
        try
        {
            while (true)
            {
                try
                {
                    snapshots.Add(region.Snapshot());
                }
                catch (CowMappingBudgetExceededException)
                {
                    break;
                }
            }
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
        using var engine = new CowMemoryEngine(new CowEngineOptions { MappingBudget = budget });
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
        foreach (CowView view in new[] { region, kept })
        {
            long recount = view.CountMappings();
            Assert.Equal(recount, view.GetStats().Mappings);
            Assert.Equal(recount, Support.ProcMaps.CountOverlapping(view.BaseAddress, view.Length));
        }
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
            await IsolatedTest.RunAndAssertPassedAsync(typeof(BadInputTests), nameof(ASnapshotOfAFragmentedViewMakesRoomByEvictingThatViewsOwnSegments), TimeSpan.FromSeconds(20));
            return;
        }
        const int pages = 256;
        const int budget = 40;
        using var engine = new CowMemoryEngine(new CowEngineOptions { MappingBudget = budget });
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
            await IsolatedTest.RunAndAssertPassedAsync(typeof(BadInputTests), nameof(ApiCallsFindEvictableSegmentsEvenWhenTheProcessHasThousandsOfOtherViews), TimeSpan.FromSeconds(30));
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

            using var engine = new CowMemoryEngine(new CowEngineOptions { MappingBudget = budget });
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
        using var engine = new CowMemoryEngine(new CowEngineOptions { MappingBudget = 40 });
        using CowView region = engine.CreateRegion(pages * PageSize);
        new Random(42).NextBytes(region.AsSpan());
        using CowView kept = region.Snapshot();
        for (int page = 0; page < pages; page += 2)
            region.AsSpan(page * PageSize, 1)[0] ^= 1;
        Assert.True(engine.GetStats().Evictions > 0, "nothing was evicted");

        foreach (CowView view in new[] { region, kept })
        {
            view.PrepareForRead(0, view.Length);
            string path = Path.GetTempFileName();
            try
            {
                using (var file = File.OpenHandle(path, FileMode.Create, FileAccess.Write))
                {
                    try
                    {
                        RandomAccess.Write(file, (ReadOnlySpan<byte>)view.AsSpan(), 0);
                    }
                    catch (IOException e)
                    {
                        CowViewStats stats = view.GetStats();
                        Assert.Fail($"write(2) from a {(view.IsSnapshot ? "snapshot" : "region")} prepared for reading, with {stats.MappedPages} of {view.PageCount} pages mapped, failed: {e.Message}");
                    }
                }
                Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(view.AsSpan()), "the file differs from the view");
            }
            finally
            {
                File.Delete(path);
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
