using CowEngine.Internal;
using CowEngine.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CowEngine;

/// <summary>
/// A copy-on-write memory engine: one pool of 4 KiB slots (a memfd) from which it makes regions,
/// and nested, writable, page-granular snapshots of them.
/// </summary>
/// <remarks>
/// <para>The first engine in a process installs a SIGSEGV handler that resolves writes to shared
/// pages in native code and passes every other fault to the handler that was there before (the .NET
/// runtime's), so NullReferenceException and stack-overflow reporting keep working.</para>
/// <para>Thread safety: every member may be called from any thread. Several engines may exist at
/// once. Disposing the engine disposes every view it made that is still live.</para>
/// </remarks>
public sealed unsafe class CowMemoryEngine : IDisposable
{
    /// <summary>The page size: the unit of sharing and copying.</summary>
    public const int PageSize = CowConstants.PageSize;

    private const ulong MinimumChunks = 65_536;
    private const int DefaultFaultAroundPages = 32;
    private const int MaxFaultAroundPages = CowConstants.SegmentPages;

    private readonly Lock _viewsGate = new();
    private readonly Dictionary<uint, WeakReference<CowView>> _views = new();
    private bool _disposed;

    /// <summary>Creates an engine.</summary>
    /// <param name="options">Limits and logging; null for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">A limit is not positive or not page-aligned.</exception>
    /// <exception cref="CowSystemException">The memfd, the pool mapping or a table could not be created.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The kernel refused a mapping with ENOMEM (vm.max_map_count, or no address
    /// space left); its CowSystemException is the inner exception.</exception>
    /// <exception cref="PlatformNotSupportedException">Not Linux x64; or <see cref="CowWriteProtection.Userfaultfd"/>
    /// was asked for and the kernel refuses it (the message says why).</exception>
    /// <exception cref="ArgumentException">COWENGINE_WRITE_PROTECTION holds something else than a mechanism's name.</exception>
    public CowMemoryEngine(CowEngineOptions? options = null)
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64)
            throw new PlatformNotSupportedException("CowEngine runs on Linux x64 only.");
        options ??= new CowEngineOptions();
        ILoggerFactory loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        Logger = loggerFactory.CreateLogger<CowMemoryEngine>();

        long capacity = options.CapacityBytes ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / PageSize * PageSize;
        if (capacity <= 0 || capacity % PageSize != 0)
            throw new ArgumentOutOfRangeException(nameof(options), capacity, "CapacityBytes must be a positive multiple of 4096.");
        MaxMapCount = SystemLimits.MaxMapCount();
        MappingBudget = options.MappingBudget ?? MaxMapCount / 2;
        if (MappingBudget < 4)
            throw new ArgumentOutOfRangeException(nameof(options), MappingBudget, "MappingBudget must be at least 4.");
        CapacityBytes = capacity;

        // Slot space: a chunk (512 slots, 2 MiB) is the write target of one (view, segment), so a
        // view that writes one page of a segment holds a chunk of which it uses one slot: many
        // snapshots each writing a little need far more chunks than the capacity has pages / 512.
        // Slot space is address space in a sparse file, and its tables are committed page by page
        // as chunks are used, so it is cheap to be generous: 8 times the capacity, and at least
        // 65,536 chunks (128 GiB of file offsets, 256 MiB of reserved refcount table).
        ulong chunksForCapacity = (ulong)((capacity + CowConstants.SegmentSize - 1) / CowConstants.SegmentSize);
        uint chunkCapacity = (uint)Math.Min(Math.Max(chunksForCapacity * 8 + 64, MinimumChunks), (CowConstants.None >> CowConstants.ChunkSlotsShift) - 1);
        uint leafCapacity = (uint)Math.Min((ulong)chunkCapacity * 2 + 1024, int.MaxValue);
        FaultAroundPages = options.FaultAroundPages ?? DefaultFaultAroundPages;
        if (FaultAroundPages < 1 || FaultAroundPages > MaxFaultAroundPages)
            throw new ArgumentOutOfRangeException(nameof(options), FaultAroundPages, $"FaultAroundPages must be between 1 and {MaxFaultAroundPages}.");
        // The process tables first (installing the handler on first use): if they cannot be made, no
        // engine state exists yet that would have to be given back.
        _ = ProcessTables.Table;
        (WriteProtection, UserfaultfdHandle? userfaultfd) = UserfaultfdHandle.Choose(options.WriteProtection, Logger);
        Handle = EngineHandle.Create((ulong)(capacity / PageSize), chunkCapacity, leafCapacity, MappingBudget, (uint)FaultAroundPages,
            userfaultfd);
        Reclaimer = new SlotReclaimer(Handle, Logger);
        Log.EngineCreated(Logger, capacity, chunkCapacity, MappingBudget, MaxMapCount, WriteProtection);
        CowMetrics.Register(this);
    }

    internal EngineHandle Handle { get; }

    internal SlotReclaimer Reclaimer { get; }

    internal ILogger Logger { get; }

    /// <summary>vm.max_map_count when the engine was made (the budget's default is half of it).</summary>
    internal int MaxMapCount { get; }

    /// <summary>Completed <see cref="CowView.RestoreTo"/> calls (for <see cref="CowMetrics"/>).</summary>
    internal long RestoreCount;

    /// <summary>The capacity limit in bytes.</summary>
    public long CapacityBytes { get; }

    /// <summary>The most kernel mappings this engine may use.</summary>
    public int MappingBudget { get; }

    /// <summary>The most pages one write fault resolves (<see cref="CowEngineOptions.FaultAroundPages"/>).</summary>
    public int FaultAroundPages { get; }

    /// <summary>
    /// The write protection this engine uses: never <see cref="CowWriteProtection.Automatic"/>, which
    /// resolves to one of the two when the engine is created.
    /// </summary>
    public CowWriteProtection WriteProtection { get; }

    /// <summary>Creates a zero-filled, writable region.</summary>
    /// <param name="lengthBytes">Its size: a positive multiple of <see cref="PageSize"/>.</param>
    /// <param name="trackWrites">
    /// False (the default): the region is mapped writable, so filling it costs only the kernel's own
    /// first-touch faults, and <see cref="CowView.TakeDirtyPages"/> counts every page as dirty until
    /// the region's first snapshot or TakeDirtyPages call. True: the region starts write-protected,
    /// so each page's first write costs one engine fault, and dirty-page tracking is exact from
    /// creation.
    /// </param>
    /// <returns>The region; dispose it when done.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The size is not positive, not page-aligned, or larger than the capacity.</exception>
    /// <exception cref="CowCapacityExceededException">The engine's capacity is in use by other views.</exception>
    /// <exception cref="CowMappingBudgetExceededException">No mapping budget is left.</exception>
    /// <exception cref="ObjectDisposedException">The engine is disposed.</exception>
    public CowView CreateRegion(long lengthBytes, bool trackWrites = false)
    {
        if (lengthBytes <= 0 || lengthBytes % PageSize != 0)
            throw new ArgumentOutOfRangeException(nameof(lengthBytes), lengthBytes, "A region's size must be a positive multiple of 4096 bytes.");
        if (lengthBytes > CapacityBytes)
            throw new ArgumentOutOfRangeException(nameof(lengthBytes), lengthBytes, $"A region cannot be larger than the engine's capacity ({CapacityBytes} bytes).");
        ObjectDisposedException.ThrowIf(_disposed, this);

        long pages = lengthBytes / PageSize;
        ViewHandle handle = ViewHandle.Allocate(this, pages);
        int error = CowNative.RegionCreate(handle, trackWrites ? 1 : 0);
        if (error != 0)
        {
            if ((handle.Entry->Flags & CowConstants.ViewRangeKept) != 0)
                OnViewLeaked(() => Log.RegionUndoFailed(Logger, Errno.NameOf(error)));
            handle.Dispose();
            throw Errno.ToException(error, "creating a region", this);
        }
        return Track(new CowView(this, handle, isSnapshot: false));
    }

    /// <summary>Reads the engine's counters.</summary>
    /// <exception cref="ObjectDisposedException">The engine is disposed.</exception>
    public CowEngineStats GetStats()
    {
        // The counters are read from the table directly, not through a call: hold it meanwhile.
        bool added = false;
        Handle.DangerousAddRef(ref added);
        try
        {
            CowEngineTable* table = Handle.Table;
            // Memory waiting to be given back is not "in use". A run whose hole punch fails stays in
            // use (SlotsInUse and CommittedBytes count it) until the reclaimer's retry succeeds.
            Reclaimer.Drain();
            Errno.ThrowIfFailed(CowNative.FileAllocatedBytes(Handle.Memfd, out ulong committed), "reading the pool's size (fstat)");
            return new CowEngineStats(
                LiveViews: LiveViewCount,
                SlotsInUse: (long)Volatile.Read(ref table->SlotsInUse),
                CommittedBytes: (long)committed,
                CapacityBytes: CapacityBytes,
                Mappings: CurrentMappings(),
                MappingBudget: MappingBudget,
                WriteFaults: (long)Volatile.Read(ref table->WriteFaults),
                CopyFaults: (long)Volatile.Read(ref table->CopyFaults),
                PagesCopied: (long)Volatile.Read(ref table->PagesCopied),
                Snapshots: (long)Volatile.Read(ref table->Snapshots),
                ReadFaults: (long)Volatile.Read(ref table->ReadFaults),
                Evictions: (long)Volatile.Read(ref table->Evictions),
                ReverseCopies: (long)Volatile.Read(ref table->ReverseCopies),
                PagesRestoredByCopy: (long)Volatile.Read(ref table->PagesRestoredByCopy));
        }
        finally
        {
            Handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Disposes the engine and every view it made that is still live. Spans over those views must
    /// not be used afterwards. Calling it again does nothing.
    /// </summary>
    public void Dispose()
    {
        List<CowView> live = new();
        lock (_viewsGate)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (WeakReference<CowView> reference in _views.Values)
                if (reference.TryGetTarget(out CowView? view))
                    live.Add(view);
        }
        foreach (CowView view in live)
            view.Dispose();
        Reclaimer.Dispose();
        Log.EngineDisposed(Logger, live.Count);
        CowMetrics.Unregister(this);
        Handle.Dispose();
    }

    internal int LiveViewCount
    {
        get
        {
            lock (_viewsGate)
                return _views.Count;
        }
    }

    /// <summary>Mappings in use, as the budget counts them (the shim's one definition of the count).</summary>
    /// <exception cref="ObjectDisposedException">The engine is disposed.</exception>
    internal long CurrentMappings() => CowNative.EngineMappingCount(Handle);

    internal CowView Track(CowView view)
    {
        lock (_viewsGate)
        {
            if (_disposed)
            {
                view.Dispose();
                throw new ObjectDisposedException(nameof(CowMemoryEngine));
            }
            _views[view.Index] = new WeakReference<CowView>(view);
        }
        if (Logger.IsEnabled(LogLevel.Debug))
            Log.ViewCreated(Logger, view.Length, (ulong)view.BaseAddress, view.IsSnapshot ? "snapshot" : "region");
        return view;
    }

    internal void OnViewReleased(uint index)
    {
        lock (_viewsGate)
            _views.Remove(index);
        Reclaimer.Signal();
    }

    internal void OnViewDisposeFailed(int error) => OnViewLeaked(() => Log.ViewDisposeFailed(Logger, Errno.NameOf(error)));

    /// <summary>
    /// Views whose range could not be unmapped (a failed dispose, or a failed region creation that
    /// could not undo its mapping): their slots stay in use and their ranges are never reused. For tests.
    /// </summary>
    internal long LeakedViews => Interlocked.Read(ref _leakedViews);

    private long _leakedViews;

    private void OnViewLeaked(Action log)
    {
        Interlocked.Increment(ref _leakedViews);
        log();
    }
}
