using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 4: rollback of a 1 GiB state to a snapshot after k random pages were dirtied.
/// Engine: region.RestoreTo(snapshot) (the snapshot taken once of the fully written region).
/// memcpy: copying a saved 1 GiB image over the working memory (what a program without COW does;
/// independent of k). Fork server: the worker child has dirtied k pages of its copy; restarting it
/// is SIGKILL + waitpid (its exit frees its copies and page tables) + fork of a fresh worker.
/// </summary>
[Config(typeof(Config))]
public unsafe class RollbackBenchmarks
{
    private sealed class Config() : ScenarioConfig(iterations: 9, warmups: 1,
        new ReportedMetricColumn("Refused", "Engine: restores refused with CowMappingBudgetExceededException (the benchmark then fails)", sum: true));

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private PrivateMemory? _pristine;
    private PrivateMemory? _memory;
    private ForkChild? _worker;
    private RandomPageSource? _random;
    private byte _value;

    public static IEnumerable<int> DirtyPageCounts => BenchSettings.Quick ? [1, 256] : [1, 256, 4096, 26214];

    [ParamsSource(nameof(DirtyPageCounts))]
    public int K { get; set; }

    private static long Bytes => BenchSettings.SteadyStateRegionBytes;

    // ---- engine ----

    [GlobalSetup(Target = nameof(Engine_RestoreTo))]
    public void EngineGlobalSetup()
    {
        _engine = new CowMemoryEngine();
        _region = _engine.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _snapshot = _region.Snapshot();
        _random = new RandomPageSource(_region.PageCount, seed: 4);
        WriteProtectionColumn.Record(this, nameof(Engine_RestoreTo), _engine);
    }

    [IterationSetup(Target = nameof(Engine_RestoreTo))]
    public void EngineIterationSetup() => Pages.Write(_region!.Pointer, _random!.Next(K), ++_value);

    [Benchmark]
    public void Engine_RestoreTo()
    {
        try
        {
            _region!.RestoreTo(_snapshot!);
        }
        catch (CowMappingBudgetExceededException)
        {
            ReportedMetrics.Record(this, nameof(Engine_RestoreTo), "Refused", 1);
            // BenchmarkDotNet skips the cleanups of a failed benchmark; free the fragmented region
            // now, or its mappings would stay in the process and weigh on the other benchmarks.
            EngineGlobalCleanup();
            throw;
        }
    }

    [GlobalCleanup(Target = nameof(Engine_RestoreTo))]
    public void EngineGlobalCleanup()
    {
        _engine?.Dispose();
        _engine = null;
        _region = _snapshot = null;
    }

    // ---- memcpy ----

    [GlobalSetup(Target = nameof(Memcpy_WholeRegion))]
    public void MemcpyGlobalSetup()
    {
        _pristine = PrivateMemory.Allocate(Bytes, touch: true);
        _memory = PrivateMemory.Allocate(Bytes, touch: true);
        _random = new RandomPageSource(_memory.PageCount, seed: 4);
    }

    [IterationSetup(Target = nameof(Memcpy_WholeRegion))]
    public void MemcpyIterationSetup() => Pages.Write(_memory!.Pointer, _random!.Next(K), ++_value);

    [Benchmark(Baseline = true)]
    public void Memcpy_WholeRegion() => Buffer.MemoryCopy(_pristine!.Pointer, _memory!.Pointer, Bytes, Bytes);

    [GlobalCleanup(Target = nameof(Memcpy_WholeRegion))]
    public void MemcpyGlobalCleanup()
    {
        _pristine!.Dispose();
        _memory!.Dispose();
    }

    // ---- fork server ----

    [GlobalSetup(Target = nameof(ForkServer_Restart))]
    public void ForkServerGlobalSetup()
    {
        _memory = PrivateMemory.Allocate(Bytes, touch: true);
        _random = new RandomPageSource(_memory.PageCount, seed: 4);
    }

    /// <summary>A worker forked from the pristine parent dirties k pages of its copy.</summary>
    [IterationSetup(Target = nameof(ForkServer_Restart))]
    public void ForkServerIterationSetup()
    {
        _worker = ForkChild.Spawn(ForkChildMode.Write, _memory, _random!.Next(K));
        _worker.Go();
    }

    [Benchmark]
    public void ForkServer_Restart()
    {
        _worker!.Kill();
        _worker = ForkChild.Spawn(ForkChildMode.Hold);
    }

    [IterationCleanup(Target = nameof(ForkServer_Restart))]
    public void ForkServerIterationCleanup() => _worker!.Release();

    [GlobalCleanup(Target = nameof(ForkServer_Restart))]
    public void ForkServerGlobalCleanup() => _memory!.Dispose();
}
