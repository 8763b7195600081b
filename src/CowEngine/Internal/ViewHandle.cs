using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine.Internal;

/// <summary>
/// Owns one entry of the process view table and the per-view arrays hanging off it. Every API call
/// on a view holds a reference (SafeHandle add-ref), so the entry is disposed natively, its arrays
/// freed and the entry recycled only after the last call in flight has returned. Its finalizer
/// releases a view only when the view's engine is unreachable too (the engine holds every live
/// view): the safety net of the lifetime contract, never the normal way a view goes.
/// </summary>
internal sealed unsafe class ViewHandle : SafeHandle
{
    private readonly CowMemoryEngine _engine;
    private readonly long _segments;
    private bool _engineReferenced;

    private ViewHandle(CowMemoryEngine engine, CowViewEntry* entry, long segments) : base(0, ownsHandle: true)
    {
        _engine = engine;
        _segments = segments;
        SetHandle((nint)entry);
    }

    public CowViewEntry* Entry => (CowViewEntry*)handle;

    public override bool IsInvalid => handle == 0;

    /// <summary>A FREE entry with its arrays, ready for cow_region_create or cow_view_snapshot.</summary>
    /// <param name="engine">The engine the view will belong to.</param>
    /// <param name="pageCount">The view's size in pages.</param>
    /// <param name="operation">What the view is for, for an exception's message ("taking a snapshot").</param>
    /// <exception cref="CowAddressSpaceExhaustedException">Under RLIMIT_AS the arena cannot hold the view.</exception>
    public static ViewHandle Allocate(CowMemoryEngine engine, long pageCount, string operation = "creating a view")
    {
        long segments = (pageCount + CowConstants.SegmentPages - 1) >> CowConstants.SegmentPagesShift;
        CowViewEntry* entry = ProcessTables.RentEntry(segments, operation);
        var view = new ViewHandle(engine, entry, segments);
        bool success = false;
        try
        {
            engine.Handle.DangerousAddRef(ref view._engineReferenced);
            entry->PageCount = (ulong)pageCount;
            entry->Flags = 0; // a recycled entry may carry COW_VIEW_RANGE_KEPT from a failed creation
            entry->SegmentCount = (uint)segments;
            entry->Engine = engine.Handle.Table;
            entry->Leaves = (uint*)NativeMemory.AllocZeroed((nuint)segments, sizeof(uint));
            entry->WriteChunks = (uint*)NativeMemory.AllocZeroed((nuint)segments, sizeof(uint));
            entry->FaultStreaks = (uint*)NativeMemory.AllocZeroed((nuint)segments, sizeof(uint));
            entry->ChangedBits = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(pageCount), sizeof(ulong));
            entry->ChangedSegments = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(segments), sizeof(ulong));
            entry->WritableSegments = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(segments), sizeof(ulong));
            entry->MappedBits = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(pageCount), sizeof(ulong));
            entry->WritableBits = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(pageCount), sizeof(ulong));
            entry->DirtyBits = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(pageCount), sizeof(ulong));
            entry->PinnedBits = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(pageCount), sizeof(ulong));
            entry->ZeroBits = (ulong*)NativeMemory.AllocZeroed((nuint)BitmapWords(pageCount), sizeof(ulong));
            entry->Mappings = 0;
            success = true;
            return view;
        }
        finally
        {
            if (!success)
                view.Dispose();
        }
    }

    /// <summary>Words of a per-page bitmap.</summary>
    public static long BitmapWords(long pageCount) => (pageCount + 63) / 64;

    protected override bool ReleaseHandle()
    {
        CowViewEntry* entry = Entry;
        // A region whose failed creation could not unmap its range: the range still maps slots.
        bool rangeIsUnmapped = (entry->Flags & CowConstants.ViewRangeKept) == 0;
        if (Volatile.Read(ref entry->State) == CowConstants.ViewLive)
        {
            int error = CowNative.ViewDispose(entry);
            if (error != 0)
            {
                // The range is still mapped onto slots that were therefore not released: never hand
                // it out again. Memory is leaked, but no other view can be corrupted.
                rangeIsUnmapped = false;
                _engine.OnViewDisposeFailed(error);
            }
        }
        NativeMemory.Free(entry->Leaves);
        NativeMemory.Free(entry->WriteChunks);
        NativeMemory.Free(entry->FaultStreaks);
        NativeMemory.Free(entry->ChangedBits);
        NativeMemory.Free(entry->ChangedSegments);
        NativeMemory.Free(entry->WritableSegments);
        NativeMemory.Free(entry->MappedBits);
        NativeMemory.Free(entry->WritableBits);
        NativeMemory.Free(entry->DirtyBits);
        NativeMemory.Free(entry->PinnedBits);
        NativeMemory.Free(entry->ZeroBits);
        entry->Leaves = null;
        entry->WriteChunks = null;
        entry->FaultStreaks = null;
        entry->ChangedBits = null;
        entry->ChangedSegments = null;
        entry->WritableSegments = null;
        entry->MappedBits = null;
        entry->WritableBits = null;
        entry->DirtyBits = null;
        entry->PinnedBits = null;
        entry->ZeroBits = null;
        ProcessTables.ReturnEntry(entry, _segments, rangeIsUnmapped);
        _engine.OnViewReleased(entry->Index);
        if (_engineReferenced)
            _engine.Handle.DangerousRelease();
        return true;
    }
}
