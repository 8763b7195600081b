using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 11 (issue 14 item 7): the zero page. Every page of a view that was never written is
/// mapped read-only onto the kernel's zero page, so reading it allocates nothing; the first write
/// to a page is an engine fault that maps the page's own slot read-write (no copy). Per iteration a
/// fresh region (or fresh memory), 64 MiB and 1 GiB (64 MiB when quick), one byte of every page
/// read or written, in page order unless said otherwise:
/// Engine_ReadFresh = read a fresh region (created with trackWrites: false, the default; the
/// kernel's read faults on the zero-page mapping); Engine_ReadFreshSnapshot = read a snapshot of a
/// fresh region (its pages are mapped lazily: each engine read fault maps a run onto the zero page);
/// Anonymous_ReadFresh = read fresh private anonymous memory (mmap MAP_PRIVATE|MAP_ANONYMOUS, never
/// touched: the kernel maps its zero page too), the floor.
/// Engine_FillSequential = write a fresh region (trackWrites: false: write fault-around resolves up
/// to CowEngineOptions.FaultAroundPages pages per fault); Engine_FillSequentialTracked = the same
/// with trackWrites: true (one fault per page); Engine_FillRandom = write every page in a fixed
/// random order (one permutation of the pages, drawn before the measurement: no fault-around, but
/// once a 2 MiB segment is cut into 16 mappings, one fault makes the rest of it writable);
/// Anonymous_FillSequential and Anonymous_FillRandom = the same writes into fresh private anonymous
/// memory (the kernel's first-touch faults, each allocating a zeroed page), the floors.
/// Mean is the whole pass; ns_per_page divides the median by the pages. Read after the access
/// (outside the measurement): Committed_MiB = the engine's pool (CommittedBytes, the memfd's
/// allocated blocks), for anonymous memory the growth of this process's anonymous memory (Pss_Anon)
/// over the access; ZeroPages = the accessed view's pages on the zero page; FaultsPerPage = the
/// engine's faults (read + write) during the access / pages. Engine and baselines run in one
/// process, one after the other, so their ratios (bench/report.py) come from the same run.
/// Goals: reading every page of a fresh 1 GiB region commits nothing, and costs at most 2x reading
/// fresh anonymous memory.
/// </summary>
[Config(typeof(Config))]
public unsafe class ZeroPageBenchmarks
{
    private sealed class Config() : ScenarioConfig(iterations: 7, warmups: 1,
        new MedianPerItemColumn("ns_per_page", "Median time / pages of the region, ns", PagesOf),
        new ReportedMetricColumn("Committed_MiB", "Engine: the pool's CommittedBytes after the access; anonymous: growth of this process's Pss_Anon over the access; MiB, median", format: "0.####"),
        new ReportedMetricColumn("ZeroPages", "Engine: pages of the accessed view on the zero page after the access (CowViewStats.ZeroPages), median", format: "0"),
        new ReportedMetricColumn("FaultsPerPage", "Engine: faults resolved during the access (write + read) / pages, median", format: "0.####"));

    private const string ReadFresh = nameof(Engine_ReadFresh);
    private const string ReadFreshSnapshot = nameof(Engine_ReadFreshSnapshot);
    private const string FillSequential = nameof(Engine_FillSequential);
    private const string FillSequentialTracked = nameof(Engine_FillSequentialTracked);
    private const string FillRandom = nameof(Engine_FillRandom);

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private CowEngineStats _before;
    private PrivateMemory? _memory;
    private ProcessMemory _memoryBefore;
    private uint[] _order = [];

    public static IEnumerable<int> Sizes => BenchSettings.Quick ? [64] : [64, 1024];

    [ParamsSource(nameof(Sizes))]
    public int SizeMiB { get; set; }

    private long Bytes => SizeMiB * BenchSettings.MiB;

    private long PageCount => Bytes / Pages.Size;

    private static double? PagesOf(BenchmarkCase benchmarkCase) =>
        benchmarkCase.Parameters[nameof(SizeMiB)] is int mib ? mib * BenchSettings.MiB / Pages.Size : null;

    /// <summary>Every page once, in a random order: the same permutation for the engine and the baseline.</summary>
    private uint[] RandomOrder() => Pages.Random(PageCount, (int)PageCount, seed: 11);

    // ---- engine ----

    [GlobalSetup(Targets = [ReadFresh, ReadFreshSnapshot, FillSequential, FillSequentialTracked, FillRandom])]
    public void EngineGlobalSetup()
    {
        _engine = new CowMemoryEngine();
        _order = RandomOrder();
    }

    [IterationSetup(Targets = [ReadFresh, FillSequential, FillRandom])]
    public void EngineIterationSetup() => Fresh(trackWrites: false, snapshot: false);

    [IterationSetup(Target = FillSequentialTracked)]
    public void EngineTrackedIterationSetup() => Fresh(trackWrites: true, snapshot: false);

    [IterationSetup(Target = ReadFreshSnapshot)]
    public void EngineSnapshotIterationSetup() => Fresh(trackWrites: false, snapshot: true);

    /// <summary>A fresh region (and its snapshot). Reading the stats last drains the reclaimer, so no
    /// hole punching of the previous iteration's region runs in the background during the access.</summary>
    private void Fresh(bool trackWrites, bool snapshot)
    {
        _region = _engine!.CreateRegion(Bytes, trackWrites);
        _snapshot = snapshot ? _region.Snapshot() : null;
        _before = _engine.GetStats();
    }

    [Benchmark]
    public int Engine_ReadFresh() => Pages.ReadRange(_region!.Pointer, 0, _region.PageCount);

    [Benchmark]
    public int Engine_ReadFreshSnapshot() => Pages.ReadRange(_snapshot!.Pointer, 0, _snapshot.PageCount);

    [Benchmark]
    public void Engine_FillSequential() => Pages.WriteRange(_region!.Pointer, 0, _region.PageCount, 1);

    [Benchmark]
    public void Engine_FillSequentialTracked() => Pages.WriteRange(_region!.Pointer, 0, _region.PageCount, 1);

    [Benchmark]
    public void Engine_FillRandom() => Pages.Write(_region!.Pointer, _order, 1);

    [IterationCleanup(Target = ReadFresh)]
    public void EngineReadFreshCleanup() => EngineIterationCleanup(ReadFresh);

    [IterationCleanup(Target = ReadFreshSnapshot)]
    public void EngineReadFreshSnapshotCleanup() => EngineIterationCleanup(ReadFreshSnapshot);

    [IterationCleanup(Target = FillSequential)]
    public void EngineFillSequentialCleanup() => EngineIterationCleanup(FillSequential);

    [IterationCleanup(Target = FillSequentialTracked)]
    public void EngineFillSequentialTrackedCleanup() => EngineIterationCleanup(FillSequentialTracked);

    [IterationCleanup(Target = FillRandom)]
    public void EngineFillRandomCleanup() => EngineIterationCleanup(FillRandom);

    private void EngineIterationCleanup(string method)
    {
        CowEngineStats after = _engine!.GetStats();
        CowView accessed = _snapshot ?? _region!;
        long faults = after.WriteFaults - _before.WriteFaults + (after.ReadFaults - _before.ReadFaults);
        ReportedMetrics.Record(this, method, "Committed_MiB", (double)after.CommittedBytes / BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "ZeroPages", accessed.GetStats().ZeroPages);
        ReportedMetrics.Record(this, method, "FaultsPerPage", (double)faults / PageCount);
        WriteProtectionColumn.Record(this, method, _engine);
        _snapshot?.Dispose();
        _snapshot = null;
        _region!.Dispose();
        _region = null;
    }

    [GlobalCleanup(Targets = [ReadFresh, ReadFreshSnapshot, FillSequential, FillSequentialTracked, FillRandom])]
    public void EngineGlobalCleanup() => _engine!.Dispose();

    // ---- private anonymous memory (the floor) ----

    [GlobalSetup(Targets = [nameof(Anonymous_ReadFresh), nameof(Anonymous_FillSequential), nameof(Anonymous_FillRandom)])]
    public void AnonymousGlobalSetup() => _order = RandomOrder();

    /// <summary>Fresh memory, never touched: every page faults on its first access.</summary>
    [IterationSetup(Targets = [nameof(Anonymous_ReadFresh), nameof(Anonymous_FillSequential), nameof(Anonymous_FillRandom)])]
    public void AnonymousIterationSetup()
    {
        _memory = PrivateMemory.Allocate(Bytes, touch: false);
        _memoryBefore = MemoryProbe.Read();
    }

    [Benchmark]
    public int Anonymous_ReadFresh() => Pages.ReadRange(_memory!.Pointer, 0, _memory.PageCount);

    [Benchmark]
    public void Anonymous_FillSequential() => Pages.WriteRange(_memory!.Pointer, 0, _memory.PageCount, 1);

    [Benchmark]
    public void Anonymous_FillRandom() => Pages.Write(_memory!.Pointer, _order, 1);

    [IterationCleanup(Target = nameof(Anonymous_ReadFresh))]
    public void AnonymousReadFreshCleanup() => AnonymousIterationCleanup(nameof(Anonymous_ReadFresh));

    [IterationCleanup(Target = nameof(Anonymous_FillSequential))]
    public void AnonymousFillSequentialCleanup() => AnonymousIterationCleanup(nameof(Anonymous_FillSequential));

    [IterationCleanup(Target = nameof(Anonymous_FillRandom))]
    public void AnonymousFillRandomCleanup() => AnonymousIterationCleanup(nameof(Anonymous_FillRandom));

    private void AnonymousIterationCleanup(string method)
    {
        ProcessMemory growth = MemoryProbe.Read() - _memoryBefore;
        ReportedMetrics.Record(this, method, "Committed_MiB", (double)growth.PssAnon / BenchSettings.MiB);
        _memory!.Dispose();
        _memory = null;
    }
}
