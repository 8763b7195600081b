using CowEngine.Tests.Support;
using CowEngine.TestSupport;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// Uses up to half of the process's vm.max_map_count; run alone so that no other test's mappings
/// and this one's together reach the kernel's limit.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MappingLimitCollection
{
    public const string Name = "Mapping limit (process-wide mappings)";
}

/// <summary>
/// Issue 5: no write pattern may exhaust vm.max_map_count. Random single-page writes to a
/// snapshotted view give each written page its own mapping (FACTS: the limit falls after ~35k pages
/// of a 1 GiB view); the engine must complete them all, on default sysctls, never using more than
/// its budget (half the process's limit), without losing or mixing up a byte, and without copying
/// more than the pages written.
/// </summary>
[Collection(MappingLimitCollection.Name)]
public sealed unsafe class MappingLimitTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int NestedSnapshots = 10;

    [Theory]
    [InlineData(1L << 30, 1.0, 1)]  // every page of 1 GiB, in random order
    [InlineData(1L << 30, 1.0, 2)]  // the same with two writer threads
    [InlineData(4L << 30, 0.1, 1)]  // 10% of 4 GiB, sparse and random
    [InlineData(4L << 30, 0.1, 2)]
    public void RandomSinglePageWrites_WithNestedSnapshotsAlive_StayWithinTheBudget(long bytes, double share, int threads)
    {
        // Page by page (FaultAroundPages = 1): the memory check below counts exactly one copy per write.
        var engine = new CowMemoryEngine(new CowEngineOptions { FaultAroundPages = 1 });
        using var group = new TestThreads(engine); // owns the engine, so a hung writer finds its views alive
        CowView region = engine.CreateRegion(bytes);
        long pages = bytes / PageSize;
        for (long page = 0; page < pages; page++)
            *(long*)(region.Pointer + page * PageSize) = page; // page numbers: every page distinct

        // Ten nested snapshots (each taken after one more write), so every later write copies.
        var snapshots = new List<CowView>();
        for (int level = 0; level < NestedSnapshots; level++)
        {
            snapshots.Add(region.Snapshot());
            *(long*)(region.Pointer + 16) = level + 1;
        }

        long[] order = RandomOrder(pages, seed: 5);
        long writes = (long)(pages * share);
        long peakMappings = 0, peakProcessMappings = 0;
        // While the other threads fault, each fault in flight may be two mappings over the budget
        // until it has evicted (docs/design.md section 6); once all threads are done, none.
        long inFlightAllowance = 2 * (threads - 1);
        string? overBudget = null;
        for (int t = 0; t < threads; t++)
        {
            int worker = t;
            group.Start($"writer {worker}", () =>
            {
                for (long i = worker; i < writes; i += threads)
                {
                    long page = order[i];
                    *(long*)(region.Pointer + page * PageSize + 8) = page + 1;
                    if (worker == 0 && (i & 2047) == 0)
                    {
                        long mappings = engine.GetStats().Mappings;
                        peakMappings = Math.Max(peakMappings, mappings);
                        if (mappings > engine.MappingBudget + inFlightAllowance)
                            overBudget ??= $"{mappings} mappings after {i} writes, budget {engine.MappingBudget} + {inFlightAllowance} for faults in flight";
                    }
                    if (worker == 0 && (i & 32767) == 0)
                        peakProcessMappings = Math.Max(peakProcessMappings, ProcMaps.ReadAll().Count);
                }
            });
        }
        group.JoinAll();
        Assert.Null(overBudget);

        CowEngineStats after = engine.GetStats();
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{writes} writes on {threads} thread(s): peak engine mappings {peakMappings} (budget {engine.MappingBudget}, limit {File.ReadAllText("/proc/sys/vm/max_map_count").Trim()}), " +
            $"peak process mappings {peakProcessMappings}, evictions {after.Evictions}, pages copied {after.PagesCopied}, committed {after.CommittedBytes >> 20} MiB");
        Assert.True(after.Mappings <= engine.MappingBudget);
        Assert.True(peakProcessMappings < 65_530, $"the process used {peakProcessMappings} mappings");

        // Memory: the region, plus one copy per page written (and the ten one-page writes to page 0
        // that made the snapshots differ; page 0 is private by the time a random write reaches it)
        // - nothing copied for the sake of the mapping limit.
        var written = new bool[pages];
        for (long i = 0; i < writes; i++)
            written[order[i]] = true;
        long copies = writes + NestedSnapshots - (written[0] ? 1 : 0);
        Assert.Equal(copies, after.PagesCopied);
        long ideal = (pages + copies) * PageSize;
        Assert.InRange(after.CommittedBytes, ideal - 64 * PageSize, ideal + 64 * PageSize);

        // Contents: every page of the region, and the snapshots untouched by the writes.
        for (long page = 0; page < pages; page++)
        {
            byte* at = region.Pointer + page * PageSize;
            Assert.Equal(page, *(long*)at);
            long expected = written[page] ? page + 1 : 0;
            if (*(long*)(at + 8) != expected)
                Assert.Fail($"region page {page} holds {*(long*)(at + 8)} at offset 8, expected {expected}");
        }
        for (int level = 0; level < NestedSnapshots; level++)
        {
            CowView snapshot = snapshots[level];
            Assert.Equal(level, *(long*)(snapshot.Pointer + 16));
            for (long page = 1; page < pages; page += 97)
            {
                Assert.Equal(page, *(long*)(snapshot.Pointer + page * PageSize));
                Assert.Equal(0, *(long*)(snapshot.Pointer + page * PageSize + 8));
            }
        }
        Assert.True(engine.GetStats().Mappings <= engine.MappingBudget);

        foreach (CowView snapshot in snapshots)
            snapshot.Dispose();
    }

    [Fact]
    public void AViewTouchedAgainAfterEviction_ReadsAndWritesItsOwnPages()
    {
        // A tiny budget forces eviction on almost every fault; the page table stays the truth.
        using var engine = NewFragmentingEngine(mappingBudget: 64);
        using CowView region = engine.CreateRegion(8L << 20);
        long pages = region.PageCount;
        for (long page = 0; page < pages; page++)
            *(long*)(region.Pointer + page * PageSize) = page;
        using CowView snapshot = region.Snapshot();
        for (long page = 0; page < pages; page += 2)
            *(long*)(region.Pointer + page * PageSize + 8) = -page;

        CowEngineStats stats = engine.GetStats();
        Assert.True(stats.Evictions > 0, "a budget of 64 must have forced evictions");
        Assert.True(stats.Mappings <= 64 + 8, $"{stats.Mappings} mappings");
        for (long page = 0; page < pages; page++)
        {
            Assert.Equal(page, *(long*)(region.Pointer + page * PageSize));
            Assert.Equal(page % 2 == 0 ? -page : 0, *(long*)(region.Pointer + page * PageSize + 8));
            Assert.Equal(0, *(long*)(snapshot.Pointer + page * PageSize + 8));
        }
        // Dirty tracking survives eviction: every written page is still reported.
        CowPageSet dirty = region.TakeDirtyPages();
        for (long page = 0; page < pages; page += 2)
            Assert.True(dirty.Contains(page), $"written page {page} missing from the dirty set");
    }

    [Fact]
    public void PreparedPages_AreNotEvicted_SoSystemCallsCanUseThem()
    {
        using var engine = NewFragmentingEngine(mappingBudget: 32);
        using CowView region = engine.CreateRegion(4L << 20);
        using CowView snapshot = region.Snapshot();
        region.PrepareForWrite(0, 16 * PageSize);
        snapshot.PrepareForRead(100 * PageSize, 16 * PageSize);
        // Fragment the rest heavily so the engine has to evict.
        for (long page = 32; page < region.PageCount; page += 2)
            region.Pointer[page * PageSize] = 1;
        Assert.True(engine.GetStats().Evictions > 0);

        string path = Path.GetTempFileName();
        try
        {
            using (var file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite))
            {
                RandomAccess.Write(file, snapshot.AsSpan(100 * PageSize, 16 * PageSize), 0); // kernel reads the snapshot
                RandomAccess.Read(file, region.AsSpan(0, 16 * PageSize), 0);                  // kernel writes the region
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Pages prepared for the kernel (PrepareForWrite) are pinned until the view's next snapshot,
    /// and once a pinned segment could not be evicted at all: a view with a few prepared pages in
    /// every segment, fragmented by writes, held the engine far above its budget (the stress suite's
    /// eviction mode: 12 pinned segments held 2,077 mappings against a budget of 2,000). Eviction
    /// now unmaps the pages around the pins.
    /// </summary>
    [Fact]
    public void PinnedSegments_AreEvictedAroundTheirPins_SoTheBudgetHolds()
    {
        const int Budget = 200, Segments = 8, PinnedPages = 4;
        using var engine = NewFragmentingEngine(mappingBudget: Budget);
        using CowView region = engine.CreateRegion(Segments * 512L * PageSize);
        for (long page = 0; page < region.PageCount; page++)
            *(long*)(region.Pointer + page * PageSize) = page;
        using CowView snapshot = region.Snapshot();
        for (int segment = 0; segment < Segments; segment++)
            region.PrepareForWrite(segment * 512L * PageSize, PinnedPages * PageSize);

        // Every other page of every segment: ~256 mappings per segment, 2,000 in all without eviction.
        for (int segment = 0; segment < Segments; segment++)
            for (long page = segment * 512L + 2 * PinnedPages; page < (segment + 1) * 512L; page += 2)
                *(long*)(region.Pointer + page * PageSize + 8) = -page;

        CowEngineStats stats = engine.GetStats();
        Assert.True(stats.Evictions > 0, "a budget of 200 must have forced evictions");
        Assert.True(stats.Mappings <= Budget + 8, $"{stats.Mappings} mappings against a budget of {Budget}");
        Assert.Equal(region.CountMappings(), region.GetStats().Mappings);

        // The pinned pages are still mapped writable: the kernel can write them (no EFAULT).
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, Enumerable.Repeat((byte)0x5A, PinnedPages * PageSize).ToArray());
            using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            for (int segment = 0; segment < Segments; segment++)
                Assert.Equal(PinnedPages * PageSize, RandomAccess.Read(file, region.AsSpan(segment * 512L * PageSize, PinnedPages * PageSize), 0));
        }
        finally
        {
            File.Delete(path);
        }

        for (long page = 0; page < region.PageCount; page++)
        {
            long inSegment = page % 512;
            if (inSegment < PinnedPages)
            {
                Assert.Equal(0x5A5A5A5A5A5A5A5AL, *(long*)(region.Pointer + page * PageSize));
                continue;
            }
            Assert.Equal(page, *(long*)(region.Pointer + page * PageSize));
            long expected = inSegment >= 2 * PinnedPages && inSegment % 2 == 0 ? -page : 0;
            Assert.Equal(expected, *(long*)(region.Pointer + page * PageSize + 8));
            Assert.Equal(page, *(long*)(snapshot.Pointer + page * PageSize));
            Assert.Equal(0, *(long*)(snapshot.Pointer + page * PageSize + 8));
        }
    }

    /// <summary>
    /// Whether the first page of a 2 MiB segment starts a new kernel mapping depends on the last page
    /// of the segment before it. Faults and evictions on both sides of that edge at the same moment
    /// once both recounted it, each under its own segment's lock, and the view's running count drifted
    /// by one or two; a segment is now changed only under its neighbours' locks too. Two threads copy
    /// every other page outward from the edge (each copy its own mapping) while a third reads a
    /// snapshot across it, under a budget small enough to keep eviction busy; the running count must
    /// equal the recount and the kernel's.
    /// </summary>
    [Fact]
    public void FaultsOnBothSidesOfASegmentEdge_KeepTheMappingCountExact()
    {
        const int Rounds = 150, Span = 48, Edge = 512;
        var engine = NewFragmentingEngine(mappingBudget: 40);
        using var threads = new TestThreads(engine); // a hung round leaves the engine alive: see TestThreads
        CowView region = engine.CreateRegion(1000L * PageSize); // two segments, edge at page 512
        region.AsSpan().Fill(1);
        for (int round = 0; round < Rounds; round++)
        {
            CowView snapshot = region.Snapshot(); // disposed below once its reader has finished
            var start = new Barrier(3);
            int sum = 0;
            threads.Start("below the edge", () => { start.SignalAndWait(); for (int i = 1; i <= Span; i += 2) region.Pointer[(Edge - i) * (long)PageSize] = (byte)round; });
            threads.Start("above the edge", () => { start.SignalAndWait(); for (int i = 0; i < Span; i += 2) region.Pointer[(Edge + i) * (long)PageSize] = (byte)round; });
            threads.Start("snapshot reader", () =>
            {
                start.SignalAndWait();
                for (int i = -Span; i < Span; i++)
                    sum += snapshot.Pointer[(Edge + i) * (long)PageSize + 1];
            });
            threads.JoinAll();
            Assert.Equal(2 * Span, sum); // the snapshot reads its own bytes (all 1) across the edge
            if (round % 25 == 24 || round == Rounds - 1)
            {
                MappingCounts.AssertAgree(region, $"region after round {round}");
                MappingCounts.AssertAgree(snapshot, $"snapshot of round {round}");
            }
            snapshot.Dispose();
            start.Dispose();
        }
        Assert.True(engine.GetStats().Evictions > 0, "a budget of 40 must have forced evictions");
        // Every other page from the edge outward was written (511, 509, ... and 512, 514, ...).
        for (int i = -Span; i < Span; i++)
            Assert.Equal(Math.Abs(i % 2) == (i < 0 ? 1 : 0) ? (byte)(Rounds - 1) : (byte)1, region.Pointer[(Edge + i) * (long)PageSize]);
    }

    private static long[] RandomOrder(long count, int seed)
    {
        var order = new long[count];
        for (long i = 0; i < count; i++)
            order[i] = i;
        new Random(seed).Shuffle(order);
        return order;
    }
}
