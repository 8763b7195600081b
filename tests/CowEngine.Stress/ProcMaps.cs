using System.Globalization;

namespace CowEngine.Stress;

/// <summary>The kernel's view of the process's mappings (/proc/self/maps).</summary>
internal static class ProcMaps
{
    /// <summary>Every mapping's [start, end), sorted by start.</summary>
    public static List<(ulong Start, ulong End)> Read()
    {
        var mappings = new List<(ulong, ulong)>();
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash <= 0 || space <= dash)
                continue;
            ulong start = ulong.Parse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong end = ulong.Parse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            mappings.Add((start, end));
        }
        mappings.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return mappings;
    }

    /// <summary>How many mappings overlap [start, end): what a view's range consists of.</summary>
    public static int CountOverlapping(List<(ulong Start, ulong End)> mappings, ulong start, ulong end)
    {
        // First mapping that ends after start (binary search on the sorted, disjoint list).
        int low = 0, high = mappings.Count;
        while (low < high)
        {
            int middle = (low + high) / 2;
            if (mappings[middle].End <= start)
                low = middle + 1;
            else
                high = middle;
        }
        int count = 0;
        for (int i = low; i < mappings.Count && mappings[i].Start < end; i++)
            count++;
        return count;
    }
}
