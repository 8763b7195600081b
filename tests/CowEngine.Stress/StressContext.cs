namespace CowEngine.Stress;

/// <summary>What every worker shares: the engine, the registry of live views, the pause lock and the stop flag.</summary>
internal sealed class StressContext
{
    public StressContext(StressOptions options, CowMemoryEngine engine, Registry registry, EngineInternals internals, ActivityBoard board)
    {
        Options = options;
        Board = board;
        Engine = engine;
        Registry = registry;
        Internals = internals;
        MaxViewLength = registry.Families.Max(f => f.Length);
    }

    public StressOptions Options { get; }

    /// <summary>Where every harness thread records its current operation, for the watchdog process.</summary>
    public ActivityBoard Board { get; }

    public CowMemoryEngine Engine { get; }

    public Registry Registry { get; }

    public EngineInternals Internals { get; }

    public long MaxViewLength { get; }

    /// <summary>
    /// The working set can exceed the mapping budget (--mapping-budget), so the engine may unmap
    /// (evict) cold segments at any time: a page read a moment ago may be unmapped again.
    /// </summary>
    public bool EvictionExpected { get; init; }

    /// <summary>
    /// Every worker holds this shared for the length of one operation; a checkpoint takes it
    /// exclusively, so it audits an engine that no harness thread is touching.
    /// </summary>
    public ReaderWriterLockSlim Pause { get; } = new(LockRecursionPolicy.NoRecursion);

    public volatile bool Stopping;

    /// <summary>Each worker's random stream: a function of the run's seed and the worker's index only.</summary>
    public Random RandomFor(int workerIndex) => new(unchecked(Options.Seed * 1_000_003 + workerIndex * 7_919));

    /// <summary>
    /// The copies a resolving thread may hold beyond the pages of live views: a fault or
    /// PrepareForWrite takes a new slot before it drops the old one, and a batch of freed slots is
    /// given back when the call ends (at most one segment, 512 slots, per call in flight).
    /// </summary>
    public long SlotsInFlightPerThread => 512;
}
