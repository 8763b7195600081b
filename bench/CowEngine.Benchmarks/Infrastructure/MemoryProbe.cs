using System.Globalization;

namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>One process's memory as the kernel accounts it, in bytes.</summary>
/// <param name="Rss">Resident pages mapped (a page mapped twice in the process counts twice).</param>
/// <param name="Pss">Proportional set size: each page divided by the number of mappings of it, in every
/// process; summed over a process family it counts every page once.</param>
/// <param name="PssAnon">The anonymous part of <paramref name="Pss"/> (private memory, fork's COW pages, heaps, tables).</param>
/// <param name="PssShmem">The shmem part of <paramref name="Pss"/> (memfd pages that are mapped somewhere).</param>
/// <param name="PageTables">VmPTE: the process's page tables.</param>
internal readonly record struct ProcessMemory(long Rss, long Pss, long PssAnon, long PssShmem, long PageTables)
{
    public static ProcessMemory operator +(ProcessMemory a, ProcessMemory b) =>
        new(a.Rss + b.Rss, a.Pss + b.Pss, a.PssAnon + b.PssAnon, a.PssShmem + b.PssShmem, a.PageTables + b.PageTables);

    public static ProcessMemory operator -(ProcessMemory a, ProcessMemory b) =>
        new(a.Rss - b.Rss, a.Pss - b.Pss, a.PssAnon - b.PssAnon, a.PssShmem - b.PssShmem, a.PageTables - b.PageTables);
}

/// <summary>Reads /proc/PID/smaps_rollup, /proc/PID/status and /proc/meminfo.</summary>
internal static class MemoryProbe
{
    /// <summary>Memory of a process; <paramref name="pid"/> 0 is this process.</summary>
    public static ProcessMemory Read(int pid = 0)
    {
        string dir = pid == 0 ? "/proc/self" : $"/proc/{pid}";
        Dictionary<string, long> rollup = ReadKilobyteFields($"{dir}/smaps_rollup");
        Dictionary<string, long> status = ReadKilobyteFields($"{dir}/status");
        return new ProcessMemory(rollup["Rss"], rollup["Pss"], rollup["Pss_Anon"], rollup["Pss_Shmem"], status["VmPTE"]);
    }

    /// <summary>MemAvailable: the kernel's estimate of memory available without swapping.</summary>
    public static long SystemAvailable() => ReadKilobyteFields("/proc/meminfo")["MemAvailable"];

    /// <summary>Lines "Name:   1234 kB" into bytes by name; other lines are skipped.</summary>
    private static Dictionary<string, long> ReadKilobyteFields(string path)
    {
        var fields = new Dictionary<string, long>();
        foreach (string line in File.ReadLines(path))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0)
                continue;
            string[] parts = line[(colon + 1)..].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && parts[1] == "kB" && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kilobytes))
                fields[line[..colon]] = kilobytes * 1024;
        }
        return fields;
    }
}
