using System.Diagnostics;
using System.Reflection;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>
/// Runs every scenario, each in a process of its own (this program again, with --filter). The
/// benchmarks run in-process, so a scenario that ends its process (the engine aborts when it cannot
/// resolve a fault, e.g. at vm.max_map_count) would otherwise take the rest of the suite with it,
/// and a process per scenario also starts each one with a clean address space and no leftover
/// memory. Engine and fork of one scenario always share a process run, so their ratios are
/// measured in one run. Each process inherits this one's environment, COWENGINE_WRITE_PROTECTION
/// included, so its engines use the same write protection and its results go to the same folder.
/// </summary>
internal static class SuiteRunner
{
    /// <summary>Set in the environment of each scenario's process: it is part of the suite's run.</summary>
    public const string ChildVariable = "COWENGINE_BENCH_SUITE_CHILD";

    public static int Run(IReadOnlyList<Type> scenarios, bool quick, IReadOnlyList<string> extraArguments)
    {
        var failed = new List<string>();
        var clock = Stopwatch.StartNew();
        foreach (Type scenario in scenarios)
        {
            Console.WriteLine($"// ===== {scenario.Name} ({(quick ? "quick" : "full")}, {BenchSettings.RequestedWriteProtectionName} write protection) in its own process =====");
            var start = new ProcessStartInfo { UseShellExecute = false };
            start.Environment[ChildVariable] = "1";
            string self = Environment.ProcessPath ?? throw new InvalidOperationException("No process path.");
            start.FileName = self;
            if (Path.GetFileNameWithoutExtension(self) == "dotnet")
                start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location); // started as `dotnet X.dll`
            start.ArgumentList.Add("--filter");
            start.ArgumentList.Add($"*.{scenario.Name}.*");
            if (quick)
                start.ArgumentList.Add("--quick");
            foreach (string argument in extraArguments)
                start.ArgumentList.Add(argument);

            using Process process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {self}.");
            process.WaitForExit();
            if (process.ExitCode != 0)
                failed.Add($"{scenario.Name} (exit code {process.ExitCode})");
        }

        Console.WriteLine($"// ===== suite finished in {clock.Elapsed:hh\\:mm\\:ss}: {scenarios.Count - failed.Count} of {scenarios.Count} scenarios succeeded =====");
        foreach (string failure in failed)
            Console.WriteLine($"// FAILED: {failure}");
        return failed.Count == 0 ? 0 : 1;
    }
}
