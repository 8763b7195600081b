using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Native;

namespace CowEngine.Benchmarks.Scenarios;

/// <summary>
/// Scenario 9 (issues 13, 14): an emulator's rewind buffer. A state of 64 KiB or 64 MiB, fully
/// written once; then frame after frame (a tick): write m random pages (one byte each; m = 4 for
/// 64 KiB, 16 for 64 MiB: a fresh set of distinct pages per tick, the same sequence for every
/// variant), save the frame, and keep the last 600; on every 100th tick (ticks 50, 150, ...) the
/// state also rewinds to the frame saved 50 frames before the newest, and, as an emulator's rewind
/// does (and <see cref="CowRewindBuffer"/>), the 50 newer frames are dropped: the loop saves its
/// next frame after the one it rewound to. So 550 to 600 frames are kept, 600 at the end of every
/// measured invocation.
/// Engine: saving is <c>region.Snapshot()</c>, and once 600 are kept the oldest is disposed; the
/// rewind is <c>region.RestoreTo(snapshot 50 back)</c> and a <c>Dispose()</c> of each of the 50
/// newer snapshots. RewindBuffer: the same loop through <see cref="CowRewindBuffer"/> (capacity 600):
/// <c>Capture()</c> per tick, <c>RewindTo(50)</c>; its Snapshot columns time Capture (the snapshot
/// and, once full, the dispose of the oldest), its RestoreTo columns RewindTo (the restore and the
/// disposal of the 50 dropped frames); it has no Dispose column. One continuous run per state, as in
/// an emulator: the engine and region are made once (global setup), the first 2,000 ticks run in the
/// global setup (the buffer is full from tick 1,100 on), and each measured invocation runs the next
/// 1,000 ticks; Mean is per tick (OperationsPerInvoke), writes included.
/// Every Snapshot, Dispose and RestoreTo call of the whole run - the 2,000 setup ticks, the
/// jitting, warm-up and measured invocations, the very first call of each - is timed on its own
/// (Stopwatch.GetTimestamp around the call) and reported as p50, p99, max and first call
/// (interpolated percentiles over all calls). The managed wrappers are JIT-compiled beforehand on a
/// throwaway engine (a snapshot, a write, a restore, a dispose, a rewind buffer's capture and
/// rewind), so a first call measures the engine, not the JIT. Frame_p50/p99 is the whole tick,
/// writes included.
/// CopyRing (the baseline): every frame copies the whole state into the next buffer of a ring of
/// 600 saved copies (a memcpy), and a rewind copies the saved copy of frame f - 50 back. Its
/// "Snapshot" columns time the copy in and its "RestoreTo" columns the copy back (it has nothing to
/// dispose). A ring of 600 x 64 MiB (37.5 GiB) does not fit this machine: at 64 MiB the baseline
/// keeps 16 real buffers (1 GiB), reused in turn, so the frame copied back is not the right one -
/// its cost is the same (each copy is 64 MiB, far larger than any cache, into resident memory);
/// its memory (600 copies) is computed. At 64 KiB the ring is real (600 buffers, 37.5 MiB). The
/// ring's buffers are written once before the run, so the copies do not pay first-touch faults.
/// The baseline's run starts with its ring full (filling it costs what every later frame costs).
/// Memory, read after each measured invocation with 600 frames kept (median): Data_MiB = the
/// engine's pool (CommittedBytes: the live state and every page only snapshots hold), or for the
/// ring 601 states (the live one and 600 copies); HeldBySaved_MiB = Data minus the live state: what
/// the 600 saved frames cost in data; Tables_MiB = the engine's other memory: the growth of this
/// process's anonymous PSS and page tables (VmPTE) since before the engine was made (the engine's
/// page tables, refcounts and bitmaps, and the 600 CowView objects; an approximation: the runtime's
/// own heap growth is in it too).
/// </summary>
[Config(typeof(Config))]
public unsafe class RewindBufferBenchmarks
{
    public const int Kept = 600;
    public const int RewindEvery = 100;
    public const int RewindDistance = 50;
    public const int FramesPerInvoke = 1000;

    /// <summary>Ticks run in the global setup: the buffer is full (600) from tick 1,100 on.</summary>
    public const int SetupTicks = 2000;

    /// <summary>Frames whose page sets are drawn up front (later frames reuse them, in order).</summary>
    private const int FrameSets = 16384;

    /// <summary>The most memory the baseline's ring may take (it keeps at most 600 buffers).</summary>
    private const long RingBytesLimit = 1024 * BenchSettings.MiB;

    private sealed class Config() : ScenarioConfig(iterations: 5, warmups: 1, Columns());

    private static readonly string[] Operations = ["Snapshot", "Dispose", "RestoreTo", "Frame"];

    private static ReportedMetricColumn[] Columns()
    {
        var columns = new List<ReportedMetricColumn>
        {
            new("PagesPerFrame", "Pages written per frame (m)", format: "0"),
        };
        foreach (string op in Operations)
        {
            string what = op == "Frame" ? "a whole frame (writes included)" : $"one {op} call (CopyRing: Snapshot = the copy into the ring, RestoreTo = the copy back)";
            columns.Add(new($"{op}_p50_us", $"Median of {what}, every call of the run, us", format: "0.##"));
            columns.Add(new($"{op}_p99_us", $"99th percentile of {what}, every call of the run, us", format: "0.##"));
            columns.Add(new($"{op}_max_us", $"Slowest {what}, us", format: "0.##"));
            if (op != "Frame")
                columns.Add(new($"{op}_first_us", $"The run's first {op} call, us", format: "0.##"));
        }
        columns.Add(new("RestoreCalls", "Rewinds in the whole run (the samples behind RestoreTo_p99)", format: "0"));
        columns.Add(new("KeptSaved", "Saved frames alive after the measured invocation", format: "0"));
        columns.Add(new("Data_MiB", "Engine: CommittedBytes; CopyRing: 601 states (live + 600 copies); MiB, median", format: "0.###"));
        columns.Add(new("HeldBySaved_MiB", "Data_MiB minus the live state: what the 600 saved frames hold, MiB, median", format: "0.###"));
        columns.Add(new("Tables_MiB", "Engine: growth of anonymous PSS + VmPTE since before the engine was made, MiB, median", format: "0.###"));
        columns.Add(new("RingBuffers", "CopyRing: real buffers in the ring (600, or fewer where 600 would not fit; reused in turn)", format: "0"));
        return columns.ToArray();
    }

    private CowMemoryEngine? _engine;
    private CowView? _region;
    private CowView?[] _ring = [];
    private CowRewindBuffer? _buffer;
    private PrivateMemory? _state;
    private PrivateMemory? _copies;
    private int _ringBuffers;
    private uint[] _sequence = [];
    private long _tick;   // ticks run: the write sequence and the rewind schedule
    private long _newest; // the newest saved frame's number on the timeline (it goes back on a rewind)
    private int _kept;    // frames kept
    private byte _value;
    private LatencySamples _snapshot = new(0);
    private LatencySamples _dispose = new(0);
    private LatencySamples _restore = new(0);
    private LatencySamples _frames = new(0);
    private ProcessMemory _memoryBefore;

    public static IEnumerable<long> StateSizesKiB => [64, 64 * 1024];

    /// <summary>The state's size, KiB: 64 (16 pages) or 65,536 (64 MiB).</summary>
    [ParamsSource(nameof(StateSizesKiB))]
    public long StateKiB { get; set; }

    private long Bytes => StateKiB * 1024;

    private long StatePages => Bytes / Pages.Size;

    private int PagesPerFrame => StatePages <= 16 ? 4 : 16;

    private static long Ticks => Stopwatch.GetTimestamp();

    private void Prepare()
    {
        _sequence = RandomPageSource.Sequence(StatePages, PagesPerFrame, FrameSets, seed: 9);
        _tick = _newest = _kept = 0;
        // Room for every call of a run (the 2,000 setup ticks and ~10 invocations), allocated
        // now: nothing is allocated inside the timed frames but the engine's own objects.
        const int capacity = 16 * 1024;
        _snapshot = new LatencySamples(capacity);
        _dispose = new LatencySamples(capacity);
        _restore = new LatencySamples(capacity / RewindEvery);
        _frames = new LatencySamples(capacity);
    }

    private void WritePages(byte* state, long tick, byte value)
    {
        int start = (int)(tick % FrameSets) * PagesPerFrame;
        for (int i = 0; i < PagesPerFrame; i++)
            state[(nint)_sequence[start + i] * Pages.Size] = value;
    }

    // ---- engine ----

    [GlobalSetup(Target = nameof(Engine_Frames))]
    public void EngineGlobalSetup()
    {
        Prepare();
        WarmUpManagedCode();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        _memoryBefore = MemoryProbe.Read();
        _engine = new CowMemoryEngine();
        _region = _engine.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, StatePages, 1);
        _ring = new CowView?[Kept];
        for (int i = 0; i < SetupTicks; i++)
            EngineFrame();
    }

    /// <summary>JIT-compiles the calls the frames time, on an engine of its own.</summary>
    private static void WarmUpManagedCode()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(16 * Pages.Size);
        Pages.WriteRange(region.Pointer, 0, region.PageCount, 1);
        CowView first = region.Snapshot();
        Pages.WriteRange(region.Pointer, 0, 1, 2);
        CowView second = region.Snapshot();
        region.RestoreTo(first);
        first.Dispose();
        second.Dispose();
        using var buffer = new CowRewindBuffer(region, 2);
        for (int i = 0; i < 3; i++)
        {
            Pages.WriteRange(region.Pointer, 0, 1, (byte)i);
            buffer.Capture();
        }
        buffer.RewindTo(1);
    }

    /// <summary>Whether this tick rewinds: ticks 50, 150, ..., once more than 50 frames are kept.</summary>
    private bool RewindsNow(long tick) => tick % RewindEvery == RewindEvery / 2 && _kept > RewindDistance;

    /// <summary>One more frame saved on the timeline: its ring slot (which holds the oldest frame once 600 are kept).</summary>
    private int NextSlot()
    {
        _newest++;
        if (_kept < Kept)
            _kept++;
        return (int)(_newest % Kept);
    }

    [Benchmark(OperationsPerInvoke = FramesPerInvoke)]
    public void Engine_Frames()
    {
        for (int i = 0; i < FramesPerInvoke; i++)
            EngineFrame();
    }

    private void EngineFrame()
    {
        long tick = ++_tick;
        CowView region = _region!;
        long start = Ticks;
        WritePages(region.Pointer, tick, ++_value);

        long before = Ticks;
        CowView snapshot = region.Snapshot();
        long after = Ticks;
        _snapshot.Add(after - before);

        int slot = NextSlot();
        CowView? oldest = _ring[slot];
        _ring[slot] = snapshot;
        if (oldest is not null)
        {
            before = Ticks;
            oldest.Dispose();
            after = Ticks;
            _dispose.Add(after - before);
        }

        if (RewindsNow(tick))
        {
            CowView target = _ring[(int)((_newest - RewindDistance) % Kept)]!;
            before = Ticks;
            region.RestoreTo(target);
            after = Ticks;
            _restore.Add(after - before);
            for (int i = 0; i < RewindDistance; i++) // the newer frames are dropped
            {
                int newer = (int)(_newest-- % Kept);
                CowView dropped = _ring[newer]!;
                _ring[newer] = null;
                before = Ticks;
                dropped.Dispose();
                after = Ticks;
                _dispose.Add(after - before);
            }
            _kept -= RewindDistance;
        }
        _frames.Add(after - start);
    }

    [IterationCleanup(Target = nameof(Engine_Frames))]
    public void EngineIterationCleanup()
    {
        string method = nameof(Engine_Frames);
        CowEngineStats stats = _engine!.GetStats();
        ProcessMemory growth = MemoryProbe.Read() - _memoryBefore;
        ReportedMetrics.Record(this, method, "KeptSaved", _ring.Count(s => s is not null));
        ReportedMetrics.Record(this, method, "Data_MiB", stats.CommittedBytes / (double)BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "HeldBySaved_MiB", (stats.CommittedBytes - Bytes) / (double)BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "Tables_MiB", (growth.PssAnon + growth.PageTables) / (double)BenchSettings.MiB);
        WriteProtectionColumn.Record(this, method, _engine);
    }

    [GlobalCleanup(Target = nameof(Engine_Frames))]
    public void EngineGlobalCleanup()
    {
        RecordLatencies(nameof(Engine_Frames));
        foreach (CowView? snapshot in _ring)
            snapshot?.Dispose();
        _ring = [];
        _engine?.Dispose();
        _engine = null;
        _region = null;
    }

    // ---- the engine through CowRewindBuffer ----

    [GlobalSetup(Target = nameof(RewindBuffer_Frames))]
    public void RewindBufferGlobalSetup()
    {
        Prepare();
        WarmUpManagedCode();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        _memoryBefore = MemoryProbe.Read();
        _engine = new CowMemoryEngine();
        _region = _engine.CreateRegion(Bytes);
        Pages.WriteRange(_region.Pointer, 0, StatePages, 1);
        _buffer = new CowRewindBuffer(_region, Kept);
        for (int i = 0; i < SetupTicks; i++)
            RewindBufferFrame();
    }

    [Benchmark(OperationsPerInvoke = FramesPerInvoke)]
    public void RewindBuffer_Frames()
    {
        for (int i = 0; i < FramesPerInvoke; i++)
            RewindBufferFrame();
    }

    private void RewindBufferFrame()
    {
        long tick = ++_tick;
        CowRewindBuffer buffer = _buffer!;
        long start = Ticks;
        WritePages(_region!.Pointer, tick, ++_value);

        long before = Ticks;
        buffer.Capture();
        long after = Ticks;
        _snapshot.Add(after - before);
        if (_kept < Kept)
            _kept++;

        if (RewindsNow(tick))
        {
            before = Ticks;
            buffer.RewindTo(RewindDistance);
            after = Ticks;
            _restore.Add(after - before);
            _kept -= RewindDistance;
        }
        _frames.Add(after - start);
    }

    [IterationCleanup(Target = nameof(RewindBuffer_Frames))]
    public void RewindBufferIterationCleanup()
    {
        string method = nameof(RewindBuffer_Frames);
        CowEngineStats stats = _engine!.GetStats();
        ProcessMemory growth = MemoryProbe.Read() - _memoryBefore;
        ReportedMetrics.Record(this, method, "KeptSaved", _buffer!.Count);
        ReportedMetrics.Record(this, method, "Data_MiB", stats.CommittedBytes / (double)BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "HeldBySaved_MiB", (stats.CommittedBytes - Bytes) / (double)BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "Tables_MiB", (growth.PssAnon + growth.PageTables) / (double)BenchSettings.MiB);
        WriteProtectionColumn.Record(this, method, _engine);
    }

    [GlobalCleanup(Target = nameof(RewindBuffer_Frames))]
    public void RewindBufferGlobalCleanup()
    {
        RecordLatencies(nameof(RewindBuffer_Frames));
        _buffer?.Dispose();
        _buffer = null;
        _engine?.Dispose();
        _engine = null;
        _region = null;
    }

    // ---- baseline: a ring of whole copies ----

    [GlobalSetup(Target = nameof(CopyRing_Frames))]
    public void CopyRingGlobalSetup()
    {
        Prepare();
        _ringBuffers = (int)Math.Min(Kept, RingBytesLimit / Bytes);
        _state = PrivateMemory.Allocate(Bytes, touch: false);
        Pages.WriteRange(_state.Pointer, 0, StatePages, 1);
        _copies = PrivateMemory.Allocate(Bytes * _ringBuffers, touch: true);
        // The same point of the schedule as the engine's measured ticks: after the setup ticks, full.
        _tick = SetupTicks;
        _newest = _kept = Kept;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = FramesPerInvoke)]
    public void CopyRing_Frames()
    {
        for (int i = 0; i < FramesPerInvoke; i++)
            CopyRingFrame();
    }

    private byte* Copy(long frame) => _copies!.Pointer + frame % _ringBuffers * Bytes;

    private void CopyRingFrame()
    {
        long tick = ++_tick;
        byte* state = _state!.Pointer;
        long start = Ticks;
        WritePages(state, tick, ++_value);

        NextSlot();
        long before = Ticks;
        Buffer.MemoryCopy(state, Copy(_newest), Bytes, Bytes);
        long after = Ticks;
        _snapshot.Add(after - before);

        if (RewindsNow(tick))
        {
            before = Ticks;
            Buffer.MemoryCopy(Copy(_newest - RewindDistance), state, Bytes, Bytes);
            after = Ticks;
            _restore.Add(after - before);
            _newest -= RewindDistance; // the newer copies are dropped: nothing to free
            _kept -= RewindDistance;
        }
        _frames.Add(after - start);
    }

    [IterationCleanup(Target = nameof(CopyRing_Frames))]
    public void CopyRingIterationCleanup()
    {
        string method = nameof(CopyRing_Frames);
        ReportedMetrics.Record(this, method, "KeptSaved", _kept);
        ReportedMetrics.Record(this, method, "Data_MiB", (Kept + 1) * Bytes / (double)BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "HeldBySaved_MiB", Kept * Bytes / (double)BenchSettings.MiB);
        ReportedMetrics.Record(this, method, "RingBuffers", _ringBuffers);
    }

    [GlobalCleanup(Target = nameof(CopyRing_Frames))]
    public void CopyRingGlobalCleanup()
    {
        RecordLatencies(nameof(CopyRing_Frames));
        _state?.Dispose();
        _copies?.Dispose();
        _state = _copies = null;
    }

    private void RecordLatencies(string method)
    {
        ReportedMetrics.Record(this, method, "PagesPerFrame", PagesPerFrame);
        ReportedMetrics.Record(this, method, "RestoreCalls", _restore.Count);
        foreach ((string op, LatencySamples samples) in new[] { ("Snapshot", _snapshot), ("Dispose", _dispose), ("RestoreTo", _restore), ("Frame", _frames) })
        {
            Record(method, $"{op}_p50_us", samples.Percentile(0.50));
            Record(method, $"{op}_p99_us", samples.Percentile(0.99));
            Record(method, $"{op}_max_us", samples.MaxMicroseconds);
            if (op != "Frame")
                Record(method, $"{op}_first_us", samples.FirstMicroseconds);
        }
    }

    private void Record(string method, string metric, double? value)
    {
        if (value is double v)
            ReportedMetrics.Record(this, method, metric, v);
    }
}
