using System.Runtime.InteropServices;

namespace CowEngine.Interop;

/// <summary>
/// The native shim's entry points (native/include/cow_engine.h). Every function returns 0 or a
/// positive errno value; <see cref="Errno"/> turns those into exceptions.
/// </summary>
/// <remarks>
/// Calls that mutate views race with the SIGSEGV handler, so each is one ordinary P/Invoke: the
/// thread is in preemptive GC mode for the whole call, never suspended halfway by a GC while it
/// holds a lock a fault handler may be waiting for.
/// </remarks>
internal static unsafe partial class CowNative
{
    public const string Library = "cowengine";

    [LibraryImport(Library, EntryPoint = "cow_install")]
    public static partial int Install(CowProcessTable* process);

    [LibraryImport(Library, EntryPoint = "cow_handler_is_current")]
    public static partial int HandlerIsCurrent();

    [LibraryImport(Library, EntryPoint = "cow_engine_init")]
    public static partial int EngineInit(CowEngineTable* engine);

    [LibraryImport(Library, EntryPoint = "cow_engine_reclaim")]
    public static partial ulong EngineReclaim(CowEngineTable* engine);

    [LibraryImport(Library, EntryPoint = "cow_region_create")]
    public static partial int RegionCreate(CowViewEntry* view, int trackWrites);

    [LibraryImport(Library, EntryPoint = "cow_view_snapshot")]
    public static partial int ViewSnapshot(CowViewEntry* source, CowViewEntry* target);

    [LibraryImport(Library, EntryPoint = "cow_view_restore")]
    public static partial int ViewRestore(CowViewEntry* view, CowViewEntry* source);

    [LibraryImport(Library, EntryPoint = "cow_view_diff")]
    public static partial int ViewDiff(CowViewEntry* a, CowViewEntry* b, ulong* bits, out ulong count);

    [LibraryImport(Library, EntryPoint = "cow_view_take_dirty")]
    public static partial int ViewTakeDirty(CowViewEntry* view, ulong* bits, out ulong count);

    [LibraryImport(Library, EntryPoint = "cow_view_dispose")]
    public static partial int ViewDispose(CowViewEntry* view);

    [LibraryImport(Library, EntryPoint = "cow_view_prepare_write")]
    public static partial int ViewPrepareWrite(CowViewEntry* view, ulong firstPage, ulong pageCount);

    [LibraryImport(Library, EntryPoint = "cow_view_prepare_read")]
    public static partial int ViewPrepareRead(CowViewEntry* view, ulong firstPage, ulong pageCount);

    [LibraryImport(Library, EntryPoint = "cow_view_stats")]
    public static partial int ViewStats(CowViewEntry* view, CowViewStatsNative* stats);

    [LibraryImport(Library, EntryPoint = "cow_view_count_mappings")]
    public static partial long ViewCountMappings(CowViewEntry* view);

    [LibraryImport(Library, EntryPoint = "cow_view_slot_of")]
    public static partial uint ViewSlotOf(CowViewEntry* view, ulong page);

    [LibraryImport(Library, EntryPoint = "cow_os_memfd_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MemfdCreate(string name, ulong size, out int fd);

    [LibraryImport(Library, EntryPoint = "cow_os_close")]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "cow_os_reserve")]
    public static partial int Reserve(ulong size, ulong alignment, out nint address);

    [LibraryImport(Library, EntryPoint = "cow_os_allocate_table")]
    public static partial int AllocateTable(ulong size, out nint address);

    [LibraryImport(Library, EntryPoint = "cow_os_release")]
    public static partial int Release(nint address, ulong size);

    [LibraryImport(Library, EntryPoint = "cow_os_map_pool")]
    public static partial int MapPool(int fd, ulong size, out nint address);

    [LibraryImport(Library, EntryPoint = "cow_os_file_allocated_bytes")]
    public static partial int FileAllocatedBytes(int fd, out ulong bytes);

    [LibraryImport(Library, EntryPoint = "cow_os_error_name")]
    public static partial nint ErrorName(int error);

    [LibraryImport(Library, EntryPoint = "cow_layout_entry")]
    public static partial int LayoutEntry(uint index, out nint structName, out nint fieldName, out uint offset, out uint size);
}
