using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 3: the cost per page of the first write after a snapshot. 16,384 pages are written,
/// one store each, in sequential order (pages 0..16383) or random order (16,384 distinct random
/// pages of a 256 MiB region, 64 MiB when quick); Mean is per page (OperationsPerInvoke).
/// Engine: writes into the region right after its snapshot (each a copy-on-write fault of the
/// engine), and into the snapshot itself (a fault on a view whose page-table entries the kernel
/// has not populated yet). Fork: the kernel's COW fault, with the parent writing while a child
/// holds the other copy, and with the child writing - timed by the child itself in C and reported
/// through a pipe (ChildMeasured_us_per_page; Mean for that row is the parent's view: "go" over a
/// pipe, the writes, the report back). Floor: the first write into fresh private memory (a
/// page fault that allocates a zeroed page, no copy).
/// </summary>
[Config(typeof(Config))]
public unsafe class FirstWriteBenchmarks
{
    public const int PagesWritten = 16384;

    private sealed class Config() : ScenarioConfig(iterations: 7, warmups: 1,
        new ReportedMetricColumn("ChildMeasured_us_per_page", "Fork, child writing: time per page measured inside the child (clock_gettime in C), median, us"));

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private PrivateMemory? _memory;
    private ForkChild? _child;
    private uint[] _pages = [];
    private byte _value;
    private double _childNanoseconds;

    public enum WriteOrder { Sequential, Random }

    [Params(WriteOrder.Sequential, WriteOrder.Random)]
    public WriteOrder Order { get; set; }

    private static long RegionBytes => (BenchSettings.Quick ? 64 : 256) * BenchSettings.MiB;

    private void ChoosePages(long regionPages) =>
        _pages = Order == WriteOrder.Sequential ? Pages.Sequential(PagesWritten) : Pages.Random(regionPages, PagesWritten, seed: 3);

    // ---- engine ----

    [GlobalSetup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineGlobalSetup()
    {
        _engine = new CowMemoryEngine();
        ChoosePages(RegionBytes / Pages.Size);
    }

    /// <summary>A fresh, fully written region and its snapshot for every iteration.</summary>
    [IterationSetup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineIterationSetup()
    {
        _region = _engine!.CreateRegion(RegionBytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _snapshot = _region.Snapshot();
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Engine_WriteRegion() => Pages.Write(_region!.Pointer, _pages, ++_value);

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Engine_WriteSnapshot() => Pages.Write(_snapshot!.Pointer, _pages, ++_value);

    [IterationCleanup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineIterationCleanup()
    {
        _snapshot!.Dispose();
        _region!.Dispose();
    }

    [GlobalCleanup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineGlobalCleanup() => _engine!.Dispose();

    // ---- fork ----

    [GlobalSetup(Targets = [nameof(Fork_ParentWrites), nameof(Fork_ChildWrites)])]
    public void ForkGlobalSetup()
    {
        _memory = PrivateMemory.Allocate(RegionBytes, touch: true);
        ChoosePages(_memory.PageCount);
    }

    /// <summary>The child holds the other copy of every page while the parent writes, so each
    /// write really copies (with no other owner the kernel would just reuse the page).</summary>
    [IterationSetup(Target = nameof(Fork_ParentWrites))]
    public void ForkParentWritesSetup() => _child = ForkChild.Spawn(ForkChildMode.Hold);

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Fork_ParentWrites() => Pages.Write(_memory!.Pointer, _pages, ++_value);

    [IterationCleanup(Target = nameof(Fork_ParentWrites))]
    public void ForkParentWritesCleanup() => _child!.Release();

    [IterationSetup(Target = nameof(Fork_ChildWrites))]
    public void ForkChildWritesSetup() => _child = ForkChild.Spawn(ForkChildMode.Write, _memory, _pages);

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Fork_ChildWrites() => _childNanoseconds = _child!.Go();

    [IterationCleanup(Target = nameof(Fork_ChildWrites))]
    public void ForkChildWritesCleanup()
    {
        ReportedMetrics.Record(this, nameof(Fork_ChildWrites), "ChildMeasured_us_per_page", _childNanoseconds / 1000.0 / PagesWritten);
        _child!.Release();
    }

    [GlobalCleanup(Targets = [nameof(Fork_ParentWrites), nameof(Fork_ChildWrites)])]
    public void ForkGlobalCleanup() => _memory!.Dispose();

    // ---- floor ----

    [IterationSetup(Target = nameof(FreshMemory_FirstTouch))]
    public void FreshMemorySetup()
    {
        _memory = PrivateMemory.Allocate(RegionBytes, touch: false);
        ChoosePages(_memory.PageCount);
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void FreshMemory_FirstTouch() => Pages.Write(_memory!.Pointer, _pages, ++_value);

    [IterationCleanup(Target = nameof(FreshMemory_FirstTouch))]
    public void FreshMemoryCleanup() => _memory!.Dispose();
}
