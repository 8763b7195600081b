using System.Collections;
using System.Numerics;

namespace CowEngine;

/// <summary>
/// A set of page indices of one view (page <c>i</c> covers bytes [i * 4096, (i + 1) * 4096)),
/// stored as a bitmap. Returned by <see cref="CowView.GetChangedPages"/> and
/// <see cref="CowView.TakeDirtyPages"/>. Immutable; enumerates in ascending order.
/// </summary>
public sealed class CowPageSet : IReadOnlyCollection<long>
{
    private readonly ulong[] _bits;

    internal CowPageSet(ulong[] bits, long pageCount, long count)
    {
        _bits = bits;
        PageCount = pageCount;
        Count = (int)Math.Min(count, int.MaxValue);
        LongCount = count;
    }

    /// <summary>Pages in the view the set is about.</summary>
    public long PageCount { get; }

    /// <summary>Pages in the set.</summary>
    public int Count { get; }

    /// <summary>Pages in the set, as a long.</summary>
    public long LongCount { get; }

    /// <summary>Bytes the pages in the set cover.</summary>
    public long Bytes => LongCount * CowMemoryEngine.PageSize;

    /// <summary>True if page <paramref name="page"/> is in the set.</summary>
    public bool Contains(long page) =>
        page >= 0 && page < PageCount && (_bits[page >> 6] & (1UL << (int)(page & 63))) != 0;

    /// <summary>The pages in ascending order.</summary>
    public long[] ToArray()
    {
        var pages = new long[LongCount];
        int i = 0;
        foreach (long page in this)
            pages[i++] = page;
        return pages;
    }

    /// <summary>Enumerates the pages in ascending order.</summary>
    public IEnumerator<long> GetEnumerator()
    {
        for (int word = 0; word < _bits.Length; word++)
        {
            ulong bits = _bits[word];
            while (bits != 0)
            {
                int bit = BitOperations.TrailingZeroCount(bits);
                yield return ((long)word << 6) + bit;
                bits &= bits - 1;
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
