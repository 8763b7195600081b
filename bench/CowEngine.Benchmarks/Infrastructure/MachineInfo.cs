using System.Runtime.InteropServices;
using System.Text.Json;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>Writes what machine the numbers come from next to the CSVs (machine.json), for bench/report.py.</summary>
internal static class MachineInfo
{
    public static void Write(string resultsDirectory, bool quick)
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
        };
        File.WriteAllText(Path.Combine(resultsDirectory, "machine.json"),
            JsonSerializer.Serialize(info, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Adds the load average at the end of the run to machine.json.</summary>
    public static void RecordEnd(string resultsDirectory)
    {
        string path = Path.Combine(resultsDirectory, "machine.json");
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
