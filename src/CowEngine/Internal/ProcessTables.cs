using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine.Internal;

/// <summary>
/// The process-wide tables the SIGSEGV handler starts from: one address-space arena that holds every
/// view of every engine, the directory that maps each 2 MiB of the arena to the view that owns it,
/// and the table of view entries. Created, and the handler installed, on first use.
/// </summary>
/// <remarks>
/// View entries are never freed, only recycled, so a handler that read an entry index from the
/// directory can always dereference it and then validate it under the entry's lock. Arena ranges of
/// disposed views are handed out again as late as possible (fresh address space first, then the
/// oldest freed range), so a stray write through a stale pointer faults instead of landing in a
/// newer view. Thread-safe: every member locks <see cref="Gate"/>.
/// </remarks>
internal static unsafe class ProcessTables
{
    /// <summary>Address space reserved for all views: 32 TiB (a quarter of x86-64 user space).</summary>
    public const ulong ArenaSize = 32UL << 40;
    public const uint ViewCapacity = 1u << 20;

    private static readonly Lock Gate = new();
    private static CowProcessTable* s_table;
    private static long s_segmentBump;
    private static readonly List<(long First, long Count)> s_freedRanges = new();
    private static readonly Queue<uint> s_freedEntries = new();
    private static uint s_entryBump;

    public static long ArenaSegments => (long)(ArenaSize >> CowConstants.SegmentShift);

    /// <summary>The process table, creating it and installing the handler on first call.</summary>
    public static CowProcessTable* Table
    {
        get
        {
            lock (Gate)
            {
                if (s_table == null)
                    s_table = Create();
                return s_table;
            }
        }
    }

    private static CowProcessTable* Create()
    {
        // A step that fails gives back what the steps before it took: the next engine tries again from
        // scratch, and a 32 TiB reservation left behind each time would soon use up the address space.
        var taken = new List<(nint Address, ulong Bytes)>();
        try
        {
            nint arena = Take(taken, CowNative.Reserve(ArenaSize, (ulong)CowConstants.SegmentSize, out nint a), a, ArenaSize,
                "reserving the view arena");
            ulong directoryBytes = (ulong)ArenaSegments * sizeof(uint);
            nint directory = Take(taken, CowNative.AllocateTable(directoryBytes, out nint d), d, directoryBytes,
                "allocating the view directory");
            ulong viewBytes = (ulong)ViewCapacity * (ulong)sizeof(CowViewEntry);
            nint views = Take(taken, CowNative.AllocateTable(viewBytes, out nint v), v, viewBytes, "allocating the view table");
            var table = (CowProcessTable*)NativeMemory.AllocZeroed((nuint)sizeof(CowProcessTable));
            table->ArenaBase = (ulong)arena;
            table->ArenaSize = ArenaSize;
            table->Directory = (uint*)directory;
            table->Views = (CowViewEntry*)views;
            table->ViewCapacity = ViewCapacity;
            int error = CowNative.Install(table);
            if (error != 0)
            {
                // The handler may already know the tables (cow_install can fail after registering
                // them): they are kept, not freed under it.
                taken.Clear();
                throw Errno.ToException(error, "installing the SIGSEGV handler");
            }
            return table;
        }
        catch
        {
            foreach (var (address, bytes) in taken)
                CowNative.Release(address, bytes);
            throw;
        }
    }

    private static nint Take(List<(nint, ulong)> taken, int error, nint address, ulong bytes, string operation)
    {
        Errno.ThrowIfFailed(error, operation);
        taken.Add((address, bytes));
        return address;
    }

    /// <summary>
    /// Installs the SIGBUS handler for userfaultfd write protection (the process tables first); 0 or
    /// an errno value. Idempotent.
    /// </summary>
    public static int InstallSigbusHandler()
    {
        _ = Table;
        return CowNative.InstallSigbus();
    }

    /// <summary>Takes a free view entry and an arena range of <paramref name="segments"/> segments.</summary>
    public static CowViewEntry* RentEntry(long segments)
    {
        CowProcessTable* table = Table;
        lock (Gate)
        {
            long first = TakeRange(segments);
            uint index;
            if (s_freedEntries.Count > 0)
                index = s_freedEntries.Dequeue();
            else if (s_entryBump < ViewCapacity)
                index = s_entryBump++;
            else
            {
                ReturnRange(first, segments);
                throw new InvalidOperationException($"CowEngine supports at most {ViewCapacity} live views per process.");
            }
            // Entries [0, high water) have ever been used. The shim no longer reads it (eviction
            // walks each engine's own live list); kept current while cow_process_t carries it.
            Volatile.Write(ref table->ViewHighWater, s_entryBump);
            CowViewEntry* entry = &table->Views[index];
            entry->Index = index;
            entry->Base = table->ArenaBase + ((ulong)first << CowConstants.SegmentShift);
            return entry;
        }
    }

    /// <summary>Returns an entry; its range is reused later only when <paramref name="rangeIsUnmapped"/>.</summary>
    public static void ReturnEntry(CowViewEntry* entry, long segments, bool rangeIsUnmapped)
    {
        CowProcessTable* table = s_table;
        lock (Gate)
        {
            if (rangeIsUnmapped)
                ReturnRange((long)((entry->Base - table->ArenaBase) >> CowConstants.SegmentShift), segments);
            s_freedEntries.Enqueue(entry->Index);
        }
    }

    private static long TakeRange(long segments)
    {
        if (ArenaSegments - s_segmentBump >= segments)
        {
            long first = s_segmentBump;
            s_segmentBump += segments;
            return first;
        }
        for (int attempt = 0; attempt < 2; attempt++)
        {
            for (int i = 0; i < s_freedRanges.Count; i++)
            {
                var (first, count) = s_freedRanges[i];
                if (count < segments)
                    continue;
                if (count == segments)
                    s_freedRanges.RemoveAt(i);
                else
                    s_freedRanges[i] = (first + segments, count - segments);
                return first;
            }
            CoalesceFreedRanges();
        }
        throw new InsufficientMemoryException(
            $"CowEngine's {ArenaSize >> 40} TiB view arena has no free range of {segments * 2} MiB left.");
    }

    private static void ReturnRange(long first, long count) => s_freedRanges.Add((first, count));

    private static void CoalesceFreedRanges()
    {
        s_freedRanges.Sort();
        var merged = new List<(long First, long Count)>(s_freedRanges.Count);
        foreach (var range in s_freedRanges)
        {
            if (merged.Count > 0 && merged[^1].First + merged[^1].Count == range.First)
                merged[^1] = (merged[^1].First, merged[^1].Count + range.Count);
            else
                merged.Add(range);
        }
        s_freedRanges.Clear();
        s_freedRanges.AddRange(merged);
    }
}
