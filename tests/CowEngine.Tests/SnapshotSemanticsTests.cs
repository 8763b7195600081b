using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// What a snapshot means: it holds exactly the writes its source received before it was taken,
/// every view is independently writable, no view ever sees another view's later writes, and only
/// the pages actually written are ever copied.
/// </summary>
public sealed class SnapshotSemanticsTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    // ---- a tiny list stored in a view: an int count at offset 0, int items after it ----

    private static void Put(CowView list, int item)
    {
        ref int count = ref list.AsSpan<int>(0, 1)[0];
        list.AsSpan<int>(sizeof(int) + (long)count * sizeof(int), 1)[0] = item;
        count++;
    }

    private static int[] Items(CowView list) => list.AsSpan<int>(sizeof(int), list.AsSpan<int>(0, 1)[0]).ToArray();

    [Fact]
    public void SnapshotsOfAListHoldTheItemsPutBeforeThem()
    {
        using var engine = new CowMemoryEngine();
        using CowView list = engine.CreateRegion(PageSize);

        Put(list, 1);
        Put(list, 2);
        using CowView snapshot1 = list.Snapshot();
        Put(list, 3);
        using CowView snapshot2 = list.Snapshot();
        Put(list, 4);

        Assert.Equal([1, 2, 3, 4], Items(list));
        Assert.Equal([1, 2], Items(snapshot1));
        Assert.Equal([1, 2, 3], Items(snapshot2));

        // Each snapshot is a list in its own right: putting into one changes no other view.
        Put(snapshot1, 10);
        Put(snapshot2, 20);
        Assert.Equal([1, 2, 3, 4], Items(list));
        Assert.Equal([1, 2, 10], Items(snapshot1));
        Assert.Equal([1, 2, 3, 20], Items(snapshot2));
    }

    [Fact]
    public void SnapshotsOfAListSpanningSeveralPagesHoldTheItemsPutBeforeThem()
    {
        // 3,000 ints: the items cross two page boundaries, and the count (page 0) is updated with
        // every item, so count and items live on different pages when the snapshots are taken.
        using var engine = new CowMemoryEngine();
        using CowView list = engine.CreateRegion(4 * PageSize);
        for (int i = 0; i < 1000; i++)
            Put(list, i);
        using CowView first = list.Snapshot();
        for (int i = 1000; i < 2500; i++)
            Put(list, i);
        using CowView second = list.Snapshot();
        for (int i = 2500; i < 3000; i++)
            Put(list, i);

        Assert.Equal(Enumerable.Range(0, 3000), Items(list));
        Assert.Equal(Enumerable.Range(0, 1000), Items(first));
        Assert.Equal(Enumerable.Range(0, 2500), Items(second));
    }

    [Fact]
    public void AWriteToASnapshotIsSeenNeitherByItsSourceNorByOtherSnapshots()
    {
        using var engine = new CowMemoryEngine();
        const int pages = 5;
        using CowView region = engine.CreateRegion(pages * PageSize);
        byte[] regionModel = Pattern(pages * PageSize, seed: 1);
        regionModel.CopyTo(region.AsSpan());

        using CowView first = region.Snapshot();
        using CowView second = region.Snapshot();
        byte[] firstModel = (byte[])regionModel.Clone();
        byte[] secondModel = (byte[])regionModel.Clone();

        // The first snapshot writes a page-crossing range.
        WriteBoth(first, firstModel, PageSize - 100, Pattern(300, seed: 2));
        AssertContents(regionModel, region, "the source after a write to its snapshot");
        AssertContents(secondModel, second, "a sibling after a write to the other snapshot");
        AssertContents(firstModel, first, "the written snapshot");

        // A snapshot of the written snapshot holds that write; the parent's later writes are its own.
        using CowView grandchild = first.Snapshot();
        byte[] grandchildModel = (byte[])firstModel.Clone();
        WriteBoth(first, firstModel, 3 * PageSize + 7, Pattern(50, seed: 3));
        WriteBoth(grandchild, grandchildModel, 2 * PageSize, Pattern(PageSize, seed: 4));
        WriteBoth(second, secondModel, 0, Pattern(pages * PageSize, seed: 5));
        WriteBoth(region, regionModel, 4 * PageSize + 1, Pattern(10, seed: 6));

        AssertContents(regionModel, region, "the region");
        AssertContents(firstModel, first, "the first snapshot");
        AssertContents(secondModel, second, "the second snapshot");
        AssertContents(grandchildModel, grandchild, "the snapshot of the first snapshot");
    }

    [Fact]
    public void EveryLevelOfAThousandNestedSnapshotsSeesExactlyItsAncestorsEarlierWrites()
    {
        // Level k writes its own byte at OwnOffset(k), then level k + 1 is taken from it, then level
        // k writes a "late" byte at LateOffset(k). So level j must hold the own bytes of levels
        // 0..j, its own late byte, and no late byte of any ancestor (those came after its cut).
        const int levels = 1000;
        const int pages = 4;
        static long OwnOffset(int level) => level * 8L;                      // pages 0-1
        static long LateOffset(int level) => 2L * PageSize + level * 8L;     // pages 2-3
        static byte Value(int level) => (byte)(level % 255 + 1);

        using var engine = new CowMemoryEngine();
        var views = new List<CowView>(levels) { engine.CreateRegion(pages * PageSize) };
        try
        {
            for (int level = 0; level < levels; level++)
            {
                views[level].AsSpan(OwnOffset(level), 1)[0] = Value(level);
                if (level + 1 < levels)
                {
                    views.Add(views[level].Snapshot());
                    views[level].AsSpan(LateOffset(level), 1)[0] = Value(level);
                }
            }

            var expected = new byte[pages * PageSize];
            for (int level = 0; level < levels; level++)
            {
                expected[OwnOffset(level)] = Value(level);
                if (level + 1 < levels)
                    expected[LateOffset(level)] = Value(level);
                AssertContents(expected, views[level], $"nesting level {level}");
                expected[LateOffset(level)] = 0;
            }
            Assert.Equal(levels, engine.GetStats().LiveViews);
        }
        finally
        {
            // Dispose in a shuffled order: parents before and after their children.
            CowView[] shuffled = views.ToArray();
            new Random(levels).Shuffle(shuffled);
            foreach (CowView view in shuffled)
                view.Dispose();
        }
        Assert.Equal(0, engine.GetStats().SlotsInUse);
        Assert.Equal(0, engine.GetStats().LiveViews);
    }

    [Fact]
    public void TenThousandSiblingsOfOneRegionEachKeepTheirOwnWrite()
    {
        const int siblings = 10_000;
        const int idOffset = 1000;
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(PageSize);
        byte[] regionModel = Pattern(PageSize, seed: 7);
        regionModel.CopyTo(region.AsSpan());
        long copiedBefore = engine.GetStats().PagesCopied;

        var views = new List<CowView>(siblings);
        try
        {
            for (int id = 0; id < siblings; id++)
            {
                CowView sibling = region.Snapshot();
                views.Add(sibling);
                sibling.AsSpan<int>(idOffset, 1)[0] = id;
            }
            // Every sibling copied its one page; the region's page is now referenced by it alone, so
            // the region's own write copies nothing.
            region.AsSpan<int>(idOffset, 1)[0] = -1;
            Assert.Equal(siblings, engine.GetStats().PagesCopied - copiedBefore);

            byte[] expected = (byte[])regionModel.Clone();
            for (int id = 0; id < siblings; id++)
            {
                BitConverter.TryWriteBytes(expected.AsSpan(idOffset), id);
                AssertContents(expected, views[id], $"sibling {id}");
            }
            BitConverter.TryWriteBytes(regionModel.AsSpan(idOffset), -1);
            AssertContents(regionModel, region, "the region");
        }
        finally
        {
            foreach (CowView view in views)
                view.Dispose();
        }
        CowEngineStats after = engine.GetStats();
        Assert.Equal(1, after.LiveViews);
        Assert.Equal(1, after.SlotsInUse);
        AssertContents(regionModel, region, "the region after its siblings were disposed");
    }

    public static TheoryData<string, int[]> DisposeOrders => new()
    {
        { "parents before children", [0, 1, 2, 3, 4] },
        { "children before parents", [3, 2, 1, 4, 0] },
        { "middle of the chain first", [2, 1, 3, 0, 4] },
        { "region first, then the chain's end", [0, 3, 4, 1, 2] },
        { "shuffled (seed 11)", Shuffled(5, 11) },
        { "shuffled (seed 12)", Shuffled(5, 12) },
    };

    [Theory]
    [MemberData(nameof(DisposeOrders))]
    public void DisposingViewsInAnyOrderLeavesTheOthersIntactAndWritable(string order, int[] disposeOrder)
    {
        // region -> a -> b -> c is a chain, d a second snapshot of the region taken later.
        const int pages = 3;
        using var engine = new CowMemoryEngine();
        var random = new Random(order.Length * 7919 + disposeOrder.Sum());
        var views = new CowView?[5];
        var models = new byte[5][];
        views[0] = engine.CreateRegion(pages * PageSize);
        models[0] = Pattern(pages * PageSize, seed: 20);
        models[0].CopyTo(views[0]!.AsSpan());
        void TakeSnapshot(int target, int source)
        {
            views[target] = views[source]!.Snapshot();
            models[target] = (byte[])models[source].Clone();
            WriteBoth(views[target]!, models[target], random.Next(pages * PageSize - 64), Pattern(64, seed: 30 + target));
        }
        TakeSnapshot(1, 0);
        TakeSnapshot(2, 1);
        WriteBoth(views[0]!, models[0], PageSize - 2, Pattern(4, seed: 40));
        TakeSnapshot(3, 2);
        TakeSnapshot(4, 0);
        WriteBoth(views[1]!, models[1], 2 * PageSize, Pattern(PageSize, seed: 41));

        try
        {
            foreach (int victim in disposeOrder)
            {
                views[victim]!.Dispose();
                Assert.True(views[victim]!.IsDisposed);
                views[victim] = null;
                for (int i = 0; i < views.Length; i++)
                {
                    if (views[i] is not { } survivor)
                        continue;
                    AssertContents(models[i], survivor, $"view {i} after view {victim} was disposed ({order})");
                    // The survivor is still writable, and its write lands in it alone.
                    WriteBoth(survivor, models[i], random.Next(pages * PageSize - 16), Pattern(16, seed: random.Next()));
                }
                for (int i = 0; i < views.Length; i++)
                    if (views[i] is { } survivor)
                        AssertContents(models[i], survivor, $"view {i} after writes following the disposal of view {victim} ({order})");
            }
        }
        finally
        {
            foreach (CowView? view in views)
                view?.Dispose();
        }
        CowEngineStats after = engine.GetStats();
        Assert.Equal(0, after.LiveViews);
        Assert.Equal(0, after.SlotsInUse);
    }

    [Fact]
    public void ViewsOfTwoEnginesInterleavedInTheAddressSpaceStayIndependent()
    {
        // All engines share one arena and one fault handler; a fault must be resolved with the
        // tables of the engine that owns the faulting view.
        const int pages = 8;
        using var first = new CowMemoryEngine();
        using var second = new CowMemoryEngine();
        var views = new List<(CowView View, byte[] Model)>();
        try
        {
            for (int i = 0; i < 6; i++)
            {
                CowMemoryEngine engine = i % 2 == 0 ? first : second;
                CowView region = engine.CreateRegion(pages * PageSize);
                byte[] model = Pattern(pages * PageSize, seed: 60 + i);
                model.CopyTo(region.AsSpan());
                views.Add((region, model));
                CowView snapshot = region.Snapshot();
                views.Add((snapshot, (byte[])model.Clone()));
            }
            var random = new Random(61);
            for (int round = 0; round < 200; round++)
            {
                var (view, model) = views[random.Next(views.Count)];
                WriteBoth(view, model, random.Next(pages * PageSize - 32), Pattern(32, seed: round));
            }
            foreach (var (view, model) in views)
                AssertContents(model, view, $"a view of the {(view.Engine == first ? "first" : "second")} engine");
            Assert.Equal(6, first.GetStats().LiveViews);
            Assert.Equal(6, second.GetStats().LiveViews);
            Assert.Equal(first.GetStats().PagesCopied, views.Where(v => v.View.Engine == first).Sum(v => v.View.GetStats().PagesCopied));
            Assert.Equal(second.GetStats().PagesCopied, views.Where(v => v.View.Engine == second).Sum(v => v.View.GetStats().PagesCopied));
        }
        finally
        {
            foreach (var (view, _) in views)
                view.Dispose();
        }
        Assert.Equal(0, first.GetStats().SlotsInUse);
        Assert.Equal(0, second.GetStats().SlotsInUse);
    }

    [Fact]
    public void AFreshSnapshotPreparedForReadCanBeWrittenToAFileBySystemCalls()
    {
        // Saving a snapshot is the reason to take one. write(2) reads the view's memory in the
        // kernel, which raises no fault the engine could resolve, and a snapshot maps its pages only
        // on first touch: the documented way is PrepareForRead first, which maps without copying.
        const int pages = 40;
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(pages * PageSize);
        byte[] model = Pattern(pages * PageSize, seed: 80);
        model.CopyTo(region.AsSpan());
        using CowView snapshot = region.Snapshot();
        using CowView nested = snapshot.Snapshot();

        long copiedBefore = engine.GetStats().PagesCopied;
        foreach (CowView view in new[] { region, snapshot, nested })
        {
            view.PrepareForRead(0, view.Length);
            Assert.Equal(pages, view.GetStats().MappedPages);
            FileWrites.AssertSavedByWrite(view, model);
        }
        Assert.Equal(copiedBefore, engine.GetStats().PagesCopied); // preparing for reading copies nothing
    }

    [Fact]
    public void ASnapshotRangePreparedForWriteCanBeFilledBySystemCalls()
    {
        // The documented way for read(2) to write into a view: PrepareForWrite first.
        const int pages = 8;
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(pages * PageSize);
        byte[] model = Pattern(pages * PageSize, seed: 81);
        model.CopyTo(region.AsSpan());
        using CowView snapshot = region.Snapshot();
        byte[] fileContents = Pattern(3 * PageSize, seed: 82);
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, fileContents);
            long offset = 2 * PageSize + 100; // unaligned, across three pages
            snapshot.PrepareForWrite(offset, fileContents.Length - 200);
            using (var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read))
                Assert.Equal(fileContents.Length - 200, RandomAccess.Read(file, snapshot.AsSpan(offset, fileContents.Length - 200), 0));
            byte[] expected = (byte[])model.Clone();
            fileContents.AsSpan(0, fileContents.Length - 200).CopyTo(expected.AsSpan((int)offset));
            AssertContents(expected, snapshot, "the snapshot filled by read(2)");
            AssertContents(model, region, "the source of the snapshot filled by read(2)");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AWriteToASharedPageCopiesThatPageOnlyAndReadingCopiesNothing()
    {
        const int pages = 64;
        using var engine = new CowMemoryEngine(new CowEngineOptions { FaultAroundPages = 1 }); // page by page: see TestEngines
        using CowView region = engine.CreateRegion(pages * PageSize);
        Pattern(pages * PageSize, seed: 50).CopyTo(region.AsSpan());
        using CowView snapshot = region.Snapshot();

        // Reading every page of both views copies nothing and faults nothing.
        CowEngineStats beforeReads = engine.GetStats();
        long checksum = Checksum(region) + Checksum(snapshot);
        Assert.NotEqual(0, checksum);
        CowEngineStats afterReads = engine.GetStats();
        Assert.Equal(beforeReads.PagesCopied, afterReads.PagesCopied);
        Assert.Equal(beforeReads.WriteFaults, afterReads.WriteFaults);
        Assert.Equal(beforeReads.SlotsInUse, afterReads.SlotsInUse);
        Assert.Equal(pages, region.GetStats().SharedPages);
        Assert.Equal(pages, snapshot.GetStats().SharedPages);

        // Writes to pages 3, 17 (twice, at different offsets) and the two pages 40-41 (one
        // page-crossing write) of the snapshot: 4 distinct pages.
        snapshot.AsSpan(3L * PageSize + 5, 1)[0] = 1;
        snapshot.AsSpan(17L * PageSize, 1)[0] = 2;
        snapshot.AsSpan(17L * PageSize + 4000, 1)[0] = 3;
        snapshot.AsSpan(41L * PageSize - 2, 4).Fill(4);
        CowEngineStats afterSnapshotWrites = engine.GetStats();
        Assert.Equal(4, afterSnapshotWrites.PagesCopied - afterReads.PagesCopied);
        Assert.Equal(4, afterSnapshotWrites.CopyFaults - afterReads.CopyFaults);
        Assert.Equal(4, afterSnapshotWrites.WriteFaults - afterReads.WriteFaults);
        Assert.Equal(4, afterSnapshotWrites.SlotsInUse - afterReads.SlotsInUse);
        CowViewStats snapshotStats = snapshot.GetStats();
        Assert.Equal(4, snapshotStats.PagesCopied);
        Assert.Equal(4, snapshotStats.PrivatePages);
        Assert.Equal(pages - 4, snapshotStats.SharedPages);
        Assert.Equal(4, snapshotStats.WritablePages);
        CowViewStats regionStats = region.GetStats();
        Assert.Equal(4, regionStats.PrivatePages);
        Assert.Equal(pages - 4, regionStats.SharedPages);
        Assert.Equal(0, regionStats.WritablePages);

        // The region writes page 3 (now its own: made writable, not copied) and page 5 (shared: copied).
        region.AsSpan(3L * PageSize, 1)[0] = 9;
        region.AsSpan(5L * PageSize, 1)[0] = 9;
        region.AsSpan(5L * PageSize + 1, 1)[0] = 9;
        CowEngineStats afterRegionWrites = engine.GetStats();
        Assert.Equal(1, afterRegionWrites.PagesCopied - afterSnapshotWrites.PagesCopied);
        Assert.Equal(1, afterRegionWrites.CopyFaults - afterSnapshotWrites.CopyFaults);
        Assert.Equal(2, afterRegionWrites.WriteFaults - afterSnapshotWrites.WriteFaults);
        Assert.Equal(1, region.GetStats().PagesCopied);

        // Reading everything again changes nothing.
        Assert.NotEqual(0, Checksum(region) + Checksum(snapshot));
        CowEngineStats afterSecondReads = engine.GetStats();
        Assert.Equal(afterRegionWrites.PagesCopied, afterSecondReads.PagesCopied);
        Assert.Equal(afterRegionWrites.WriteFaults, afterSecondReads.WriteFaults);
        Assert.Equal(afterRegionWrites.SlotsInUse, afterSecondReads.SlotsInUse);
    }

    [Fact]
    public void AfterTheOnlySnapshotIsDisposedTheSourceOwnsItsPagesAgainAndWritesCopyNothing()
    {
        const int pages = 16;
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(pages * PageSize);
        region.AsSpan().Fill(0x11);
        CowView snapshot = region.Snapshot();
        snapshot.AsSpan(0, PageSize).Fill(0x22); // gives the snapshot its own leaf and one copy
        snapshot.Dispose();

        CowEngineStats before = engine.GetStats();
        region.AsSpan().Fill(0x33);
        CowEngineStats after = engine.GetStats();
        Assert.Equal(0, after.PagesCopied - before.PagesCopied);
        Assert.Equal(pages, region.GetStats().PrivatePages);
        Assert.Equal(pages, after.SlotsInUse);
        Assert.Equal(-1, region.AsSpan().IndexOfAnyExcept((byte)0x33));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(513)]
    [InlineData(1025)]
    public void ARegionIsZeroFilled(int pages)
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion((long)pages * PageSize);
        Assert.Equal(-1, region.AsSpan().IndexOfAnyExcept((byte)0));
        using CowView snapshot = region.Snapshot();
        Assert.Equal(-1, snapshot.AsSpan().IndexOfAnyExcept((byte)0));
    }

    [Fact]
    public void ARegionMadeFromRecycledSlotsIsZeroFilled()
    {
        const int pages = 600;
        using var engine = new CowMemoryEngine();
        for (int round = 0; round < 3; round++)
        {
            CowView region = engine.CreateRegion(pages * PageSize);
            Assert.Equal(-1, region.AsSpan().IndexOfAnyExcept((byte)0));
            region.AsSpan().Fill(0xEE);
            CowView snapshot = region.Snapshot();
            snapshot.AsSpan(0, 100 * PageSize).Fill(0xDD); // copies into slots of other chunks
            region.AsSpan(50L * PageSize, 100 * PageSize).Fill(0xCC);
            snapshot.Dispose();
            region.Dispose();
            Assert.Equal(0, engine.GetStats().SlotsInUse);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(511)]
    [InlineData(512)]
    [InlineData(513)]
    [InlineData(1025)]
    public void TheFirstAndLastBytesOfRegionsOfAnySizeBelongToTheirView(int pages)
    {
        using var engine = new CowMemoryEngine();
        long length = (long)pages * PageSize;
        using CowView region = engine.CreateRegion(length);
        Assert.Equal(length, region.Length);
        Assert.Equal(pages, region.PageCount);
        region.AsSpan(0, 1)[0] = 0xA1;
        region.AsSpan(length - 1, 1)[0] = 0xA2;

        using CowView snapshot = region.Snapshot();
        Assert.Equal(0xA1, snapshot.AsSpan(0, 1)[0]);
        Assert.Equal(0xA2, snapshot.AsSpan(length - 1, 1)[0]);
        snapshot.AsSpan(0, 1)[0] = 0xB1;
        snapshot.AsSpan(length - 1, 1)[0] = 0xB2;
        region.AsSpan(length - 2, 2).Fill(0xA3);

        Assert.Equal(0xA1, region.AsSpan(0, 1)[0]);
        Assert.Equal([0xA3, 0xA3], region.AsSpan(length - 2, 2).ToArray());
        Assert.Equal(0xB1, snapshot.AsSpan(0, 1)[0]);
        Assert.Equal(0, snapshot.AsSpan(length - 2, 1)[0]);
        Assert.Equal(0xB2, snapshot.AsSpan(length - 1, 1)[0]);
        // Everything between the ends is untouched in both.
        if (length > 2)
        {
            Assert.Equal(-1, region.AsSpan(1, (int)length - 3).IndexOfAnyExcept((byte)0));
            Assert.Equal(-1, snapshot.AsSpan(1, (int)length - 3).IndexOfAnyExcept((byte)0));
        }
        // The last page is the view's last: one byte further is out of range.
        Assert.Throws<ArgumentOutOfRangeException>(() => region.AsSpan(length, 1));
        Assert.Equal(0, region.AsSpan(length, 0).Length);
    }

    [Theory]
    [InlineData(256L << 20)]
    [InlineData((3L << 30) + 3 * PageSize)] // > 2 GiB and not a multiple of 2 MiB
    public void ALargeRegionAndItsSnapshotKeepWritesAtFarOffsetsApart(long length)
    {
        // The capacity is only a limit (the pool file is sparse); set it so the test does not
        // depend on the machine's memory size.
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = length + (64L << 20) });
        using CowView region = engine.CreateRegion(length);
        long[] offsets = new[]
            {
                0L, PageSize - 4, length / 2 + 3, length / 3, int.MaxValue - 3L, int.MaxValue + 1L + 12_345,
                (long)uint.MaxValue - 2, length - 8,
            }
            .Where(offset => offset + 8 <= length).Distinct().ToArray();
        var regionModel = new Dictionary<long, long>();
        var random = new Random((int)(length >> 12));
        foreach (long offset in offsets)
        {
            long value = random.NextInt64();
            region.AsSpan<long>(offset, 1)[0] = value;
            regionModel[offset] = value;
        }

        using CowView snapshot = region.Snapshot();
        var snapshotModel = new Dictionary<long, long>(regionModel);
        long copiedBefore = engine.GetStats().PagesCopied;
        var snapshotPages = new HashSet<long>();
        foreach (long offset in offsets.Where((_, i) => i % 2 == 0))
        {
            long value = random.NextInt64();
            snapshot.AsSpan<long>(offset, 1)[0] = value;
            snapshotModel[offset] = value;
            snapshotPages.Add(offset / PageSize);
            snapshotPages.Add((offset + 7) / PageSize);
        }
        foreach (long offset in offsets.Where((_, i) => i % 3 == 1))
        {
            long value = random.NextInt64();
            region.AsSpan<long>(offset, 1)[0] = value;
            regionModel[offset] = value;
        }

        foreach (long offset in offsets)
        {
            Assert.True(regionModel[offset] == region.AsSpan<long>(offset, 1)[0], $"region at offset {offset}");
            Assert.True(snapshotModel[offset] == snapshot.AsSpan<long>(offset, 1)[0], $"snapshot at offset {offset}");
        }
        // Untouched pages far out read zero in both.
        long farPage = (length - 5 * PageSize) / PageSize * PageSize;
        Assert.Equal(-1, region.AsSpan(farPage, PageSize).IndexOfAnyExcept((byte)0));
        Assert.Equal(-1, snapshot.AsSpan(farPage, PageSize).IndexOfAnyExcept((byte)0));
        Assert.Equal(snapshotPages.Count, snapshot.GetStats().PagesCopied);
        Assert.True(engine.GetStats().PagesCopied - copiedBefore >= snapshotPages.Count);

        if (length > int.MaxValue)
        {
            Assert.Throws<InvalidOperationException>(() => region.AsSpan());
            Assert.Throws<InvalidOperationException>(() => snapshot.AsSpan());
        }
        else
        {
            Assert.Equal(length, region.AsSpan().Length);
        }
    }

    // ---- helpers ----

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static int[] Shuffled(int count, int seed)
    {
        int[] order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        return order;
    }

    private static void WriteBoth(CowView view, byte[] model, long offset, byte[] data)
    {
        data.CopyTo(view.AsSpan(offset, data.Length));
        data.CopyTo(model.AsSpan((int)offset));
    }

    private static long Checksum(CowView view)
    {
        long sum = 0;
        foreach (byte b in view.AsSpan())
            sum += b;
        return sum;
    }

    private static void AssertContents(byte[] expected, CowView view, string what)
    {
        Span<byte> actual = view.AsSpan();
        Assert.Equal(expected.Length, actual.Length);
        if (actual.SequenceEqual(expected))
            return;
        int first = 0;
        while (expected[first] == actual[first])
            first++;
        Assert.Fail($"{what}: first difference at byte {first} (page {first / PageSize}): expected {expected[first]}, found {actual[first]}");
    }
}
