using System.Runtime.InteropServices;
using CowEngine.Internal;

namespace CowEngine.Interop;

/// <summary>
/// The native shim's entry points (native/include/cow_engine.h). Every function returns 0 or a
/// positive errno value; <see cref="Errno"/> turns those into exceptions.
/// </summary>
/// <remarks>
/// <para>Calls that mutate views race with the SIGSEGV handler, so each is one ordinary P/Invoke: the
/// thread is in preemptive GC mode for the whole call, never suspended halfway by a GC while it
/// holds a lock a fault handler may be waiting for.</para>
/// <para>Views and engines are passed as their SafeHandles (the handle value is the native
/// <c>cow_view_t*</c> / <c>cow_engine_t*</c>): the generated marshalling holds a reference for the
/// call, so the entry cannot be released under it, and a closed handle throws
/// ObjectDisposedException before the call. Raw pointers remain where no handle exists yet
/// (<see cref="EngineInit"/>) or where the handle is already being released
/// (<see cref="ViewDispose"/>, from <see cref="ViewHandle"/>'s ReleaseHandle).</para>
/// <para>No function sets errno (they return it), so none uses SetLastError.</para>
/// </remarks>
internal static unsafe partial class CowNative
{
    public const string Library = "cowengine";

    [LibraryImport(Library, EntryPoint = "cow_install")]
    public static partial int Install(CowProcessTable* process);

    [LibraryImport(Library, EntryPoint = "cow_install_sigbus")]
    public static partial int InstallSigbus();

    [LibraryImport(Library, EntryPoint = "cow_os_userfaultfd_open")]
    public static partial int UserfaultfdOpen(out int fd);

    [LibraryImport(Library, EntryPoint = "cow_handler_is_current")]
    public static partial int HandlerIsCurrent();

    [LibraryImport(Library, EntryPoint = "cow_engine_init")]
    public static partial int EngineInit(CowEngineTable* engine);

    [LibraryImport(Library, EntryPoint = "cow_engine_mapping_count")]
    public static partial long EngineMappingCount(EngineHandle engine);

    /// <summary>0, or the errno of the first hole punch that failed (its run stays queued, its slots in use).</summary>
    [LibraryImport(Library, EntryPoint = "cow_engine_reclaim")]
    public static partial int EngineReclaim(EngineHandle engine, out ulong reclaimed);

    [LibraryImport(Library, EntryPoint = "cow_region_create")]
    public static partial int RegionCreate(ViewHandle view, int trackWrites);

    [LibraryImport(Library, EntryPoint = "cow_view_snapshot")]
    public static partial int ViewSnapshot(ViewHandle source, ViewHandle target);

    // Raw entries: an array of SafeHandles cannot be marshalled. The caller (CowViewGroup) holds a
    // reference on every source handle for the call and owns the fresh target handles.
    [LibraryImport(Library, EntryPoint = "cow_views_snapshot")]
    public static partial int ViewsSnapshot(CowViewEntry** sources, CowViewEntry** targets, uint count);

    [LibraryImport(Library, EntryPoint = "cow_view_restore")]
    public static partial int ViewRestore(ViewHandle view, ViewHandle source);

    [LibraryImport(Library, EntryPoint = "cow_view_diff")]
    public static partial int ViewDiff(ViewHandle a, ViewHandle b, ulong* bits, out ulong count);

    [LibraryImport(Library, EntryPoint = "cow_view_take_dirty")]
    public static partial int ViewTakeDirty(ViewHandle view, ulong* bits, out ulong count);

    // Raw: called from ViewHandle.ReleaseHandle, when the handle can no longer be add-ref'd.
    [LibraryImport(Library, EntryPoint = "cow_view_dispose")]
    public static partial int ViewDispose(CowViewEntry* view);

    [LibraryImport(Library, EntryPoint = "cow_view_prepare_write")]
    public static partial int ViewPrepareWrite(ViewHandle view, ulong firstPage, ulong pageCount);

    [LibraryImport(Library, EntryPoint = "cow_view_prepare_read")]
    public static partial int ViewPrepareRead(ViewHandle view, ulong firstPage, ulong pageCount);

    [LibraryImport(Library, EntryPoint = "cow_view_stats")]
    public static partial int ViewStats(ViewHandle view, CowViewStatsNative* stats);

    [LibraryImport(Library, EntryPoint = "cow_view_count_mappings")]
    public static partial long ViewCountMappings(ViewHandle view);

    [LibraryImport(Library, EntryPoint = "cow_view_slot_of")]
    public static partial uint ViewSlotOf(ViewHandle view, ulong page);

    [LibraryImport(Library, EntryPoint = "cow_os_memfd_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MemfdCreate(string name, ulong size, out int fd);

    [LibraryImport(Library, EntryPoint = "cow_os_close")]
    public static partial int Close(int fd);

    /// <summary>PROT_NONE address space: wherever the kernel finds room when <paramref name="address"/> is 0
    /// (then set to it), else exactly there (EEXIST if anything is mapped there).</summary>
    [LibraryImport(Library, EntryPoint = "cow_os_reserve")]
    public static partial int Reserve(ulong size, ulong alignment, ref nint address);

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
