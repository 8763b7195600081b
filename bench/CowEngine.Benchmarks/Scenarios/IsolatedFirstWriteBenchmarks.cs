using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 3, isolated first writes (issue 12): what a simulator pays per frame, not in a bulk
/// pass. Right after a snapshot of a fully written 1 GiB region (64 MiB when quick), 16 first
/// writes, one store each, scattered: one random page in each of 16 distinct random 2 MiB
/// segments, in random order; Mean is per page (OperationsPerInvoke). A new set of 16 pages every
/// iteration, the same sequence of sets for every row (fixed seed), so engine and kernel write the
/// same pages.
/// Engine: one region, filled once (global setup); every iteration disposes the previous snapshot
/// and takes a new one (iteration setup, not measured; reading the stats then drains the
/// reclaimer), so every page is shared again and each write is a first write after a snapshot -
/// including, for each of the 16 segments, the first write of that segment since the snapshot.
/// Engine_WriteRegion writes the region, Engine_WriteSnapshot the snapshot (pages the snapshot has
/// not mapped yet). Fork: the kernel's COW fault for the same 16 pages of 1 GiB of private
/// memory, parent writing while a freshly forked child holds the other copy, and child writing
/// (timed in the child, ChildMeasured_us_per_page; Mean for that row is dominated by the pipe round
/// trip). Floor: first touch of fresh private memory. Columns, read from CowEngineStats around the
/// engine's writes (outside the measurement): CopiesPerPageWritten, FaultsPerPageWritten,
/// ReverseCopiesPerPageWritten (as in <see cref="FirstWriteBenchmarks"/>).
/// </summary>
[Config(typeof(Config))]
public unsafe class IsolatedFirstWriteBenchmarks
{
    public const int PagesWritten = 16;

    private const int SegmentPages = 512;

    /// <summary>Sets of pages drawn up front (iterations past this reuse them, in order).</summary>
    private const int Sets = 256;

    // Many iterations: each measures only 16 faults (a few hundred microseconds).
    private sealed class Config() : ScenarioConfig(iterations: 25, warmups: 3,
        new ReportedMetricColumn("ChildMeasured_us_per_page", "Fork, child writing: time per page measured inside the child (clock_gettime in C), median, us"),
        new ReportedMetricColumn("CopiesPerPageWritten", "Engine: pages copied during the writes / pages written, median", format: "0.####"),
        new ReportedMetricColumn("FaultsPerPageWritten", "Engine: write faults during the writes / pages written, median", format: "0.####"),
        new ReportedMetricColumn("ReverseCopiesPerPageWritten", "Engine: reverse copies (the snapshot got the copy) / pages written, median", format: "0.####"),
        new ReportedMetricColumn("Region_MiB", "Size of the region (and of the fork baseline's private memory), MiB", format: "0"));

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private PrivateMemory? _memory;
    private ForkChild? _child;
    private uint[][] _sets = [];
    private int _nextSet;
    private uint[] _pages = [];
    private byte _value;
    private double _childNanoseconds;
    private CowEngineStats _before;

    private static long RegionBytes => BenchSettings.Quick ? 64 * BenchSettings.MiB : 1024 * BenchSettings.MiB;

    /// <summary>The same sets, in the same order, for every benchmark: one random page in each of
    /// 16 distinct random 2 MiB segments.</summary>
    private void DrawSets()
    {
        long segments = RegionBytes / Pages.Size / SegmentPages;
        var segmentSource = new RandomPageSource(segments, seed: 12);
        var offsets = new Random(13);
        _sets = new uint[Sets][];
        for (int s = 0; s < Sets; s++)
        {
            uint[] chosen = segmentSource.Next(PagesWritten);
            for (int i = 0; i < chosen.Length; i++)
                chosen[i] = (uint)(chosen[i] * SegmentPages + offsets.Next(SegmentPages));
            _sets[s] = chosen;
        }
        _nextSet = 0;
    }

    private void NextPages() => _pages = _sets[_nextSet++ % Sets];

    private void Record(string method, double value, string metric) => ReportedMetrics.Record(this, method, metric, value);

    // ---- engine ----

    [GlobalSetup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineGlobalSetup()
    {
        _engine = new CowMemoryEngine();
        _region = _engine.CreateRegion(RegionBytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        DrawSets();
    }

    [IterationSetup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineIterationSetup()
    {
        _snapshot?.Dispose();
        _snapshot = _region!.Snapshot();
        NextPages();
        _before = _engine!.GetStats();
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Engine_WriteRegion() => Pages.Write(_region!.Pointer, _pages, ++_value);

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Engine_WriteSnapshot() => Pages.Write(_snapshot!.Pointer, _pages, ++_value);

    [IterationCleanup(Target = nameof(Engine_WriteRegion))]
    public void EngineWriteRegionCleanup() => RecordEngineCounts(nameof(Engine_WriteRegion));

    [IterationCleanup(Target = nameof(Engine_WriteSnapshot))]
    public void EngineWriteSnapshotCleanup() => RecordEngineCounts(nameof(Engine_WriteSnapshot));

    private void RecordEngineCounts(string method)
    {
        CowEngineStats after = _engine!.GetStats();
        Record(method, (double)(after.PagesCopied - _before.PagesCopied) / PagesWritten, "CopiesPerPageWritten");
        Record(method, (double)(after.WriteFaults - _before.WriteFaults) / PagesWritten, "FaultsPerPageWritten");
        Record(method, (double)(after.ReverseCopies - _before.ReverseCopies) / PagesWritten, "ReverseCopiesPerPageWritten");
        Record(method, RegionBytes / BenchSettings.MiB, "Region_MiB");
        WriteProtectionColumn.Record(this, method, _engine);
    }

    [GlobalCleanup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineGlobalCleanup()
    {
        _engine?.Dispose();
        _engine = null;
        _region = _snapshot = null;
    }

    // ---- fork ----

    [GlobalSetup(Targets = [nameof(Fork_ParentWrites), nameof(Fork_ChildWrites)])]
    public void ForkGlobalSetup()
    {
        _memory = PrivateMemory.Allocate(RegionBytes, touch: true);
        DrawSets();
    }

    /// <summary>A child forked just before (not measured) holds the other copy of every page.</summary>
    [IterationSetup(Target = nameof(Fork_ParentWrites))]
    public void ForkParentWritesSetup()
    {
        NextPages();
        _child = ForkChild.Spawn(ForkChildMode.Hold);
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Fork_ParentWrites() => Pages.Write(_memory!.Pointer, _pages, ++_value);

    [IterationCleanup(Target = nameof(Fork_ParentWrites))]
    public void ForkParentWritesCleanup()
    {
        Record(nameof(Fork_ParentWrites), RegionBytes / BenchSettings.MiB, "Region_MiB");
        _child!.Release();
    }

    [IterationSetup(Target = nameof(Fork_ChildWrites))]
    public void ForkChildWritesSetup()
    {
        NextPages();
        _child = ForkChild.Spawn(ForkChildMode.Write, _memory, _pages);
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Fork_ChildWrites() => _childNanoseconds = _child!.Go();

    [IterationCleanup(Target = nameof(Fork_ChildWrites))]
    public void ForkChildWritesCleanup()
    {
        Record(nameof(Fork_ChildWrites), _childNanoseconds / 1000.0 / PagesWritten, "ChildMeasured_us_per_page");
        _child!.Release();
    }

    [GlobalCleanup(Targets = [nameof(Fork_ParentWrites), nameof(Fork_ChildWrites)])]
    public void ForkGlobalCleanup() => _memory!.Dispose();

    // ---- floor ----

    [GlobalSetup(Target = nameof(FreshMemory_FirstTouch))]
    public void FreshMemoryGlobalSetup() => DrawSets();

    [IterationSetup(Target = nameof(FreshMemory_FirstTouch))]
    public void FreshMemorySetup()
    {
        NextPages();
        _memory = PrivateMemory.Allocate(RegionBytes, touch: false);
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void FreshMemory_FirstTouch() => Pages.Write(_memory!.Pointer, _pages, ++_value);

    [IterationCleanup(Target = nameof(FreshMemory_FirstTouch))]
    public void FreshMemoryCleanup() => _memory!.Dispose();
}
