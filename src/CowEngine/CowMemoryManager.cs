using System.Buffers;

namespace CowEngine;

/// <summary>
/// <see cref="Memory{T}"/> over a range of a <see cref="CowView"/>, for APIs that take
/// <c>Memory&lt;T&gt;</c> (async streams, pipelines, sockets): <c>new CowMemoryManager&lt;byte&gt;(view).Memory</c>.
/// </summary>
/// <typeparam name="T">An unmanaged element type.</typeparam>
/// <remarks>
/// <para><b>Pinning keeps the view alive.</b> Each <see cref="MemoryHandle"/> returned by
/// <see cref="Pin"/> (or by <c>Memory&lt;T&gt;.Pin()</c>) holds a reference on the view, the same
/// kind every call on the view holds while it runs. Disposing the view, or its engine, while a
/// handle is outstanding is therefore <b>deferred</b>, not refused: <see cref="CowView.Dispose"/>
/// returns at once, and the view is released - its range made inaccessible, its pages returned,
/// <see cref="CowView.IsDisposed"/> true - when the last handle is disposed. Until then the view
/// is alive in every respect, so the pinned pointers, which native code or the kernel may still be
/// using, stay valid. A handle that is never disposed keeps the view's memory for the life of the
/// process. Spans from <see cref="GetSpan"/> (<c>Memory.Span</c>) hold no reference: like
/// <see cref="CowView.AsSpan()"/>, they must not be used after the view is released.</para>
/// <para><b>System calls.</b> A pinned range is still copy-on-write memory. Before handing it to an
/// API whose kernel call <i>fills</i> it (<c>Stream.ReadAsync</c>, <c>Socket.ReceiveAsync</c>,
/// <c>RandomAccess.Read</c>), call <see cref="PrepareForWrite"/>: the kernel does not take the
/// engine's write faults and fails with EFAULT ("Bad address") on a shared page. A kernel call that
/// only <i>reads</i> the range (<c>Stream.WriteAsync</c>, <c>Socket.SendAsync</c>) fails the same
/// way on a page of a snapshot that was never touched, or of a segment unmapped to stay within the
/// mapping budget; copy such data through an ordinary buffer (as <see cref="CowViewStream"/> does),
/// or call <see cref="PrepareForWrite"/> first (it maps the range and keeps it mapped until the
/// view's next snapshot, at the cost of copying its shared pages).</para>
/// <para>Thread safety: all members are thread-safe.</para>
/// </remarks>
public sealed unsafe class CowMemoryManager<T> : MemoryManager<T> where T : unmanaged
{
    private readonly bool _ownsView;
    private int _pinCount;
    private int _disposed;

    /// <summary>Memory over the whole view.</summary>
    /// <param name="view">The view; it must stay undisposed while the memory is used (pins guarantee that).</param>
    /// <param name="ownsView">True: disposing this manager disposes the view (useful as an <see cref="IMemoryOwner{T}"/>).</param>
    /// <exception cref="ArgumentException">The view's length is not a multiple of the element size, or holds more than int.MaxValue elements.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public CowMemoryManager(CowView view, bool ownsView = false)
        : this(view, 0, ElementsIn(view), ownsView)
    {
    }

    /// <summary>Memory over <paramref name="length"/> elements of the view starting at <paramref name="byteOffset"/>.</summary>
    /// <param name="view">The view; it must stay undisposed while the memory is used (pins guarantee that).</param>
    /// <param name="byteOffset">Byte offset of the first element (need not be aligned).</param>
    /// <param name="length">Number of elements.</param>
    /// <param name="ownsView">True: disposing this manager disposes the view.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the view.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public CowMemoryManager(CowView view, long byteOffset, int length, bool ownsView = false)
    {
        ArgumentNullException.ThrowIfNull(view);
        ArgumentOutOfRangeException.ThrowIfNegative(byteOffset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (byteOffset > view.Length || (long)length * sizeof(T) > view.Length - byteOffset)
            throw new ArgumentOutOfRangeException(nameof(length), $"{length} elements of {sizeof(T)} bytes at offset {byteOffset} are not inside the view of {view.Length} bytes.");
        ObjectDisposedException.ThrowIf(view.IsDisposed, view);
        View = view;
        ByteOffset = byteOffset;
        Length = length;
        _ownsView = ownsView;
    }

    /// <summary>The view the memory lies in.</summary>
    public CowView View { get; }

    /// <summary>Byte offset of the first element in the view.</summary>
    public long ByteOffset { get; }

    /// <summary>Number of elements.</summary>
    public int Length { get; }

    /// <summary>Handles from <see cref="Pin"/> not yet disposed.</summary>
    public int PinCount => Volatile.Read(ref _pinCount);

    /// <summary>The memory as a span (what <c>Memory.Span</c> returns).</summary>
    /// <exception cref="ObjectDisposedException">The manager or the view is disposed.</exception>
    public override Span<T> GetSpan()
    {
        ThrowIfDisposed();
        return new Span<T>(First, Length);
    }

    /// <summary>
    /// Pins the memory: returns a handle whose pointer stays valid until the handle is disposed;
    /// disposing the view meanwhile is deferred until then.
    /// </summary>
    /// <param name="elementIndex">The element the handle's pointer points to (0 to <see cref="Length"/>).</param>
    /// <exception cref="ArgumentOutOfRangeException">The index is outside [0, Length].</exception>
    /// <exception cref="ObjectDisposedException">The manager or the view is disposed.</exception>
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        if ((uint)elementIndex > (uint)Length)
            throw new ArgumentOutOfRangeException(nameof(elementIndex), elementIndex, $"The memory has {Length} elements.");
        ThrowIfDisposed();
        // The lease is what keeps the memory; it is released by Unpin (MemoryHandle.Dispose).
        _ = CowViewLease.Acquire(View);
        Interlocked.Increment(ref _pinCount);
        return new MemoryHandle((T*)First + elementIndex, default, this);
    }

    /// <summary>Releases one pin (called by <see cref="MemoryHandle.Dispose"/>).</summary>
    /// <exception cref="InvalidOperationException">Nothing is pinned.</exception>
    public override void Unpin()
    {
        int count;
        do
        {
            count = Volatile.Read(ref _pinCount);
            if (count == 0)
                throw new InvalidOperationException("Unpin was called more often than Pin.");
        }
        while (Interlocked.CompareExchange(ref _pinCount, count - 1, count) != count);
        CowViewLease.Release(View);
    }

    /// <summary>
    /// Makes the pages under this memory private and writable now (see
    /// <see cref="CowView.PrepareForWrite"/>), so that system calls can fill it.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The manager or the view is disposed.</exception>
    public void PrepareForWrite()
    {
        ThrowIfDisposed();
        View.PrepareForWrite(ByteOffset, (long)Length * sizeof(T));
    }

    /// <summary>Marks the manager disposed; disposes the view too if the manager owns it (deferred while pinned).</summary>
    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (disposing && _ownsView)
            View.Dispose();
    }

    private byte* First => View.Pointer + ByteOffset;

    private void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ObjectDisposedException.ThrowIf(View.IsDisposed, View);
    }

    private static int ElementsIn(CowView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        if (view.Length % sizeof(T) != 0)
            throw new ArgumentException($"The view's {view.Length} bytes are not a whole number of {sizeof(T)}-byte elements.", nameof(view));
        long elements = view.Length / sizeof(T);
        if (elements > int.MaxValue)
            throw new ArgumentException($"The view holds {elements} elements, more than Memory<T> can hold; use a range.", nameof(view));
        return (int)elements;
    }
}
