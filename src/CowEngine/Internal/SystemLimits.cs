using System.Globalization;

namespace CowEngine.Internal;

/// <summary>Kernel limits the engine plans around: the mapping count and the address space.</summary>
/// <remarks>Everything is read from /proc, on demand; no member caches. Thread-safe.</remarks>
internal static class SystemLimits
{
    /// <summary>The kernel's default for vm.max_map_count, used when /proc cannot be read.</summary>
    public const int DefaultMaxMapCount = 65530;

    private const ulong GiB = 1UL << 30;

    /// <summary>The per-process mapping limit, from /proc/sys/vm/max_map_count.</summary>
    public static int MaxMapCount()
    {
        string? text = ReadProc("/proc/sys/vm/max_map_count");
        return text is not null && int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0
            ? value
            : DefaultMaxMapCount;
    }

    /// <summary>
    /// The soft RLIMIT_AS (<c>ulimit -v</c>, <c>prlimit --as</c>) in bytes: the most address space the
    /// process may have mapped, every PROT_NONE reservation included. Null when unlimited (or unreadable).
    /// </summary>
    public static ulong? AddressSpaceLimit()
    {
        // "Max address space         unlimited            unlimited            bytes"
        string? text = ReadProc("/proc/self/limits");
        if (text is null)
            return null;
        foreach (string line in text.Split('\n'))
        {
            if (!line.StartsWith("Max address space", StringComparison.Ordinal))
                continue;
            string[] fields = line["Max address space".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length > 0 && ulong.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out ulong soft)
                ? soft
                : null;
        }
        return null;
    }

    /// <summary>The address space the process has mapped now (VmSize), in bytes; 0 if unreadable.</summary>
    public static ulong AddressSpaceInUse()
    {
        string? text = ReadProc("/proc/self/status");
        if (text is null)
            return 0;
        foreach (string line in text.Split('\n'))
        {
            if (!line.StartsWith("VmSize:", StringComparison.Ordinal))
                continue;
            string[] fields = line["VmSize:".Length..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            return fields.Length > 0 && ulong.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out ulong kib)
                ? kib * 1024
                : 0;
        }
        return 0;
    }

    /// <summary>The process's kernel mappings now (lines of /proc/self/maps); -1 if unreadable.</summary>
    /// <remarks>Reads the whole file (a few MB at the mapping limit): for diagnosing a failure, not for hot paths.</remarks>
    public static long ProcessMappings()
    {
        try
        {
            long lines = 0;
            foreach (string _ in File.ReadLines("/proc/self/maps"))
                lines++;
            return lines;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>
    /// Address space the engine leaves free under an RLIMIT_AS of <paramref name="limit"/> bytes, for
    /// everything the runtime and other libraries map later: thread stacks (8 MiB each), glibc's
    /// per-thread malloc arenas (64 MiB each, up to 8 per core: measured here, 20 threads added 620 MiB
    /// of VmSize), JIT code, loaded libraries. An eighth of the limit, at least 1 GiB, at most 4 GiB.
    /// </summary>
    public static ulong Headroom(ulong limit) => Math.Clamp(limit / 8, GiB, 4 * GiB);

    /// <summary>
    /// The address space the engine may still take: RLIMIT_AS less what is mapped less the
    /// <see cref="Headroom"/>. Null when the address space is unlimited.
    /// </summary>
    public static ulong? AddressSpaceAvailable()
    {
        if (AddressSpaceLimit() is not ulong limit)
            return null;
        ulong taken = AddressSpaceInUse() + Headroom(limit);
        return limit > taken ? limit - taken : 0;
    }

    /// <summary>
    /// Why mmap or mprotect failed with ENOMEM, from the numbers /proc shows right after: the address
    /// space when mapping <paramref name="requestedBytes"/> more (or, for a call that maps only inside
    /// the engine's own reservations, one 2 MiB segment more) would pass RLIMIT_AS; else the mapping
    /// count when the process is within 1/64 of vm.max_map_count (the kernel refuses at the limit, and
    /// a call may need several mappings at once); else neither (the kernel is short of memory for its
    /// own tables, or what was short was freed meanwhile).
    /// </summary>
    public static EnomemCause ClassifyEnomem(ulong? limit, ulong inUse, ulong requestedBytes, long mappings, int maxMapCount)
    {
        ulong wanted = requestedBytes > 0 ? requestedBytes : 2UL << 20;
        if (limit is ulong l && (inUse >= l || wanted > l - inUse))
            return EnomemCause.AddressSpace;
        if (mappings >= 0 && mappings >= maxMapCount - maxMapCount / 64)
            return EnomemCause.MappingCount;
        return EnomemCause.Neither;
    }

    /// <summary>Bytes in the unit that reads best ("512 MiB", "95.4 GiB"), with the exact count.</summary>
    public static string Format(ulong bytes)
    {
        string rounded = bytes >= 1UL << 40 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1UL << 40):0.#} TiB")
                       : bytes >= GiB ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)GiB:0.#} GiB")
                       : bytes >= 1UL << 20 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1UL << 20):0.#} MiB")
                       : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.#} KiB");
        return string.Create(CultureInfo.InvariantCulture, $"{rounded} ({bytes:N0} bytes)");
    }

    private static string? ReadProc(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>What <see cref="SystemLimits.ClassifyEnomem"/> found behind an ENOMEM.</summary>
internal enum EnomemCause
{
    /// <summary>RLIMIT_AS: the mapping would not fit in the address space the process may have.</summary>
    AddressSpace,

    /// <summary>vm.max_map_count: the process has (nearly) as many mappings as the kernel allows.</summary>
    MappingCount,

    /// <summary>Neither limit is reached now.</summary>
    Neither,
}
