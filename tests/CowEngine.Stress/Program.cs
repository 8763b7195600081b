namespace CowEngine.Stress;

/// <summary>
/// The stress and soak program: `dotnet CowEngine.Stress.dll [--seconds N | --minutes N] [--seed S]
/// [--threads N]`. See <see cref="StressOptions.Usage"/> for every option and the exit codes, and
/// docs/reliability.md for what it checks.
/// </summary>
internal static class Program
{
    private const int UsageExitCode = 2;
    private const int HarnessFailureExitCode = 4;

    private static int Main(string[] args)
    {
        if (args.Length == 4 && args[0] == Watchdog.Option)
            return Watchdog.Watch(args);
        if (args.Length >= 1 && args[0] == GcStarvationProbe.Option)
            return GcStarvationProbe.Run(args);
        StressOptions? options = StressOptions.Parse(args, out string? error);
        if (options is null)
        {
            if (!string.IsNullOrEmpty(error))
                Console.Error.WriteLine($"CowEngine.Stress: {error}");
            Console.Error.WriteLine(StressOptions.Usage);
            return string.IsNullOrEmpty(error) ? 0 : UsageExitCode;
        }
        using ActivityBoard board = ActivityBoard.Create();
        try
        {
            return new StressRun(options, board).Execute();
        }
        catch (Exception exception)
        {
            // An exception outside the workers (set-up, audit, teardown) ends the run: report it as such.
            Report.Line($"HARNESS FAILURE: {exception}");
            Report.Line($"RESULT status=HARNESS-FAILURE seed={options.Seed} mismatches={Report.Failures}");
            return HarnessFailureExitCode;
        }
        finally
        {
            board.RunState = ActivityBoard.RunStateFinished;
            board.Delete();
        }
    }
}
