using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// The CI run of the stress program (tests/CowEngine.Stress, see docs/reliability.md): writers,
/// snapshots, restores, disposals, GCs and pipe reads at once for a minute, every byte checked
/// against a model, the whole engine audited at checkpoints and after everything is disposed. It
/// runs as a child process because what it tests can end a process (a fault the engine cannot
/// resolve aborts; a deadlock needs the watchdog to kill it).
/// </summary>
public sealed class StressRunTests
{
    /// <summary>Long enough for thousands of snapshots and restores, short enough for CI.</summary>
    private const int Seconds = 60;

    [Fact]
    public async Task StressRun_OneMinuteOfConcurrentOperations_ReportsNoMismatch()
    {
        // A fresh seed each run (printed, so a failure can be replayed with --seed).
        int seed = Random.Shared.Next(1, int.MaxValue);
        StressChild.Result run = await StressChild.RunAsync(
            ["--seconds", Seconds.ToString(CultureInfo.InvariantCulture), "--seed", seed.ToString(CultureInfo.InvariantCulture)],
            timeout: TimeSpan.FromSeconds(Seconds + 240));
        TestContext.Current.TestOutputHelper?.WriteLine(run.ToString());

        Assert.False(run.TimedOut, $"the stress run did not end (seed {seed}):\n{run}");
        StressChild.Summary summary = StressChild.Summary.Parse(run.StandardOutput)
            ?? throw new Xunit.Sdk.XunitException($"the stress run printed no RESULT line (seed {seed}):\n{run}");
        Assert.True(summary.Mismatches == 0, $"the stress run reported {summary.Mismatches} mismatches (seed {seed}):\n{run}");
        Assert.True(summary.Operations > 0, $"the stress run did no operation (seed {seed}):\n{run}");
        Assert.True(run.ExitCode == 0, $"the stress run exited with {run.ExitCode} (seed {seed}):\n{run}");
        Assert.Equal("PASS", summary.Status);
    }
}

/// <summary>
/// The stress run's watchdog must itself work, or "no deadlock" means nothing: a thread that hangs
/// inside an operation must end the run with a diagnostic naming it, whether the runtime still runs
/// (exit code 3) or is frozen by a GC that cannot suspend the hung thread, the state a deadlocked
/// fault handler leaves the process in (the watchdog process then kills it: SIGKILL).
/// </summary>
public sealed class StressWatchdogTests
{
    private const int SigKill = 9;

    [Theory]
    [InlineData("managed", 3)]
    [InlineData("gc", 128 + SigKill)]
    public async Task StressRun_WithAHungThread_IsStoppedByTheWatchdogWithADiagnostic(string hang, int expectedExitCode)
    {
        StressChild.Result run = await StressChild.RunAsync(
            ["--seconds", "120", "--watchdog-seconds", "3", "--simulate-hang", hang],
            timeout: TimeSpan.FromSeconds(100));
        TestContext.Current.TestOutputHelper?.WriteLine(run.ToString());

        Assert.False(run.TimedOut, $"the watchdog did not end the hung run:\n{run}");
        Assert.Equal(expectedExitCode, run.ExitCode);
        Assert.Contains("WATCHDOG:", run.StandardOutput);
        Assert.Matches(new Regex(@"WATCHDOG:\s+simulated-hang\s+IN simulated " + hang + " hang"), run.StandardOutput);
        Assert.Contains("RESULT status=DEADLOCK", run.StandardOutput);
    }
}

/// <summary>Runs CowEngine.Stress.dll (copied next to the tests by the project reference) as `dotnet CowEngine.Stress.dll args`.</summary>
internal static class StressChild
{
    public static string AssemblyPath => Path.Combine(AppContext.BaseDirectory, "CowEngine.Stress.dll");

    public sealed record Result(int ExitCode, bool TimedOut, string StandardOutput, string StandardError)
    {
        public override string ToString() =>
            $"exit code {ExitCode}{(TimedOut ? " (timed out, killed)" : "")}\n--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";
    }

    /// <summary>The program's last line: `RESULT status=... operations=N ... mismatches=N`.</summary>
    public sealed record Summary(string Status, long Operations, long Mismatches)
    {
        private static readonly Regex Line = new(@"RESULT status=(?<status>\S+) .*\boperations=(?<operations>\d+) .*\bmismatches=(?<mismatches>\d+)");

        public static Summary? Parse(string output)
        {
            Match match = Line.Match(output);
            return match.Success
                ? new Summary(match.Groups["status"].Value,
                    long.Parse(match.Groups["operations"].Value, CultureInfo.InvariantCulture),
                    long.Parse(match.Groups["mismatches"].Value, CultureInfo.InvariantCulture))
                : null;
        }
    }

    public static async Task<Result> RunAsync(IEnumerable<string> arguments, TimeSpan timeout)
    {
        Assert.True(File.Exists(AssemblyPath), $"{AssemblyPath} is missing: the test project must reference CowEngine.Stress");
        ChildResult run = await ChildProcess.RunDotnetAsync("stress", [AssemblyPath, .. arguments], timeout);
        // The watchdog process (a grandchild) shares our pipes and leaves within a second of its parent.
        return new Result(run.ExitCode, run.TimedOut, run.StandardOutput, run.StandardError);
    }

}
