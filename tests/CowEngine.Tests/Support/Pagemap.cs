namespace CowEngine.Tests.Support;

/// <summary>
/// Reads /proc/self/pagemap: one 64-bit entry per virtual page, with the physical frame number
/// (PFN) in bits 0-54 and "present" in bit 63. The kernel shows real PFNs only to a process with
/// CAP_SYS_ADMIN; anyone else reads zeros there (since Linux 4.2), so callers must check
/// <see cref="PfnsAreVisible"/> before comparing frames.
/// </summary>
internal static class Pagemap
{
    public const ulong PresentBit = 1UL << 63;

    /// <summary>Bit 57: the page is write-protected by userfaultfd (Linux 5.13+; readable without privileges).</summary>
    public const ulong UserfaultfdWriteProtectedBit = 1UL << 57;
    public const ulong PfnMask = (1UL << 55) - 1;
    private const int EntrySize = sizeof(ulong);

    public static bool IsPresent(ulong entry) => (entry & PresentBit) != 0;

    public static ulong PfnOf(ulong entry) => entry & PfnMask;

    public static bool IsUserfaultfdWriteProtected(ulong entry) => (entry & UserfaultfdWriteProtectedBit) != 0;

    /// <summary>
    /// The entries of <paramref name="pageCount"/> pages starting at <paramref name="address"/>
    /// (page-aligned), or null with the reason when the file cannot be read.
    /// </summary>
    public static ulong[]? TryRead(nint address, long pageCount, out string? failure)
    {
        var entries = new ulong[pageCount];
        try
        {
            using var handle = File.OpenHandle("/proc/self/pagemap", FileMode.Open, FileAccess.Read);
            Span<byte> bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(entries.AsSpan());
            long fileOffset = (long)((ulong)address / (ulong)CowMemoryEngine.PageSize) * EntrySize;
            int done = 0;
            while (done < bytes.Length)
            {
                int read = RandomAccess.Read(handle, bytes[done..], fileOffset + done);
                if (read <= 0)
                {
                    failure = $"/proc/self/pagemap returned {read} at byte {fileOffset + done}";
                    return null;
                }
                done += read;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            failure = $"/proc/self/pagemap cannot be read: {e.Message}";
            return null;
        }
        failure = null;
        return entries;
    }

    /// <summary>
    /// True when this process sees real frame numbers: the given entries (of pages the caller made
    /// present) are all present and at least one has a non-zero PFN. Otherwise <paramref name="reason"/>
    /// says why not.
    /// </summary>
    public static bool PfnsAreVisible(ulong[]? entries, string? readFailure, out string reason)
    {
        if (entries is null)
        {
            reason = readFailure ?? "/proc/self/pagemap could not be read";
            return false;
        }
        if (!entries.All(IsPresent))
        {
            reason = "pagemap reports touched pages as not present";
            return false;
        }
        if (entries.All(entry => PfnOf(entry) == 0))
        {
            reason = $"pagemap shows PFN 0 for present pages: this process (effective uid {EffectiveUid()}) lacks CAP_SYS_ADMIN, so the kernel hides frame numbers";
            return false;
        }
        reason = "pagemap shows frame numbers (the process has CAP_SYS_ADMIN)";
        return true;
    }

    /// <summary>The effective uid, from the "Uid:" line of /proc/self/status (real, effective, saved, fs).</summary>
    public static string EffectiveUid()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
                return line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2];
        return "unknown";
    }
}
