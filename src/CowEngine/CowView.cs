using CowEngine.Internal;
using CowEngine.Interop;

namespace CowEngine;

/// <summary>
/// A range of copy-on-write memory: a region made by <see cref="CowMemoryEngine.CreateRegion"/> or a
/// snapshot of another view. Every view is readable and writable at a fixed address for its whole
/// life; writing a page that other views share copies that page (and only that page) first.
/// </summary>
/// <remarks>
/// <para>Thread safety: any number of threads may read and write a view's memory, the same pages
/// included, while other threads snapshot it: no write is lost, and a snapshot holds exactly the
/// writes that completed before <see cref="Snapshot"/> was called. All members are thread-safe.</para>
/// <para>Lifetime: a view stays mapped, at the same address, until it is disposed - by its own
/// <see cref="Dispose"/> or by its engine's <see cref="CowMemoryEngine.Dispose"/> - and never by the
/// garbage collector while its engine is alive: the engine holds every view it made. So a pointer
/// (<see cref="Pointer"/>, <see cref="BaseAddress"/>) kept without the view stays valid as long as
/// the engine is reachable and neither is disposed. Dispose views you no longer need: an
/// undisposed view holds its memory until the engine is disposed (which logs how many were still
/// open). Only an engine that is itself unreachable, with all its views, is released by a finalizer
/// (a safety net); code that keeps only pointers must therefore keep the engine (or the view)
/// reachable. Spans and pointers must not be used after the view is disposed: the range becomes
/// inaccessible, and touching it is an access violation that ends the process (never a silent
/// write into another view); the engine first writes a line to stderr naming the disposed view.
/// Disposing a view while other threads still write to it is therefore a bug in the caller; the
/// engine guarantees only that no other view is affected.</para>
/// <para>System calls: the kernel raises no fault for its own accesses to user memory, so it cannot
/// make the engine act. read(2) and .NET APIs that fill a buffer (e.g. <c>RandomAccess.Read</c>)
/// fail with EFAULT ("Bad address"), or return a short count, when their buffer covers a page that
/// is still shared or was never written (on the read-only zero page; a fresh region's pages are):
/// call <see cref="PrepareForWrite"/> on the buffer first. write(2) and APIs that
/// read a buffer (e.g. <c>RandomAccess.Write</c>, <c>Socket.Send</c>) fail the same way on pages a
/// snapshot has not mapped yet (snapshots are mapped on first touch) or that the engine unmapped to
/// stay within its mapping budget: call <see cref="PrepareForRead"/> first.</para>
/// </remarks>
public sealed unsafe class CowView : IDisposable
{
    internal CowView(CowMemoryEngine engine, ViewHandle handle, bool isSnapshot)
    {
        Engine = engine;
        Handle = handle;
        IsSnapshot = isSnapshot;
        PageCount = (long)handle.Entry->PageCount;
        Length = PageCount * CowMemoryEngine.PageSize;
        BaseAddress = (nint)handle.Entry->Base;
        Index = handle.Entry->Index;
    }

    /// <summary>The engine this view belongs to.</summary>
    public CowMemoryEngine Engine { get; }

    /// <summary>Size in bytes (a multiple of <see cref="CowMemoryEngine.PageSize"/>).</summary>
    public long Length { get; }

    /// <summary>Size in pages.</summary>
    public long PageCount { get; }

    /// <summary>Address of the first byte. Stable for the view's whole life.</summary>
    public nint BaseAddress { get; }

    /// <summary>Pointer to the first byte. Stable for the view's whole life.</summary>
    public byte* Pointer => (byte*)BaseAddress;

    /// <summary>True for a view made by <see cref="Snapshot"/>.</summary>
    public bool IsSnapshot { get; }

    /// <summary>True once <see cref="Dispose"/> was called (or the engine was disposed).</summary>
    public bool IsDisposed => Handle.IsClosed;

    internal uint Index { get; }

    /// <summary>
    /// The view's handle. Passing it to the native calls holds a reference for the call (the
    /// generated marshalling add-refs it, and throws ObjectDisposedException once it is closed);
    /// <see cref="CowViewLease"/> holds one for longer.
    /// </summary>
    internal ViewHandle Handle { get; }

    /// <summary>The whole view as a span.</summary>
    /// <exception cref="InvalidOperationException">The view is larger than 2 GiB - 1 bytes: use <see cref="AsSpan(long, int)"/>.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public Span<byte> AsSpan()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (Length > int.MaxValue)
            throw new InvalidOperationException($"The view is {Length} bytes, more than a span can hold; use AsSpan(offset, length).");
        return new Span<byte>(Pointer, (int)Length);
    }

    /// <summary>A part of the view as a span.</summary>
    /// <param name="offset">Byte offset from the start of the view.</param>
    /// <param name="length">Length in bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the view.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public Span<byte> AsSpan(long offset, int length)
    {
        CheckRange(offset, length);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return new Span<byte>(Pointer + offset, length);
    }

    /// <summary>A part of the view as a span of <typeparamref name="T"/>.</summary>
    /// <param name="byteOffset">Byte offset from the start of the view (need not be aligned).</param>
    /// <param name="count">Number of elements.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the view.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public Span<T> AsSpan<T>(long byteOffset, int count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        CheckRange(byteOffset, (long)count * sizeof(T));
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return new Span<T>(Pointer + byteOffset, count);
    }

    /// <summary>
    /// Takes a snapshot: a new view that holds this view's contents as of this call. Both stay
    /// writable; neither sees the other's later writes. Costs no copying: pages are shared until
    /// written. Snapshots of snapshots work to any depth.
    /// </summary>
    /// <returns>The snapshot; dispose it when done.</returns>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The snapshot would exceed the mapping budget; nothing changed.</exception>
    /// <exception cref="CowAddressSpaceExhaustedException">The process's address space is limited (RLIMIT_AS) and the
    /// snapshot's range does not fit; nothing changed.</exception>
    /// <exception cref="CowSystemException">A system call failed; both views are unchanged.</exception>
    public CowView Snapshot()
    {
        // Not worth renting an entry for a view that is already disposed; one disposed meanwhile
        // makes the call below throw ObjectDisposedException.
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ViewHandle target = ViewHandle.Allocate(Engine, PageCount, "taking a snapshot");
        int error;
        try
        {
            error = CowNative.ViewSnapshot(Handle, target);
        }
        catch
        {
            target.Dispose();
            throw;
        }
        if (error != 0)
        {
            target.Dispose();
            throw Errno.ToException(error, "taking a snapshot", Engine);
        }
        return Engine.Track(new CowView(Engine, target, isSnapshot: true));
    }

    /// <summary>
    /// Rolls this view back (or forward) to <paramref name="source"/>: afterwards it holds exactly
    /// the source's contents. A page that differs and that this view owns alone (it wrote it since
    /// the two parted) gets the source's bytes copied into it and stays this view's page,
    /// write-protected: no remapping, and its next write costs a protection fault, not a copy. The
    /// other differing pages are shared with the source (mapped again on their next touch); pages
    /// the two views already share keep their mappings. When the
    /// source is this view's snapshot, or what it was last restored to, and the source has not been
    /// written since, only the pages this view wrote since are looked at: rolling back to the same
    /// snapshot again and again costs the pages written in between, not the view's size. Otherwise
    /// the cost follows the 2 MiB stretches the two do not share. Both views stay usable and writable;
    /// the written pages of both become write-protected.
    /// </summary>
    /// <remarks>
    /// Memory: this view keeps its own copy of each page it wrote, where the source has its own too
    /// (which it had already while the pages differed). Pages restored this way are counted in
    /// <see cref="CowEngineStats.PagesRestoredByCopy"/>.
    /// </remarks>
    /// <param name="source">A live view of the same engine and the same size; usually a snapshot of this view.</param>
    /// <exception cref="ArgumentException">The source belongs to another engine or has another size.</exception>
    /// <exception cref="ObjectDisposedException">Either view is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The restore could exceed the mapping budget; nothing changed.</exception>
    /// <exception cref="CowSystemException">A system call failed; nothing changed.</exception>
    public void RestoreTo(CowView source)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckSameShape(source, nameof(source));
        ThrowIfEitherDisposed(source);
        Errno.ThrowIfFailed(CowNative.ViewRestore(Handle, source.Handle), "restoring a view", Engine);
        Interlocked.Increment(ref Engine.RestoreCount);
        Engine.Reclaimer.Signal();
    }

    /// <summary>
    /// The pages whose bytes differ between this view and <paramref name="other"/>. Only pages that
    /// map different slots can differ, and only those are compared (4 KiB each): for two views of one
    /// lineage (a view and its snapshots, their snapshots, ...) the cost follows the pages written
    /// since they parted, not the view's size, and when one is the other's snapshot or what it was
    /// last restored to, only the pages written since are looked at. A slot never written reads zero,
    /// which is known without reading it (reading would allocate it): two such slots are equal, and
    /// one is compared with zeros. A slot swapped out is reported without being compared.
    /// Pages changed by concurrent writes may or may not be included.
    /// </summary>
    /// <param name="other">A live view of the same engine and size.</param>
    /// <exception cref="ArgumentException">The other view belongs to another engine or has another size.</exception>
    /// <exception cref="ObjectDisposedException">Either view is disposed.</exception>
    /// <exception cref="CowSystemException">mincore(2), which tells whether a page is in memory, failed; nothing changed.</exception>
    public CowPageSet GetChangedPages(CowView other)
    {
        ArgumentNullException.ThrowIfNull(other);
        CheckSameShape(other, nameof(other));
        ThrowIfEitherDisposed(other);
        var bits = new ulong[ViewHandle.BitmapWords(PageCount)];
        ulong count;
        fixed (ulong* p = bits)
            Errno.ThrowIfFailed(CowNative.ViewDiff(Handle, other.Handle, p, out count), "comparing views", Engine);
        return new CowPageSet(bits, PageCount, (long)count);
    }

    /// <summary>
    /// Get and reset: the pages written since this view was last snapshotted or last asked (or
    /// since creation, for a region made with trackWrites), after which they are write-protected
    /// again so the next call reports only later writes. A page counts once it has been made
    /// writable: by a write fault (which may also make up to
    /// <see cref="CowEngineOptions.FaultAroundPages"/> - 1 pages after a sequential run writable), or by
    /// <see cref="PrepareForWrite"/> (even if nothing was then written). Costs the dirty runs, not the
    /// view's size. The next write to each returned page costs one engine fault (an mprotect, no copy).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    /// <exception cref="CowSystemException">Write-protecting the pages failed; the pages stay dirty (the next call reports them).</exception>
    /// <exception cref="CowMappingBudgetExceededException">The kernel refused the protection change (ENOMEM, vm.max_map_count); the pages stay dirty.</exception>
    public CowPageSet TakeDirtyPages()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var bits = new ulong[ViewHandle.BitmapWords(PageCount)];
        ulong count;
        fixed (ulong* p = bits)
            Errno.ThrowIfFailed(CowNative.ViewTakeDirty(Handle, p, out count), "collecting dirty pages", Engine);
        return new CowPageSet(bits, PageCount, (long)count);
    }

    /// <summary>
    /// Makes the pages covering [<paramref name="offset"/>, <paramref name="offset"/> +
    /// <paramref name="length"/>) private and writable now, copying those that are shared, so that
    /// the kernel can write into them: system calls such as read(2) do not raise the write fault the
    /// engine relies on, and fail with EFAULT on a shared page instead. The range need not be
    /// page-aligned. The pages stay writable (and mapped) until the next <see cref="Snapshot"/>,
    /// <see cref="TakeDirtyPages"/> or <see cref="RestoreTo"/> of this view.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the view.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    /// <exception cref="CowCapacityExceededException">No slot was left for a copy; pages before it were prepared.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The kernel refused a mapping (vm.max_map_count); pages before it were prepared.</exception>
    /// <exception cref="CowSystemException">Another system call failed; pages before it were prepared, no contents changed.</exception>
    public void PrepareForWrite(long offset, long length) =>
        PreparePages(offset, length, &CowNative.ViewPrepareWrite, "preparing pages for writing");

    /// <summary>
    /// Maps the pages covering [<paramref name="offset"/>, <paramref name="offset"/> +
    /// <paramref name="length"/>) now, so that the kernel can read them: a snapshot maps its pages
    /// only when they are first touched, and the engine may unmap cold pages to stay within its
    /// mapping budget, but system calls such as write(2) raise no fault and fail with EFAULT on an
    /// unmapped page instead. Nothing is copied. The pages stay mapped until the next
    /// <see cref="Snapshot"/>, <see cref="TakeDirtyPages"/> or <see cref="RestoreTo"/> of this view.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the view.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The kernel refused a mapping (vm.max_map_count).</exception>
    /// <exception cref="CowSystemException">Another system call failed; pages before it were prepared.</exception>
    public void PrepareForRead(long offset, long length) =>
        PreparePages(offset, length, &CowNative.ViewPrepareRead, "preparing pages for reading");

    /// <summary>Runs a prepare call on the pages covering a byte range (rounded out to pages).</summary>
    private void PreparePages(long offset, long length, delegate*<ViewHandle, ulong, ulong, int> prepare, string what)
    {
        CheckRange(offset, length);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (length == 0)
            return;
        ulong first = (ulong)offset / CowMemoryEngine.PageSize;
        ulong end = ((ulong)(offset + length) + CowMemoryEngine.PageSize - 1) / CowMemoryEngine.PageSize;
        Errno.ThrowIfFailed(prepare(Handle, first, end - first), what, Engine);
    }

    /// <summary>Counts this view's private and shared pages and reads its counters.</summary>
    /// <remarks>Takes time proportional to the view's size.</remarks>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public CowViewStats GetStats()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        CowViewStatsNative stats;
        Errno.ThrowIfFailed(CowNative.ViewStats(Handle, &stats), "reading view statistics");
        return new CowViewStats((long)stats.PrivatePages, (long)stats.SharedPages, (long)stats.WritablePages,
            (long)stats.MappedPages, stats.Mappings, (long)stats.WriteFaults, (long)stats.PagesCopied,
            (long)stats.ZeroPages);
    }

    /// <summary>The slot (4 KiB of the pool file) behind a page; for tests and diagnostics.</summary>
    internal uint SlotOf(long page) => CowNative.ViewSlotOf(Handle, (ulong)page);

    /// <summary>Recounts the view's mappings from its page table; for tests.</summary>
    internal long CountMappings() => CowNative.ViewCountMappings(Handle);

    /// <summary>
    /// Releases the view: its range becomes inaccessible and every page no other view references
    /// returns to the pool (and its memory to the kernel). Other views are unaffected. Calling it
    /// again does nothing. If another thread is inside a call on this view, the release happens when
    /// that call returns. The engine holds the view until this is called (or the engine is disposed):
    /// dropping the last reference does not release it.
    /// </summary>
    public void Dispose() => Handle.Dispose();

    /// <summary>
    /// Names the view in the usual case. (A view disposed between this check and the native call
    /// is still refused: the call holds a reference on both handles and throws the handle's own
    /// ObjectDisposedException.)
    /// </summary>
    private void ThrowIfEitherDisposed(CowView other)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ObjectDisposedException.ThrowIf(other.IsDisposed, other);
    }

    private void CheckSameShape(CowView other, string parameterName)
    {
        if (!ReferenceEquals(other.Engine, Engine))
            throw new ArgumentException("The views belong to different engines.", parameterName);
        if (other.Length != Length)
            throw new ArgumentException($"The views differ in size ({other.Length} and {Length} bytes).", parameterName);
    }

    private void CheckRange(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset > Length || length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(length), $"The range [{offset}, {offset}+{length}) is not inside the view of {Length} bytes.");
    }
}
