using System.Runtime.CompilerServices;

namespace CowEngine.Stress;

/// <summary>Operations on views and their shadows that several workers share.</summary>
internal static unsafe class Model
{
    public static ulong ReadField(byte* memory, long offset) => Unsafe.ReadUnaligned<ulong>(memory + offset);

    /// <summary>One 8-byte store (a single mov, even when it is unaligned or spans two pages).</summary>
    public static void WriteField(byte* memory, long offset, ulong value) => Unsafe.WriteUnaligned(memory + offset, value);

    /// <summary>
    /// Fills a new region's shadow with random bytes, sets every monotonic field to a small random
    /// value (chain fields to one common value, so the chain starts flat), and copies it into the view.
    /// </summary>
    public static void InitialiseRegion(ViewRecord record, Random random)
    {
        Family family = record.Family;
        var shadow = new Span<byte>(record.Shadow, checked((int)record.Length));
        random.NextBytes(shadow);
        foreach (Field field in family.Fields)
            WriteField(record.Shadow, field.Offset, (ulong)random.NextInt64((long)PageLayout.InitialFieldLimit));
        ulong chainStart = (ulong)random.NextInt64((long)PageLayout.InitialFieldLimit);
        foreach (int page in family.ChainPages)
            WriteField(record.Shadow, (long)page * PageLayout.PageSize + PageLayout.ChainOffset, chainStart);
        Buffer.MemoryCopy(record.Shadow, record.Pointer, record.Length, record.Length);
    }

    /// <summary>
    /// Copies a view's shadow while writers may be updating it: page by page, holding the locks of
    /// page p and p + 1 while page p is copied (hand over hand), so a page-crossing field is never
    /// copied half before and half after a write.
    /// </summary>
    public static void CopyShadowLocked(ViewRecord record, byte* destination)
    {
        int pages = record.Family.PageCount;
        PageLocks locks = record.Locks;
        locks.Lock(0);
        for (int page = 0; page < pages; page++)
        {
            if (page + 1 < pages)
                locks.Lock(page + 1);
            long offset = (long)page * PageLayout.PageSize;
            Buffer.MemoryCopy(record.Shadow + offset, destination + offset, PageLayout.PageSize, PageLayout.PageSize);
            locks.Unlock(page);
        }
    }

    /// <summary>A 64-bit checksum of a memory range (independent of the shadows).</summary>
    public static ulong Checksum(byte* memory, long length)
    {
        ulong hash = 0x9E3779B97F4A7C15UL ^ (ulong)length;
        var words = new ReadOnlySpan<ulong>(memory, checked((int)(length / sizeof(ulong))));
        foreach (ulong word in words)
        {
            hash ^= word;
            hash *= 0xFF51AFD7ED558CCDUL;
            hash ^= hash >> 29;
        }
        return hash;
    }

    /// <summary>
    /// Compares one page of a view with its shadow (caller holds the page's lock). On a mismatch,
    /// reports it and copies the view's bytes into the shadow, so that one corruption is reported
    /// once and later checks report only later ones.
    /// </summary>
    public static bool CheckPage(ViewRecord record, long page, string when)
    {
        Span<byte> actual = record.ViewPage(page);
        Span<byte> expected = record.ShadowPage(page);
        if (actual.SequenceEqual(expected))
            return true;
        int first = 0;
        while (actual[first] == expected[first])
            first++;
        int differing = 0;
        for (int i = 0; i < actual.Length; i++)
            differing += actual[i] != expected[i] ? 1 : 0;
        Report.Failure("view-content",
            $"{when}: {record} page {page} differs from the model in {differing} bytes, first at offset {first} " +
            $"(expected 0x{expected[first]:X2}, found 0x{actual[first]:X2}); 8 bytes there: expected " +
            $"{Convert.ToHexString(expected.Slice(first & ~7, 8))}, found {Convert.ToHexString(actual.Slice(first & ~7, 8))}");
        actual.CopyTo(expected);
        return false;
    }

    /// <summary>Checks a quiet view against its shadow page by page (caller holds Exclusive or knows no writer runs).</summary>
    public static bool CheckWholeView(ViewRecord record, string when)
    {
        bool ok = true;
        for (long page = 0; page < record.Family.PageCount; page++)
            ok &= CheckPage(record, page, when);
        return ok;
    }

    /// <summary>
    /// The chain's values never increase along the family's chain order in any state a view can be
    /// in (a wave writes them in that order), so a view or a cut where they do is inconsistent.
    /// </summary>
    public static bool CheckChain(Family family, byte* memory, string when, ViewRecord? record)
    {
        ulong previous = ulong.MaxValue;
        for (int i = 0; i < family.ChainPages.Length; i++)
        {
            int page = family.ChainPages[i];
            ulong value = ReadField(memory, (long)page * PageLayout.PageSize + PageLayout.ChainOffset);
            if (value > previous)
            {
                string values = string.Join(", ", family.ChainPages.Select(p =>
                    $"p{p}={ReadField(memory, (long)p * PageLayout.PageSize + PageLayout.ChainOffset)}"));
                Report.Failure("consistent-cut",
                    $"{when}: {(record?.ToString() ?? family.ToString())}: chain value rises at position {i} " +
                    $"(page {page}): a later write is visible but an earlier one is not. Chain in write order: {values}");
                return false;
            }
            previous = value;
        }
        return true;
    }

    /// <summary>
    /// Checks the contents of a view made while field writers kept writing its source (a racing
    /// snapshot, or a restore from a source being written): every monotonic field must lie between
    /// its value before the call (<paramref name="before"/>) and after it (<paramref name="after"/>),
    /// the chain must be a consistent cut, and every other byte must equal the source's (nothing
    /// else was written meanwhile). Returns false after reporting.
    /// </summary>
    /// <param name="scratch">A buffer of the view's length, overwritten.</param>
    public static bool CheckCut(Family family, byte* before, byte* after, byte* actual, byte* scratch, string what)
    {
        bool ok = true;
        int reported = 0;
        Buffer.MemoryCopy(before, scratch, family.Length, family.Length);
        foreach (Field field in family.Fields)
        {
            long offset = field.Offset;
            ulong low = ReadField(before, offset), high = ReadField(after, offset), found = ReadField(actual, offset);
            if (found < low || found > high)
            {
                ok = false;
                if (reported++ < 5)
                    Report.Failure("consistent-cut",
                        $"{what}: {field} is {found}, outside [{low}, {high}], its values before and after the call");
            }
            WriteField(scratch, offset, found);
        }
        ok &= CheckChain(family, actual, what, null);
        var expected = new ReadOnlySpan<byte>(scratch, checked((int)family.Length));
        var found2 = new ReadOnlySpan<byte>(actual, checked((int)family.Length));
        if (!expected.SequenceEqual(found2))
        {
            int first = expected.CommonPrefixLength(found2);
            Report.Failure("consistent-cut",
                $"{what}: a byte nobody wrote during the call differs from the source: offset {first} (page {first / PageLayout.PageSize}, " +
                $"in page {first % PageLayout.PageSize}): expected 0x{expected[first]:X2}, found 0x{found2[first]:X2}");
            ok = false;
        }
        return ok;
    }
}
