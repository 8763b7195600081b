using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace CowEngine;

/// <summary>
/// A list of <typeparamref name="T"/> with a fixed capacity, stored - count included - in a
/// copy-on-write view, so that a snapshot captures the list exactly as it was: add 1 and 2,
/// snapshot, add 3, snapshot, add 4, and the three lists hold 1,2,3,4 | 1,2 | 1,2,3.
/// </summary>
/// <typeparam name="T">An unmanaged element type.</typeparam>
/// <remarks>
/// Layout: the count is a long at offset 0, elements start at offset 64. Thread safety: reads may
/// run concurrently; <see cref="Add"/>, <see cref="RemoveLast"/> and <see cref="Clear"/> must not
/// run concurrently with each other or with readers of <see cref="Count"/> (like List&lt;T&gt;).
/// <see cref="Snapshot"/> may run concurrently with anything: it sees each element and the count as
/// they were before the call.
/// </remarks>
public sealed unsafe class CowList<T> : IDisposable where T : unmanaged
{
    private const int HeaderBytes = 64;

    /// <summary>Creates an empty list in a new region of <paramref name="engine"/>.</summary>
    /// <param name="engine">The engine that holds the list's memory.</param>
    /// <param name="capacity">The most elements the list can hold (positive).</param>
    public CowList(CowMemoryEngine engine, long capacity)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        if (capacity > (long.MaxValue - HeaderBytes) / sizeof(T) - CowMemoryEngine.PageSize)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "The list is too large.");
        long bytes = HeaderBytes + capacity * sizeof(T);
        View = engine.CreateRegion((bytes + CowMemoryEngine.PageSize - 1) / CowMemoryEngine.PageSize * CowMemoryEngine.PageSize);
        Capacity = capacity;
        _start = View.Pointer;
    }

    private CowList(CowView view, long capacity)
    {
        View = view;
        Capacity = capacity;
        _start = view.Pointer;
    }

    /// <summary>The view's first byte (the count, then the elements), kept here so that an access
    /// does not load <see cref="View"/> and its address first. A view's address is fixed for its life.</summary>
    private readonly byte* _start;

    /// <summary>The view that holds the list.</summary>
    public CowView View { get; }

    /// <summary>The most elements the list can hold.</summary>
    public long Capacity { get; }

    /// <summary>Number of elements (stored in the view, so snapshots keep their own).</summary>
    public long Count => CountRef;

    private ref long CountRef => ref Unsafe.AsRef<long>(_start);

    private T* Items => (T*)(_start + HeaderBytes);

    /// <summary>A reference to element <paramref name="index"/>.</summary>
    /// <exception cref="IndexOutOfRangeException">The index is outside [0, Count).</exception>
    public ref T this[long index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            long count = Count;
            if ((ulong)index >= (ulong)count)
                ThrowIndexOutOfRange(index, count);
            return ref Unsafe.AsRef<T>(Items + index);
        }
    }

    // Static and throw-only, so the JIT treats the call as one that never returns (see CowArray).
    [DoesNotReturn]
    private static void ThrowIndexOutOfRange(long index, long count) =>
        throw new IndexOutOfRangeException($"Index {index} is outside the list of {count} elements.");

    /// <summary>Appends an element.</summary>
    /// <exception cref="InvalidOperationException">The list is full.</exception>
    public void Add(T item)
    {
        long count = Count;
        if (count == Capacity)
            throw new InvalidOperationException($"The list is full ({Capacity} elements).");
        Items[count] = item;
        CountRef = count + 1; // after the element, so a snapshot never counts an unwritten element
    }

    /// <summary>Removes the last element.</summary>
    /// <exception cref="InvalidOperationException">The list is empty.</exception>
    public void RemoveLast()
    {
        if (Count == 0)
            throw new InvalidOperationException("The list is empty.");
        CountRef--;
    }

    /// <summary>Removes all elements (their memory stays as it was).</summary>
    public void Clear() => CountRef = 0;

    /// <summary>The elements as a span.</summary>
    public Span<T> AsSpan()
    {
        long count = Count;
        if (count > int.MaxValue)
            throw new InvalidOperationException($"The list has {count} elements, more than a span can hold.");
        return View.AsSpan<T>(HeaderBytes, (int)count);
    }

    /// <summary>Copies the elements into a new array.</summary>
    public T[] ToArray() => AsSpan().ToArray();

    /// <summary>A copy-on-write snapshot of the list (see <see cref="CowView.Snapshot"/>).</summary>
    public CowList<T> Snapshot() => new(View.Snapshot(), Capacity);

    /// <summary>Makes this list hold exactly <paramref name="source"/>'s elements (see <see cref="CowView.RestoreTo"/>).</summary>
    /// <exception cref="ArgumentException">The lists differ in capacity or engine.</exception>
    public void RestoreTo(CowList<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Capacity != Capacity)
            throw new ArgumentException($"The lists differ in capacity ({source.Capacity} and {Capacity}).", nameof(source));
        View.RestoreTo(source.View);
    }

    /// <summary>Releases the list's view.</summary>
    public void Dispose() => View.Dispose();
}
