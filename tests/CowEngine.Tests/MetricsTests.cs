using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>The metrics tests read process-wide totals: they run alone, so no other test's engine moves them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideMetricsCollection
{
    public const string Name = "Process-wide metrics";
}

/// <summary>
/// <see cref="CowMetrics"/>: the "CowEngine" meter as a <see cref="MeterListener"/> (the mechanism
/// dotnet-counters and OpenTelemetry use) observes it - exact deltas for the operations a test
/// performs, counters that never go down when an engine goes away, gauges that do.
/// </summary>
[Collection(ProcessWideMetricsCollection.Name)]
public sealed class MetricsTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    private static readonly string[] CounterNames =
    [
        "cowengine.write_faults", "cowengine.copy_faults", "cowengine.read_faults", "cowengine.pages_copied",
        "cowengine.snapshots", "cowengine.restores", "cowengine.evictions",
    ];

    private static readonly string[] UpDownCounterNames =
    [
        "cowengine.slots_in_use", "cowengine.memory.committed", "cowengine.mappings", "cowengine.mapping_budget",
        "cowengine.views", "cowengine.engines",
    ];

    [Fact]
    public void TheMeter_PublishesEveryInstrument_WithUnitsAndDescriptions()
    {
        using CowMemoryEngine engine = NewSmallEngine(); // the meter exists once an engine was made
        using var listener = new MetricsRecorder();

        Assert.Equal("CowEngine", CowMetrics.MeterName);
        foreach (string name in CounterNames)
            Assert.IsType<ObservableCounter<long>>(listener.Instrument(name));
        foreach (string name in UpDownCounterNames)
            Assert.IsType<ObservableUpDownCounter<long>>(listener.Instrument(name));
        Assert.Equal(CounterNames.Length + UpDownCounterNames.Length, listener.InstrumentCount);
        Assert.Equal("By", listener.Instrument("cowengine.memory.committed").Unit);
        Assert.Equal("{fault}", listener.Instrument("cowengine.copy_faults").Unit);
        Assert.All(CounterNames.Concat(UpDownCounterNames), name => Assert.False(string.IsNullOrEmpty(listener.Instrument(name).Description)));
    }

    [Fact]
    public void Counters_MoveByExactlyWhatTheOperationsDid()
    {
        Settle();
        using var listener = new MetricsRecorder();
        IReadOnlyDictionary<string, long> before = listener.Observe();

        using CowMemoryEngine engine = NewPageByPageEngine(); // counts faults page by page: see TestEngines
        using CowView world = engine.CreateRegion(64 * PageSize);
        world.AsSpan(0, 64 * PageSize).Fill(1);
        using CowView first = world.Snapshot();
        for (int page = 0; page < 10; page++)
            world.AsSpan(page * PageSize, 1)[0] = 2;             // 10 copy faults
        using CowView second = world.Snapshot();
        world.RestoreTo(first);
        world.RestoreTo(second);
        world.RestoreTo(first);
        byte seen = second.AsSpan(20 * PageSize, 1)[0];          // a read of an untouched snapshot page maps it
        IReadOnlyDictionary<string, long> during = listener.Observe();
        CowEngineStats stats = engine.GetStats();

        Assert.Equal(1, seen);
        Assert.Equal(2, during["cowengine.snapshots"] - before["cowengine.snapshots"]);
        Assert.Equal(3, during["cowengine.restores"] - before["cowengine.restores"]);
        Assert.Equal(10, during["cowengine.copy_faults"] - before["cowengine.copy_faults"]);
        Assert.Equal(10, during["cowengine.pages_copied"] - before["cowengine.pages_copied"]);
        Assert.Equal(stats.WriteFaults, during["cowengine.write_faults"] - before["cowengine.write_faults"]);
        Assert.True(stats.WriteFaults >= 10);
        Assert.Equal(stats.ReadFaults, during["cowengine.read_faults"] - before["cowengine.read_faults"]);
        Assert.True(stats.ReadFaults >= 1, "reading the untouched snapshot page should be a read fault");
        Assert.Equal(stats.Evictions, during["cowengine.evictions"] - before["cowengine.evictions"]);

        Assert.Equal(1, during["cowengine.engines"] - before["cowengine.engines"]);
        Assert.Equal(3, during["cowengine.views"] - before["cowengine.views"]);
        Assert.Equal(stats.SlotsInUse, during["cowengine.slots_in_use"] - before["cowengine.slots_in_use"]);
        Assert.Equal(64 + 10, stats.SlotsInUse);
        Assert.Equal(stats.Mappings, during["cowengine.mappings"] - before["cowengine.mappings"]);
        Assert.Equal(stats.MappingBudget, during["cowengine.mapping_budget"] - before["cowengine.mapping_budget"]);
        Assert.Equal(stats.CommittedBytes, during["cowengine.memory.committed"] - before["cowengine.memory.committed"]);
    }

    [Fact]
    public void DisposingAnEngine_KeepsItsCounts_AndDropsItsGauges()
    {
        Settle();
        using var listener = new MetricsRecorder();
        IReadOnlyDictionary<string, long> before = listener.Observe();

        var engine = NewSmallEngine();
        CowView world = engine.CreateRegion(16 * PageSize);
        world.AsSpan(0, PageSize)[0] = 1;
        CowView snapshot = world.Snapshot();
        world.AsSpan(0, PageSize)[0] = 2;
        world.RestoreTo(snapshot);
        IReadOnlyDictionary<string, long> live = listener.Observe();
        engine.Dispose();
        IReadOnlyDictionary<string, long> after = listener.Observe();

        Assert.Equal(1, live["cowengine.engines"] - before["cowengine.engines"]);
        Assert.Equal(0, after["cowengine.engines"] - before["cowengine.engines"]);
        Assert.Equal(0, after["cowengine.views"] - before["cowengine.views"]);
        Assert.Equal(0, after["cowengine.slots_in_use"] - before["cowengine.slots_in_use"]);
        Assert.Equal(0, after["cowengine.mappings"] - before["cowengine.mappings"]);
        foreach (string name in CounterNames)
            Assert.True(after[name] >= live[name], $"{name} went down from {live[name]} to {after[name]}");
        Assert.Equal(1, after["cowengine.snapshots"] - before["cowengine.snapshots"]);
        Assert.Equal(1, after["cowengine.restores"] - before["cowengine.restores"]);
        Assert.Equal(1, after["cowengine.copy_faults"] - before["cowengine.copy_faults"]);
    }

    [Fact]
    public void AnEngineCollectedWithoutDispose_LeavesTheTotals_KeepingItsCounts()
    {
        Settle();
        using var listener = new MetricsRecorder();
        IReadOnlyDictionary<string, long> before = listener.Observe();

        WeakReference<CowMemoryEngine> collected = CreateEngineTakeTwoSnapshotsAndObserve(listener);
        Settle();
        Assert.False(collected.TryGetTarget(out _), "the abandoned engine should have been collected");
        IReadOnlyDictionary<string, long> after = listener.Observe();

        Assert.Equal(0, after["cowengine.engines"] - before["cowengine.engines"]);
        Assert.Equal(2, after["cowengine.snapshots"] - before["cowengine.snapshots"]);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference<CowMemoryEngine> CreateEngineTakeTwoSnapshotsAndObserve(MetricsRecorder listener)
    {
        var engine = NewSmallEngine(); // never disposed: left to the garbage collector
        CowView world = engine.CreateRegion(PageSize);
        world.Snapshot();
        world.Snapshot();
        listener.Observe();
        return new WeakReference<CowMemoryEngine>(engine);
    }

    /// <summary>Lets views and engines other tests abandoned be finalized now rather than mid-test.</summary>
    private static void Settle()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    /// <summary>A MeterListener on the "CowEngine" meter that records one value per instrument per observation.</summary>
    private sealed class MetricsRecorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Dictionary<string, Instrument> _instruments = new();
        private readonly Dictionary<string, long> _values = new();

        public MetricsRecorder()
        {
            // The meter is made with the first engine: in a test that observes before it makes one (and
            // runs first, which depends on the test order), the listener would otherwise find nothing.
            _ = CowMetrics.Meter;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == CowMetrics.MeterName)
                {
                    lock (_instruments)
                        _instruments[instrument.Name] = instrument;
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, state) =>
            {
                lock (_values)
                {
                    Assert.False(_values.ContainsKey(instrument.Name), $"{instrument.Name} reported twice in one observation");
                    _values[instrument.Name] = value;
                }
            });
            _listener.Start();
        }

        public int InstrumentCount
        {
            get
            {
                lock (_instruments)
                    return _instruments.Count;
            }
        }

        public Instrument Instrument(string name)
        {
            lock (_instruments)
                return _instruments.TryGetValue(name, out Instrument? instrument)
                    ? instrument
                    : throw new Xunit.Sdk.XunitException($"instrument {name} was not published; published: {string.Join(", ", _instruments.Keys)}");
        }

        public IReadOnlyDictionary<string, long> Observe()
        {
            lock (_values)
                _values.Clear();
            _listener.RecordObservableInstruments();
            lock (_values)
            {
                foreach (string name in CounterNames.Concat(UpDownCounterNames))
                    Assert.True(_values.ContainsKey(name), $"{name} was not observed");
                return new Dictionary<string, long>(_values);
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
