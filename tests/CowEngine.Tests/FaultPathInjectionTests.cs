using System.Text.RegularExpressions;
using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// System calls made to fail on purpose (native/include/cow_test_inject.h) where the engine cannot
/// hand the failure to a caller: inside the fault handler (copy, map, protect, userfaultfd ioctl),
/// and in the clean-up after a failed call. Each runs in a child process (CowEngine.TestChild,
/// InjectionScenarios.cs). What must happen: a failure the handler cannot get past ends the process
/// with the one-line fatal diagnostic naming the call and its errno (SIGABRT), never a hang, never a
/// return into a write that would fault forever, never wrong bytes; a failure that may pass (ENOMEM,
/// EAGAIN, EINTR) is tried once more, and then the access completes with the right bytes. Also the
/// engine's creation, each of whose calls fails in turn: the documented exception, nothing leaked.
/// </summary>
/// <remarks>The cases depend on the write protection (COWENGINE_WRITE_PROTECTION): with userfaultfd the
/// handler makes the userfaultfd ioctls, with mprotect it does not. A failed copy (no slot left for it)
/// is FatalFaultTests' capacity case; a hole punch never happens inside the handler (a fault never
/// drops the last reference to a slot).</remarks>
public sealed partial class FaultPathInjectionTests
{
    /// <summary>Children started at once: each is mostly the runtime starting, and they are independent.</summary>
    private const int ConcurrentChildren = 4;

    /// <summary>(access, kind, errno, the call the diagnostic must name): every call the fault path makes, for this write protection.</summary>
    private static (string Access, string Kind, string Errno, string Call)[] FatalCases => InjectionPlan.UsesUserfaultfd
        ?
        [
            ("write-forward", "MapSlots", "ENOMEM", "mmap"),
            ("write-forward", "UffdRegister", "ENOMEM", "UFFDIO_REGISTER"),
            ("write-reverse", "UffdWriteprotect", "ENOMEM", "UFFDIO_WRITEPROTECT"),
            ("write-private", "UffdWriteprotect", "EAGAIN", "UFFDIO_WRITEPROTECT"),
            ("write-zero", "UffdRegister", "ENOMEM", "UFFDIO_REGISTER"),
            ("read", "UffdRegister", "EPERM", "UFFDIO_REGISTER"),
            ("read", "Protect", "EAGAIN", "mprotect"),
            ("read-zero", "MapZero", "EAGAIN", "mmap"),
        ]
        :
        [
            ("write-forward", "MapSlots", "ENOMEM", "mmap"),
            ("write-reverse", "Protect", "ENOMEM", "mprotect"),
            ("write-private", "Protect", "EPERM", "mprotect"),
            ("write-zero", "MapSlots", "ENOMEM", "mmap"),
            ("read", "MapSlots", "EAGAIN", "mmap"),
            ("read-zero", "MapZero", "ENOMEM", "mmap"),
        ];

    /// <summary>(access, kind, errno): a failure that may pass, injected once, which the handler tries again.</summary>
    private static (string Access, string Kind, string Errno)[] RetriedCases => InjectionPlan.UsesUserfaultfd
        ? [("write-forward", "UffdRegister", "ENOMEM"), ("write-reverse", "UffdWriteprotect", "EAGAIN"), ("read", "UffdWriteprotect", "ENOMEM"),
           ("read-zero", "MapZero", "EAGAIN")]
        : [("write-forward", "MapSlots", "ENOMEM"), ("write-reverse", "Protect", "EINTR"), ("read", "MapSlots", "EAGAIN"),
           ("read-zero", "MapZero", "ENOMEM"), ("write-zero", "MapSlots", "EINTR")];

    [Fact]
    public async Task FailuresInsideTheFaultHandler_EndTheProcessWithTheDiagnosticNamingTheCall()
    {
        var cases = FatalCases;
        ChildResult[] results = await RunAllAsync(cases.Select(c => $"inject-fault:{c.Access}:{c.Kind}:{c.Errno}:every"));
        var problems = new List<string>();
        for (int i = 0; i < cases.Length; i++)
        {
            var (_, _, errno, call) = cases[i];
            ChildResult result = results[i];
            string? problem = AbortedWithOneFatalLine(result);
            Match address = FaultAddress().Match(result.StandardOutput);
            string expected = $"CowEngine: fatal: cannot resolve a copy-on-write fault at {(address.Success ? address.Groups[1].Value : "?")}: {call} failed with {errno}";
            if (problem is null && !address.Success)
                problem = "the child did not say where it faults";
            else if (problem is null && !result.StandardError.Contains(expected, StringComparison.Ordinal))
                problem = $"no line '{expected}'";
            else if (problem is null && errno == "ENOMEM" && call is "mmap" or "mprotect" && !result.StandardError.Contains("vm.max_map_count", StringComparison.Ordinal))
                problem = "the ENOMEM of a mapping call does not name vm.max_map_count";
            if (problem is not null)
                problems.Add($"{result.Scenario}: {problem}\n{result}");
            else
                TestContext.Current.TestOutputHelper?.WriteLine($"{result.Scenario}: {result.StandardError.Split('\n').First(l => l.StartsWith("CowEngine: fatal", StringComparison.Ordinal))}");
        }
        Assert.True(problems.Count == 0, string.Join("\n\n", problems));
    }

    [Fact]
    public async Task FailuresInsideTheFaultHandlerThatMayPass_AreTriedAgainAndTheAccessCompletes()
    {
        var cases = RetriedCases;
        ChildResult[] results = await RunAllAsync(cases.Select(c => $"inject-fault:{c.Access}:{c.Kind}:{c.Errno}:once"));
        var problems = new List<string>();
        foreach (ChildResult result in results)
        {
            string? problem = result.TimedOut ? "a hang"
                : result.ExitCode != 0 ? $"exit code {result.ExitCode}"
                : !result.StandardOutput.Contains("failures injected in the handler: 1; bytes ok: True", StringComparison.Ordinal) ? "wrong bytes, or no failure injected"
                : !result.StandardOutput.Contains("after dispose: slots in use 0, committed 0", StringComparison.Ordinal) ? "memory left after dispose"
                : result.StandardError.Contains("CowEngine: fatal", StringComparison.Ordinal) ? "a fatal diagnostic"
                : null;
            if (problem is not null)
                problems.Add($"{result.Scenario}: {problem}\n{result}");
        }
        Assert.True(problems.Count == 0, string.Join("\n\n", problems));
    }

    [Fact]
    public async Task UnmappingsRefusedInsideTheFaultHandler_OnlyKeepTheEngineAboveItsBudget()
    {
        ChildResult result = await ChildProcess.RunAsync("inject-evict-fails");

        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Matches(new Regex(@"unmappings refused inside the handler: [1-9]\d*; bytes ok: True"), result.StandardOutput);
    }

    [Theory]
    [InlineData("MapZero", "live views 0, slots in use 0")] // CreateRegion's mapping of the zero page
    [InlineData("MapSlots", "live views 1, slots in use 16")] // PrepareForWrite's mapping of a fresh region's slots
    public async Task ACleanUpThatFailsAfterAFailedMmap_LeavesTheRangeAsItWas_AndTheCallThrows(string kind, string left)
    {
        // The mmap itself failed: the kernel replaced nothing, so a refused clean-up changes nothing either.
        ChildResult result = await ChildProcess.RunAsync($"inject-cleanup-fails:{kind}");

        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Matches(new Regex(@"refused: CowMappingBudgetExceededException errno 12: .*; clean-ups refused [1-9]\d*; " + Regex.Escape(left)),
            result.StandardOutput);
        if (kind == "MapSlots")
            Assert.Contains("the region still reads zero: True", result.StandardOutput);
        Assert.Contains("copy-on-write afterwards ok: True", result.StandardOutput);
        Assert.DoesNotContain("CowEngine: fatal", result.StandardError);
    }

    [Fact]
    public async Task ACleanUpThatFailsAfterTheMmapReplacedTheRange_EndsTheProcessRatherThanTrustIt()
    {
        // With userfaultfd the registration follows the mmap: when it fails, the range maps a slot about to
        // be freed; if it cannot be made PROT_NONE again, nothing it maps can be trusted. (With mprotect a
        // mapping is one call: no step can fail after the mmap replaced the range.)
        string scenario = InjectionPlan.UsesUserfaultfd ? "inject-cleanup-fails:UffdRegister" : "inject-cleanup-fails:MapSlots";
        ChildResult result = await ChildProcess.RunAsync(scenario);

        if (!InjectionPlan.UsesUserfaultfd)
        {
            Assert.True(result.ExitCode == 0 && !result.StandardError.Contains("CowEngine: fatal", StringComparison.Ordinal), result.ToString());
            return;
        }
        AssertAbortedWithOneFatalLine(result);
        Assert.Contains("preparing a region's pages for writing whose uffd_register and clean-up fail", result.StandardOutput);
        Assert.Matches(new Regex(@"CowEngine: fatal: cannot restore the pages at 0x[0-9a-f]+: UFFDIO_REGISTER failed with ENOMEM after their mmap, " +
                                 @"then mmap\(PROT_NONE\) failed with ENOMEM \(the process has reached vm.max_map_count mappings\); what they map is unknown"),
            result.StandardError);
    }

    [Fact]
    public async Task EachCallOfAnEnginesCreationFailing_ThrowsTheDocumentedExceptionAndLeavesNothingBehind()
    {
        ChildResult result = await ChildProcess.RunAsync("inject-setup");
        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.ExitCode == 0, result.ToString());

        // (case, what it must throw, the errno in it); then nothing left behind. An injected ENOMEM
        // reaches neither the address-space limit nor vm.max_map_count, so it is a CowSystemException
        // that says so (Errno.ToException tells the two limits apart from everything else).
        (string Case, string Outcome)[] refused =
        [
            ("arena reservation", "CowSystemException errno 12"),
            ("view directory", "CowSystemException errno 12"),
            ("view table", "CowSystemException errno 11"),
            ("memfd_create", "CowSystemException errno 24"),
            ("ftruncate refused", "CowSystemException errno 1"),
            ("pool window", "CowSystemException errno 12"),
            ("an engine table", "CowSystemException errno 12"),
            ("userfaultfd", "PlatformNotSupportedException: CowEngine cannot use userfaultfd write protection: the kernel refused to open a userfaultfd (EPERM)"),
            ("UFFDIO_API", "PlatformNotSupportedException: CowEngine cannot use userfaultfd write protection: the kernel refused to open a userfaultfd (EPERM)"),
        ];
        foreach (var (label, outcome) in refused)
        {
            Match line = new Regex($@"SETUP {Regex.Escape(label)}: (?<outcome>.*); injected (?<injected>\d+); large mappings \+(?<maps>-?\d+) MiB, fds \+(?<fds>-?\d+)")
                .Match(result.StandardOutput);
            Assert.True(line.Success, $"no line for '{label}'\n{result}");
            Assert.StartsWith(outcome, line.Groups["outcome"].Value, StringComparison.Ordinal);
            Assert.Equal("1", line.Groups["injected"].Value);
            // A leak would be at least one of the engine's large tables (64 MiB and more); the runtime's own
            // heap may grow or shrink by less meanwhile.
            Assert.True(Math.Abs(long.Parse(line.Groups["maps"].Value, System.Globalization.CultureInfo.InvariantCulture)) < 64,
                $"'{label}' left large mappings behind: {line.Value}");
            Assert.True(line.Groups["fds"].Value == "0", $"'{label}' left file descriptors behind: {line.Value}");
        }
        Assert.Contains("SETUP ftruncate interrupted once: created (Mprotect); injected 1", result.StandardOutput);
        Assert.Contains("SETUP userfaultfd, automatic: created (Mprotect); injected 1", result.StandardOutput);
        Assert.Matches(new Regex(@"SETUP fstat in GetStats: CowSystemException errno 5: .*fstat.*; afterwards 4 slots in use"), result.StandardOutput);
        Assert.Contains("copy-on-write after the failures ok: True", result.StandardOutput);
    }

    private static void AssertAbortedWithOneFatalLine(ChildResult result)
    {
        string? problem = AbortedWithOneFatalLine(result);
        Assert.True(problem is null, $"{problem}\n{result}");
    }

    /// <summary>null if the child ended by abort() after exactly one fatal line of the engine; else what went wrong.</summary>
    private static string? AbortedWithOneFatalLine(ChildResult result) =>
        result.TimedOut ? "a hang instead of the diagnostic"
        : result.TerminatingSignal != ChildResult.SigAbrt ? "expected death by SIGABRT"
        : result.StandardOutput.Contains("UNEXPECTED", StringComparison.Ordinal) ? "the access returned"
        : result.StandardError.Split('\n').Count(line => line.StartsWith("CowEngine: fatal:", StringComparison.Ordinal)) != 1 ? "not exactly one fatal line"
        : null;

    private static async Task<ChildResult[]> RunAllAsync(IEnumerable<string> scenarios)
    {
        using var slots = new SemaphoreSlim(ConcurrentChildren);
        return await Task.WhenAll(scenarios.Select(async scenario =>
        {
            await slots.WaitAsync();
            try
            {
                return await ChildProcess.RunAsync(scenario);
            }
            finally
            {
                slots.Release();
            }
        }));
    }

    [GeneratedRegex(@"faulting at (0x[0-9a-f]+)")]
    private static partial Regex FaultAddress();
}
