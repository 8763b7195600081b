namespace CowEngine.Tests;

/// <summary>
/// Wrong arguments, use after dispose and exhausted limits fail with the documented exception and
/// leave every view exactly as it was. The mapping budget, which the engine meets by evicting
/// before it refuses anything, has a class of its own: <see cref="EvictionTests"/>.
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
}
