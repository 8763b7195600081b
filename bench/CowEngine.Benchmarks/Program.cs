using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Scenarios;

namespace CowEngine.Benchmarks;

/// <summary>
/// CowEngine against fork() (issue 3). Usage:
/// <code>
///   CowEngine.Benchmarks                    the full suite, each scenario in its own process
///   CowEngine.Benchmarks --quick            the same, smallest sizes, one iteration: a smoke check (~1-2 min)
///   CowEngine.Benchmarks [--quick] ARGS...  BenchmarkDotNet's own arguments (--filter, --list flat, ...),
///                                           run in this process
///   CowEngine.Benchmarks profile ...        an engine loop alone, to run under perf or strace (<see cref="ProfileLoops"/>)
/// </code>
/// Results: BenchmarkDotNet.Artifacts/results (quick: BenchmarkDotNet.Artifacts/quick/results) under
/// the working directory: per scenario a GitHub markdown table, a CSV (times in us, bare numbers)
/// and a CSV of every measurement, plus machine.json. bench/report.py turns them into
/// docs/benchmarks.md's tables and chart.
/// </summary>
public static class Program
{
    /// <summary>The scenarios of issue 3, in its order, then the mapping budget's cost (7).</summary>
    internal static readonly Type[] Scenarios =
    [
        typeof(FirstSnapshotBenchmarks),
        typeof(SnapshotFrequencyBenchmarks),
        typeof(FirstWriteBenchmarks),
        typeof(RollbackBenchmarks),
        typeof(WriterThreadsBenchmarks),
        typeof(MemoryBenchmarks),
        typeof(MappingBudgetBenchmarks),
    ];

    public static int Main(string[] args)
    {
        if (args is ["profile", ..])
            return ProfileLoops.Run(args[1..]);

        var arguments = args.ToList();
        bool quick = arguments.Remove("--quick");
        BenchSettings.Quick = quick;
        string artifacts = Path.GetFullPath(quick ? "BenchmarkDotNet.Artifacts/quick" : "BenchmarkDotNet.Artifacts");
        bool selectsBenchmarks = arguments.Any(a => a is "--filter" or "-f" or "--list" or "--allCategories" or "--anyCategories");

        if (!selectsBenchmarks)
        {
            string results = Path.Combine(artifacts, "results");
            MachineInfo.Write(results, quick);
            int exitCode = SuiteRunner.Run(Scenarios, quick, arguments);
            MachineInfo.RecordEnd(results);
            return exitCode;
        }
        // A run of chosen scenarios records its own machine and load (the suite's scenarios, each run
        // by SuiteRunner in a process of its own, are described by the suite's machine.json).
        bool recordsRun = !arguments.Contains("--list") && Environment.GetEnvironmentVariable(SuiteRunner.ChildVariable) is null;
        string selectedResults = Path.Combine(artifacts, "results");
        if (recordsRun)
            MachineInfo.Write(selectedResults, quick, MachineInfo.SelectedRunFile, arguments);
        int result = RunInThisProcess(arguments.ToArray(), artifacts);
        if (recordsRun)
            MachineInfo.RecordEnd(selectedResults, MachineInfo.SelectedRunFile);
        return result;
    }

    private static int RunInThisProcess(string[] args, string artifacts)
    {
        Summary[] summaries = BenchmarkSwitcher.FromTypes(Scenarios).Run(args, GlobalConfig.Create(artifacts)).ToArray();
        bool failed = summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        return failed ? 1 : 0;
    }
}
