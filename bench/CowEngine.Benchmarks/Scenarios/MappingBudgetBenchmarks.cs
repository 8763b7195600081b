using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 7: the cost of staying under the kernel's mapping limit. vm.max_map_count allows a
/// process 65,530 mappings, and every isolated page written in a snapshotted view costs up to two
/// more, so the engine keeps its mappings under CowEngineOptions.MappingBudget by evicting whole
/// 2 MiB segments of its views (PROT_NONE, mapped again on their next touch; nothing is copied).
/// Per iteration: a fresh region, fully written (so every later first write copies a page), its
/// snapshot; then 10,000 one-byte stores into the region, each to a distinct page; Mean is per
/// write (OperationsPerInvoke). The same pages (fixed seed) for both budgets:
/// Unconstrained = the default budget (half of vm.max_map_count, 32,765 at the kernel's default),
/// which 10,000 isolated writes (at most ~20,000 mappings) never reach - the EvictionsPerWrite column
/// checks it; Constrained = a budget of 2,000, which the random patterns pass after ~1,000 writes,
/// so eviction runs for the rest of them.
/// Patterns: Sequential = pages 0..9,999 of a 64 MiB region (the copies of a 2 MiB segment go to
/// consecutive slots and merge into one mapping: no eviction expected even when constrained);
/// RandomDense = 10,000 distinct random pages of a 64 MiB region (61% of its 16,384 pages);
/// RandomSparse = 10,000 distinct random pages of a 1 GiB region (3.8% of its pages, ~20 per 2 MiB
/// segment; almost every written page is a mapping island of its own). 1 GiB rather than 4 GiB:
/// filling the region every iteration is most of the scenario's time, and 4 GiB would quadruple it
/// (and the memory) for the same 10,000 writes. Quick: 256 MiB.
/// Columns, read after the writes (outside the measurement): Mappings = the engine's mappings (the
/// final count: the engine keeps no peak, and sampling it during the writes would disturb them; with
/// eviction running it stays at or just under the budget), EvictionsPerWrite and CopiesPerWrite =
/// the growth of the engine's Evictions and PagesCopied counters over the writes / 10,000 (copies
/// must be 1: every write a real copy-on-write fault), MemoryAmplification = CommittedBytes /
/// (region + 10,000 x 4 KiB): 1.0 when eviction copies nothing.
/// </summary>
[Config(typeof(Config))]
public unsafe class MappingBudgetBenchmarks
{
    public const int Writes = 10_000;

    /// <summary>The constrained engine's budget: a tenth of the mappings 10,000 isolated writes need.</summary>
    public const int ConstrainedBudget = 2_000;

    private sealed class Config() : ScenarioConfig(iterations: 13, warmups: 2,
        new ReportedMetricColumn("Region_MiB", "Size of the region written (and snapshotted), MiB", format: "0"),
        new ReportedMetricColumn("MappingBudget", "The engine's MappingBudget (Unconstrained: the default, half of vm.max_map_count)", format: "0"),
        new ReportedMetricColumn("Mappings", "Engine mappings right after the writes (final count; no peak is kept), median", format: "0"),
        new ReportedMetricColumn("EvictionsPerWrite", "2 MiB segments evicted during the writes / writes, median", format: "0.#####"),
        new ReportedMetricColumn("CopiesPerWrite", "Pages copied during the writes / writes (1 = every write a copy-on-write fault), median", format: "0.####"),
        new ReportedMetricColumn("MemoryAmplification", "CommittedBytes after the writes / (region bytes + writes x 4096), median", format: "0.####"));

    public enum WritePattern { Sequential, RandomDense, RandomSparse }

    public enum BudgetSetting { Unconstrained, Constrained }

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private uint[] _pages = [];
    private byte _value;
    private CowEngineStats _before;

    [Params(WritePattern.Sequential, WritePattern.RandomDense, WritePattern.RandomSparse)]
    public WritePattern Pattern { get; set; }

    [Params(BudgetSetting.Unconstrained, BudgetSetting.Constrained)]
    public BudgetSetting Budget { get; set; }

    private long RegionBytes => Pattern == WritePattern.RandomSparse
        ? (BenchSettings.Quick ? 256 : 1024) * BenchSettings.MiB
        : 64 * BenchSettings.MiB;

    [GlobalSetup]
    public void GlobalSetup()
    {
        _engine = new CowMemoryEngine(new CowEngineOptions
        {
            MappingBudget = Budget == BudgetSetting.Constrained ? ConstrainedBudget : null,
        });
        long regionPages = RegionBytes / Pages.Size;
        _pages = Pattern == WritePattern.Sequential ? Pages.Sequential(Writes) : Pages.Random(regionPages, Writes, seed: 7);
    }

    /// <summary>A fresh, fully written region and its snapshot for every iteration. Reading the
    /// stats last also drains the reclaimer, so no hole punching of the previous iteration's region
    /// runs in the background during the writes.</summary>
    [IterationSetup]
    public void IterationSetup()
    {
        _region = _engine!.CreateRegion(RegionBytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _snapshot = _region.Snapshot();
        _before = _engine.GetStats();
    }

    [Benchmark(OperationsPerInvoke = Writes)]
    public void Engine_FirstWrites() => Pages.Write(_region!.Pointer, _pages, ++_value);

    [IterationCleanup]
    public void IterationCleanup()
    {
        CowEngineStats after = _engine!.GetStats();
        string method = nameof(Engine_FirstWrites);
        ReportedMetrics.Record(this, method, "Region_MiB", RegionBytes / BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "MappingBudget", after.MappingBudget);
        ReportedMetrics.Record(this, method, "Mappings", after.Mappings);
        ReportedMetrics.Record(this, method, "EvictionsPerWrite", (double)(after.Evictions - _before.Evictions) / Writes);
        ReportedMetrics.Record(this, method, "CopiesPerWrite", (double)(after.PagesCopied - _before.PagesCopied) / Writes);
        ReportedMetrics.Record(this, method, "MemoryAmplification", after.CommittedBytes / (double)(RegionBytes + (long)Writes * Pages.Size));
        WriteProtectionColumn.Record(this, method, _engine);
        _snapshot!.Dispose();
        _region!.Dispose();
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _engine?.Dispose();
        _engine = null;
    }
}
