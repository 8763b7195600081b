namespace CowEngine.Tests;

/// <summary>
/// Reading never allocates (issue 14, item 7; docs/design.md, invariant 12): a page nobody wrote is
/// mapped onto the kernel's one zero page, so reading a fresh region, or a snapshot's never-written
/// pages, commits nothing - checked against the pool file's allocated blocks
/// (<see cref="CowEngineStats.CommittedBytes"/> is fstat(memfd) st_blocks * 512). The first write
/// to such a page maps its own slot without copying anything.
/// </summary>
public sealed unsafe class ZeroPageTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const long GiB = 1L << 30;
    private const int Pages = (int)(GiB / PageSize);

    /// <summary>Reads the first byte of every page; returns their sum (zero if every page reads zero).</summary>
    private static long ReadEveryPage(CowView view)
    {
        byte* bytes = (byte*)view.Pointer;
        long sum = 0;
        for (long page = 0; page < view.PageCount; page++)
            sum += Volatile.Read(ref bytes[page * PageSize]);
        return sum;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadingEveryPageOfAFreshGiBRegionAndItsSnapshot_CommitsNothing(bool trackWrites)
    {
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 2 * GiB });
        using CowView region = engine.CreateRegion(GiB, trackWrites);

        Assert.Equal(0, ReadEveryPage(region));
        Assert.Equal(0, engine.GetStats().CommittedBytes);
        CowViewStats stats = region.GetStats();
        Assert.Equal(Pages, stats.ZeroPages);
        Assert.Equal(1, stats.Mappings); // one anonymous mapping for the whole gibibyte

        using CowView snapshot = region.Snapshot();
        Assert.Equal(0, ReadEveryPage(snapshot));
        Assert.Equal(0, engine.GetStats().CommittedBytes);
        Assert.Equal(Pages, snapshot.GetStats().ZeroPages);
    }

    [Fact]
    public void WrittenPagesCommitOnePageEach_AndEveryViewStillReadsItsOwnBytes()
    {
        const int Written = 64;
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 2 * GiB });
        using CowView region = engine.CreateRegion(GiB, trackWrites: true);
        byte* bytes = (byte*)region.Pointer;
        var random = new Random(14_7);
        int[] pages = Enumerable.Range(0, Pages).OrderBy(_ => random.Next()).Take(Written).ToArray();
        foreach (int page in pages)
            bytes[(long)page * PageSize] = (byte)(page % 251 + 1);
        Assert.Equal(Written * (long)PageSize, engine.GetStats().CommittedBytes);
        Assert.Equal(0, region.GetStats().PagesCopied); // never-written pages need no copy

        using CowView snapshot = region.Snapshot();
        long expected = pages.Sum(page => (long)(page % 251 + 1));
        Assert.Equal(expected, ReadEveryPage(snapshot));
        Assert.Equal(Written * (long)PageSize, engine.GetStats().CommittedBytes);

        // A write to a never-written page after the snapshot: shared with it, still no copy - the
        // snapshot keeps reading zero there, and one page more is committed.
        int fresh = Enumerable.Range(0, Pages).First(page => !pages.Contains(page));
        bytes[(long)fresh * PageSize] = 42;
        Assert.Equal(0, ((byte*)snapshot.Pointer)[(long)fresh * PageSize]);
        Assert.Equal((Written + 1) * (long)PageSize, engine.GetStats().CommittedBytes);

        // Rolling back gives the page up again and the region reads zero there.
        region.RestoreTo(snapshot);
        Assert.Equal(0, bytes[(long)fresh * PageSize]);
        Assert.Equal(expected, ReadEveryPage(region));
        Assert.True(engine.GetStats().CommittedBytes <= (Written + 1) * (long)PageSize,
            $"{engine.GetStats().CommittedBytes} bytes committed after the restore and a full read");
    }
}
