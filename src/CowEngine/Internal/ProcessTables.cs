using System.Globalization;
using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine.Internal;

/// <summary>
/// The process-wide tables the SIGSEGV handler starts from: one address-space arena that holds every
/// view of every engine, the directory that maps each 2 MiB of the arena to the view that owns it,
/// and the table of view entries. Created, and the handler installed, on first use.
/// </summary>
/// <remarks>
/// <para>View entries are never freed, only recycled, so a handler that read an entry index from the
/// directory can always dereference it and then validate it under the entry's lock. Arena ranges of
/// disposed views are handed out again as late as possible (fresh address space first, then the
/// oldest freed range), so a stray write through a stale pointer faults instead of landing in a
/// newer view. Thread-safe: every member locks <see cref="Gate"/>.</para>
/// <para>The arena's size. With an unlimited address space the arena is one 32 TiB PROT_NONE
/// reservation made at first use, as large as it will ever be. Under an address-space limit
/// (RLIMIT_AS, <c>ulimit -v</c>), where a 32 TiB reservation is refused outright and every reserved
/// byte counts against the limit, the arena instead reserves a range sized to the limit (at most
/// 32 TiB) in the middle of the largest free gap of the address space, far from where the kernel
/// places other mappings, but maps only a first part of it (256 MiB, less under a tight limit) and
/// grows in place, upwards, when a view needs more (MAP_FIXED_NOREPLACE: never over anyone else's
/// mapping). Growth is safe against concurrent faults because nothing the handler reads moves: the
/// arena's base never changes, the directory and the view table are allocated at first use for the
/// whole range, and the reserved size (<c>arena_size</c>, what the handler's range check and the
/// fork policy read) only increases and is published after the new part is mapped and before any
/// view is placed there. In that mode freed ranges are reused before the arena grows (the reserved
/// address space is limited; a stale pointer still faults until its range is handed out again).</para>
/// </remarks>
internal static unsafe class ProcessTables
{
    /// <summary>The arena when the address space is unlimited: 32 TiB (a quarter of x86-64 user space).</summary>
    public const ulong FullArenaSize = 32UL << 40;

    /// <summary>The most view entries: live views, at least 2 MiB of arena each.</summary>
    private const uint MaxViewCapacity = 1u << 20;

    /// <summary>What a limited arena reserves at first: a few hundred small views' worth.</summary>
    private const ulong FirstLimitedReservation = 256UL << 20;

    /// <summary>A limited arena grows by what it has (doubling) up to this much at a time.</summary>
    private const ulong MaxGrowthStep = 4UL << 30;

    /// <summary>Free address space kept on each side of a limited arena's range when placing it.</summary>
    private const ulong PlacementClearance = 1UL << 40;

    /// <summary>Lowest address a limited arena is placed at: above everything 32-bit code may want.</summary>
    private const ulong LowestPlacement = 1UL << 32;

    /// <summary>The top of x86-64 user space with 4-level page tables (what mmap hands out without a hint).</summary>
    private const ulong UserSpaceTop = 0x7FFF_FFFF_F000;

    private static readonly Lock Gate = new();
    private static CowProcessTable* s_table;
    private static long s_rangeSegments;    // segments the directory covers: the arena's whole range
    private static long s_reservedSegments; // segments reserved so far (table->ArenaSize in segments)
    private static bool s_growable;
    private static uint s_viewCapacity;
    private static long s_segmentBump;
    private static readonly List<(long First, long Count)> s_freedRanges = new();
    private static readonly Queue<uint> s_freedEntries = new();
    private static uint s_entryBump;

    /// <summary>The process table, creating it and installing the handler on first call.</summary>
    /// <exception cref="CowAddressSpaceExhaustedException">Under RLIMIT_AS, not even the tables fit.</exception>
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

    /// <summary>The most view entries (live views) the process can have; creates the tables on first call.</summary>
    public static uint ViewCapacity
    {
        get
        {
            _ = Table;
            return s_viewCapacity;
        }
    }

    /// <summary>Bytes of address space the arena has reserved so far.</summary>
    public static ulong ReservedBytes
    {
        get
        {
            lock (Gate)
                return (ulong)s_reservedSegments << CowConstants.SegmentShift;
        }
    }

    /// <summary>Bytes of address space the arena can grow to (its directory's range).</summary>
    public static ulong RangeBytes
    {
        get
        {
            lock (Gate)
                return (ulong)s_rangeSegments << CowConstants.SegmentShift;
        }
    }

    /// <summary>True when the arena grows on demand (an address-space limit applied when it was made).</summary>
    public static bool IsGrowable
    {
        get
        {
            lock (Gate)
                return s_growable;
        }
    }

    private static CowProcessTable* Create()
    {
        ulong? available = SystemLimits.AddressSpaceAvailable();
        ulong range, reserved;
        nint arena = 0;
        bool growable;
        if (available is not ulong free || free >= 2 * FullArenaSize)
        {
            range = reserved = FullArenaSize;
            growable = false;
            Errno.ThrowIfReservationFailed(CowNative.Reserve(range, (ulong)CowConstants.SegmentSize, ref arena), range,
                "reserving the 32 TiB view arena");
        }
        else
        {
            ulong limit = SystemLimits.AddressSpaceLimit() ?? FullArenaSize;
            range = Math.Min(FullArenaSize, AlignUp(limit));
            reserved = AlignDown(Math.Min(FirstLimitedReservation, free / 8));
            if (reserved == 0)
                reserved = (ulong)CowConstants.SegmentSize;
            // The tables for the whole range are reserved too: count them before asking.
            ulong tables = DirectoryBytes(range) + EntryTableBytes(ViewCapacityFor(range));
            if (reserved + tables > free)
                throw Errno.AddressSpaceExhausted("creating the view arena", reserved + tables,
                    "The arena's first part and its tables did not fit.");
            (arena, growable, range) = ReserveLimitedArena(range, reserved);
        }

        uint viewCapacity = ViewCapacityFor(range);
        nint directory = 0, views = 0;
        bool installFailed = false;
        try
        {
            ulong directoryBytes = DirectoryBytes(range);
            Errno.ThrowIfReservationFailed(CowNative.AllocateTable(directoryBytes, out directory), directoryBytes, "allocating the view directory");
            ulong viewBytes = EntryTableBytes(viewCapacity);
            Errno.ThrowIfReservationFailed(CowNative.AllocateTable(viewBytes, out views), viewBytes, "allocating the view table");
            var table = (CowProcessTable*)NativeMemory.AllocZeroed((nuint)sizeof(CowProcessTable));
            table->ArenaBase = (ulong)arena;
            table->ArenaSize = reserved;
            table->Directory = (uint*)directory;
            table->Views = (CowViewEntry*)views;
            table->ViewCapacity = viewCapacity;
            int error = CowNative.Install(table);
            if (error != 0)
            {
                // The handler may already know the tables (cow_install can fail after registering
                // them): they are kept, not freed under it.
                installFailed = true;
                Errno.ThrowIfFailed(error, "installing the SIGSEGV handler");
            }
            s_rangeSegments = (long)(range >> CowConstants.SegmentShift);
            s_reservedSegments = (long)(reserved >> CowConstants.SegmentShift);
            s_growable = growable;
            s_viewCapacity = viewCapacity;
            return table;
        }
        catch
        {
            // Nothing is kept: the next engine tries again from scratch (a 32 TiB reservation left
            // behind each time would soon use up the address space).
            if (installFailed)
                throw;
            if (views != 0)
                CowNative.Release(views, EntryTableBytes(viewCapacity));
            if (directory != 0)
                CowNative.Release(directory, DirectoryBytes(range));
            CowNative.Release(arena, reserved);
            throw;
        }
    }

    /// <summary>
    /// Reserves the first <paramref name="reserved"/> bytes of a growable arena of
    /// <paramref name="range"/> bytes, placed in the middle of the largest free gap; if no gap is
    /// found or the place is taken, wherever the kernel puts it, without growth. Returns the
    /// address, whether it can grow, and its range (shrunk to fit the gap).
    /// </summary>
    private static (nint Arena, bool Growable, ulong Range) ReserveLimitedArena(ulong range, ulong reserved)
    {
        for (int attempt = 0; attempt < 2; attempt++)
        {
            if (FindPlacement(range) is not (ulong at, ulong fitted))
                break;
            nint arena = (nint)at;
            int error = CowNative.Reserve(reserved, (ulong)CowConstants.SegmentSize, ref arena);
            if (error == 0)
                return (arena, true, fitted);
            if (error != Errno.EEXIST)
                Errno.ThrowIfReservationFailed(error, reserved, "reserving the view arena");
            // Someone mapped there since /proc/self/maps was read: look again.
        }
        nint anywhere = 0;
        Errno.ThrowIfReservationFailed(CowNative.Reserve(reserved, (ulong)CowConstants.SegmentSize, ref anywhere), reserved,
            "reserving the view arena");
        return (anywhere, false, reserved);
    }

    /// <summary>
    /// Where a growable arena of <paramref name="range"/> bytes goes: the middle of the largest gap
    /// between mappings (the kernel hands out addresses top-down from the highest gap that fits, and
    /// the heap grows up from the program: both stay far away), with a clearance on each side; the
    /// range shrinks to a third of the gap if the gap is smaller than that. Null if nothing fits.
    /// </summary>
    private static (ulong Address, ulong Range)? FindPlacement(ulong range)
    {
        ulong bestStart = 0, bestSize = 0, previousEnd = LowestPlacement;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                int dash = line.IndexOf('-', StringComparison.Ordinal);
                int space = line.IndexOf(' ', StringComparison.Ordinal);
                if (dash <= 0 || space <= dash ||
                    !ulong.TryParse(line.AsSpan(0, dash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong start) ||
                    !ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong end))
                    continue;
                ulong gapEnd = Math.Min(start, UserSpaceTop);
                if (gapEnd > previousEnd && gapEnd - previousEnd > bestSize)
                    (bestStart, bestSize) = (previousEnd, gapEnd - previousEnd);
                previousEnd = Math.Max(previousEnd, end);
            }
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (UserSpaceTop > previousEnd && UserSpaceTop - previousEnd > bestSize)
            (bestStart, bestSize) = (previousEnd, UserSpaceTop - previousEnd);
        if (bestSize < range + 2 * PlacementClearance)
            range = AlignDown(bestSize / 3);
        if (range < (ulong)CowConstants.SegmentSize)
            return null;
        return (AlignUp(bestStart + (bestSize - range) / 2), range);
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
    /// <param name="segments">The view's size in 2 MiB segments.</param>
    /// <param name="operation">What the view is for, for an exception's message ("creating a region").</param>
    /// <exception cref="CowAddressSpaceExhaustedException">The arena cannot grow by what the view needs under RLIMIT_AS.</exception>
    public static CowViewEntry* RentEntry(long segments, string operation = "creating a view")
    {
        CowProcessTable* table = Table;
        lock (Gate)
        {
            long first = TakeRange(segments, operation);
            uint index;
            if (s_freedEntries.Count > 0)
                index = s_freedEntries.Dequeue();
            else if (s_entryBump < s_viewCapacity)
                index = s_entryBump++;
            else
            {
                ReturnRange(first, segments);
                throw new InvalidOperationException($"CowEngine supports at most {s_viewCapacity} live views per process.");
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

    private static long TakeRange(long segments, string operation)
    {
        if (s_reservedSegments - s_segmentBump >= segments)
            return Bump(segments);
        if (TakeFreedRange(segments) is long reused)
            return reused;
        if (s_growable)
        {
            Grow(segments - (s_reservedSegments - s_segmentBump), operation);
            return Bump(segments);
        }
        throw new InsufficientMemoryException(
            $"CowEngine's {SystemLimits.Format((ulong)s_reservedSegments << CowConstants.SegmentShift)} view arena has no free range of {segments * 2} MiB left.");
    }

    private static long Bump(long segments)
    {
        long first = s_segmentBump;
        s_segmentBump += segments;
        return first;
    }

    /// <summary>
    /// Reserves at least <paramref name="needed"/> more segments at the arena's end (by what it has,
    /// up to <see cref="MaxGrowthStep"/>, when the limit allows; else just what is needed) and
    /// publishes the new size; throws, changing nothing, when even that does not fit.
    /// </summary>
    private static void Grow(long needed, string operation)
    {
        ulong neededBytes = (ulong)needed << CowConstants.SegmentShift;
        ulong reservedBytes = (ulong)s_reservedSegments << CowConstants.SegmentShift;
        ulong roomBytes = (ulong)(s_rangeSegments - s_reservedSegments) << CowConstants.SegmentShift;
        if (neededBytes > roomBytes)
            throw Errno.AddressSpaceExhausted(operation, neededBytes, string.Create(CultureInfo.InvariantCulture,
                $"CowEngine's view arena was sized to the limit when it was made and has grown to {SystemLimits.Format(reservedBytes)} of its {SystemLimits.Format(reservedBytes + roomBytes)}."));
        ulong available = SystemLimits.AddressSpaceAvailable() ?? ulong.MaxValue;
        ulong step = Math.Min(Math.Max(neededBytes, Math.Min(reservedBytes, MaxGrowthStep)), roomBytes);
        if (step > available)
            step = neededBytes;
        if (step > available)
            throw Errno.AddressSpaceExhausted(operation, neededBytes, string.Create(CultureInfo.InvariantCulture,
                $"(CowEngine's view arena holds {SystemLimits.Format(reservedBytes)}; the live views need all of it and it would have to grow by that much.)"));
        nint at = (nint)(s_table->ArenaBase + reservedBytes);
        int error = CowNative.Reserve(step, (ulong)CowConstants.SegmentSize, ref at);
        if (error == Errno.EEXIST)
            throw Errno.AddressSpaceExhausted(operation, neededBytes,
                "Another mapping has taken the addresses after CowEngine's view arena, so the arena cannot grow.");
        Errno.ThrowIfReservationFailed(error, step, operation);
        s_reservedSegments += (long)(step >> CowConstants.SegmentShift);
        // Published after the new part is mapped, before any view is placed in it (the caller does
        // that after this returns): the handler's range check and the fork policy read this.
        Volatile.Write(ref s_table->ArenaSize, (ulong)s_reservedSegments << CowConstants.SegmentShift);
    }

    private static long? TakeFreedRange(long segments)
    {
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
        return null;
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

    /// <summary>One view entry per 2 MiB of range (every view takes at least that), at most <see cref="MaxViewCapacity"/>.</summary>
    private static uint ViewCapacityFor(ulong range) => (uint)Math.Clamp(range >> CowConstants.SegmentShift, 1, MaxViewCapacity);

    private static ulong DirectoryBytes(ulong range) => (range >> CowConstants.SegmentShift) * sizeof(uint);

    private static ulong EntryTableBytes(uint viewCapacity) => (ulong)viewCapacity * (ulong)sizeof(CowViewEntry);

    private static ulong AlignUp(ulong bytes) => (bytes + (ulong)CowConstants.SegmentSize - 1) & ~((ulong)CowConstants.SegmentSize - 1);

    private static ulong AlignDown(ulong bytes) => bytes & ~((ulong)CowConstants.SegmentSize - 1);
}
