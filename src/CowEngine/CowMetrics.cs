using System.Diagnostics.Metrics;
using System.Reflection;

namespace CowEngine;

/// <summary>
/// The engine's metrics, in the platform's own way: a <see cref="Meter"/> named "CowEngine" whose
/// observable instruments total every live engine in the process. Watch them with
/// <c>dotnet-counters monitor --counters CowEngine -p &lt;pid&gt;</c>, or collect them with
/// OpenTelemetry (<c>AddMeter("CowEngine")</c>) or a <see cref="MeterListener"/>.
/// </summary>
/// <remarks>
/// <para>Counters (monotonic for the life of the process: an engine's counts stay in the totals
/// after it is disposed):</para>
/// <list type="bullet">
/// <item><c>cowengine.write_faults</c> {fault}: write faults the engine resolved (a copy, or an mprotect of a private page).</item>
/// <item><c>cowengine.copy_faults</c> {fault}: write faults that copied a shared page.</item>
/// <item><c>cowengine.read_faults</c> {fault}: first touches of unmapped pages (lazy snapshots, evicted segments) that mapped them.</item>
/// <item><c>cowengine.pages_copied</c> {page}: private copies made, by faults and by PrepareForWrite.</item>
/// <item><c>cowengine.snapshots</c> {snapshot}: snapshots taken.</item>
/// <item><c>cowengine.restores</c> {restore}: <see cref="CowView.RestoreTo"/> calls that completed.</item>
/// <item><c>cowengine.evictions</c> {segment}: 2 MiB segments unmapped to stay within the mapping budget.</item>
/// </list>
/// <para>Up-down counters (the current state of the live engines):</para>
/// <list type="bullet">
/// <item><c>cowengine.slots_in_use</c> {slot}: 4 KiB slots referenced by some view (what the capacity limits).</item>
/// <item><c>cowengine.memory.committed</c> By: memory the slot pools really hold.</item>
/// <item><c>cowengine.mappings</c> {mapping}: kernel mappings the engines use (vm.max_map_count counts these).</item>
/// <item><c>cowengine.mapping_budget</c> {mapping}: the engines' mapping budgets, summed.</item>
/// <item><c>cowengine.views</c> {view}: live regions and snapshots.</item>
/// <item><c>cowengine.engines</c> {engine}: live engines.</item>
/// </list>
/// <para>Engines register when created and unregister when disposed; the registry holds them
/// weakly, so an engine that is never disposed still goes away with the garbage collector (its
/// counts as last observed stay in the totals). Observing reads each engine's counters
/// (<see cref="CowMemoryEngine.GetStats"/>): a few microseconds per engine, only while a listener
/// collects.</para>
/// </remarks>
public static class CowMetrics
{
    /// <summary>The meter's name: "CowEngine".</summary>
    public const string MeterName = "CowEngine";

    private static readonly Lock s_gate = new();
    private static readonly List<Registration> s_engines = new();
    private static Counters s_retired;
    private static readonly Meter s_meter = CreateMeter();

    /// <summary>The meter (created with the first engine).</summary>
    internal static Meter Meter => s_meter;

    /// <summary>Adds an engine to the totals (called by its constructor).</summary>
    internal static void Register(CowMemoryEngine engine)
    {
        lock (s_gate)
        {
            // Without a listener nothing else prunes engines collected without Dispose.
            for (int i = s_engines.Count - 1; i >= 0; i--)
            {
                if (!s_engines[i].Engine.TryGetTarget(out _))
                {
                    s_retired += s_engines[i].LastSeen;
                    s_engines.RemoveAt(i);
                }
            }
            s_engines.Add(new Registration(new WeakReference<CowMemoryEngine>(engine)));
        }
    }

    /// <summary>
    /// Removes an engine from the totals, keeping its counts (called by its Dispose while its
    /// tables still exist).
    /// </summary>
    internal static void Unregister(CowMemoryEngine engine)
    {
        lock (s_gate)
        {
            int index = s_engines.FindIndex(r => r.Engine.TryGetTarget(out CowMemoryEngine? e) && ReferenceEquals(e, engine));
            if (index < 0)
                return;
            Registration registration = s_engines[index];
            Observe(engine, registration);
            s_retired += registration.LastSeen;
            s_engines.RemoveAt(index);
        }
    }

    private static Meter CreateMeter()
    {
        string? version = typeof(CowMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        var meter = new Meter(MeterName, version);
        meter.CreateObservableCounter("cowengine.write_faults", () => Totals().Counters.WriteFaults, "{fault}",
            "Write faults the engine resolved (a copy, or an mprotect of a private page)");
        meter.CreateObservableCounter("cowengine.copy_faults", () => Totals().Counters.CopyFaults, "{fault}",
            "Write faults that copied a shared page");
        meter.CreateObservableCounter("cowengine.read_faults", () => Totals().Counters.ReadFaults, "{fault}",
            "First touches of unmapped pages (lazy snapshots, evicted segments) that mapped them");
        meter.CreateObservableCounter("cowengine.pages_copied", () => Totals().Counters.PagesCopied, "{page}",
            "Private copies of pages made, by faults and by PrepareForWrite");
        meter.CreateObservableCounter("cowengine.snapshots", () => Totals().Counters.Snapshots, "{snapshot}",
            "Snapshots taken");
        meter.CreateObservableCounter("cowengine.restores", () => Totals().Counters.Restores, "{restore}",
            "Views restored to another view (RestoreTo)");
        meter.CreateObservableCounter("cowengine.evictions", () => Totals().Counters.Evictions, "{segment}",
            "2 MiB segments unmapped to stay within the mapping budget");
        meter.CreateObservableUpDownCounter("cowengine.slots_in_use", () => Totals().SlotsInUse, "{slot}",
            "4 KiB slots referenced by some view");
        meter.CreateObservableUpDownCounter("cowengine.memory.committed", () => Totals().CommittedBytes, "By",
            "Memory the engines' slot pools hold");
        meter.CreateObservableUpDownCounter("cowengine.mappings", () => Totals().Mappings, "{mapping}",
            "Kernel mappings the engines use (vm.max_map_count counts these)");
        meter.CreateObservableUpDownCounter("cowengine.mapping_budget", () => Totals().MappingBudget, "{mapping}",
            "The engines' mapping budgets, summed");
        meter.CreateObservableUpDownCounter("cowengine.views", () => Totals().LiveViews, "{view}",
            "Live regions and snapshots");
        meter.CreateObservableUpDownCounter("cowengine.engines", () => Totals().Engines, "{engine}",
            "Live engines");
        return meter;
    }

    /// <summary>Sums the live engines, and the counts of those gone.</summary>
    private static Snapshot Totals()
    {
        var total = new Snapshot();
        lock (s_gate)
        {
            total.Counters = s_retired;
            for (int i = s_engines.Count - 1; i >= 0; i--)
            {
                Registration registration = s_engines[i];
                if (!registration.Engine.TryGetTarget(out CowMemoryEngine? engine))
                {
                    // Collected without Dispose: keep what it had counted when last seen.
                    s_retired += registration.LastSeen;
                    total.Counters += registration.LastSeen;
                    s_engines.RemoveAt(i);
                    continue;
                }
                CowEngineStats? stats = Observe(engine, registration);
                total.Counters += registration.LastSeen;
                if (stats is { } s)
                {
                    total.SlotsInUse += s.SlotsInUse;
                    total.CommittedBytes += s.CommittedBytes;
                    total.Mappings += s.Mappings;
                    total.MappingBudget += s.MappingBudget;
                    total.LiveViews += s.LiveViews;
                    total.Engines++;
                }
            }
        }
        return total;
    }

    /// <summary>Reads an engine's counters into its registration; null if it can no longer be read.</summary>
    private static CowEngineStats? Observe(CowMemoryEngine engine, Registration registration)
    {
        CowEngineStats stats;
        try
        {
            stats = engine.GetStats();
        }
        catch (Exception exception) when (exception is ObjectDisposedException or CowSystemException)
        {
            return null; // its tables are gone (or cannot be read now); its last counts stand
        }
        registration.LastSeen = new Counters(stats.WriteFaults, stats.CopyFaults, stats.ReadFaults, stats.PagesCopied,
            stats.Snapshots, Interlocked.Read(ref engine.RestoreCount), stats.Evictions);
        return stats;
    }

    private sealed class Registration(WeakReference<CowMemoryEngine> engine)
    {
        public WeakReference<CowMemoryEngine> Engine { get; } = engine;

        public Counters LastSeen { get; set; }
    }

    private readonly record struct Counters(long WriteFaults, long CopyFaults, long ReadFaults, long PagesCopied, long Snapshots, long Restores, long Evictions)
    {
        public static Counters operator +(Counters a, Counters b) => new(
            a.WriteFaults + b.WriteFaults, a.CopyFaults + b.CopyFaults, a.ReadFaults + b.ReadFaults, a.PagesCopied + b.PagesCopied,
            a.Snapshots + b.Snapshots, a.Restores + b.Restores, a.Evictions + b.Evictions);
    }

    private struct Snapshot
    {
        public Counters Counters;
        public long SlotsInUse;
        public long CommittedBytes;
        public long Mappings;
        public long MappingBudget;
        public long LiveViews;
        public long Engines;
    }
}
