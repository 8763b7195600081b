using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 3: the cost per page of the first write after a snapshot. 16,384 pages are written,
/// one store each, in sequential order (pages 0..16383), strided order (every second page:
/// 0, 2, ..., 32766) or random order (16,384 distinct random pages) of a 256 MiB region (128 MiB
/// when quick); Mean is per page (OperationsPerInvoke).
/// Engine: writes into the region right after its snapshot (each a copy-on-write fault of the
/// engine), and into the snapshot itself (a fault on a view whose page-table entries the kernel
/// has not populated yet). Fork: the kernel's COW fault, with the parent writing while a child
/// holds the other copy, and with the child writing - timed by the child itself in C and reported
/// through a pipe (ChildMeasured_us_per_page; Mean for that row is the parent's view: "go" over a
/// pipe, the writes, the report back). Floor: the first write into fresh private memory (a
/// page fault that allocates a zeroed page, no copy).
/// Write fault-around (CowEngineOptions.FaultAroundPages, the engine's default): a fault that
/// continues a sequential run resolves the pages after it too, copying pages that may never be
/// written. Read after the engine's writes (outside the measurement), from CowEngineStats:
/// CopiesPerPageWritten = pages copied / pages written (the memory amplification; 1 = a copy
/// for exactly the pages written), FaultsPerPageWritten = write faults / pages written (below 1
/// when fault-around resolved pages ahead), ReverseCopiesPerPageWritten = the share of pages
/// written whose copy went to the snapshot instead (reverse copy-on-write), FaultAroundPages =
/// the engine's setting. The isolated case (16 scattered first writes) is
/// <see cref="IsolatedFirstWriteBenchmarks"/>.
/// </summary>
[Config(typeof(Config))]
public unsafe class FirstWriteBenchmarks
{
    public const int PagesWritten = 16384;

    private sealed class Config() : ScenarioConfig(iterations: 7, warmups: 1,
        new ReportedMetricColumn("ChildMeasured_us_per_page", "Fork, child writing: time per page measured inside the child (clock_gettime in C), median, us"),
        new ReportedMetricColumn("CopiesPerPageWritten", "Engine: pages copied during the writes / pages written (memory amplification of write fault-around), median", format: "0.####"),
        new ReportedMetricColumn("FaultsPerPageWritten", "Engine: write faults during the writes / pages written, median", format: "0.####"),
        new ReportedMetricColumn("ReverseCopiesPerPageWritten", "Engine: reverse copies (the snapshot got the copy) / pages written, median", format: "0.####"),
        new ReportedMetricColumn("FaultAroundPages", "Engine: CowEngineOptions.FaultAroundPages in effect", format: "0"));

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private PrivateMemory? _memory;
    private ForkChild? _child;
    private uint[] _pages = [];
    private byte _value;
    private double _childNanoseconds;
    private CowEngineStats _before;

    public enum WriteOrder { Sequential, Strided, Random }

    [Params(WriteOrder.Sequential, WriteOrder.Strided, WriteOrder.Random)]
    public WriteOrder Order { get; set; }

    /// <summary>256 MiB; 128 MiB when quick (the strided pass spans 32,768 pages).</summary>
    private static long RegionBytes => (BenchSettings.Quick ? 128 : 256) * BenchSettings.MiB;

    private void ChoosePages(long regionPages) =>
        _pages = Order switch
        {
            WriteOrder.Sequential => Pages.Sequential(PagesWritten),
            WriteOrder.Strided => Strided(PagesWritten),
            _ => Pages.Random(regionPages, PagesWritten, seed: 3),
        };

    /// <summary>Every second page: 0, 2, 4, ...</summary>
    private static uint[] Strided(int count)
    {
        uint[] pages = Pages.Sequential(count);
        for (int i = 0; i < count; i++)
            pages[i] *= 2;
        return pages;
    }

    // ---- engine ----

    [GlobalSetup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineGlobalSetup()
    {
        _engine = new CowMemoryEngine();
        ChoosePages(RegionBytes / Pages.Size);
    }

    /// <summary>A fresh, fully written region and its snapshot for every iteration. Reading the
    /// stats last also drains the reclaimer, so no hole punching of the previous iteration's region
    /// runs in the background during the writes.</summary>
    [IterationSetup(Targets = [nameof(Engine_WriteRegion), nameof(Engine_WriteSnapshot)])]
    public void EngineIterationSetup()
    {
        _region = _engine!.CreateRegion(RegionBytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _snapshot = _region.Snapshot();
        _before = _engine.GetStats();
    }

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Engine_WriteRegion() => Pages.Write(_region!.Pointer, _pages, ++_value);

    [Benchmark(OperationsPerInvoke = PagesWritten)]
    public void Engine_WriteSnapshot() => Pages.Write(_snapshot!.Pointer, _pages, ++_value);

    [IterationCleanup(Target = nameof(Engine_WriteRegion))]
    public void EngineWriteRegionCleanup() => EngineIterationCleanup(nameof(Engine_WriteRegion));

    [IterationCleanup(Target = nameof(Engine_WriteSnapshot))]
    public void EngineWriteSnapshotCleanup() => EngineIterationCleanup(nameof(Engine_WriteSnapshot));

    private void EngineIterationCleanup(string method)
    {
        CowEngineStats after = _engine!.GetStats();
        ReportedMetrics.Record(this, method, "CopiesPerPageWritten", (double)(after.PagesCopied - _before.PagesCopied) / PagesWritten);
        ReportedMetrics.Record(this, method, "FaultsPerPageWritten", (double)(after.WriteFaults - _before.WriteFaults) / PagesWritten);
        ReportedMetrics.Record(this, method, "ReverseCopiesPerPageWritten", (double)(after.ReverseCopies - _before.ReverseCopies) / PagesWritten);
        ReportedMetrics.Record(this, method, "FaultAroundPages", _engine.FaultAroundPages);
        WriteProtectionColumn.Record(this, method, _engine);
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
