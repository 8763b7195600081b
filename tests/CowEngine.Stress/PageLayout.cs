namespace CowEngine.Stress;

/// <summary>
/// Where the monotonic 64-bit fields sit in a counter page. The fields never overlap:
/// <code>
///  [0, 4)        high half of the previous page's page-crossing field
///  [8, 16)       counter          (aligned store)
///  [16, 24)      chain field      (only on the family's chain pages)
///  [1001, 1009)  unaligned field  (a store at an odd address)
///  [4092, 4096)  low half of this page's page-crossing field, whose high half is bytes [0, 4) of
///                the next page: one 8-byte store that spans two pages
/// </code>
/// Every other byte keeps the random contents the region was created with (or whatever a restore
/// brought), so a page mapped onto the wrong slot shows up as a byte mismatch, not as a zero that
/// happens to equal the model.
/// </summary>
internal static class PageLayout
{
    public const int PageSize = CowMemoryEngine.PageSize;

    public const int CounterOffset = 8;

    /// <summary>
    /// Written by chain waves: one thread at a time per view sets the chain field of each chain page,
    /// in the family's fixed order, to one more than the first page's value. So at every instant
    /// the chain's values never increase along that order, and a consistent cut must show the same:
    /// a snapshot that holds a later page's new value but not an earlier page's is not a cut.
    /// </summary>
    public const int ChainOffset = 16;

    public const int UnalignedOffset = 1001;

    public const int CrossOffset = PageSize - 4;

    /// <summary>Initial field values stay far below overflow however long a soak runs.</summary>
    public const ulong InitialFieldLimit = 1UL << 32;
}
