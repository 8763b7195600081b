using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using CowEngine.Benchmarks.Infrastructure;
using CowEngine.Benchmarks.Scenarios;

namespace CowEngine.Benchmarks;

/// <summary>
/// CowEngine against fork() (issue 3), and against hand-written copies (issue 13). Usage:
/// <code>
///   CowEngine.Benchmarks                    the full suite, each scenario in its own process
///   CowEngine.Benchmarks --quick            the same, smallest sizes, one iteration: a smoke check (~1-2 min)
///   CowEngine.Benchmarks [--quick] --scenarios 2,3,3b,5,8
///                                           those scenarios of the suite (numbers of docs/benchmarks.md
///                                           or class names), each in its own process
///   CowEngine.Benchmarks [--quick] ARGS...  BenchmarkDotNet's own arguments (--filter, --list flat, ...),
///                                           run in this process
///   CowEngine.Benchmarks profile ...        an engine loop alone, to run under perf or strace (<see cref="ProfileLoops"/>)
/// </code>
/// Results: BenchmarkDotNet.Artifacts/results (quick: BenchmarkDotNet.Artifacts/quick/results) under
/// the working directory: per scenario a GitHub markdown table, a CSV (times in us, bare numbers)
/// and a CSV of every measurement, plus machine.json. bench/report.py turns them into
/// docs/benchmarks.md's tables and chart. The engines take their write protection from
/// COWENGINE_WRITE_PROTECTION (the benchmarks set no option); when it names another mechanism than
/// mprotect, the results go to a folder of that name instead, e.g.
/// BenchmarkDotNet.Artifacts/userfaultfd/results (quick: BenchmarkDotNet.Artifacts/quick/userfaultfd/results),
/// and mprotect's are left alone.
/// </summary>
public static class Program
{
    /// <summary>The scenarios of issue 3, in its order (3 with the isolated first writes of issue 12,
    /// a process of their own), then the mapping budget's cost (7), and issue 13's hot loop (8) and
    /// rewind buffer (9), and issue 14's typed access (10) and zero page (11); each with its number in
    /// docs/benchmarks.md.</summary>
    internal static readonly (string Number, Type Type)[] Suite =
    [
        ("1", typeof(FirstSnapshotBenchmarks)),
        ("2", typeof(SnapshotFrequencyBenchmarks)),
        ("3", typeof(FirstWriteBenchmarks)),
        ("3b", typeof(IsolatedFirstWriteBenchmarks)),
        ("4", typeof(RollbackBenchmarks)),
        ("5", typeof(WriterThreadsBenchmarks)),
        ("6", typeof(MemoryBenchmarks)),
        ("7", typeof(MappingBudgetBenchmarks)),
        ("8", typeof(HotLoopBenchmarks)),
        ("9", typeof(RewindBufferBenchmarks)),
        ("10", typeof(TypedAccessBenchmarks)),
        ("11", typeof(ZeroPageBenchmarks)),
    ];

    internal static Type[] Scenarios => Suite.Select(s => s.Type).ToArray();

    public static int Main(string[] args)
    {
        if (args is ["profile", ..])
            return ProfileLoops.Run(args[1..]);

        if (BenchSettings.ReadWriteProtection() is { } invalid)
            return Fail(invalid);
        var arguments = args.ToList();
        bool quick = arguments.Remove("--quick");
        BenchSettings.Quick = quick;
        string artifacts = Path.GetFullPath(Path.Combine("BenchmarkDotNet.Artifacts", quick ? "quick" : "", BenchSettings.ArtifactsSubfolder));
        bool selectsBenchmarks = arguments.Any(a => a is "--filter" or "-f" or "--list" or "--allCategories" or "--anyCategories");

        Type[] scenarios = Scenarios;
        int named = arguments.IndexOf("--scenarios");
        if (named >= 0)
        {
            if (named + 1 >= arguments.Count)
                return Fail("--scenarios needs a list, e.g. --scenarios 2,3,3b,5,8.");
            if (selectsBenchmarks)
                return Fail("--scenarios and BenchmarkDotNet's --filter/--list/--*Categories select benchmarks both; give one.");
            if (Select(arguments[named + 1], out string? unknown) is not { } chosen)
                return Fail($"--scenarios: no scenario '{unknown}'; the suite's are {string.Join(", ", Suite.Select(s => $"{s.Number} ({s.Type.Name})"))}.");
            scenarios = chosen;
            arguments.RemoveRange(named, 2);
        }

        if (!selectsBenchmarks)
        {
            // The whole suite, or the scenarios --scenarios names: machine.json describes this run.
            string results = Path.Combine(artifacts, "results");
            MachineInfo.Write(results, quick, scenarios: named >= 0 ? scenarios : null);
            int exitCode = SuiteRunner.Run(scenarios, quick, arguments);
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

    /// <summary>The suite's scenarios a comma-separated list names (numbers such as 3b, or class
    /// names with or without "Benchmarks", any case), in the suite's order; null, with the first name
    /// it does not know, if there is one.</summary>
    private static Type[]? Select(string list, out string? unknown)
    {
        var chosen = new HashSet<Type>();
        foreach (string name in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            (string Number, Type Type) match = Suite.FirstOrDefault(s =>
                string.Equals(s.Number, name, StringComparison.OrdinalIgnoreCase)
                || string.Equals(s.Type.Name, name, StringComparison.OrdinalIgnoreCase)
                || string.Equals(s.Type.Name, name + "Benchmarks", StringComparison.OrdinalIgnoreCase));
            if (match.Type is null)
            {
                unknown = name;
                return null;
            }
            chosen.Add(match.Type);
        }
        unknown = chosen.Count == 0 ? list : null;
        return chosen.Count == 0 ? null : Suite.Select(s => s.Type).Where(chosen.Contains).ToArray();
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"CowEngine.Benchmarks: {message}");
        return 2;
    }

    private static int RunInThisProcess(string[] args, string artifacts)
    {
        Summary[] summaries = BenchmarkSwitcher.FromTypes(Scenarios).Run(args, GlobalConfig.Create(artifacts)).ToArray();
        bool failed = summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        return failed ? 1 : 0;
    }
}
