using System.Runtime.InteropServices;

namespace CowEngine.Interop;

// Managed mirrors of the structs in native/include/cow_engine.h. The managed side allocates and
// lays out every table the native shim uses; field order, types and sizes must match the C
// declarations exactly (checked by static_assert in native/src/cow_layout.c and by the
// NativeLayoutTests test, which compares these offsets with the shim's own).

/// <summary>Constants shared with the native shim.</summary>
internal static class CowConstants
{
    public const int PageShift = 12;
    public const int PageSize = 1 << PageShift;
    /// <summary>Pages per segment, slots per chunk and entries per leaf (one number: docs/design.md, glossary).</summary>
    public const int SegmentPagesShift = 9;
    public const int SegmentPages = 1 << SegmentPagesShift;
    public const int ChunkSlotsShift = SegmentPagesShift;
    public const int LeafEntries = SegmentPages;
    public const int SegmentShift = PageShift + SegmentPagesShift;
    public const long SegmentSize = 1L << SegmentShift;
    public const uint None = 0xFFFFFFFFu;
    public const int StripeCount = 1024;

    public const uint ViewFree = 0;
    public const uint ViewLive = 1;
    public const uint ViewDisposed = 2;

    /// <summary>cow_view_t.flags COW_VIEW_RANGE_KEPT: a failed region creation left the range mapped; never reuse it.</summary>
    public const uint ViewRangeKept = 2;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CowEngineTable
{
    public byte* Pool;
    public uint* SlotRefcounts;
    public uint* ChunkLive;
    public uint* ChunkFree;
    public uint* LeafRefcounts;
    public uint* LeafEntries;
    public uint* LeafFree;
    public ulong SlotLimit;
    public uint ChunkCapacity;
    public uint LeafCapacity;
    public int Memfd;
    public uint FaultAroundPages;

    public uint AllocLock;
    public uint ChunkFreeCount;
    public uint ChunkBump;
    public uint LeafFreeCount;
    public uint LeafBump;
    public uint WriteProtection;

    public ulong SlotsInUse;
    public ulong ChunksInUse;
    public ulong LeavesInUse;
    public long Mappings;
    public ulong WriteFaults;
    public ulong CopyFaults;
    public ulong PagesCopied;
    public ulong Snapshots;
    public ulong ReadFaults;
    public ulong Evictions;
    public long LiveViews;
    public long MappingBudget;
    public uint EvictView;
    public uint EvictSegment;
    public uint* LiveList;
    public uint LiveCount;
    public uint FaultsInFlight;

    public ulong* ReclaimRing;
    public uint ReclaimCapacity;
    public uint ReclaimHead;
    public uint ReclaimTail;
    public uint ReclaimLock;
    public uint ReclaimOwner;

    public fixed ulong RecentFaults[8];
    public uint RecentNext;
    public uint Reserved3;

    public fixed uint Stripes[CowConstants.StripeCount];

    public uint* LeafOrigins;
    public uint* LeafHolders;
    public ulong ReverseCopies;
    public ulong PagesRestoredByCopy;
    public int Uffd;
    public uint Reserved4;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CowViewEntry
{
    public ulong Base;
    public ulong PageCount;
    public CowEngineTable* Engine;
    public uint* Leaves;
    public uint* WriteChunks;
    public ulong* MappedBits;
    public ulong* WritableBits;
    public ulong* DirtyBits;
    public ulong* PinnedBits;
    public uint SegmentCount;
    public uint Index;

    public uint Lock;
    public uint State;

    public long Mappings;
    public ulong WriteFaults;
    public ulong PagesCopied;
    public uint LivePosition;
    public uint Flags;

    public uint* FaultStreaks;
    public ulong* ChangedBits;
    public ulong* ChangedSegments;

    public ulong Modifications;
    public ulong BaseModifications;
    public uint BaseView;
    public uint BaseIncarnation;
    public uint Incarnation;
    public uint Reserved2;

    public ulong* WritableSegments;
    public ulong* ZeroBits;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CowProcessTable
{
    public ulong ArenaBase;
    public ulong ArenaSize;
    public uint* Directory;
    public CowViewEntry* Views;
    public uint ViewCapacity;
    public uint ViewHighWater;
}

[StructLayout(LayoutKind.Sequential)]
internal struct CowViewStatsNative
{
    public ulong PrivatePages;
    public ulong SharedPages;
    public ulong WritablePages;
    public ulong MappedPages;
    public long Mappings;
    public ulong WriteFaults;
    public ulong PagesCopied;
    public ulong ZeroPages;
}
