using System.Runtime.InteropServices;
using System.Text.Json;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>Writes what machine the numbers come from, and the write protection asked for, next to
/// the CSVs (machine.json), for bench/report.py.</summary>
internal static class MachineInfo
{
    /// <summary>machine.json describes the last run of the whole suite; a run of scenarios chosen with
    /// BenchmarkDotNet's arguments (e.g. --filter) writes <see cref="SelectedRunFile"/> instead, so
    /// that the suite's file still describes the suite's numbers.</summary>
    public const string SuiteRunFile = "machine.json";

    /// <summary>Machine and load of the last run of chosen scenarios (bench/report.py cites it for a
    /// scenario whose results are newer than the suite's run).</summary>
    public const string SelectedRunFile = "machine-selected-run.json";

    /// <param name="scenarios">The scenarios a suite run of some of them runs (--scenarios); null for the whole suite.</param>
    public static void Write(string resultsDirectory, bool quick, string fileName = SuiteRunFile, IReadOnlyList<string>? arguments = null,
        IReadOnlyList<Type>? scenarios = null)
    {
        Directory.CreateDirectory(resultsDirectory);
        var info = new Dictionary<string, object?>
        {
            ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'"),
            ["mode"] = quick ? "quick" : "full",
            ["cpu"] = FirstValue("/proc/cpuinfo", "model name"),
            ["logical_cores"] = Environment.ProcessorCount,
            ["memory_gib"] = Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024), 1),
            ["kernel"] = ReadTrimmed("/proc/sys/kernel/osrelease"),
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["transparent_hugepage"] = ReadTrimmed("/sys/kernel/mm/transparent_hugepage/enabled"),
            ["max_map_count"] = ReadTrimmed("/proc/sys/vm/max_map_count"),
            // Other work on the machine (builds, test runs) makes every number noisier: say how busy it was.
            ["loadavg_at_start"] = ReadTrimmed("/proc/loadavg"),
            // What COWENGINE_WRITE_PROTECTION asked the engines for (unset: mprotect, the default);
            // what each engine got is in the WriteProtection column of its rows.
            ["write_protection_requested"] = BenchSettings.RequestedWriteProtectionName,
        };
        if (arguments is not null)
            info["arguments"] = string.Join(' ', arguments);
        if (scenarios is not null)
            info["scenarios"] = scenarios.Select(s => s.Name).ToArray();
        File.WriteAllText(Path.Combine(resultsDirectory, fileName),
            JsonSerializer.Serialize(info, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Adds the load average at the end of the run to the run's file (machine.json or <see cref="SelectedRunFile"/>).</summary>
    public static void RecordEnd(string resultsDirectory, string fileName = SuiteRunFile)
    {
        string path = Path.Combine(resultsDirectory, fileName);
        if (!File.Exists(path))
            return;
        var info = JsonSerializer.Deserialize<Dictionary<string, object?>>(File.ReadAllText(path)) ?? [];
        info["loadavg_at_end"] = ReadTrimmed("/proc/loadavg");
        File.WriteAllText(path, JsonSerializer.Serialize(info, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string? ReadTrimmed(string path) => File.Exists(path) ? File.ReadAllText(path).Trim() : null;

    private static string? FirstValue(string path, string key) =>
        File.Exists(path)
            ? File.ReadLines(path).Where(l => l.StartsWith(key, StringComparison.Ordinal))
                .Select(l => l[(l.IndexOf(':') + 1)..].Trim()).FirstOrDefault()
            : null;
}
