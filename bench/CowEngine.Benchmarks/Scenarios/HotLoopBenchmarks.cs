using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Running;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 8 (issue 13): the hot loop of a simulator, model checker or fuzzer,
/// <c>{ write k random pages (one byte each); roll back }</c>, per turn, three ways in one process:
/// Engine = a region, fully written, and one snapshot of it taken once (global setup); rolling back
/// is <c>region.RestoreTo(snapshot)</c>. HandWritten = what a user writes without the engine: the
/// state in private memory and a saved copy of it; every write also appends the page to the
/// program's own dirty list, and rolling back copies just those pages back (memcpy of 4 KiB each)
/// and empties the list. WholeCopy = the state and a saved copy; rolling back copies the whole
/// saved state back. One benchmark invocation is one turn (writes and rollback both measured: the
/// engine's write faults are part of its cost on purpose); BenchmarkDotNet runs a batch of turns
/// per iteration, as many as fill ~200 ms (<see cref="LoopScenarioConfig"/>), so a 1 us turn is
/// measured over many thousands of turns; Mean is per turn.
/// Pages: one sequence of sets of k distinct random pages, drawn up front (2^20 page numbers,
/// then it repeats), the same for the three; each turn takes the next set. States of 64 KiB,
/// 64 MiB and 1 GiB (64 KiB and 64 MiB when quick), k = 1, 16, 256, 4,096 where k fits (a 64 KiB
/// state has 16 pages), all filled with one byte per page before the loop. The state is private
/// anonymous memory without huge pages for the two baselines (Native/PrivateMemory), the engine's
/// pool for the engine. Columns: EngineOverHandWritten and EngineOverWholeCopy = the ratio of the
/// medians (on the Engine rows; issue 13's goal: within 8x of the hand-written loop at k = 1 and
/// 16, 4x at 256 and 4,096); and, read from CowEngineStats over every turn the case ran (pilot and
/// warm-up included, outside the measurement): FaultsPerPageWritten, CopiesPerPageWritten (pages
/// copied by faults / pages written: 0 once a restore leaves the view its own pages),
/// RestoredByCopyPerPageWritten (CowEngineStats.PagesRestoredByCopy / pages written) and
/// CommittedOverState (the pool's bytes at the end / the state's bytes).
/// </summary>
[Config(typeof(Config))]
public unsafe class HotLoopBenchmarks
{
    private sealed class Config : LoopScenarioConfig
    {
        public Config() : base(iterations: 9, warmups: 2, iterationMilliseconds: 200,
            new MedianRatioColumn("EngineOverHandWritten", "Engine median / HandWritten median, same state and k", nameof(Engine), nameof(HandWritten)),
            new MedianRatioColumn("EngineOverWholeCopy", "Engine median / WholeCopy median, same state and k", nameof(Engine), nameof(WholeCopy), format: "0.####"),
            new ReportedMetricColumn("FaultsPerPageWritten", "Engine: write faults / pages written over all turns of the case", format: "0.####"),
            new ReportedMetricColumn("CopiesPerPageWritten", "Engine: pages copied / pages written over all turns of the case", format: "0.####"),
            new ReportedMetricColumn("RestoredByCopyPerPageWritten", "Engine: PagesRestoredByCopy / pages written over all turns of the case", format: "0.####"),
            new ReportedMetricColumn("CommittedOverState", "Engine: CommittedBytes at the end / state bytes", format: "0.####"),
            new ReportedMetricColumn("Turns", "Turns the case ran (pilot and warm-up included)", format: "0"))
        {
            // k larger than the state's pages makes no sense (a 64 KiB state has 16 pages).
            AddFilter(new SimpleFilter(IsPossible));
        }

        private static bool IsPossible(BenchmarkCase benchmarkCase)
        {
            long stateKiB = Convert.ToInt64(benchmarkCase.Parameters[nameof(StateKiB)]);
            int k = Convert.ToInt32(benchmarkCase.Parameters[nameof(K)]);
            return k <= stateKiB * 1024 / Pages.Size;
        }
    }

    /// <summary>Page numbers drawn up front; the sequence repeats after these.</summary>
    private const int SequenceLength = 1 << 20;

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView? _snapshot;
    private PrivateMemory? _state;
    private PrivateMemory? _saved;
    private uint[] _sequence = [];
    private int _cursor;
    private uint[] _dirty = [];
    private int _dirtyCount;
    private byte _value;
    private long _turns;
    private CowEngineStats _before;

    public static IEnumerable<long> StateSizesKiB => BenchSettings.Quick ? [64, 64 * 1024] : [64, 64 * 1024, 1024 * 1024];

    public static IEnumerable<int> PageCounts => BenchSettings.Quick ? [1, 16, 256] : [1, 16, 256, 4096];

    /// <summary>The state's size, KiB: 64 (16 pages), 65,536 (64 MiB), 1,048,576 (1 GiB).</summary>
    [ParamsSource(nameof(StateSizesKiB))]
    public long StateKiB { get; set; }

    /// <summary>Pages written per turn.</summary>
    [ParamsSource(nameof(PageCounts))]
    public int K { get; set; }

    private long Bytes => StateKiB * 1024;

    private long StatePages => Bytes / Pages.Size;

    private void DrawSequence()
    {
        int sets = Math.Max(1, SequenceLength / K);
        _sequence = RandomPageSource.Sequence(StatePages, K, sets, seed: 13);
        _cursor = 0;
        _turns = 0;
    }

    /// <summary>Where this turn's k pages start in the sequence.</summary>
    private int NextSet()
    {
        int start = _cursor;
        _cursor += K;
        if (_cursor + K > _sequence.Length)
            _cursor = 0;
        _turns++;
        return start;
    }

    // ---- engine ----

    [GlobalSetup(Target = nameof(Engine))]
    public void EngineGlobalSetup()
    {
        DrawSequence();
        _engine = new CowMemoryEngine();
        _region = _engine.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, _region.PageCount, 1);
        _snapshot = _region.Snapshot();
        _before = _engine.GetStats();
    }

    [Benchmark]
    public void Engine()
    {
        byte* state = _region!.Pointer;
        int start = NextSet();
        byte value = ++_value;
        for (int i = 0; i < K; i++)
            state[(nint)_sequence[start + i] * Pages.Size] = value;
        _region.RestoreTo(_snapshot!);
    }

    [GlobalCleanup(Target = nameof(Engine))]
    public void EngineGlobalCleanup()
    {
        if (_engine is null)
            return;
        CowEngineStats after = _engine.GetStats();
        double written = Math.Max(1, _turns * K);
        string method = nameof(Engine);
        ReportedMetrics.Record(this, method, "FaultsPerPageWritten", (after.WriteFaults - _before.WriteFaults) / written);
        ReportedMetrics.Record(this, method, "CopiesPerPageWritten", (after.PagesCopied - _before.PagesCopied) / written);
        ReportedMetrics.Record(this, method, "RestoredByCopyPerPageWritten", (after.PagesRestoredByCopy - _before.PagesRestoredByCopy) / written);
        ReportedMetrics.Record(this, method, "CommittedOverState", (double)after.CommittedBytes / Bytes);
        ReportedMetrics.Record(this, method, "Turns", _turns);
        WriteProtectionColumn.Record(this, method, _engine);
        _engine.Dispose();
        _engine = null;
        _region = _snapshot = null;
    }

    // ---- by hand: a saved copy, a dirty list, memcpy of the dirty pages ----

    [GlobalSetup(Targets = [nameof(HandWritten), nameof(WholeCopy)])]
    public void CopyGlobalSetup()
    {
        DrawSequence();
        _state = PrivateMemory.Allocate(Bytes, touch: false);
        _saved = PrivateMemory.Allocate(Bytes, touch: false);
        Pages.WriteRange(_state.Pointer, 0, StatePages, 1);
        Buffer.MemoryCopy(_state.Pointer, _saved.Pointer, Bytes, Bytes);
        _dirty = new uint[K];
        _dirtyCount = 0;
    }

    [Benchmark(Baseline = true)]
    public void HandWritten()
    {
        byte* state = _state!.Pointer;
        int start = NextSet();
        byte value = ++_value;
        for (int i = 0; i < K; i++)
        {
            uint page = _sequence[start + i];
            state[(nint)page * Pages.Size] = value;
            _dirty[_dirtyCount++] = page;
        }
        byte* saved = _saved!.Pointer;
        for (int i = 0; i < _dirtyCount; i++)
        {
            nint offset = (nint)_dirty[i] * Pages.Size;
            Buffer.MemoryCopy(saved + offset, state + offset, Pages.Size, Pages.Size);
        }
        _dirtyCount = 0;
    }

    [Benchmark]
    public void WholeCopy()
    {
        byte* state = _state!.Pointer;
        int start = NextSet();
        byte value = ++_value;
        for (int i = 0; i < K; i++)
            state[(nint)_sequence[start + i] * Pages.Size] = value;
        Buffer.MemoryCopy(_saved!.Pointer, state, Bytes, Bytes);
    }

    [GlobalCleanup(Target = nameof(HandWritten))]
    public void HandWrittenGlobalCleanup() => CopyGlobalCleanup(nameof(HandWritten));

    [GlobalCleanup(Target = nameof(WholeCopy))]
    public void WholeCopyGlobalCleanup() => CopyGlobalCleanup(nameof(WholeCopy));

    private void CopyGlobalCleanup(string method)
    {
        ReportedMetrics.Record(this, method, "Turns", _turns);
        _state?.Dispose();
        _saved?.Dispose();
        _state = _saved = null;
    }
}
