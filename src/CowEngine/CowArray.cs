using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace CowEngine;

/// <summary>
/// A fixed-length array of <typeparamref name="T"/> stored in a copy-on-write view: a simulator's
/// state that can be snapshotted, branched and rolled back page by page.
/// </summary>
/// <typeparam name="T">An unmanaged element type (no references: the memory is not scanned by the GC).</typeparam>
/// <remarks>
/// Thread safety: like a plain array; any thread may read and write elements, and
/// <see cref="Snapshot"/> may run concurrently with writers (a snapshot is a consistent cut of the
/// writes that completed before it). References and spans into the array are valid until it is
/// disposed.
/// </remarks>
public sealed unsafe class CowArray<T> : IDisposable where T : unmanaged
{
    /// <summary>Creates a zero-filled array in a new region of <paramref name="engine"/>.</summary>
    /// <param name="engine">The engine that holds the array's memory.</param>
    /// <param name="length">Number of elements (positive).</param>
    /// <exception cref="ArgumentOutOfRangeException">The length is not positive or does not fit the engine's capacity.</exception>
    public CowArray(CowMemoryEngine engine, long length)
        : this(CreateView(engine, length), length)
    {
    }

    private CowArray(CowView view, long length)
    {
        View = view;
        Length = length;
        _elements = (T*)view.Pointer;
    }

    /// <summary>
    /// The view's first element, kept here so that the indexer costs one bounds check over a raw
    /// pointer: no load of <see cref="View"/> and its address per access. A view's address is fixed
    /// for its life.
    /// </summary>
    private readonly T* _elements;

    /// <summary>The view that holds the elements (element 0 at offset 0).</summary>
    public CowView View { get; }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>A reference to element <paramref name="index"/>.</summary>
    /// <remarks>
    /// As fast as a pointer plus one bounds check (docs/benchmarks.md, scenario 10): the check stays,
    /// and the exception is thrown out of line so the indexer inlines. Like every access to a view's
    /// memory, it must not be used after the array is disposed (see <see cref="CowView"/>, Lifetime).
    /// </remarks>
    /// <exception cref="IndexOutOfRangeException">The index is outside [0, Length).</exception>
    public ref T this[long index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if ((ulong)index >= (ulong)Length)
                ThrowIndexOutOfRange(index, Length);
            return ref Unsafe.AsRef<T>(_elements + index);
        }
    }

    /// <summary>All elements as a span.</summary>
    /// <exception cref="InvalidOperationException">More than int.MaxValue elements: use <see cref="AsSpan(long, int)"/>.</exception>
    public Span<T> AsSpan()
    {
        if (Length > int.MaxValue)
            throw new InvalidOperationException($"The array has {Length} elements, more than a span can hold; use AsSpan(start, length).");
        return View.AsSpan<T>(0, (int)Length);
    }

    /// <summary>Elements [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) as a span.</summary>
    public Span<T> AsSpan(long start, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (start > Length || length > Length - start)
            throw new ArgumentOutOfRangeException(nameof(length), $"[{start}, {start}+{length}) is outside the array of {Length} elements.");
        return View.AsSpan<T>(start * sizeof(T), length);
    }

    /// <summary>A copy-on-write snapshot of the array (see <see cref="CowView.Snapshot"/>).</summary>
    public CowArray<T> Snapshot() => new(View.Snapshot(), Length);

    /// <summary>Makes this array hold exactly <paramref name="source"/>'s elements (see <see cref="CowView.RestoreTo"/>).</summary>
    /// <exception cref="ArgumentException">The arrays differ in length or engine.</exception>
    public void RestoreTo(CowArray<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Length != Length)
            throw new ArgumentException($"The arrays differ in length ({source.Length} and {Length}).", nameof(source));
        View.RestoreTo(source.View);
    }

    /// <summary>Releases the array's view.</summary>
    public void Dispose() => View.Dispose();

    // Static and throw-only, so the JIT treats the call as one that never returns: the indexer's fast
    // path keeps nothing live across it.
    [DoesNotReturn]
    private static void ThrowIndexOutOfRange(long index, long length) =>
        throw new IndexOutOfRangeException($"Index {index} is outside the array of {length} elements.");

    private static CowView CreateView(CowMemoryEngine engine, long length)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (length > long.MaxValue / sizeof(T) - CowMemoryEngine.PageSize)
            throw new ArgumentOutOfRangeException(nameof(length), length, "The array is too large.");
        long bytes = (length * sizeof(T) + CowMemoryEngine.PageSize - 1) / CowMemoryEngine.PageSize * CowMemoryEngine.PageSize;
        return engine.CreateRegion(bytes);
    }
}
