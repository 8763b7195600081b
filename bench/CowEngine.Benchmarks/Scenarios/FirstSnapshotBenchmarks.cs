using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 1: the first snapshot of a fully written region, 64 MiB to 4 GiB.
/// Engine: Snapshot() of a fresh region whose every page was written (the region is rebuilt for
/// every iteration, so each snapshot really is the first). Fork: the same amount of PRIVATE
/// anonymous memory, every page written again before each fork; the parent's fork() call alone
/// (the child _exits at once and is reaped after the measurement) and the whole round trip
/// fork + child exit + waitpid (what discarding a fork snapshot costs in the end).
/// </summary>
[Config(typeof(Config))]
public unsafe class FirstSnapshotBenchmarks
{
    private sealed class Config() : ScenarioConfig(iterations: 7, warmups: 1,
        new ReportedMetricColumn("SnapshotDispose_us", "Engine: time to dispose the snapshot again (after the measurement), median, us"));

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private PrivateMemory? _memory;
    private ForkChild? _child;

    public static IEnumerable<int> Sizes => BenchSettings.Quick ? [64] : [64, 256, 1024, 4096];

    [ParamsSource(nameof(Sizes))]
    public int SizeMiB { get; set; }

    private long Bytes => SizeMiB * BenchSettings.MiB;

    // ---- engine ----

    [GlobalSetup(Target = nameof(Engine_Snapshot))]
    public void EngineGlobalSetup() => _engine = new CowMemoryEngine();

    [IterationSetup(Target = nameof(Engine_Snapshot))]
    public void EngineIterationSetup()
    {
        _region = _engine!.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
    }

    [Benchmark]
    public void Engine_Snapshot() => _snapshot = _region!.Snapshot();

    [IterationCleanup(Target = nameof(Engine_Snapshot))]
    public void EngineIterationCleanup()
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        _snapshot!.Dispose();
        ReportedMetrics.Record(this, nameof(Engine_Snapshot), "SnapshotDispose_us",
            System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        WriteProtectionColumn.Record(this, nameof(Engine_Snapshot), _engine!);
        _region!.Dispose();
    }

    [GlobalCleanup(Target = nameof(Engine_Snapshot))]
    public void EngineGlobalCleanup() => _engine!.Dispose();

    // ---- fork ----

    [GlobalSetup(Targets = [nameof(Fork_ParentCall), nameof(Fork_EndToEnd)])]
    public void ForkGlobalSetup() => _memory = PrivateMemory.Allocate(Bytes, touch: true);

    /// <summary>Every page written again: after the previous fork the parent's entries are
    /// write-protected; a live process's memory is not.</summary>
    [IterationSetup(Targets = [nameof(Fork_ParentCall), nameof(Fork_EndToEnd)])]
    public void ForkIterationSetup() => Pages.WriteRange(_memory!.Pointer, 0, _memory.PageCount, 1);

    [Benchmark(Baseline = true)]
    public void Fork_ParentCall() => _child = ForkChild.Spawn(ForkChildMode.Exit);

    [IterationCleanup(Target = nameof(Fork_ParentCall))]
    public void ForkParentCallCleanup() => _child!.Release();

    [Benchmark]
    public void Fork_EndToEnd() => Fork.ExitAndWait();

    [GlobalCleanup(Targets = [nameof(Fork_ParentCall), nameof(Fork_EndToEnd)])]
    public void ForkGlobalCleanup() => _memory!.Dispose();
}
