namespace CowEngine.Stress;

/// <summary>
/// Views of one size: a region and every snapshot and restore that descends from or into it
/// (RestoreTo needs two views of the same size). A family's pages are split in two areas:
/// <list type="bullet">
/// <item>counter pages [0, CounterPages): each page holds monotonic 64-bit fields that writers
/// increment after checking them against the model (see <see cref="PageLayout"/>);</item>
/// <item>bulk pages [CounterPages, PageCount): filled by large memcpys and by read() from a pipe,
/// with arbitrary bytes.</item>
/// </list>
/// The split lets a snapshot taken while counter writers keep writing be checked field by field
/// (each field's value must lie between its values before and after the call), while everything
/// else must be exact.
/// </summary>
internal sealed class Family
{
    public Family(int id, int pageCount, Random random)
    {
        Id = id;
        PageCount = pageCount;
        BulkPages = Math.Max(8, pageCount / 4);
        CounterPages = pageCount - BulkPages;
        // The chain: counter pages written in this fixed order by every chain wave (see
        // PageLayout.ChainOffset), spread over the view and shuffled so that the order crosses
        // segment boundaries and runs backwards as often as forwards.
        ChainPages = Enumerable.Range(0, CounterPages).OrderBy(_ => random.Next()).Take(ChainLength).ToArray();
        Fields = ListFields();
    }

    public const int ChainLength = 8;

    public int Id { get; }

    public int PageCount { get; }

    public long Length => (long)PageCount * PageLayout.PageSize;

    public int CounterPages { get; }

    public int BulkPages { get; }

    public int BulkFirstPage => CounterPages;

    public int[] ChainPages { get; }

    /// <summary>Every monotonic field of a view of this family.</summary>
    public Field[] Fields { get; }

    private Field[] ListFields()
    {
        var fields = new List<Field>();
        for (int page = 0; page < CounterPages; page++)
        {
            long pageStart = (long)page * PageLayout.PageSize;
            fields.Add(new Field(pageStart + PageLayout.CounterOffset, FieldKind.Counter, page));
            fields.Add(new Field(pageStart + PageLayout.UnalignedOffset, FieldKind.Unaligned, page));
            if (page + 1 < CounterPages)
                fields.Add(new Field(pageStart + PageLayout.CrossOffset, FieldKind.PageCrossing, page));
        }
        foreach (int page in ChainPages)
            fields.Add(new Field((long)page * PageLayout.PageSize + PageLayout.ChainOffset, FieldKind.Chain, page));
        return fields.ToArray();
    }

    public override string ToString() => $"family {Id} ({PageCount} pages)";
}

internal enum FieldKind
{
    Counter,
    Unaligned,
    PageCrossing,
    Chain,
}

/// <summary>A monotonic 64-bit field: its byte offset in the view, its kind and its (first) page.</summary>
internal readonly record struct Field(long Offset, FieldKind Kind, int Page)
{
    public override string ToString() => Kind switch
    {
        FieldKind.PageCrossing => $"page-crossing field of pages {Page}/{Page + 1}",
        _ => $"{Kind.ToString().ToLowerInvariant()} field of page {Page}",
    };
}
