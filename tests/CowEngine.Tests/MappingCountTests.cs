using CowEngine.Tests.Support;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// The engine budgets its kernel mappings against vm.max_map_count from its own running count, so
/// that count must match reality. For each view the engine's running count (GetStats().Mappings),
/// its recount from the page table (CountMappings()) and the number of VMAs the kernel lists over
/// the view's range in /proc/self/maps must agree.
/// </summary>
/// <remarks>
/// Only the ranges of this test's own views are read, so parallel tests cannot disturb the counts.
/// The views are 1 MiB inside 2 MiB arena segments: the rest of each segment stays PROT_NONE, so
/// no view's mapping can merge with a neighbouring view's.
/// </remarks>
public sealed class MappingCountTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int Pages = 256; // 1 MiB

    [Fact]
    public void ARegionAndItsSnapshotAreOneMappingEach()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        Assert.Equal(1, MappingCounts.AssertAgree(region, "new region"));
        region.AsSpan().Fill(1);
        Assert.Equal(1, MappingCounts.AssertAgree(region, "fully written region"));

        using CowView snapshot = region.Snapshot();
        Assert.Equal(1, MappingCounts.AssertAgree(region, "region after a snapshot"));
        Assert.Equal(1, MappingCounts.AssertAgree(snapshot, "new snapshot"));
        using CowView nested = snapshot.Snapshot();
        Assert.Equal(1, MappingCounts.AssertAgree(nested, "snapshot of the snapshot"));
        Assert.Equal(1, MappingCounts.AssertAgree(snapshot, "snapshot after being snapshotted"));
    }

    [Fact]
    public void AMultiSegmentRegionIsOneMapping()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(3 * 512 * PageSize + 5 * PageSize);
        Assert.Equal(1, MappingCounts.AssertAgree(region, "new 3-segment region"));
        using CowView snapshot = region.Snapshot();
        Assert.Equal(1, MappingCounts.AssertAgree(snapshot, "snapshot of the 3-segment region"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SparseWritesSplitTheMappingsAndDenseWritesMergeThemBack(bool writeTheSnapshot)
    {
        using var engine = NewFragmentingEngine(); // the splits are mprotect's
        using CowView region = engine.CreateRegion(Pages * PageSize);
        region.AsSpan().Fill(3);
        using CowView snapshot = region.Snapshot();
        CowView written = writeTheSnapshot ? snapshot : region;
        CowView other = writeTheSnapshot ? region : snapshot;

        for (int page = 0; page < Pages; page += 2)
            written.AsSpan(page * PageSize, 1)[0] = 4;
        long sparse = MappingCounts.AssertAgree(written, "every other page written");
        // Each written (read-write, private) page lies between unwritten (read-only, shared) pages.
        Assert.True(sparse >= Pages - 1, $"only {sparse} mappings after writing every other page");
        Assert.Equal(1, MappingCounts.AssertAgree(other, "the view that was not written"));

        for (int page = 1; page < Pages; page += 2)
            written.AsSpan(page * PageSize, 1)[0] = 4;
        long dense = MappingCounts.AssertAgree(written, "every page written");
        Assert.True(dense <= 2, $"{dense} mappings after writing every page: the private copies did not merge back");
        Assert.Equal(1, MappingCounts.AssertAgree(other, "the view that was not written, at the end"));
    }

    [Fact]
    public void ReadingASnapshotMapsItRunByRunAndTheCountsStayExact()
    {
        // A snapshot is mapped on first touch, one run of untouched file-contiguous pages at a time.
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        region.AsSpan().Fill(5);
        using CowView snapshot = region.Snapshot();
        Assert.Equal(1, MappingCounts.AssertAgree(snapshot, "untouched snapshot"));
        for (int page = 0; page < Pages; page += 4)
            snapshot.AsSpan(page * PageSize, 1)[0] = 6;
        MappingCounts.AssertAgree(snapshot, "every fourth page written, the rest untouched");
        long sum = 0;
        for (int page = Pages - 1; page >= 0; page -= 3)
            sum += snapshot.AsSpan(page * PageSize + 1, 1)[0];
        Assert.Equal(5L * ((Pages + 2) / 3), sum);
        MappingCounts.AssertAgree(snapshot, "every third page read backwards");
        Assert.Equal(Pages, snapshot.GetStats().MappedPages);
        Assert.Equal(Pages, region.GetStats().MappedPages);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void ARandomPatternOfWritesSnapshotsAndPreparesKeepsTheCountsExact(int seed)
    {
        var random = new Random(seed);
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(Pages * PageSize);
        var views = new List<CowView> { region };
        try
        {
            for (int round = 0; round < 6; round++)
            {
                CowView source = views[random.Next(views.Count)];
                views.Add(source.Snapshot());
                MappingCounts.AssertAgree(source, $"round {round}: source after snapshot");
                MappingCounts.AssertAgree(views[^1], $"round {round}: new snapshot");
                foreach (CowView view in views)
                {
                    int writes = random.Next(0, 60);
                    for (int i = 0; i < writes; i++)
                        view.AsSpan(random.Next(Pages) * (long)PageSize + random.Next(PageSize), 1)[0] = (byte)i;
                    if (random.Next(3) == 0)
                    {
                        long offset = random.Next(Pages * PageSize);
                        view.PrepareForWrite(offset, random.Next(Pages * PageSize - (int)offset + 1));
                    }
                    MappingCounts.AssertAgree(view, $"round {round}: after random writes");
                }
            }
        }
        finally
        {
            foreach (CowView view in views)
                view.Dispose();
        }
    }
}
