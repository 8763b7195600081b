namespace CowEngine.Stress;

/// <summary>
/// A writer (uffd-stress's "bounce" thread): picks a random live view that is not frozen and
/// <list type="bullet">
/// <item>increments one monotonic field of a random counter page after checking that the view
/// holds exactly the model's value: the aligned counter, the unaligned field, or the 8-byte field
/// stored at offset 4092 across two pages;</item>
/// <item>or runs a chain wave (see <see cref="PageLayout.ChainOffset"/>);</item>
/// <item>or memcpys up to 64 pages of bytes into the bulk area, from a random buffer or straight
/// from another view (a read through one view's shared pages and a write that copies on write,
/// one page after another, in one call).</item>
/// </list>
/// Each write and its model update happen under the page locks (and the view's gate in Write or
/// Bulk mode), so the model is exact whatever else runs.
/// </summary>
internal sealed unsafe class WriterWorker : Worker
{
    private const int MaxCopyPages = 64;
    private static readonly Func<ViewRecord, bool> IsWritable = record => !record.Frozen;

    /// <summary>Random bytes the memcpys take their data from, at random offsets.</summary>
    private readonly byte[] _randomPool;

    public WriterWorker(StressContext context, int index) : base(context, $"writer-{index}", index)
    {
        _randomPool = new byte[2 * MaxCopyPages * PageLayout.PageSize];
        Random.NextBytes(_randomPool);
    }

    protected override void Step()
    {
        int choice = Random.Next(1000);
        if (choice < 700)
            IncrementField(FieldKind.Counter);
        else if (choice < 800)
            IncrementField(FieldKind.Unaligned);
        else if (choice < 880)
            IncrementField(FieldKind.PageCrossing);
        else if (choice < 930)
            ChainWave();
        else if (choice < 975)
            CopyFromBuffer();
        else
            CopyBetweenViews();
    }

    private void IncrementField(FieldKind kind)
    {
        Activity.Begin("pick view");
        ViewRecord? record = Registry.Pick(Random, IsWritable);
        if (record is null)
            return;
        Family family = record.Family;
        int page = Random.Next(kind == FieldKind.PageCrossing ? family.CounterPages - 1 : family.CounterPages);
        int lastPage = kind == FieldKind.PageCrossing ? page + 1 : page;
        long offset = (long)page * PageLayout.PageSize + kind switch
        {
            FieldKind.Counter => PageLayout.CounterOffset,
            FieldKind.Unaligned => PageLayout.UnalignedOffset,
            _ => PageLayout.CrossOffset,
        };
        Activity.Note(kind switch
        {
            FieldKind.Counter => "increment counter",
            FieldKind.Unaligned => "increment unaligned field",
            _ => "increment page-crossing field",
        }, record.Id, page);

        record.Gate.EnterWrite();
        try
        {
            if (record.Dead)
                return;
            record.Locks.LockRange(page, lastPage);
            try
            {
                CheckAndIncrement(record, new Field(offset, kind, page));
                record.DirtySinceFreeze[page] = 1;
                record.DirtySinceFreeze[lastPage] = 1;
            }
            finally
            {
                record.Locks.UnlockRange(page, lastPage);
            }
        }
        finally
        {
            record.Gate.ExitWrite();
        }
    }

    /// <summary>Checks a field against the model and writes model + 1 to both (caller holds the page locks).</summary>
    private static ulong CheckAndIncrement(ViewRecord record, Field field, ulong? value = null)
    {
        ulong expected = Model.ReadField(record.Shadow, field.Offset);
        ulong actual = Model.ReadField(record.Pointer, field.Offset);
        if (actual != expected)
            Report.Failure("field-value",
                $"before a write: {record} {field} holds {actual}, the model says {expected} " +
                $"({(actual < expected ? "a write was lost or an old page came back" : "the view changed behind the model")})");
        ulong next = value ?? expected + 1;
        Model.WriteField(record.Pointer, field.Offset, next);
        Model.WriteField(record.Shadow, field.Offset, next);
        return next;
    }

    /// <summary>
    /// Sets the chain field of every chain page, in the family's order, to one more than the first
    /// page's value. One wave at a time per view (the view's ChainWave lock), so the chain's values
    /// never increase along that order at any instant.
    /// </summary>
    private void ChainWave()
    {
        Activity.Begin("pick view");
        ViewRecord? record = Registry.Pick(Random, IsWritable);
        if (record is null)
            return;
        Activity.Note("chain wave", record.Id);
        record.Gate.EnterWrite();
        try
        {
            if (record.Dead || !Monitor.TryEnter(record.ChainWave))
                return;
            try
            {
                ulong target = 0;
                int[] chain = record.Family.ChainPages;
                for (int i = 0; i < chain.Length; i++)
                {
                    int page = chain[i];
                    var field = new Field((long)page * PageLayout.PageSize + PageLayout.ChainOffset, FieldKind.Chain, page);
                    record.Locks.Lock(page);
                    try
                    {
                        if (i == 0)
                            target = CheckAndIncrement(record, field);
                        else
                            CheckAndIncrement(record, field, target);
                        record.DirtySinceFreeze[page] = 1;
                    }
                    finally
                    {
                        record.Locks.Unlock(page);
                    }
                }
            }
            finally
            {
                Monitor.Exit(record.ChainWave);
            }
        }
        finally
        {
            record.Gate.ExitWrite();
        }
    }

    /// <summary>A random byte range of the bulk area of a family, up to <see cref="MaxCopyPages"/> pages, often page-aligned.</summary>
    private (long Start, int Length) BulkRange(Family family, int maxPages)
    {
        long bulkStart = (long)family.BulkFirstPage * PageLayout.PageSize;
        int bulkLength = family.BulkPages * PageLayout.PageSize;
        int maxLength = Math.Min(bulkLength, maxPages * PageLayout.PageSize);
        if (Random.Next(2) == 0)
        {
            int pages = Random.Next(1, maxLength / PageLayout.PageSize + 1);
            long firstPage = family.BulkFirstPage + Random.Next(family.BulkPages - pages + 1);
            return (firstPage * PageLayout.PageSize, pages * PageLayout.PageSize);
        }
        int length = Random.Next(1, maxLength + 1);
        return (bulkStart + Random.NextInt64(bulkLength - length + 1), length);
    }

    private static (long First, long Last) PagesOf(long start, int length) =>
        (start / PageLayout.PageSize, (start + length - 1) / PageLayout.PageSize);

    /// <summary>Checks that the bytes of a range still equal the model (caller holds the page locks).</summary>
    private static void CheckRange(ViewRecord record, long start, int length, string when)
    {
        var actual = new ReadOnlySpan<byte>(record.Pointer + start, length);
        var expected = new ReadOnlySpan<byte>(record.Shadow + start, length);
        if (actual.SequenceEqual(expected))
            return;
        int first = actual.CommonPrefixLength(expected);
        long offset = start + first;
        Report.Failure("view-content",
            $"{when}: {record} byte {offset} (page {offset / PageLayout.PageSize}, offset {offset % PageLayout.PageSize}) " +
            $"is 0x{actual[first]:X2}, the model says 0x{expected[first]:X2}");
    }

    private void CopyFromBuffer()
    {
        Activity.Begin("pick view");
        ViewRecord? record = Registry.Pick(Random, IsWritable);
        if (record is null)
            return;
        (long start, int length) = BulkRange(record.Family, MaxCopyPages);
        (long first, long last) = PagesOf(start, length);
        int source = Random.Next(_randomPool.Length - length + 1);
        Activity.Note("memcpy from a buffer", record.Id, last - first + 1);
        record.Gate.EnterBulk();
        try
        {
            if (record.Dead)
                return;
            record.Locks.LockRange(first, last);
            try
            {
                CheckRange(record, start, length, "before a memcpy");
                fixed (byte* data = &_randomPool[source])
                {
                    Buffer.MemoryCopy(data, record.Pointer + start, length, length);
                    Buffer.MemoryCopy(data, record.Shadow + start, length, length);
                }
                for (long page = first; page <= last; page++)
                    record.DirtySinceFreeze[page] = 1;
            }
            finally
            {
                record.Locks.UnlockRange(first, last);
            }
        }
        finally
        {
            record.Gate.ExitBulk();
        }
    }

    /// <summary>
    /// memcpy straight from one view (any part of it, any family, frozen ones included) into the
    /// bulk area of another: the read side touches pages that may be unmapped or shared, the write
    /// side copies on write page by page, within one call.
    /// </summary>
    private void CopyBetweenViews()
    {
        Activity.Begin("pick views");
        ViewRecord? target = Registry.Pick(Random, IsWritable);
        ViewRecord? source = Registry.Pick(Random);
        if (target is null || source is null || ReferenceEquals(target, source))
            return;
        (long targetStart, int length) = BulkRange(target.Family, MaxCopyPages);
        length = (int)Math.Min(length, source.Length);
        long sourceStart = Random.NextInt64(source.Length - length + 1);
        (long targetFirst, long targetLast) = PagesOf(targetStart, length);
        (long sourceFirst, long sourceLast) = PagesOf(sourceStart, length);
        Activity.Note($"memcpy from view #{source.Id}", target.Id, targetLast - targetFirst + 1);

        // Gates and then page locks, lower view id first: the harness's global lock order.
        bool sourceFirstInOrder = source.Id < target.Id;
        if (sourceFirstInOrder)
            source.Gate.EnterWrite();
        target.Gate.EnterBulk();
        if (!sourceFirstInOrder)
            source.Gate.EnterWrite();
        try
        {
            if (source.Dead || target.Dead)
                return;
            if (sourceFirstInOrder)
                source.Locks.LockRange(sourceFirst, sourceLast);
            target.Locks.LockRange(targetFirst, targetLast);
            if (!sourceFirstInOrder)
                source.Locks.LockRange(sourceFirst, sourceLast);
            try
            {
                CheckRange(source, sourceStart, length, "before a memcpy from it");
                CheckRange(target, targetStart, length, "before a memcpy into it");
                Buffer.MemoryCopy(source.Pointer + sourceStart, target.Pointer + targetStart, length, length);
                Buffer.MemoryCopy(source.Shadow + sourceStart, target.Shadow + targetStart, length, length);
                for (long page = targetFirst; page <= targetLast; page++)
                    target.DirtySinceFreeze[page] = 1;
            }
            finally
            {
                source.Locks.UnlockRange(sourceFirst, sourceLast);
                target.Locks.UnlockRange(targetFirst, targetLast);
            }
        }
        finally
        {
            source.Gate.ExitWrite();
            target.Gate.ExitBulk();
        }
    }
}
