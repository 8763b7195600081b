using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 2: high-frequency snapshots, the simulator's steady state. A 1 GiB region, fully
/// written once; then, per iteration: write k random pages (outside the measurement, a fresh
/// random set each time; its time is reported in the WriteK_us column), then take the snapshot.
/// Engine: Snapshot() and Dispose() of the previous snapshot, so exactly one snapshot stays alive
/// (a bounded history of one: the cost of a snapshot includes retiring the one before it).
/// Steady state, not a fresh region: before the measured iterations the loop runs unmeasured
/// (global setup) until 65,536 pages (a quarter of the region) have been written or 200 rounds have
/// passed, so the region has the fragmentation a long-running loop gives it - every randomly
/// written page becomes a mapping of its own until its neighbours are written too - and the engine
/// has had to do whatever it does to stay within its mapping budget. The Mappings column
/// shows the state. A snapshot the engine refuses (CowMappingBudgetExceededException) fails the
/// benchmark and is counted in Refused.
/// Fork: the parent's fork() call (the child _exits at once and is reaped after the measurement),
/// and the round trip fork + child exit + waitpid (the fork equivalent of snapshot + retiring it).
/// </summary>
[Config(typeof(Config))]
public unsafe class SnapshotFrequencyBenchmarks
{
    private sealed class Config() : ScenarioConfig(iterations: 15, warmups: 2,
        new ReportedMetricColumn("WriteK_us", "Writing the k dirty pages before each snapshot (not in Mean), median, us"),
        new ReportedMetricColumn("DisposePrevious_us", "Engine: the part of Mean spent disposing the previous snapshot, median, us"),
        new ReportedMetricColumn("Mappings", "Engine: kernel mappings of the region after the snapshot (its fragmentation), median"),
        new ReportedMetricColumn("AgingRounds", "Unmeasured rounds run before the measurement (global setup) to reach the steady state"),
        new ReportedMetricColumn("Refused", "Engine: snapshots refused with CowMappingBudgetExceededException (the benchmark then fails)", sum: true));

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _previous;
    private PrivateMemory? _memory;
    private ForkChild? _child;
    private RandomPageSource? _random;
    private byte _value;
    private double _disposeMicroseconds;

    public static IEnumerable<int> DirtyPageCounts => BenchSettings.Quick ? [1, 16, 256] : [1, 16, 256, 4096, 26214];

    /// <summary>k: pages written between two snapshots (26,214 = 10% of 1 GiB).</summary>
    [ParamsSource(nameof(DirtyPageCounts))]
    public int K { get; set; }

    private static long Bytes => BenchSettings.SteadyStateRegionBytes;

    private void WriteDirtyPages(byte* baseAddress, string method)
    {
        uint[] pages = _random!.Next(K);
        long start = Stopwatch.GetTimestamp();
        Pages.Write(baseAddress, pages, ++_value);
        ReportedMetrics.Record(this, method, "WriteK_us", Stopwatch.GetElapsedTime(start).TotalMicroseconds);
    }

    // ---- engine ----

    /// <summary>Rounds of the loop run before measuring: enough to write a quarter of the region.</summary>
    private int AgingRounds => Math.Min(200, (int)(Bytes / Pages.Size / 4 / K));

    [GlobalSetup(Target = nameof(Engine_SnapshotAndDisposePrevious))]
    public void EngineGlobalSetup()
    {
        _engine = new CowMemoryEngine();
        _random = new RandomPageSource(Bytes / Pages.Size, seed: 2);
        _region = _engine.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _previous = _region.Snapshot();
        for (int i = 0; i < AgingRounds; i++)
        {
            Pages.Write(_region.Pointer, _random.Next(K), ++_value);
            Engine_SnapshotAndDisposePrevious();
        }
        ReportedMetrics.Record(this, nameof(Engine_SnapshotAndDisposePrevious), "AgingRounds", AgingRounds);
    }

    [IterationSetup(Target = nameof(Engine_SnapshotAndDisposePrevious))]
    public void EngineIterationSetup() => WriteDirtyPages(_region!.Pointer, nameof(Engine_SnapshotAndDisposePrevious));

    [Benchmark]
    public void Engine_SnapshotAndDisposePrevious()
    {
        CowView snapshot;
        try
        {
            snapshot = _region!.Snapshot();
        }
        catch (CowMappingBudgetExceededException)
        {
            ReportedMetrics.Record(this, nameof(Engine_SnapshotAndDisposePrevious), "Refused", 1);
            // BenchmarkDotNet skips the cleanups of a failed benchmark; free the fragmented region
            // now, or its mappings would stay in the process and weigh on the fork benchmarks.
            EngineGlobalCleanup();
            throw;
        }
        long start = Stopwatch.GetTimestamp();
        _previous!.Dispose();
        _disposeMicroseconds = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        _previous = snapshot;
    }

    [IterationCleanup(Target = nameof(Engine_SnapshotAndDisposePrevious))]
    public void EngineIterationCleanup()
    {
        ReportedMetrics.Record(this, nameof(Engine_SnapshotAndDisposePrevious), "DisposePrevious_us", _disposeMicroseconds);
        ReportedMetrics.Record(this, nameof(Engine_SnapshotAndDisposePrevious), "Mappings", _engine!.GetStats().Mappings);
        WriteProtectionColumn.Record(this, nameof(Engine_SnapshotAndDisposePrevious), _engine);
    }

    [GlobalCleanup(Target = nameof(Engine_SnapshotAndDisposePrevious))]
    public void EngineGlobalCleanup()
    {
        _engine?.Dispose();
        _engine = null;
        _region = _previous = null;
    }

    // ---- fork ----

    /// <summary>No aging for fork: a fork's cost does not depend on which pages were written before.</summary>
    [GlobalSetup(Targets = [nameof(Fork_ParentCall), nameof(Fork_EndToEnd)])]
    public void ForkGlobalSetup()
    {
        _memory = PrivateMemory.Allocate(Bytes, touch: true);
        _random = new RandomPageSource(_memory.PageCount, seed: 2);
    }

    [IterationSetup(Target = nameof(Fork_ParentCall))]
    public void ForkParentCallSetup() => WriteDirtyPages(_memory!.Pointer, nameof(Fork_ParentCall));

    [IterationSetup(Target = nameof(Fork_EndToEnd))]
    public void ForkEndToEndSetup() => WriteDirtyPages(_memory!.Pointer, nameof(Fork_EndToEnd));

    [Benchmark(Baseline = true)]
    public void Fork_ParentCall() => _child = ForkChild.Spawn(ForkChildMode.Exit);

    [IterationCleanup(Target = nameof(Fork_ParentCall))]
    public void ForkParentCallCleanup() => _child!.Release();

    [Benchmark]
    public void Fork_EndToEnd() => Fork.ExitAndWait();

    [GlobalCleanup(Targets = [nameof(Fork_ParentCall), nameof(Fork_EndToEnd)])]
    public void ForkGlobalCleanup() => _memory!.Dispose();
}
