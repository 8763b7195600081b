using System.Globalization;
using System.Text;
using CowEngine.TestSupport;
using Kind = CowEngine.TestSupport.FailureInjection.Kind;

namespace CowEngine.Tests.Support;

/// <summary>
/// Which system calls an injected model run makes fail, with which errno, at which rate: always
/// outside the fault handler (API calls and the background reclaimer; a failure inside the handler
/// is fatal by design and is tested in child processes, FaultPathInjectionTests). The model tests
/// (ModelBasedTests, RollbackModelTests) run with these plans and check that every API call that
/// fails throws the documented exception and changes nothing the model can see.
/// </summary>
internal sealed record InjectionPlan(string Name, IReadOnlyList<(Kind Kind, int Errno, uint RatePerMillion)> Calls)
{
    /// <summary>The rate of most calls: 2.5%, so that a few percent of API calls fail.</summary>
    private const uint Rate = 25_000;

    /// <summary>mincore runs once or twice per page a diff compares (hundreds per call): far fewer of them fail.</summary>
    private const uint MincoreRate = 300;

    /// <summary>ENOMEM for the mapping calls (the kernel's answer at vm.max_map_count: a CowMappingBudgetExceededException
    /// naming ENOMEM), EIO for the hole punch, EAGAIN for mincore (which asks again).</summary>
    public static readonly InjectionPlan OutOfMappings = new("mapping calls fail with ENOMEM",
    [
        (Kind.MapSlots, FailureInjection.ENOMEM, Rate), (Kind.MapZero, FailureInjection.ENOMEM, Rate), (Kind.Protect, FailureInjection.ENOMEM, Rate),
        (Kind.ReserveFixed, FailureInjection.ENOMEM, Rate), (Kind.UffdRegister, FailureInjection.ENOMEM, Rate),
        (Kind.UffdWriteprotect, FailureInjection.ENOMEM, Rate), (Kind.Punch, FailureInjection.EIO, Rate),
        (Kind.Mincore, FailureInjection.EAGAIN, Rate),
    ]);

    /// <summary>Other answers the calls can give: EAGAIN, EPERM (a CowSystemException naming them); ENOSPC for the
    /// hole punch, ENOMEM for mincore (a diff refused).</summary>
    public static readonly InjectionPlan OtherErrors = new("EAGAIN, EPERM, ENOSPC",
    [
        (Kind.MapSlots, FailureInjection.EAGAIN, Rate), (Kind.MapZero, FailureInjection.EAGAIN, Rate), (Kind.Protect, FailureInjection.EAGAIN, Rate),
        (Kind.ReserveFixed, FailureInjection.EPERM, Rate), (Kind.UffdRegister, FailureInjection.EPERM, Rate),
        (Kind.UffdWriteprotect, FailureInjection.EPERM, Rate), (Kind.Punch, FailureInjection.ENOSPC, Rate),
        (Kind.Mincore, FailureInjection.ENOMEM, MincoreRate),
    ]);

    public static readonly InjectionPlan[] ApiPlans = [OutOfMappings, OtherErrors];

    /// <summary>The write protection of engines made without an explicit choice in this process.</summary>
    public static bool UsesUserfaultfd =>
        string.Equals(Environment.GetEnvironmentVariable("COWENGINE_WRITE_PROTECTION")?.Trim(), "userfaultfd", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Arms every call of the plan outside the fault handler (counts start at zero): the second call of
    /// each kind fails for certain (so that a kind a run makes only a few calls of is tested too), each
    /// later one at the kind's rate.
    /// </summary>
    public void Arm(int seed)
    {
        FailureInjection.Reset();
        // Each plan and kind its own draws (the name's characters: stable across processes).
        ulong salt = Name.Aggregate(17UL, (hash, c) => unchecked(hash * 31 + c));
        foreach (var (kind, errno, rate) in Calls)
            FailureInjection.Configure(kind, FailureInjection.Context.Api, 2, rate, errno,
                unchecked(((ulong)seed * 1_000_003 + (ulong)kind) ^ salt));
    }

    public int ErrnoOf(Kind kind) => Calls.First(c => c.Kind == kind).Errno;

    /// <summary>
    /// Whether <paramref name="exception"/> is what the engine documents for a system call that failed
    /// with one of the plan's errnos: ENOMEM, the kernel's answer at its mapping limit, is a
    /// CowMappingBudgetExceededException whose inner exception is the CowSystemException; any other
    /// errno is a CowSystemException.
    /// </summary>
    public bool IsDocumentedFailure(Exception exception, out int errno)
    {
        errno = exception switch
        {
            CowMappingBudgetExceededException { InnerException: CowSystemException { ErrorNumber: FailureInjection.ENOMEM } } => FailureInjection.ENOMEM,
            CowSystemException { ErrorNumber: not FailureInjection.ENOMEM } system => system.ErrorNumber,
            _ => 0,
        };
        int found = errno;
        return found != 0 && Calls.Any(c => c.Errno == found);
    }

    /// <summary>What the injection saw since it was armed: (kind -> calls, failures) outside the fault handler.</summary>
    public static Dictionary<Kind, (ulong Calls, ulong Failed)> ReadCounts() =>
        FailureInjection.AllKinds.ToDictionary(kind => kind,
            kind => (FailureInjection.Calls(kind, FailureInjection.Context.Api), FailureInjection.Injected(kind, FailureInjection.Context.Api)));

    /// <summary>The kinds a model run must have made fail at least once, for this process's write protection.</summary>
    public IEnumerable<Kind> MustFail(IEnumerable<Kind> reachedByTheModel) =>
        Calls.Select(c => c.Kind).Intersect(reachedByTheModel)
             .Where(kind => UsesUserfaultfd || kind is not (Kind.UffdRegister or Kind.UffdWriteprotect));

    public override string ToString() => $"{Name} ({string.Join(", ", Calls.Select(c => $"{FailureInjection.Name(c.Kind)} {c.RatePerMillion / 10_000.0:0.##}%"))})";
}

/// <summary>The counts of several injected runs, added up per plan; printed as the table of docs/reliability.md.</summary>
internal sealed class InjectionTotals(string test)
{
    private readonly Dictionary<(InjectionPlan Plan, Kind Kind), (ulong Calls, ulong Failed)> _counts = new();
    private readonly Dictionary<InjectionPlan, (long Operations, long Refused)> _operations = new();

    public void Add(InjectionPlan plan, Dictionary<Kind, (ulong Calls, ulong Failed)> counts, long operations, long refused)
    {
        foreach (var (kind, (calls, failed)) in counts)
        {
            var sum = _counts.GetValueOrDefault((plan, kind));
            _counts[(plan, kind)] = (sum.Calls + calls, sum.Failed + failed);
        }
        var ops = _operations.GetValueOrDefault(plan);
        _operations[plan] = (ops.Operations + operations, ops.Refused + refused);
    }

    /// <summary>Fails unless each plan made every kind it must fail (<see cref="InjectionPlan.MustFail"/>) fail at least once.</summary>
    public void AssertEveryKindFailed(IEnumerable<Kind> reachedByTheModel)
    {
        Kind[] reached = reachedByTheModel.ToArray();
        foreach (InjectionPlan plan in _operations.Keys)
            foreach (Kind kind in plan.MustFail(reached))
                Assert.True(_counts.GetValueOrDefault((plan, kind)).Failed > 0,
                    $"{test}, plan '{plan}': no {FailureInjection.Name(kind)} call failed, so that call site was not tested:\n{Table()}");
    }

    /// <summary>One line per plan and kind: "INJECTED test | backend | plan | kind | errno | calls | failed".</summary>
    public string Table()
    {
        string backend = InjectionPlan.UsesUserfaultfd ? "userfaultfd" : "mprotect";
        var text = new StringBuilder();
        foreach (var (plan, (operations, refused)) in _operations)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"INJECTED {test} | {backend} | {plan.Name} | {operations} API calls, {refused} refused as documented, each checked against the model");
            foreach (var (kind, errno, _) in plan.Calls)
            {
                var (calls, failed) = _counts.GetValueOrDefault((plan, kind));
                if (calls != 0)
                    text.AppendLine(CultureInfo.InvariantCulture, $"INJECTED {test} | {backend} | {plan.Name} | {FailureInjection.Name(kind)} | errno {errno} | {calls} calls | {failed} failed");
            }
        }
        return text.ToString().TrimEnd();
    }
}
