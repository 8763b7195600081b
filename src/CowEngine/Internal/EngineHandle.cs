using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine.Internal;

/// <summary>
/// Owns one engine's native state: the memfd, the pool window that maps all of it, and the tables
/// (slot refcounts, chunk and leaf tables) the shim reads and updates. Every live view holds a
/// reference (DangerousAddRef), so the tables outlive the last view, and the last fault on it.
/// </summary>
internal sealed unsafe class EngineHandle : SafeHandle
{
    /// <summary>Runs of freed slots that can wait for the background reclaimer (a power of two).</summary>
    private const uint ReclaimQueueRuns = 1u << 16;

    private readonly MemfdHandle _memfd;
    private readonly UserfaultfdHandle? _userfaultfd;
    private readonly ulong _poolBytes;
    private readonly (nint Address, ulong Bytes)[] _tables;

    private EngineHandle(CowEngineTable* table, MemfdHandle memfd, UserfaultfdHandle? userfaultfd, ulong poolBytes,
                         (nint, ulong)[] tables)
        : base(0, ownsHandle: true)
    {
        SetHandle((nint)table);
        _memfd = memfd;
        _userfaultfd = userfaultfd;
        _poolBytes = poolBytes;
        _tables = tables;
    }

    public CowEngineTable* Table => (CowEngineTable*)handle;

    /// <summary>Whether the native reclaim queue holds runs of freed slots (false once released).</summary>
    public bool HasQueuedReclaim()
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            return Volatile.Read(ref Table->ReclaimTail) != Volatile.Read(ref Table->ReclaimHead);
        }
        catch (ObjectDisposedException)
        {
            return false; // released: its memory went with its memfd
        }
        finally
        {
            if (added)
                DangerousRelease();
        }
    }

    public override bool IsInvalid => handle == 0;

    public int Memfd => _memfd.Fd;

    /// <summary>
    /// Creates the memfd, maps it and allocates the tables for the given limits. Takes ownership of
    /// <paramref name="userfaultfd"/> (closed if creation fails): with one, pages are write-protected by it.
    /// </summary>
    public static EngineHandle Create(ulong slotLimit, uint chunkCapacity, uint leafCapacity, long mappingBudget, uint faultAroundPages,
                                      UserfaultfdHandle? userfaultfd)
    {
        ulong poolBytes = (ulong)chunkCapacity << CowConstants.SegmentShift;
        MemfdHandle memfd;
        try
        {
            memfd = MemfdHandle.Create("cowengine-slots", poolBytes);
        }
        catch
        {
            userfaultfd?.Dispose();
            throw;
        }
        var tables = new List<(nint, ulong)>();
        var table = (CowEngineTable*)NativeMemory.AlignedAlloc((nuint)sizeof(CowEngineTable), 64);
        NativeMemory.Clear(table, (nuint)sizeof(CowEngineTable));
        try
        {
            Errno.ThrowIfReservationFailed(CowNative.MapPool(memfd.Fd, poolBytes, out nint pool), poolBytes, "mapping the slot pool");
            table->Pool = (byte*)pool;
            ulong slots = (ulong)chunkCapacity << CowConstants.ChunkSlotsShift;
            table->SlotRefcounts = (uint*)Allocate(tables, slots * sizeof(uint), "slot refcounts");
            table->ChunkLive = (uint*)Allocate(tables, (ulong)chunkCapacity * sizeof(uint), "chunk table");
            table->ChunkFree = (uint*)Allocate(tables, (ulong)chunkCapacity * sizeof(uint), "chunk free list");
            table->LeafRefcounts = (uint*)Allocate(tables, (ulong)leafCapacity * sizeof(uint), "leaf refcounts");
            table->LeafEntries = (uint*)Allocate(tables, (ulong)leafCapacity * CowConstants.LeafEntries * sizeof(uint), "leaf table");
            table->LeafFree = (uint*)Allocate(tables, (ulong)leafCapacity * sizeof(uint), "leaf free list");
            table->LeafOrigins = (uint*)Allocate(tables, (ulong)leafCapacity * sizeof(uint), "leaf origins");
            table->LeafHolders = (uint*)Allocate(tables, (ulong)leafCapacity * 2 * sizeof(uint), "leaf holders");
            table->LiveList = (uint*)Allocate(tables, (ulong)ProcessTables.ViewCapacity * sizeof(uint), "live view list");
            table->ReclaimRing = (ulong*)Allocate(tables, ReclaimQueueRuns * sizeof(ulong), "reclaim queue");
            table->ReclaimCapacity = ReclaimQueueRuns;
            table->SlotLimit = slotLimit;
            table->MappingBudget = mappingBudget;
            table->FaultAroundPages = faultAroundPages;
            table->WriteProtection = userfaultfd is null ? 0u : 1u;
            table->Uffd = userfaultfd?.Fd ?? -1;
            table->ChunkCapacity = chunkCapacity;
            table->LeafCapacity = leafCapacity;
            table->Memfd = memfd.Fd;
            Errno.ThrowIfFailed(CowNative.EngineInit(table), "initialising the engine");
            return new EngineHandle(table, memfd, userfaultfd, poolBytes, tables.ToArray());
        }
        catch
        {
            Free(table, tables, poolBytes);
            memfd.Dispose();
            userfaultfd?.Dispose();
            throw;
        }
    }

    /// <summary>Leaves for a slot space of <paramref name="chunkCapacity"/> chunks: two per chunk, and some.</summary>
    public static uint LeafCapacityFor(uint chunkCapacity) => (uint)Math.Min((ulong)chunkCapacity * 2 + 1024, int.MaxValue);

    /// <summary>
    /// The address space <see cref="Create"/> maps for a slot space of <paramref name="chunkCapacity"/>
    /// chunks: the pool window (2 MiB per chunk) and the tables (about 6 KiB per chunk, plus the
    /// live list and the reclaim queue). All of it counts against RLIMIT_AS, committed or not.
    /// </summary>
    public static ulong AddressSpaceBytes(uint chunkCapacity)
    {
        ulong chunks = chunkCapacity, leaves = LeafCapacityFor(chunkCapacity), page = CowConstants.PageSize - 1;
        ulong[] parts =
        [
            chunks << CowConstants.SegmentShift,                     // pool window
            (chunks << CowConstants.ChunkSlotsShift) * sizeof(uint), // slot refcounts
            chunks * sizeof(uint),                                   // chunk table
            chunks * sizeof(uint),                                   // chunk free list
            leaves * sizeof(uint),                                   // leaf refcounts
            leaves * CowConstants.LeafEntries * sizeof(uint),        // leaf table
            leaves * sizeof(uint),                                   // leaf free list
            leaves * sizeof(uint),                                   // leaf origins
            leaves * 2 * sizeof(uint),                               // leaf holders
            (ulong)ProcessTables.ViewCapacity * sizeof(uint),        // live view list
            ReclaimQueueRuns * sizeof(ulong),                        // reclaim queue
        ];
        ulong total = 0;
        foreach (ulong part in parts)
            total += (part + page) & ~page; // each is its own mapping, rounded up to pages
        return total;
    }

    private static nint Allocate(List<(nint, ulong)> tables, ulong bytes, string what)
    {
        Errno.ThrowIfReservationFailed(CowNative.AllocateTable(bytes, out nint address), bytes, $"allocating the {what}");
        tables.Add((address, bytes));
        return address;
    }

    private static void Free(CowEngineTable* table, IEnumerable<(nint Address, ulong Bytes)> tables, ulong poolBytes)
    {
        if (table->Pool != null)
            CowNative.Release((nint)table->Pool, poolBytes);
        foreach (var (address, bytes) in tables)
            CowNative.Release(address, bytes);
        NativeMemory.AlignedFree(table);
    }

    protected override bool ReleaseHandle()
    {
        Free(Table, _tables, _poolBytes);
        _memfd.Dispose();
        _userfaultfd?.Dispose(); // after every view is gone (each holds a reference on this handle)
        return true;
    }
}
