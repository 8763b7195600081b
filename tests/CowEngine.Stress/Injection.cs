using System.Collections.Concurrent;
using CowEngine.TestSupport;
using Kind = CowEngine.TestSupport.FailureInjection.Kind;

namespace CowEngine.Stress;

/// <summary>
/// --inject-rate: the system calls of API calls and of the background reclaimer fail at that rate
/// (per million calls; native/include/cow_test_inject.h), never inside the fault handler (a failure
/// there ends the process by design: FaultPathInjectionTests). An API call that fails must throw the
/// documented exception - a CowSystemException, or for ENOMEM a CowMappingBudgetExceededException
/// whose inner exception is the CowSystemException - and change nothing: the workers that hold their
/// view exclusively check it against its model at once, and the checkpoints audit everything (slots,
/// reference counts, mappings, contents) with injection suspended.
/// </summary>
internal static class Injection
{
    /// <summary>(kind, errno, share of the rate): mincore runs for every page a diff compares, so far fewer of its calls fail.</summary>
    private static readonly (Kind Kind, int Errno, uint Divisor)[] Plan =
    [
        (Kind.MapSlots, FailureInjection.ENOMEM, 1), (Kind.MapZero, FailureInjection.ENOMEM, 1), (Kind.Protect, FailureInjection.EAGAIN, 1),
        (Kind.ReserveFixed, FailureInjection.ENOMEM, 1), (Kind.UffdRegister, FailureInjection.EPERM, 1),
        (Kind.UffdWriteprotect, FailureInjection.ENOMEM, 1), (Kind.Punch, FailureInjection.EIO, 1),
        (Kind.Mincore, FailureInjection.ENOMEM, 100),
    ];

    private static readonly ConcurrentDictionary<string, long> RefusalsByOperation = new();
    private static volatile bool _enabled;
    private static Dictionary<Kind, (ulong Calls, ulong Failed)>? _counts;

    public static bool Enabled => _enabled;

    public static long Refusals => RefusalsByOperation.Values.Sum();

    public static ulong Injected => _counts?.Values.Aggregate(0UL, (sum, c) => sum + c.Failed) ?? 0;

    public static void Arm(uint ratePerMillion, int seed)
    {
        FailureInjection.Reset();
        foreach (var (kind, errno, divisor) in Plan)
            FailureInjection.Configure(kind, FailureInjection.Context.Api, 0, Math.Max(1, ratePerMillion / divisor), errno,
                unchecked((ulong)seed * 7_919 + (ulong)kind));
        _enabled = true;
        Report.Line($"failure injection: {string.Join(", ", Plan.Select(p => $"{FailureInjection.Name(p.Kind)} errno {p.Errno} at {Math.Max(1, ratePerMillion / p.Divisor)}/1e6"))} of the calls outside the fault handler");
    }

    /// <summary>Whether <paramref name="exception"/> is the documented outcome of an injected failure.</summary>
    public static bool IsRefusal(Exception exception) => _enabled && exception is CowSystemException
        or CowMappingBudgetExceededException { InnerException: CowSystemException { ErrorNumber: FailureInjection.ENOMEM } };

    /// <summary>Counts a refused operation (by name without the view it came from, for the summary).</summary>
    public static void Refused(string operation)
    {
        int from = operation.IndexOf(" from #", StringComparison.Ordinal);
        RefusalsByOperation.AddOrUpdate(from < 0 ? operation : operation[..from], 1, (_, n) => n + 1);
    }

    /// <summary>No failure meanwhile (audits, the running checks' statistics, the final teardown's counts).</summary>
    public static IDisposable? Suspend() => _enabled ? FailureInjection.Suspend() : null;

    /// <summary>Reads the counts and disarms everything; prints one line per kind and per refused operation.</summary>
    public static void Disarm()
    {
        if (!_enabled)
            return;
        _counts = FailureInjection.AllKinds.ToDictionary(kind => kind,
            kind => (FailureInjection.Calls(kind, FailureInjection.Context.Api), FailureInjection.Injected(kind, FailureInjection.Context.Api)));
        FailureInjection.Reset();
        _enabled = false;
        foreach (var (kind, errno, _) in Plan)
        {
            var (calls, failed) = _counts[kind];
            if (calls != 0)
                Report.Line($"INJECTION {FailureInjection.Name(kind)} errno {errno}: {calls} calls, {failed} failed");
        }
        foreach (var (operation, count) in RefusalsByOperation.OrderBy(p => p.Key, StringComparer.Ordinal))
            Report.Line($"INJECTION refused {operation}: {count}");
    }
}
