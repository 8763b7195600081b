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
/// once.</para>
/// <para>Lifetime: the engine holds every view it made (regions and snapshots) until that view is
/// disposed, so a view stays mapped, and pointers into it stay valid, for as long as the engine is
/// reachable and neither is disposed, even when the program keeps nothing but a pointer into it. The
/// garbage collector never releases a view of a live engine: a view is released only by its own
/// <see cref="CowView.Dispose"/> or by the engine's <see cref="Dispose"/>, which disposes every
/// view still open and logs a warning with their number (EventId 20). The flip side: a view that
/// is never disposed holds its memory until the engine is disposed (watch
/// <see cref="CowEngineStats.LiveViews"/> or the <c>cowengine.views</c> metric). Only when the
/// engine itself and all its views have become unreachable (each view references its engine) does
/// a finalizer release them, as a safety net, and log a warning (EventId 21).</para>
/// <para>Address space: the engine reserves address space for its slot pool (2 MiB per chunk of slot
/// space, by default 8 times the capacity and at least 128 GiB) and every view takes a 2 MiB-aligned
/// range of a process-wide arena. Under an address-space limit (RLIMIT_AS, <c>ulimit -v</c>) the
/// engine takes at most half of what the limit leaves free (less a headroom of an eighth of the
/// limit, 1-4 GiB, for the runtime): its slot space shrinks towards 1.25 times the capacity, a
/// default capacity shrinks to fit, and the arena grows as views need it. What cannot fit throws
/// <see cref="CowAddressSpaceExhaustedException"/> with the numbers; nothing is left half made.</para>
/// </remarks>
public sealed unsafe class CowMemoryEngine : IDisposable
{
    /// <summary>The page size: the unit of sharing and copying.</summary>
    public const int PageSize = CowConstants.PageSize;

    private const ulong MinimumChunks = 65_536;
    private const long MinimumDefaultCapacity = 64L << 20;
    private const int DefaultFaultAroundPages = 32;
    private const int MaxFaultAroundPages = CowConstants.SegmentPages;

    private readonly Lock _viewsGate = new();
    /// <summary>Every live view, held strongly: the garbage collector never releases a view of a live engine.</summary>
    private readonly Dictionary<uint, CowView> _views = new();
    private bool _disposed;
    private readonly bool _constructed;

    /// <summary>Creates an engine.</summary>
    /// <param name="options">Limits and logging; null for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">A limit is not positive or not page-aligned.</exception>
    /// <exception cref="CowAddressSpaceExhaustedException">The process's address space is limited (RLIMIT_AS,
    /// <c>ulimit -v</c>) and the slot pool and tables for this capacity do not fit; the message gives the numbers.</exception>
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
        FaultAroundPages = options.FaultAroundPages ?? DefaultFaultAroundPages;
        if (FaultAroundPages < 1 || FaultAroundPages > MaxFaultAroundPages)
            throw new ArgumentOutOfRangeException(nameof(options), FaultAroundPages, $"FaultAroundPages must be between 1 and {MaxFaultAroundPages}.");

        // The process tables first (installing the handler): under RLIMIT_AS the arena takes its
        // first part before the engine sizes its slot pool from what is left, and the engine's
        // live list is as long as the view table.
        _ = ProcessTables.Table;
        (uint chunkCapacity, capacity) = SizeSlotSpace(capacity, capacityWasDefaulted: options.CapacityBytes is null);
        CapacityBytes = capacity;
        uint leafCapacity = EngineHandle.LeafCapacityFor(chunkCapacity);
        (WriteProtection, UserfaultfdHandle? userfaultfd) = UserfaultfdHandle.Choose(options.WriteProtection, Logger);
        Handle = EngineHandle.Create((ulong)(capacity / PageSize), chunkCapacity, leafCapacity, MappingBudget, (uint)FaultAroundPages,
            userfaultfd);
        try
        {
            Reclaimer = new SlotReclaimer(Handle, Logger);
        }
        catch
        {
            // No half-made engine: its pool and tables go now, not at some later collection.
            Handle.Dispose();
            throw;
        }
        Log.EngineCreated(Logger, capacity, chunkCapacity, MappingBudget, MaxMapCount, WriteProtection);
        CowMetrics.Register(this);
        _constructed = true;
    }

    /// <summary>
    /// The slot space (chunks of 2 MiB) for <paramref name="capacity"/>, and the capacity itself,
    /// which shrinks only when it was defaulted. A chunk is the write target of one (view, segment),
    /// so a view that writes one page of a segment holds a chunk of which it uses one slot: many
    /// snapshots each writing a little need far more chunks than the capacity has pages / 512. Slot
    /// space is address space in a sparse file, and its tables are committed page by page as chunks
    /// are used, so it is cheap to be generous: 8 times the capacity, and at least 65,536 chunks
    /// (128 GiB of file offsets, 256 MiB of reserved refcount table) - unless RLIMIT_AS says
    /// otherwise: then the engine takes at most half of the address space still available, and no
    /// less than the capacity and a quarter more (a full-capacity region takes consecutive chunks).
    /// </summary>
    private (uint Chunks, long Capacity) SizeSlotSpace(long capacity, bool capacityWasDefaulted)
    {
        uint desired = DesiredChunks(capacity);
        ulong? available = SystemLimits.AddressSpaceAvailable();
        if (available is not ulong free || EngineHandle.AddressSpaceBytes(desired) <= free / 2)
            return (desired, capacity);

        ulong limit = SystemLimits.AddressSpaceLimit() ?? 0;
        uint fit = ChunksThatFit(free / 2);
        uint chunks;
        long requestedCapacity = capacity;
        if (capacityWasDefaulted)
        {
            // The default (the machine's memory) is a loose bound: shrink it so that the slot space
            // is still twice the capacity.
            capacity = Math.Min(capacity, (long)(fit / 2) * CowConstants.SegmentSize);
            if (capacity < MinimumDefaultCapacity)
                throw Errno.AddressSpaceExhausted("creating an engine", EngineHandle.AddressSpaceBytes(MinimumChunksFor(MinimumDefaultCapacity)),
                    $"An engine needs at least a {MinimumDefaultCapacity >> 20} MiB slot pool and its tables.");
            chunks = Math.Min(fit, desired);
        }
        else
        {
            uint minimum = MinimumChunksFor(capacity);
            chunks = Math.Min(Math.Max(fit, minimum), desired);
            if (EngineHandle.AddressSpaceBytes(chunks) > free)
                throw Errno.AddressSpaceExhausted("creating an engine", EngineHandle.AddressSpaceBytes(minimum),
                    string.Create(System.Globalization.CultureInfo.InvariantCulture,
                        $"An engine of CapacityBytes {capacity:N0} needs a slot pool of at least {minimum:N0} chunks of 2 MiB (the capacity and a quarter more) and its tables."));
        }
        SlotSpaceNote = string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $" (The engine's slot space, where the copies of written pages go, was reduced to {chunks:N0} chunks of 2 MiB, from {desired:N0}, to fit the address-space limit, RLIMIT_AS: a higher `ulimit -v` leaves more room for copies.)");
        Log.AddressSpaceLimited(Logger, SystemLimits.Format(limit), SystemLimits.Format(free), chunks, desired, capacity, requestedCapacity);
        return (chunks, capacity);
    }

    private static uint DesiredChunks(long capacity)
    {
        ulong chunksForCapacity = (ulong)((capacity + CowConstants.SegmentSize - 1) / CowConstants.SegmentSize);
        return (uint)Math.Min(Math.Max(chunksForCapacity * 8 + 64, MinimumChunks), MaxChunks);
    }

    private static uint MinimumChunksFor(long capacity)
    {
        ulong chunksForCapacity = (ulong)((capacity + CowConstants.SegmentSize - 1) / CowConstants.SegmentSize);
        return (uint)Math.Min(chunksForCapacity + Math.Max(64, chunksForCapacity / 4), MaxChunks);
    }

    private const ulong MaxChunks = (CowConstants.None >> CowConstants.ChunkSlotsShift) - 1;

    /// <summary>The most chunks whose pool and tables fit in <paramref name="bytes"/> (0 if none).</summary>
    private static uint ChunksThatFit(ulong bytes)
    {
        uint low = 0, high = (uint)MaxChunks;
        while (low < high)
        {
            uint middle = low + (high - low + 1) / 2;
            if (EngineHandle.AddressSpaceBytes(middle) <= bytes)
                low = middle;
            else
                high = middle - 1;
        }
        return low;
    }

    /// <summary>
    /// The safety net of the lifetime contract: runs only when the engine and every view it made
    /// are unreachable and the engine was never disposed. The views' handles release the views (their
    /// own finalizers, which run after this one); this stops the reclaimer thread, whose reference
    /// would otherwise keep the pool and its tables alive for the rest of the process.
    /// </summary>
    ~CowMemoryEngine()
    {
        if (!_constructed)
            return; // the constructor threw: it released what it had made
        int open;
        lock (_viewsGate)
            open = _views.Count;
        Reclaimer.Dispose();
        try
        {
            Log.EngineFinalized(Logger, open);
        }
        catch (Exception)
        {
            // A finalizer must not throw: a logger disposed before this engine is not worth a crash.
        }
    }

    /// <summary>Said after a capacity message when RLIMIT_AS made the slot space smaller ("" otherwise).</summary>
    internal string SlotSpaceNote { get; private set; } = "";

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
    /// <remarks>
    /// Every page starts on the kernel's zero page: reading a page that was never written allocates
    /// nothing, however large the region. The first write to a page costs one engine fault, which
    /// maps the page's own memory in place (no copy). Like any protected page, a never-written page
    /// must be prepared (<see cref="CowView.PrepareForWrite"/>) before a system call writes into it.
    /// </remarks>
    /// <param name="lengthBytes">Its size: a positive multiple of <see cref="PageSize"/>.</param>
    /// <param name="trackWrites">
    /// False (the default): first writes resolve ahead (a sequential fill takes one fault per up to
    /// <see cref="CowEngineOptions.FaultAroundPages"/> pages; scattered ones, once a 2 MiB segment
    /// holds a few, make the rest of that segment writable at once, after which reading its
    /// never-written pages allocates them), and <see cref="CowView.TakeDirtyPages"/> counts every page
    /// as dirty until the region's first snapshot or TakeDirtyPages call. True: each page's first
    /// write is one fault of its own, every page never written stays on the zero page, and dirty-page
    /// tracking is exact from creation.
    /// </param>
    /// <returns>The region; dispose it when done.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The size is not positive, not page-aligned, or larger than the capacity.</exception>
    /// <exception cref="CowCapacityExceededException">The engine's capacity is in use by other views.</exception>
    /// <exception cref="CowMappingBudgetExceededException">No mapping budget is left.</exception>
    /// <exception cref="CowAddressSpaceExhaustedException">The process's address space is limited (RLIMIT_AS) and the
    /// region's range does not fit; nothing was changed.</exception>
    /// <exception cref="ObjectDisposedException">The engine is disposed.</exception>
    public CowView CreateRegion(long lengthBytes, bool trackWrites = false)
    {
        if (lengthBytes <= 0 || lengthBytes % PageSize != 0)
            throw new ArgumentOutOfRangeException(nameof(lengthBytes), lengthBytes, "A region's size must be a positive multiple of 4096 bytes.");
        if (lengthBytes > CapacityBytes)
            throw new ArgumentOutOfRangeException(nameof(lengthBytes), lengthBytes, $"A region cannot be larger than the engine's capacity ({CapacityBytes} bytes).");
        ObjectDisposedException.ThrowIf(_disposed, this);

        long pages = lengthBytes / PageSize;
        ViewHandle handle = ViewHandle.Allocate(this, pages, "creating a region");
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
    /// not be used afterwards. Views still open are a warning in the log (EventId 20: how many
    /// regions and snapshots), since each was holding memory until now. Calling it again does nothing.
    /// </summary>
    public void Dispose()
    {
        List<CowView> live;
        lock (_viewsGate)
        {
            if (_disposed)
                return;
            _disposed = true;
            live = new List<CowView>(_views.Values);
        }
        if (live.Count > 0)
        {
            int snapshots = live.Count(view => view.IsSnapshot);
            Log.EngineDisposedWithOpenViews(Logger, live.Count, live.Count - snapshots, snapshots);
        }
        foreach (CowView view in live)
            view.Dispose();
        Reclaimer.Dispose();
        Log.EngineDisposed(Logger, live.Count);
        CowMetrics.Unregister(this);
        Handle.Dispose();
        GC.SuppressFinalize(this);
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
            _views[view.Index] = view;
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
