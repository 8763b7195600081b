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
    /// <summary>The scenarios of issue 3, in its order.</summary>
    internal static readonly Type[] Scenarios =
    [
        typeof(FirstSnapshotBenchmarks),
        typeof(SnapshotFrequencyBenchmarks),
        typeof(FirstWriteBenchmarks),
        typeof(RollbackBenchmarks),
        typeof(WriterThreadsBenchmarks),
        typeof(MemoryBenchmarks),
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
        return RunInThisProcess(arguments.ToArray(), artifacts);
    }

    private static int RunInThisProcess(string[] args, string artifacts)
    {
        Summary[] summaries = BenchmarkSwitcher.FromTypes(Scenarios).Run(args, GlobalConfig.Create(artifacts)).ToArray();
        bool failed = summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        return failed ? 1 : 0;
    }
}
