using CowEngine.Tests.Support;
using CowEngine.TestSupport;
using Kind = CowEngine.TestSupport.FailureInjection.Kind;

namespace CowEngine.Tests;

/// <summary>
/// The model run with failure injection: the system calls of API calls and of the background
/// reclaimer fail at a seeded rate (<see cref="InjectionPlan"/>). Every API call that fails must throw
/// the documented exception and leave every view's contents, the live views, the slots in use and
/// each view's private and shared pages exactly as before the call (a failed PrepareForWrite may have
/// prepared the pages before the failure, as documented: only contents and live views are checked
/// then). Every kind of call the model reaches must have failed at least once.
/// </summary>
public sealed partial class ModelBasedTests
{
    /// <summary>
    /// The kinds of call this model's operations make (it has no restore or diff: no mincore). With
    /// userfaultfd, mprotect is only the last step of mapping pages read-only onto their slots, which
    /// no API call of this model does (regions start on the zero page).
    /// </summary>
    private static Kind[] KindsTheModelReaches =>
        InjectionPlan.UsesUserfaultfd
            ? [Kind.MapSlots, Kind.MapZero, Kind.ReserveFixed, Kind.Punch, Kind.UffdRegister, Kind.UffdWriteprotect]
            : [Kind.MapSlots, Kind.MapZero, Kind.Protect, Kind.ReserveFixed, Kind.Punch, Kind.UffdRegister, Kind.UffdWriteprotect];

    [Fact]
    public async Task RandomOperationsWithSystemCallsFailingMatchTheModel()
    {
        // The injection is process-wide: in a child process, where no other test's engine runs.
        if (!IsolatedTest.IsChildFor(nameof(RandomOperationsWithSystemCallsFailingMatchTheModel)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(typeof(ModelBasedTests), nameof(RandomOperationsWithSystemCallsFailingMatchTheModel), TimeSpan.FromSeconds(240));
            return;
        }
        var totals = new InjectionTotals(nameof(ModelBasedTests));
        try
        {
            foreach (var (seed, plan) in new[] { (31, InjectionPlan.OutOfMappings), (32, InjectionPlan.OtherErrors) })
            {
                var run = new ModelRun(seed, $"fixed seed {seed}, {plan}", injection: plan);
                run.Run(Steps);
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
        private readonly InjectionPlan? _injection;

        /// <summary>What the injection saw in this run (outside the fault handler), read before it was disarmed.</summary>
        public Dictionary<Kind, (ulong Calls, ulong Failed)>? InjectionCounts { get; private set; }

        /// <summary>API calls made through TryApi, and those refused by an injected failure.</summary>
        public long ApiCalls { get; private set; }

        public long RefusedByInjection { get; private set; }

        /// <summary>The engine-wide counts a refused call must leave as they were.</summary>
        private sealed record Counts(long LiveViews, long SlotsInUse, Dictionary<int, (long Private, long Shared)> Pages);

        private IDisposable? SuspendInjection() => _injection is null ? null : FailureInjection.Suspend();

        private void DisarmInjection()
        {
            if (_injection is null || InjectionCounts is not null)
                return;
            InjectionCounts = InjectionPlan.ReadCounts();
            string seen = FailureInjection.Describe();
            FailureInjection.Reset();
            TestContext.Current.TestOutputHelper?.WriteLine($"{_description}: {ApiCalls} API calls, {RefusedByInjection} refused\n{seen}");
        }

        private Counts TakeCounts()
        {
            ApiCalls++;
            using (FailureInjection.Suspend())
            {
                CowEngineStats stats = Engine.GetStats(); // drains the reclaim queue first
                return new Counts(stats.LiveViews, stats.SlotsInUse, _live.ToDictionary(v => v.Id, v =>
                {
                    CowViewStats s = v.View.GetStats();
                    return (s.PrivatePages, s.SharedPages);
                }));
            }
        }

        private bool IsInjectedFailure(Exception exception) => _injection!.IsDocumentedFailure(exception, out _);

        /// <summary>A call refused by an injected failure: nothing the model sees may have changed.</summary>
        private void CheckRefusalChangedNothing(Exception exception, Counts before, bool countsMustStay)
        {
            RefusedByInjection++;
            Record($"  refused by an injected failure: {exception.GetType().Name}: {exception.Message}");
            using (FailureInjection.Suspend())
            {
                CowEngineStats stats = Engine.GetStats();
                Check(stats.LiveViews == before.LiveViews && stats.LiveViews == _live.Count,
                    $"a refused call changed the live views: {before.LiveViews} before, {stats.LiveViews} after, the model has {_live.Count}");
                if (countsMustStay)
                    Check(stats.SlotsInUse == before.SlotsInUse, $"a refused call changed SlotsInUse from {before.SlotsInUse} to {stats.SlotsInUse}");
                foreach (ModelView view in _live)
                {
                    CheckContents(view);
                    CowViewStats viewStats = view.View.GetStats();
                    long recount = view.View.CountMappings();
                    Check(viewStats.Mappings == recount, $"{view} after a refused call: the engine counts {viewStats.Mappings} mappings, its page table {recount}");
                    if (countsMustStay && before.Pages.TryGetValue(view.Id, out var pages))
                        Check((viewStats.PrivatePages, viewStats.SharedPages) == pages,
                            $"{view}: a refused call changed its private/shared pages from {pages} to ({viewStats.PrivatePages}, {viewStats.SharedPages})");
                }
            }
        }
    }
}
