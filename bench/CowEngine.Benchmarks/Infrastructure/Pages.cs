namespace CowEngine.Benchmarks.Infrastructure;

/// <summary>Page index lists and the store loop every scenario uses to write pages.</summary>
internal static unsafe class Pages
{
    public const int Size = CowMemoryEngine.PageSize;

    public static uint[] Sequential(int count)
    {
        var pages = new uint[count];
        for (int i = 0; i < count; i++)
            pages[i] = (uint)i;
        return pages;
    }

    /// <summary><paramref name="count"/> distinct pages of [0, <paramref name="pageCount"/>) in random order.</summary>
    public static uint[] Random(long pageCount, int count, int seed) => new RandomPageSource(pageCount, seed).Next(count);

    /// <summary>
    /// One store per page, nothing else, so that the time is the fault's: a store (not a
    /// read-modify-write) makes an absent page take one write fault instead of a read fault and then
    /// a write fault. The C child does exactly the same (Native/fork_baseline.c, write_pages).
    /// </summary>
    public static void Write(byte* baseAddress, uint[] pages, byte value)
    {
        for (int i = 0; i < pages.Length; i++)
            baseAddress[(nint)pages[i] * Size] = value;
    }

    /// <summary>
    /// Reads one byte of each page of [first, first + count), in order, and returns their sum (so
    /// the loads cannot be left out): a read fault per page that is not mapped yet, nothing else.
    /// </summary>
    public static int ReadRange(byte* baseAddress, long first, long count)
    {
        int sum = 0;
        byte* end = baseAddress + (first + count) * Size;
        for (byte* p = baseAddress + first * Size; p < end; p += Size)
            sum += *p;
        return sum;
    }

    /// <summary>Writes pages [first, first + count).</summary>
    public static void WriteRange(byte* baseAddress, long first, long count, byte value)
    {
        byte* end = baseAddress + (first + count) * Size;
        for (byte* p = baseAddress + first * Size; p < end; p += Size)
            *p = value;
    }
}

/// <summary>
/// Draws sets of distinct random pages, a fresh set per call, in O(count) per call: a partial
/// Fisher-Yates shuffle over a permutation that persists between calls.
/// </summary>
internal sealed class RandomPageSource
{
    private readonly uint[] _permutation;
    private readonly Random _random;

    public RandomPageSource(long pageCount, int seed)
    {
        _permutation = new uint[pageCount];
        for (uint i = 0; i < pageCount; i++)
            _permutation[i] = i;
        _random = new Random(seed);
    }

    public uint[] Next(int count)
    {
        var pages = new uint[count];
        Next(pages);
        return pages;
    }

    /// <summary>Fills <paramref name="pages"/> with a fresh set of distinct pages, allocating nothing.</summary>
    public void Next(Span<uint> pages)
    {
        if (pages.Length > _permutation.Length)
            throw new ArgumentOutOfRangeException(nameof(pages), $"{pages.Length} pages asked of {_permutation.Length}.");
        for (int i = 0; i < pages.Length; i++)
        {
            int j = _random.Next(i, _permutation.Length);
            (_permutation[i], _permutation[j]) = (_permutation[j], _permutation[i]);
            pages[i] = _permutation[i];
        }
    }

    /// <summary>
    /// <paramref name="sets"/> consecutive sets of <paramref name="setSize"/> pages, each set distinct
    /// pages of [0, <paramref name="pageCount"/>) (sets may overlap one another), in one flat array:
    /// set i is [i * setSize, (i + 1) * setSize). The same seed gives the same sequence, so the
    /// engine and its baselines can write exactly the same pages in the same order.
    /// </summary>
    public static uint[] Sequence(long pageCount, int setSize, int sets, int seed)
    {
        var source = new RandomPageSource(pageCount, seed);
        var sequence = new uint[(long)setSize * sets];
        for (int i = 0; i < sets; i++)
            source.Next(sequence.AsSpan(i * setSize, setSize));
        return sequence;
    }
}
