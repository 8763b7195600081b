using System.Diagnostics;

namespace CowEngine.Stress;

/// <summary>
/// One run: sets up the engine and the families, starts the workers, watches the running
/// invariants and prints progress, pauses everything for checkpoints, then stops, audits, disposes
/// everything and checks that the engine is back to empty.
/// </summary>
internal sealed class StressRun
{
    /// <summary>View sizes in pages: small ones, one that crosses a 2 MiB segment, one of three segments.</summary>
    private static readonly int[] FamilyPages = [96, 256, 600, 1100];

    private const int MaxViewsPerFamily = 10;

    private readonly StressOptions _options;
    private readonly ActivityBoard _board;
    private readonly Activity _main;

    public StressRun(StressOptions options, ActivityBoard board)
    {
        _options = options;
        _board = board;
        _main = new Activity(board, "main");
    }

    public int Execute()
    {
        Report.Line($"CowEngine stress: seed {_options.Seed}, {_options.Duration.TotalSeconds:F0} s, {_options.WriterThreads} writer threads, " +
                    $"{Environment.ProcessorCount} processors, pid {Environment.ProcessId}");
        Report.Line($"replay the threads' random choices with --seed {_options.Seed} (thread interleavings are not replayable)");

        EngineInternals internals = EngineInternals.Bind();
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 2L << 30, MappingBudget = _options.MappingBudget });
        CowEngineStats baseline = engine.GetStats();

        var familyRandom = new Random(_options.Seed);
        List<Family> families = FamilyPages.Select((pages, id) => new Family(id, pages, familyRandom)).ToList();
        // By default the working set always fits the budget; with --mapping-budget it may not, and
        // the engine must evict (the worst case then exceeds the budget on purpose).
        int viewsPerFamily = _options.MappingBudget is null ? ViewsPerFamily(families, engine.MappingBudget) : MaxViewsPerFamily;
        bool evictionExpected = (long)viewsPerFamily * families.Sum(f => f.PageCount + 1) + 64 > engine.MappingBudget;
        var registry = new Registry(families, viewsPerFamily);
        var context = new StressContext(_options, engine, registry, internals, _board) { EvictionExpected = evictionExpected };
        Report.Line($"families (pages): {string.Join(", ", FamilyPages)}; up to {viewsPerFamily} live views each; mapping budget {engine.MappingBudget}" +
                    (evictionExpected ? " (below the worst case: the engine will evict)" : ""));

        var setupRandom = context.RandomFor(-1);
        foreach (Family family in families)
            SnapshotWorker.CreateRegion(family, context, setupRandom, _main);
        _main.End();
        if (_options.InjectRate is { } rate)
            Injection.Arm(rate, _options.Seed);

        var workers = new List<Worker>();
        for (int i = 0; i < _options.WriterThreads; i++)
            workers.Add(new WriterWorker(context, i));
        // The other workers' random streams do not depend on the number of writers.
        var pipe = new PipeWorker(context, 1004);
        workers.AddRange([new SnapshotWorker(context, 1000), new RestoreWorker(context, 1001), new DisposeWorker(context, 1002),
                          new GcWorker(context, 1003), pipe, new VerifierWorker(context, 1005)]);

        using Process? watchdog = Watchdog.Launch(_board, _options.WatchdogTimeout);
        foreach (Worker worker in workers)
            worker.Start();

        if (_options.SimulatedHang is { } hang)
            SimulateHang(hang);

        (long operations, long faults) = Monitor(context, workers);

        _main.Begin("stopping workers");
        context.Stopping = true;
        foreach (Worker worker in workers)
        {
            while (!worker.Join(TimeSpan.FromSeconds(1)))
                ExitIfWatchdogFired(); // a worker that never returns is the watchdog's to report
        }
        _main.End();
        pipe.ClosePipe();

        _main.Begin("final checkpoint");
        Audit.Run(context, "final checkpoint");
        _main.End();

        _main.Begin("dispose everything");
        TearDown(context, baseline);
        _main.End();
        _board.RunState = ActivityBoard.RunStateFinished;

        double seconds = _options.Duration.TotalSeconds;
        long failures = Report.Failures;
        string categories = failures == 0 ? "none" : string.Join(", ", Report.FailureCategories.Select(c => $"{c.Key}={c.Value}"));
        Report.Line($"failure categories: {categories}");
        string injection = _options.InjectRate is null ? "" : $" injected={Injection.Injected} refused={Injection.Refusals}";
        Report.Line($"RESULT status={(failures == 0 ? "PASS" : "FAIL")} seed={_options.Seed} seconds={seconds:F0} operations={operations} " +
                    $"operations_per_second={operations / seconds:F0} faults={faults} faults_per_second={faults / seconds:F0} mismatches={failures}{injection}");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// As many views per family as keeps the worst case within the mapping budget: a view can never
    /// consist of more mappings than it has pages, so the sum of live pages (plus one gap per view,
    /// the pool window and some room for abandoned snapshots) bounds the engine's mappings.
    /// </summary>
    private static int ViewsPerFamily(List<Family> families, int mappingBudget)
    {
        int pagesPerRound = families.Sum(f => f.PageCount + 1);
        int fits = (mappingBudget - 64 - 8 * families.Max(f => f.PageCount)) / pagesPerRound;
        if (fits < 2)
            throw new InvalidOperationException($"the mapping budget ({mappingBudget}) is too small for the stress families ({pagesPerRound} pages per round)");
        return Math.Min(MaxViewsPerFamily, fits);
    }

    /// <summary>
    /// Runs until the deadline: checks the running invariants every second, prints progress and
    /// runs checkpoints at their intervals. Returns the operations done and the faults the engine
    /// resolved during the run.
    /// </summary>
    private (long Operations, long Faults) Monitor(StressContext context, List<Worker> workers)
    {
        CowMemoryEngine engine = context.Engine;
        var clock = Stopwatch.StartNew();
        CowEngineStats start = engine.GetStats();
        CowEngineStats lastStats = start;
        long lastOperations = 0;
        TimeSpan lastProgress = TimeSpan.Zero, lastCheckpoint = TimeSpan.Zero;
        long slack = context.SlotsInFlightPerThread * (workers.Count + 2);
        long mappingsInFlight = 2 * workers.Count;
        long Operations() => workers.Sum(w => w.Activity.Operations);

        while (clock.Elapsed < _options.Duration)
        {
            Thread.Sleep(TimeSpan.FromMilliseconds(Math.Min(1000, Math.Max(1, (_options.Duration - clock.Elapsed).TotalMilliseconds))));

            ExitIfWatchdogFired();
            _main.Begin("running checks");
            long boundBefore = context.Registry.PagesThatMayHoldSlots;
            CowEngineStats stats;
            using (Injection.Suspend()) // its drain must not leave punches that failed in SlotsInUse
                stats = engine.GetStats();
            long bound = Math.Max(boundBefore, context.Registry.PagesThatMayHoldSlots) + slack;
            if (stats.SlotsInUse > bound)
                Report.Failure("slots-in-use", $"running: {stats.SlotsInUse} slots in use, more than the {bound} pages live views can reference (copies in flight included)");
            // While threads fault, each fault in flight may be two mappings over the budget until
            // it has evicted (docs/design.md section 6); the checkpoints' audits, with every worker
            // paused, check the budget exactly.
            if (stats.Mappings > stats.MappingBudget + mappingsInFlight)
                Report.Failure("mapping-budget", $"running: {stats.Mappings} mappings exceed the budget of {stats.MappingBudget} + {mappingsInFlight} for faults in flight");
            _main.End();

            if (clock.Elapsed - lastProgress >= _options.ProgressInterval)
            {
                double interval = (clock.Elapsed - lastProgress).TotalSeconds;
                long operations = Operations();
                long faults = stats.WriteFaults + stats.ReadFaults - lastStats.WriteFaults - lastStats.ReadFaults;
                Report.Line($"progress: {(operations - lastOperations) / interval:F0} ops/s, {faults / interval:F0} faults/s " +
                            $"({(stats.CopyFaults - lastStats.CopyFaults) / interval:F0} copying, {(stats.ReadFaults - lastStats.ReadFaults) / interval:F0} first reads), " +
                            $"{stats.LiveViews} live views, {stats.SlotsInUse} slots in use, {stats.Mappings}/{stats.MappingBudget} mappings, " +
                            $"{stats.Snapshots - lastStats.Snapshots} snapshots, {stats.Evictions - lastStats.Evictions} evictions, failures {Report.Failures}");
                Report.Line("  per thread: " + string.Join(", ", workers.Select(w => $"{w.Name} {w.Activity.Operations}")));
                lastOperations = operations;
                lastStats = stats;
                lastProgress = clock.Elapsed;
            }

            if (clock.Elapsed - lastCheckpoint >= _options.CheckpointInterval && clock.Elapsed < _options.Duration)
            {
                _main.Begin("waiting for checkpoint");
                context.Pause.EnterWriteLock();
                try
                {
                    _main.Note("checkpoint");
                    Audit.Run(context, $"checkpoint at {clock.Elapsed.TotalSeconds:F0} s");
                }
                finally
                {
                    context.Pause.ExitWriteLock();
                    _main.End();
                }
                lastCheckpoint = clock.Elapsed;
            }
        }

        CowEngineStats end = engine.GetStats();
        return (Operations(), end.WriteFaults + end.ReadFaults - start.WriteFaults - start.ReadFaults);
    }

    /// <summary>
    /// The watchdog process found no progress and printed why: end the run at once with its exit
    /// code, without waiting for threads that are stuck.
    /// </summary>
    private void ExitIfWatchdogFired()
    {
        if (_board.RunState != Watchdog.RunStateDeadlock)
            return;
        Console.Out.Flush();
        HarnessLibC.Exit(Watchdog.ExitCode);
    }

    /// <summary>For testing the watchdog: a thread that enters an operation and never leaves it.</summary>
    private void SimulateHang(string kind)
    {
        var activity = new Activity(_board, "simulated-hang");
        var thread = new Thread(() =>
        {
            Thread.Sleep(2000);
            activity.Begin($"simulated {kind} hang");
            Report.Line($"simulating a {kind} hang on thread simulated-hang");
            if (kind == "gc")
            {
                HarnessLibC.BlockAllSignals();
                while (true)
                    HarnessLibC.SleepInCooperativeMode(3600);
            }
            Thread.Sleep(Timeout.Infinite);
        })
        { Name = "simulated-hang", IsBackground = true };
        thread.Start();
    }

    /// <summary>Disposes every view in random order; the engine must then be exactly as it started.</summary>
    private void TearDown(StressContext context, CowEngineStats baseline)
    {
        var random = context.RandomFor(-2);
        List<ViewRecord> views = context.Registry.All().OrderBy(_ => random.Next()).ToList();
        foreach (ViewRecord record in views)
            DisposeWorker.Dispose(record, context.Registry);
        for (int i = 0; i < 2; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        // The disposals ran with injection on; the punches that failed are still queued: this drain, with
        // injection off, retries them, and everything must then be back to empty.
        Injection.Disarm();
        CowEngineStats stats = context.Engine.GetStats();
        Report.Line($"after disposing all {views.Count} views: {stats}");
        if (stats.LiveViews != 0)
            Report.Failure("teardown", $"{stats.LiveViews} views still live after the harness disposed all of its views");
        if (stats.SlotsInUse != 0)
            Report.Failure("teardown", $"{stats.SlotsInUse} slots still in use with no view left (leaked slots)");
        if (stats.CommittedBytes != 0)
            Report.Failure("teardown", $"the pool still holds {stats.CommittedBytes} bytes with no view left (holes not punched)");
        if (stats.Mappings != baseline.Mappings)
            Report.Failure("teardown", $"{stats.Mappings} mappings with no view left; the engine started with {baseline.Mappings}");
    }
}
