using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 5: one writer thread against two, each thread taking the copy-on-write faults of its own
/// disjoint set of shared pages (two threads: the first and the second half of the region, each
/// written in order). 16,384 pages (64 MiB) are written per iteration; Mean is per page, so pages
/// per second = 1e6 / Mean(us). Engine: writes into a region right after its snapshot. Fork: the
/// parent's threads write while a child holds the other copy.
/// The threads are started inside the measurement for 1 and for 2 writers alike (~0.1 ms against
/// a measurement of hundreds of milliseconds).
/// </summary>
[Config(typeof(Config))]
public unsafe class WriterThreadsBenchmarks
{
    public const int PagesWritten = 16384;

    private sealed class Config() : ScenarioConfig(iterations: 7, warmups: 1);

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private PrivateMemory? _memory;
    private ForkChild? _child;
    private byte _value;

    [Params(1, 2)]
    public int Threads { get; set; }

    private const long Bytes = (long)PagesWritten * Pages.Size;

    private void WriteWithThreads(byte* baseAddress)
    {
        byte value = ++_value;
        long share = PagesWritten / Threads;
        var threads = new Thread[Threads];
        for (int t = 0; t < Threads; t++)
        {
            long first = t * share;
            threads[t] = new Thread(() => Pages.WriteRange(baseAddress, first, share, value));
            threads[t].Start();
        }
        foreach (Thread thread in threads)
            thread.Join();
    }

    // ---- engine ----

    [GlobalSetup(Target = nameof(Engine_Writers))]
    public void EngineGlobalSetup() => _engine = new CowMemoryEngine();

    [IterationSetup(Target = nameof(Engine_Writers))]
    public void EngineIterationSetup()
    {
        _region = _engine!.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _snapshot = _region.Snapshot();
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Engine_Writers() => WriteWithThreads(_region!.Pointer);

    [IterationCleanup(Target = nameof(Engine_Writers))]
    public void EngineIterationCleanup()
    {
        WriteProtectionColumn.Record(this, nameof(Engine_Writers), _engine!);
        _snapshot!.Dispose();
        _region!.Dispose();
    }

    [GlobalCleanup(Target = nameof(Engine_Writers))]
    public void EngineGlobalCleanup() => _engine!.Dispose();

    // ---- fork ----

    [GlobalSetup(Target = nameof(Fork_Writers))]
    public void ForkGlobalSetup() => _memory = PrivateMemory.Allocate(Bytes, touch: true);

    [IterationSetup(Target = nameof(Fork_Writers))]
    public void ForkIterationSetup() => _child = ForkChild.Spawn(ForkChildMode.Hold);

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Fork_Writers() => WriteWithThreads(_memory!.Pointer);

    [IterationCleanup(Target = nameof(Fork_Writers))]
    public void ForkIterationCleanup() => _child!.Release();

    [GlobalCleanup(Target = nameof(Fork_Writers))]
    public void ForkGlobalCleanup() => _memory!.Dispose();
}
