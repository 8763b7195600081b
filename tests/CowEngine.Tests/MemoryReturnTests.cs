namespace CowEngine.Tests;

/// <summary>
/// Memory goes back: a slot no view references any more returns to the pool and its memory to the
/// kernel (hole-punched in the memfd), so an engine's footprint follows what is live, not what was
/// ever written. CommittedBytes is the memfd's allocated blocks as the kernel reports them (fstat).
/// </summary>
public sealed class MemoryReturnTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const long NearZero = 64 * 1024;

    [Fact]
    public void DisposingEveryViewReturnsAllTheMemoryTheyWrote()
    {
        const long length = 64L << 20;
        const long pages = length / PageSize;
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(length);
        CowView? snapshot = null;
        try
        {
            region.AsSpan().Fill(0x5A);
            CowEngineStats written = engine.GetStats();
            // The measurement can see memory: the region's 64 MiB are really committed now.
            Assert.True(written.CommittedBytes >= length, $"CommittedBytes {written.CommittedBytes} after writing {length} bytes");
            Assert.Equal(pages, written.SlotsInUse);

            snapshot = region.Snapshot();
            region.AsSpan().Fill(0xA5);   // copies every page for the region
            snapshot.AsSpan().Fill(0x3C); // copies every page for the snapshot; the originals are freed
            CowEngineStats rewritten = engine.GetStats();
            Assert.Equal(2 * pages, rewritten.SlotsInUse);
            Assert.True(rewritten.CommittedBytes >= 2 * length, $"CommittedBytes {rewritten.CommittedBytes} with two fully written views of {length} bytes");
            // The original slots, referenced by nobody after both rewrites, were already given back.
            Assert.True(rewritten.CommittedBytes < 2 * length + NearZero,
                $"CommittedBytes {rewritten.CommittedBytes}: the {length} bytes no view references any more were not returned");
            Assert.Equal(-1, region.AsSpan().IndexOfAnyExcept((byte)0xA5));
            Assert.Equal(-1, snapshot.AsSpan().IndexOfAnyExcept((byte)0x3C));
        }
        finally
        {
            snapshot?.Dispose();
            region.Dispose();
        }

        CowEngineStats after = engine.GetStats();
        Assert.Equal(0, after.SlotsInUse);
        Assert.Equal(0, after.LiveViews);
        Assert.True(after.CommittedBytes < NearZero, $"CommittedBytes {after.CommittedBytes} after every view was disposed");
    }

    [Fact]
    public void ReadingUnwrittenPagesAndDisposingReturnsTheirMemoryToo()
    {
        // A read fault on a memfd hole allocates a (zero) page in the file; disposal must punch it too.
        const long length = 8L << 20;
        using var engine = new CowMemoryEngine();
        using (CowView region = engine.CreateRegion(length))
        {
            using CowView snapshot = region.Snapshot();
            long sum = 0;
            for (long offset = 0; offset < length; offset += PageSize)
                sum += snapshot.AsSpan(offset, 1)[0] + region.AsSpan(offset, 1)[0];
            Assert.Equal(0, sum);
        }
        CowEngineStats after = engine.GetStats();
        Assert.Equal(0, after.SlotsInUse);
        Assert.True(after.CommittedBytes < NearZero, $"CommittedBytes {after.CommittedBytes} after every view was disposed");
    }

    [Fact]
    public void AnAbandonedSnapshotIsKeptByItsEngineUntilTheEngineIsDisposed()
    {
        // The lifetime contract (issue 14): the engine holds every view until it is disposed, so a
        // snapshot dropped without Dispose keeps its pages - the garbage collector does not release
        // it - its source is unharmed, and the engine's Dispose releases it.
        var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(16 * PageSize);
        region.AsSpan().Fill(0x61);
        WeakReference abandoned = AbandonAWrittenSnapshot(region);
        Assert.Equal(2, engine.GetStats().LiveViews);
        long slots = engine.GetStats().SlotsInUse;

        for (int attempt = 0; attempt < 3; attempt++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        CowEngineStats after = engine.GetStats();
        Assert.Equal(2, after.LiveViews);
        Assert.Equal(slots, after.SlotsInUse);
        Assert.True(after.SlotsInUse > 16, $"{after.SlotsInUse} slots: the region's 16 and the snapshot's copies");
        Assert.Equal(-1, region.AsSpan().IndexOfAnyExcept((byte)0x61));
        Assert.True(abandoned.IsAlive);

        engine.Dispose();
        Assert.True(((CowView)abandoned.Target!).IsDisposed);
        Assert.True(region.IsDisposed);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference AbandonAWrittenSnapshot(CowView region)
    {
        CowView snapshot = region.Snapshot();
        snapshot.AsSpan(0, 3 * PageSize).Fill(0x62);
        return new WeakReference(snapshot);
    }

    [Fact]
    public void TwoThousandSnapshotWriteDisposeRoundsKeepSlotsAndMemoryFlat()
    {
        const int pages = 16;
        const int rounds = 2000;
        // Live at any moment: the region's pages plus at most every page copied once for the
        // snapshot and once for the region.
        const long slotBound = 2 * pages;
        const long committedBound = 3 * pages * PageSize;
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(pages * PageSize);
        var model = new byte[pages * PageSize];
        new Random(2000).NextBytes(model);
        model.CopyTo(region.AsSpan());

        long maxSlots = 0, maxCommitted = 0;
        for (int round = 0; round < rounds; round++)
        {
            using (CowView snapshot = region.Snapshot())
            {
                int snapshotPage = round % pages, regionPage = (round * 7 + 3) % pages;
                snapshot.AsSpan(snapshotPage * PageSize, 8).Fill((byte)round);
                snapshot.AsSpan((pages - 1 - snapshotPage) * PageSize + 100, 1)[0] = 1;
                region.AsSpan(regionPage * PageSize + 8, 4).Fill((byte)(round + 1));
                model.AsSpan(regionPage * PageSize + 8, 4).Fill((byte)(round + 1));
                Assert.Equal((byte)round, snapshot.AsSpan(snapshotPage * PageSize, 1)[0]);

                CowEngineStats during = engine.GetStats();
                maxSlots = Math.Max(maxSlots, during.SlotsInUse);
                maxCommitted = Math.Max(maxCommitted, during.CommittedBytes);
                Assert.True(during.SlotsInUse <= slotBound, $"round {round}: SlotsInUse {during.SlotsInUse} > {slotBound}");
            }
            CowEngineStats between = engine.GetStats();
            Assert.True(between.SlotsInUse == pages, $"round {round}: SlotsInUse {between.SlotsInUse} with only the {pages}-page region live");
            Assert.True(between.CommittedBytes <= committedBound, $"round {round}: CommittedBytes {between.CommittedBytes} > {committedBound}");
            Assert.Equal(1, between.LiveViews);
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{rounds} rounds: at most {maxSlots} slots and {maxCommitted} committed bytes at once");
        Assert.True(region.AsSpan().SequenceEqual(model), "the region lost or gained writes over the rounds");
        Assert.Equal(rounds, engine.GetStats().Snapshots);
    }
}
