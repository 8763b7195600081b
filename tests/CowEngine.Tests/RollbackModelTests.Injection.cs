using CowEngine.Tests.Support;
using CowEngine.TestSupport;
using Kind = CowEngine.TestSupport.FailureInjection.Kind;

namespace CowEngine.Tests;

/// <summary>
/// The rollback model with failure injection (<see cref="InjectionPlan"/>): the system calls of
/// snapshots, restores, diffs, TakeDirtyPages, PrepareForWrite, region creation and disposal, and of
/// the background reclaimer, fail at a seeded rate. A call that fails must throw the documented
/// exception and change nothing: the model does not change either (a refused Snapshot() or
/// TakeDirtyPages() is no reference point), and the views, the slots in use and each view's private
/// and shared pages are compared with what they were. A failed mincore must not change any diff's
/// answer (the model checks every answer exactly). Every kind of call must have failed at least once.
/// </summary>
public sealed partial class RollbackModelTests
{
    /// <summary>
    /// The kinds of call this model's API calls make often enough to fail for certain. With userfaultfd,
    /// mprotect is only the last step of mapping a tracked region read-only, which this model seldom
    /// does (ModelBasedTests makes it fail).
    /// </summary>
    private static Kind[] KindsTheModelReaches =>
        InjectionPlan.UsesUserfaultfd
            ? [Kind.MapSlots, Kind.MapZero, Kind.ReserveFixed, Kind.Punch, Kind.Mincore, Kind.UffdRegister, Kind.UffdWriteprotect]
            : [Kind.MapSlots, Kind.MapZero, Kind.Protect, Kind.ReserveFixed, Kind.Punch, Kind.Mincore];

    [Fact]
    public async Task RandomOperations_WithSystemCallsFailing_AgreeWithTheModel()
    {
        // The injection is process-wide: in a child process, where no other test's engine runs.
        if (!IsolatedTest.IsChildFor(nameof(RandomOperations_WithSystemCallsFailing_AgreeWithTheModel)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(RollbackModelTests), nameof(RandomOperations_WithSystemCallsFailing_AgreeWithTheModel), ChildTimeout);
            return;
        }
        var totals = new InjectionTotals(nameof(RollbackModelTests));
        try
        {
            // One fixed seed per plan, then a random (or replayed) one with each plan in turn.
            int random = RandomOrReplayedSeed();
            var runs = new[] { (41, InjectionPlan.OutOfMappings), (42, InjectionPlan.OtherErrors), (random, InjectionPlan.ApiPlans[random & 1]) };
            foreach (var (seed, plan) in runs)
            {
                using var watchdog = new HangWatchdog(StallLimit);
                var run = new ModelRun(seed, mappingBudget: null, watchdog, plan);
                run.Run();
                totals.Add(plan, run.InjectionCounts!, run.ApiCalls, run.RefusedByInjection);
            }
        }
        finally
        {
            FailureInjection.Reset();
        }
        Console.WriteLine(totals.Table());
        totals.AssertEveryKindFailed(KindsTheModelReaches);
    }

    private sealed partial class ModelRun
    {
        private CowMemoryEngine? _engine;

        public Dictionary<Kind, (ulong Calls, ulong Failed)>? InjectionCounts { get; private set; }

        public long ApiCalls { get; private set; }

        public long RefusedByInjection { get; private set; }

        private sealed record Counts(long LiveViews, long SlotsInUse, Dictionary<string, (long Private, long Shared)> Pages);

        private IDisposable? SuspendInjection() => injection is null ? null : FailureInjection.Suspend();

        private void DisarmInjection()
        {
            if (injection is null || InjectionCounts is not null)
                return;
            InjectionCounts = InjectionPlan.ReadCounts();
            string seen = FailureInjection.Describe();
            FailureInjection.Reset();
            TestContext.Current.TestOutputHelper?.WriteLine($"{Context()}, {injection}: {ApiCalls} API calls, {RefusedByInjection} refused\n{seen}");
        }

        private Counts TakeCounts()
        {
            ApiCalls++;
            using (FailureInjection.Suspend())
            {
                CowEngineStats stats = _engine!.GetStats(); // drains the reclaim queue first
                return new Counts(stats.LiveViews, stats.SlotsInUse, _views.ToDictionary(v => v.Name, v =>
                {
                    CowViewStats s = v.View.GetStats();
                    return (s.PrivatePages, s.SharedPages);
                }));
            }
        }

        /// <summary>A call refused by an injected failure: nothing the model sees may have changed.</summary>
        private void CheckRefusalChangedNothing(Exception exception, Counts before, bool countsMustStay)
        {
            RefusedByInjection++;
            Log($"{_inFlight[(_inFlight.IndexOf(": ", StringComparison.Ordinal) + 2)..]} refused by an injected failure: {exception.GetType().Name}: {exception.Message}");
            using (FailureInjection.Suspend())
            {
                CowEngineStats stats = _engine!.GetStats();
                Check(stats.LiveViews == before.LiveViews && stats.LiveViews == _views.Count,
                    () => $"a refused call changed the live views: {before.LiveViews} before, {stats.LiveViews} after, the model has {_views.Count}");
                if (countsMustStay)
                    Check(stats.SlotsInUse == before.SlotsInUse, () => $"a refused call changed SlotsInUse from {before.SlotsInUse} to {stats.SlotsInUse}");
                foreach (ModelView view in _views)
                {
                    for (long page = 0; page < Pages; page++)
                        CheckPage(view, page);
                    CowViewStats viewStats = view.View.GetStats();
                    long recounted = view.View.CountMappings();
                    Check(viewStats.Mappings == recounted,
                        () => $"{view.Name} after a refused call: the engine counts {viewStats.Mappings} mappings, its page table {recounted}");
                    if (countsMustStay && before.Pages.TryGetValue(view.Name, out var pages))
                        Check((viewStats.PrivatePages, viewStats.SharedPages) == pages,
                            () => $"{view.Name}: a refused call changed its private/shared pages from {pages} to ({viewStats.PrivatePages}, {viewStats.SharedPages})");
                }
            }
        }
    }
}
