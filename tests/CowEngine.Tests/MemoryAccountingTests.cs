using System.Globalization;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// The tests that read process-wide memory figures (/proc/self/smaps_rollup): they run alone, so
/// that no parallel test's views come and go between two readings.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessMemoryMeasurementCollection
{
    public const string Name = "Process-wide memory measurements";
}

/// <summary>
/// Memory accounting a user can trust, checked against the kernel. What each number means:
/// <list type="bullet">
/// <item><c>CowEngineStats.SlotsInUse</c>: 4 KiB slots some view references. A region's pages count
/// from creation (that is what the capacity limit bounds), written or not.</item>
/// <item><c>CowEngineStats.CommittedBytes</c>: memory the pool file really holds, fstat(memfd)
/// st_blocks * 512. A slot commits its 4 KiB when first written and gives it back (hole punch) when
/// freed, so this is (written slots still in use) * 4096.</item>
/// <item><c>CowViewStats.PrivatePages</c>: pages only this view references - exactly what disposing
/// it would free. <c>SharedPages</c>: the rest, referenced by another view too; the view's next
/// write to each copies it.</item>
/// <item>/proc/self/smaps_rollup <c>Pss_Shmem</c>: the process's proportional share of the
/// shared-memory (memfd) pages it maps. The engine maps a page in its view and, when it copies
/// it, in its pool window too; Pss splits such a page between its mappings, so the pages still
/// sum to one each, and Pss_Shmem moves with CommittedBytes. (Rss would count those twice.)</item>
/// </list>
/// </summary>
[Collection(ProcessMemoryMeasurementCollection.Name)]
public sealed unsafe class MemoryAccountingTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const int RegionPages = 32 << 20 >> 12; // 32 MiB
    private const int WrittenAfterSnapshot = 2_048; // 8 MiB: every fourth page, in every segment

    /// <summary>
    /// The pool file's blocks are page-granular and punched exactly, so CommittedBytes should be
    /// exact; a few pages of slack keep the test about accounting, not about the file system.
    /// </summary>
    private const long CommittedSlackBytes = 4 * PageSize;

    /// <summary>
    /// Slack for the process-wide Pss_Shmem: the .NET runtime's own shared memory (the W^X
    /// double-mapped code heap) can grow when a method is compiled between two readings.
    /// </summary>
    private const long ProcessSlackBytes = 1 << 20;

    [Fact]
    public void CommittedBytesSlotsAndViewStats_FollowFillSnapshotWritesAndDisposal()
    {
        using CowMemoryEngine engine = NewEngine();
        CowView region = engine.CreateRegion((long)RegionPages * PageSize);

        // Created, not yet written: the slots count against the capacity, no memory is committed.
        AssertEngine(engine, slots: RegionPages, committedPages: 0, "a region nobody wrote");
        AssertView(region, privatePages: RegionPages, sharedPages: 0, "the new region");

        FillEveryPage(region);
        AssertEngine(engine, slots: RegionPages, committedPages: RegionPages, "the region written in full");

        CowView snapshot = region.Snapshot();
        AssertEngine(engine, slots: RegionPages, committedPages: RegionPages, "a snapshot (it copies nothing)");
        AssertView(region, privatePages: 0, sharedPages: RegionPages, "the region after a snapshot");
        AssertView(snapshot, privatePages: 0, sharedPages: RegionPages, "the snapshot");

        WriteEveryFourthPage(region);
        // Each written page got a private copy; its old slot is now the snapshot's alone.
        AssertEngine(engine, slots: RegionPages + WrittenAfterSnapshot, committedPages: RegionPages + WrittenAfterSnapshot, "k pages written after the snapshot");
        AssertView(region, privatePages: WrittenAfterSnapshot, sharedPages: RegionPages - WrittenAfterSnapshot, "the region after k writes");
        AssertView(snapshot, privatePages: WrittenAfterSnapshot, sharedPages: RegionPages - WrittenAfterSnapshot, "the snapshot after the region's k writes");
        Assert.Equal(WrittenAfterSnapshot * (long)PageSize, region.GetStats().PrivateBytes);
        Assert.Equal((RegionPages - WrittenAfterSnapshot) * (long)PageSize, snapshot.GetStats().SharedBytes);

        snapshot.Dispose();
        AssertEngine(engine, slots: RegionPages, committedPages: RegionPages, "the snapshot disposed");
        AssertView(region, privatePages: RegionPages, sharedPages: 0, "the region alone again");

        region.Dispose();
        AssertEngine(engine, slots: 0, committedPages: 0, "every view disposed");
    }

    /// <summary>PrivateBytes is exactly what disposing the view gives back, for every view of a small family.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void PrivateBytes_IsWhatDisposingTheViewFrees(int viewToDispose)
    {
        const int Pages = 3 * 512;
        using CowMemoryEngine engine = NewEngine();
        CowView region = engine.CreateRegion(Pages * PageSize);
        FillEveryPage(region);
        CowView first = region.Snapshot();
        CowView second = region.Snapshot();
        for (long page = 0; page < 40; page++)
            first.Pointer[page * PageSize] = 1;        // first copies 40 pages of segment 0
        for (long page = 500; page < 530; page++)
            second.Pointer[page * PageSize] = 2;       // second copies 30 pages over segments 0 and 1
        region.Pointer[1_200L * PageSize] = 3;          // the region copies one page of segment 2
        CowView grandchild = first.Snapshot();          // shares everything with first
        CowView[] views = [region, first, second, grandchild];
        CowView victim = views[viewToDispose];

        CowViewStats stats = victim.GetStats();
        CowEngineStats before = engine.GetStats();
        victim.Dispose();
        CowEngineStats after = engine.GetStats();

        Assert.Equal(stats.PrivatePages, before.SlotsInUse - after.SlotsInUse);
        Assert.InRange(before.CommittedBytes - after.CommittedBytes, stats.PrivateBytes - CommittedSlackBytes, stats.PrivateBytes + CommittedSlackBytes);
        foreach (CowView view in views)
            view.Dispose();
    }

    /// <summary>
    /// The kernel's view of the same steps: the process's shared-memory footprint (Pss_Shmem) moves
    /// by what CommittedBytes says, at every step.
    /// </summary>
    [Fact]
    public void CommittedBytes_AgreesWithTheKernelsSharedMemoryFootprint()
    {
        // Warm-up: the same steps on a small region, so that nothing is compiled (and no code heap
        // memory appears) between the readings of the real run.
        RunSteps(regionPages: 64, writtenPages: 16, check: null);

        RunSteps(RegionPages, WrittenAfterSnapshot, check: (step, committedDelta, expectedDelta, pssShmemDelta, rssDelta) =>
        {
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"{step}: CommittedBytes {committedDelta:+#;-#;0}, expected {expectedDelta:+#;-#;0}, Pss_Shmem {pssShmemDelta:+#;-#;0}, Rss {rssDelta:+#;-#;0}");
            Assert.InRange(committedDelta, expectedDelta - CommittedSlackBytes, expectedDelta + CommittedSlackBytes);
            Assert.True(Math.Abs(pssShmemDelta - committedDelta) <= ProcessSlackBytes,
                $"{step}: Pss_Shmem moved by {pssShmemDelta} bytes, CommittedBytes by {committedDelta}");
            if (expectedDelta > 0)
                Assert.True(rssDelta >= committedDelta - ProcessSlackBytes,
                    $"{step}: Rss grew by {rssDelta} bytes, less than the {committedDelta} bytes committed");
        });
    }

    private delegate void StepCheck(string step, long committedDelta, long expectedDelta, long pssShmemDelta, long rssDelta);

    private static void RunSteps(int regionPages, int writtenPages, StepCheck? check)
    {
        using CowMemoryEngine engine = NewEngine();
        var previous = Reading.Take(engine);
        void Step(string name, long expectedPagesDelta)
        {
            var now = Reading.Take(engine);
            check?.Invoke(name, now.Committed - previous.Committed, expectedPagesDelta * PageSize,
                now.PssShmem - previous.PssShmem, now.Rss - previous.Rss);
            previous = now;
        }

        CowView region = engine.CreateRegion((long)regionPages * PageSize);
        Step("region created", 0);
        FillEveryPage(region);
        Step("region written in full", regionPages);
        CowView snapshot = region.Snapshot();
        Step("snapshot taken", 0);
        for (long page = 0; page < writtenPages; page++)
            region.Pointer[page * 4 * PageSize] = 0xEE;
        Step("k pages written after the snapshot", writtenPages);
        snapshot.Dispose();
        Step("snapshot disposed", -writtenPages);
        region.Dispose();
        Step("region disposed", -regionPages);
    }

    // ---- helpers ----

    private static void FillEveryPage(CowView view)
    {
        for (long page = 0; page < view.PageCount; page++)
            view.Pointer[page * PageSize + 8] = (byte)(page | 1);
    }

    private static void WriteEveryFourthPage(CowView view)
    {
        for (long page = 0; page < WrittenAfterSnapshot; page++)
            view.Pointer[page * 4 * PageSize] = 0xEE;
    }

    private static void AssertEngine(CowMemoryEngine engine, long slots, long committedPages, string when)
    {
        CowEngineStats stats = engine.GetStats();
        Assert.True(stats.SlotsInUse == slots, $"{when}: SlotsInUse is {stats.SlotsInUse}, expected {slots}");
        long expected = committedPages * PageSize;
        Assert.True(Math.Abs(stats.CommittedBytes - expected) <= CommittedSlackBytes,
            $"{when}: CommittedBytes is {stats.CommittedBytes} ({stats.CommittedBytes / PageSize} pages), expected {expected} ({committedPages} pages)");
    }

    private static void AssertView(CowView view, long privatePages, long sharedPages, string what)
    {
        CowViewStats stats = view.GetStats();
        Assert.True(stats.PrivatePages == privatePages && stats.SharedPages == sharedPages,
            $"{what}: {stats.PrivatePages} private and {stats.SharedPages} shared pages, expected {privatePages} and {sharedPages}");
    }

    /// <summary>CommittedBytes and the process's figures, read together.</summary>
    private readonly record struct Reading(long Committed, long PssShmem, long Rss)
    {
        public static Reading Take(CowMemoryEngine engine)
        {
            long committed = engine.GetStats().CommittedBytes;
            Dictionary<string, long> rollup = SmapsRollup.Read();
            return new Reading(committed, rollup["Pss_Shmem"], rollup["Rss"]);
        }
    }
}

/// <summary>The fields of /proc/self/smaps_rollup, in bytes.</summary>
file static class SmapsRollup
{
    public static Dictionary<string, long> Read()
    {
        var fields = new Dictionary<string, long>();
        foreach (string line in File.ReadLines("/proc/self/smaps_rollup"))
        {
            // "Pss_Shmem:          1234 kB"; the first line is the address range.
            int colon = line.IndexOf(':');
            if (colon <= 0 || !line.EndsWith(" kB", StringComparison.Ordinal))
                continue;
            string value = line[(colon + 1)..^3].Trim();
            fields[line[..colon]] = long.Parse(value, CultureInfo.InvariantCulture) * 1024;
        }
        Assert.True(fields.ContainsKey("Pss_Shmem") && fields.ContainsKey("Rss"),
            "/proc/self/smaps_rollup has no Pss_Shmem or Rss line: " + string.Join(", ", fields.Keys));
        return fields;
    }
}
