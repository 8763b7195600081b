using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 6: memory. A 1 GiB state, fully written; then 100 times: write 1% random pages
/// (2,621 distinct pages, a fresh set each time), take a snapshot and keep it. Mean is the time of
/// those 100 rounds; the memory is read after them, with everything still alive, and compared with
/// the ideal: the region plus one copy of each page written after the first snapshot
/// (region + 99 x 2,621 pages).
/// Engine: Data = the pool memfd's allocated bytes (CommittedBytes, st_blocks), Tables = the growth
/// of this process's anonymous memory (the engine's page tables, refcounts, bitmaps) plus the growth
/// of its kernel page tables (VmPTE).
/// Fork: 100 children, each forked after a round and holding its copy. Data = the growth of the
/// family's (parent + children) anonymous PSS, which counts every page once however many processes
/// share it; Tables = the growth of the family's kernel page tables (each child has its own for
/// the whole 1 GiB).
/// If the engine refuses a snapshot (CowMappingBudgetExceededException: the view's mappings would
/// exceed its share of vm.max_map_count), the rounds stop there and the memory is measured as it
/// is, against the ideal for the rounds done; the Snapshots column says how many were taken.
/// For both: SystemUsed = the drop of /proc/meminfo MemAvailable over the same span (everything,
/// noisier), ParentRss = this process's RSS growth. All in MiB.
/// </summary>
[Config(typeof(Config))]
public unsafe class MemoryBenchmarks
{
    private sealed class Config() : ScenarioConfig(iterations: 1, warmups: 0,
        new ReportedMetricColumn("Ideal_MiB", "Region + one copy of every page written after the first snapshot, MiB"),
        new ReportedMetricColumn("Data_MiB", "Engine: memfd bytes; fork: family anonymous PSS growth; MiB"),
        new ReportedMetricColumn("Tables_MiB", "Engine: anonymous memory growth + VmPTE growth; fork: family VmPTE growth; MiB"),
        new ReportedMetricColumn("Total_MiB", "Data + Tables, MiB"),
        new ReportedMetricColumn("OverIdeal_pct", "Total / Ideal - 1, percent"),
        new ReportedMetricColumn("SystemUsed_MiB", "Drop of MemAvailable, MiB"),
        new ReportedMetricColumn("ParentRss_MiB", "This process's RSS growth, MiB"),
        new ReportedMetricColumn("Snapshots", "Snapshots (children) actually taken; fewer than asked when the engine refused one (CowMappingBudgetExceededException)"));

    private const double MiB = BenchSettings.MiB;

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private readonly List<CowView> _snapshots = [];
    private PrivateMemory? _memory;
    private readonly List<ForkChild> _children = [];
    private RandomPageSource? _random;
    private ProcessMemory _before;
    private long _availableBefore;
    private byte _value;

    public static int SnapshotCount => BenchSettings.Quick ? 10 : 100;

    private static long Bytes => BenchSettings.SteadyStateRegionBytes;

    private static int DirtyPagesPerRound => (int)(Bytes / Pages.Size / 100);

    /// <summary>Pages written while at least one snapshot existed: each needs one copy, ideally.</summary>
    private long _pagesWrittenAfterFirstSnapshot;
    private int _snapshotsTaken;

    private double IdealBytes => Bytes + (double)_pagesWrittenAfterFirstSnapshot * Pages.Size;

    private void WriteRound(byte* baseAddress)
    {
        Pages.Write(baseAddress, _random!.Next(DirtyPagesPerRound), ++_value);
        if (_snapshotsTaken > 0)
            _pagesWrittenAfterFirstSnapshot += DirtyPagesPerRound;
    }

    private void Baseline()
    {
        _pagesWrittenAfterFirstSnapshot = 0;
        _snapshotsTaken = 0;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        _before = MemoryProbe.Read();
        _availableBefore = MemoryProbe.SystemAvailable();
    }

    private void Record(string method, double dataBytes, double tablesBytes, ProcessMemory parentAfter)
    {
        double total = dataBytes + tablesBytes;
        ReportedMetrics.Record(this, method, "Ideal_MiB", IdealBytes / MiB);
        ReportedMetrics.Record(this, method, "Data_MiB", dataBytes / MiB);
        ReportedMetrics.Record(this, method, "Tables_MiB", tablesBytes / MiB);
        ReportedMetrics.Record(this, method, "Total_MiB", total / MiB);
        ReportedMetrics.Record(this, method, "OverIdeal_pct", (total / IdealBytes - 1) * 100);
        ReportedMetrics.Record(this, method, "SystemUsed_MiB", (_availableBefore - MemoryProbe.SystemAvailable()) / MiB);
        ReportedMetrics.Record(this, method, "ParentRss_MiB", (parentAfter.Rss - _before.Rss) / MiB);
        ReportedMetrics.Record(this, method, "Snapshots", _snapshotsTaken);
    }

    // ---- engine ----

    [IterationSetup(Target = nameof(Engine_KeepSnapshots))]
    public void EngineIterationSetup()
    {
        Baseline();
        _engine = new CowMemoryEngine();
        _region = _engine.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _random = new RandomPageSource(_region.PageCount, seed: 6);
    }

    [Benchmark]
    public void Engine_KeepSnapshots()
    {
        for (int i = 0; i < SnapshotCount; i++)
        {
            WriteRound(_region!.Pointer);
            try
            {
                _snapshots.Add(_region.Snapshot());
            }
            catch (CowMappingBudgetExceededException e)
            {
                Console.WriteLine($"// Engine_KeepSnapshots: snapshot {i + 1} of {SnapshotCount} refused: {e.Message}");
                break;
            }
            _snapshotsTaken++;
        }
    }

    [IterationCleanup(Target = nameof(Engine_KeepSnapshots))]
    public void EngineIterationCleanup()
    {
        ProcessMemory after = MemoryProbe.Read();
        ProcessMemory growth = after - _before;
        Record(nameof(Engine_KeepSnapshots), _engine!.GetStats().CommittedBytes, growth.PssAnon + growth.PageTables, after);
        WriteProtectionColumn.Record(this, nameof(Engine_KeepSnapshots), _engine);
        foreach (CowView snapshot in _snapshots)
            snapshot.Dispose();
        _snapshots.Clear();
        _engine.Dispose();
        _engine = null;
        _region = null;
    }

    // ---- fork ----

    [IterationSetup(Target = nameof(Fork_KeepChildren))]
    public void ForkIterationSetup()
    {
        Baseline();
        _memory = PrivateMemory.Allocate(Bytes, touch: true);
        _random = new RandomPageSource(_memory.PageCount, seed: 6);
    }

    [Benchmark]
    public void Fork_KeepChildren()
    {
        for (int i = 0; i < SnapshotCount; i++)
        {
            WriteRound(_memory!.Pointer);
            _children.Add(ForkChild.Spawn(ForkChildMode.Hold));
            _snapshotsTaken++;
        }
    }

    [IterationCleanup(Target = nameof(Fork_KeepChildren))]
    public void ForkIterationCleanup()
    {
        ProcessMemory parent = MemoryProbe.Read();
        ProcessMemory family = parent;
        foreach (ForkChild child in _children)
            family += MemoryProbe.Read(child.Pid);
        ProcessMemory growth = family - _before;
        Record(nameof(Fork_KeepChildren), growth.PssAnon, growth.PageTables, parent);
        foreach (ForkChild child in _children)
            child.Release();
        _children.Clear();
        _memory!.Dispose();
        _memory = null;
    }
}
