using System.Globalization;
using System.Text.RegularExpressions;

namespace CowEngine.Tests;

/// <summary>
/// The short form of the stress run with failure injection (`CowEngine.Stress --inject-rate N`; the
/// long form is `./build.sh stress --minutes N --inject-rate N`, docs/reliability.md): writers,
/// snapshots, restores, disposals, GCs and pipe reads at once while 2% of the system calls outside
/// the fault handler fail. Every refused call must throw the documented exception and change
/// nothing, checked against the model at once and by the checkpoint audits; afterwards the engine
/// must be back to empty (the reclaimer retried every hole punch that failed). The run prints what it
/// injected per call, and what was refused per operation.
/// </summary>
public sealed partial class StressInjectionTests
{
    private const int Seconds = 15;
    private const int RatePerMillion = 20_000;

    [Fact]
    public async Task StressRun_WithSystemCallsFailing_ReportsNoMismatchAndEndsEmpty()
    {
        int seed = Random.Shared.Next(1, int.MaxValue);
        StressChild.Result run = await StressChild.RunAsync(
            ["--seconds", Seconds.ToString(CultureInfo.InvariantCulture), "--seed", seed.ToString(CultureInfo.InvariantCulture),
             "--inject-rate", RatePerMillion.ToString(CultureInfo.InvariantCulture)],
            timeout: TimeSpan.FromSeconds(Seconds + 240));
        TestContext.Current.TestOutputHelper?.WriteLine(run.ToString());

        Assert.False(run.TimedOut, $"the stress run did not end (seed {seed}):\n{run}");
        StressChild.Summary summary = StressChild.Summary.Parse(run.StandardOutput)
            ?? throw new Xunit.Sdk.XunitException($"the stress run printed no RESULT line (seed {seed}):\n{run}");
        Assert.True(summary.Mismatches == 0, $"the stress run reported {summary.Mismatches} mismatches (seed {seed}):\n{run}");
        Assert.True(run.ExitCode == 0, $"the stress run exited with {run.ExitCode} (seed {seed}):\n{run}");
        Match injection = Injected().Match(run.StandardOutput);
        Assert.True(injection.Success, $"the RESULT line does not say what was injected:\n{run}");
        Assert.True(long.Parse(injection.Groups["injected"].Value, CultureInfo.InvariantCulture) > 0, $"nothing was injected:\n{run}");
        Assert.True(long.Parse(injection.Groups["refused"].Value, CultureInfo.InvariantCulture) > 0, $"no API call was refused:\n{run}");
        Assert.Contains("after disposing all", run.StandardOutput);
        Assert.Equal("PASS", summary.Status);
    }

    [GeneratedRegex(@"RESULT status=\S+ .*\binjected=(?<injected>\d+) refused=(?<refused>\d+)")]
    private static partial Regex Injected();
}
