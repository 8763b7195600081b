using System.Globalization;

namespace CowEngine.TestSupport;

/// <summary>One line of /proc/self/maps: a kernel mapping (VMA).</summary>
public readonly record struct Vma(ulong Start, ulong End, string Permissions, ulong Offset, ulong Inode, string Path)
{
    public bool Contains(ulong address) => address >= Start && address < End;

    public bool Overlaps(ulong start, ulong end) => Start < end && start < End;

    public bool IsWritable => Permissions.Length > 1 && Permissions[1] == 'w';

    /// <summary>The file offset that <paramref name="address"/> maps (meaningful for file mappings).</summary>
    public ulong FileOffsetOf(ulong address) => Offset + (address - Start);
}

/// <summary>
/// Reads the kernel's own list of the process's mappings. The engine keeps its own count of every
/// view's mappings (for its budget against vm.max_map_count); the tests and the stress program's
/// audit compare that count, and the tests the file offsets the engine believes each page maps,
/// with what the kernel really did.
/// </summary>
/// <remarks>
/// Other tests create and dispose mappings in parallel, so only the lines inside ranges this test
/// owns are meaningful; a reader that wants process-wide totals must run in a non-parallel collection.
/// </remarks>
public static class ProcMaps
{
    /// <summary>All mappings, sorted by address (the kernel lists them in order).</summary>
    public static List<Vma> ReadAll()
    {
        string[] lines = File.ReadAllLines("/proc/self/maps");
        var result = new List<Vma>(lines.Length);
        foreach (string line in lines)
            if (line.Length != 0)
                result.Add(Parse(line));
        return result;
    }

    /// <summary>The mappings that overlap [address, address + length).</summary>
    public static List<Vma> Overlapping(nint address, long length)
    {
        ulong start = (ulong)address, end = start + (ulong)length;
        return ReadAll().Where(vma => vma.Overlaps(start, end)).ToList();
    }

    /// <summary>How many kernel mappings the range [address, address + length) consists of.</summary>
    public static int CountOverlapping(nint address, long length) => Overlapping(address, length).Count;

    /// <summary>
    /// The mappings over a range the caller does not change meanwhile, read until two reads agree:
    /// /proc/self/maps is produced in pieces while other threads change other mappings, so one read
    /// alone could in principle be torn. Gives up after a few tries and returns the last read.
    /// </summary>
    public static List<Vma> OverlappingStable(nint address, long length, out bool stable)
    {
        List<Vma> previous = Overlapping(address, length);
        for (int attempt = 0; attempt < 5; attempt++)
        {
            List<Vma> next = Overlapping(address, length);
            if (next.SequenceEqual(previous))
            {
                stable = true;
                return next;
            }
            previous = next;
        }
        stable = false;
        return previous;
    }

    /// <summary>
    /// How many mappings of an already read, sorted list overlap [address, address + length); lets a
    /// caller count for many ranges with one read of the file (which can be tens of thousands of lines).
    /// </summary>
    public static int CountOverlapping(IReadOnlyList<Vma> sorted, nint address, long length)
    {
        ulong start = (ulong)address, end = start + (ulong)length;
        int low = 0, high = sorted.Count;
        while (low < high)
        {
            int middle = (low + high) >>> 1;
            if (sorted[middle].End <= start)
                low = middle + 1;
            else
                high = middle;
        }
        int count = 0;
        for (int i = low; i < sorted.Count && sorted[i].Start < end; i++)
            count++;
        return count;
    }

    /// <summary>The mapping containing <paramref name="address"/> (binary search over a sorted list), or null.</summary>
    public static Vma? FindContaining(IReadOnlyList<Vma> sorted, ulong address)
    {
        int low = 0, high = sorted.Count - 1;
        while (low <= high)
        {
            int middle = (low + high) >>> 1;
            Vma vma = sorted[middle];
            if (address < vma.Start)
                high = middle - 1;
            else if (address >= vma.End)
                low = middle + 1;
            else
                return vma;
        }
        return null;
    }

    // Format: "start-end perms offset major:minor inode   path"; the path may be missing or contain spaces.
    private static Vma Parse(string line)
    {
        string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5)
            throw new FormatException($"Unexpected /proc/self/maps line: '{line}'");
        int dash = fields[0].IndexOf('-', StringComparison.Ordinal);
        ulong start = ulong.Parse(fields[0].AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        ulong end = ulong.Parse(fields[0].AsSpan(dash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        ulong offset = ulong.Parse(fields[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        ulong inode = ulong.Parse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture);
        string path = fields.Length > 5 ? fields[5].Trim() : "";
        return new Vma(start, end, fields[1], offset, inode, path);
    }
}
