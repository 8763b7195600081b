namespace CowEngine;

/// <summary>A moment's picture of one view's pages.</summary>
/// <param name="PrivatePages">Pages that only this view references: writing them costs nothing extra.</param>
/// <param name="SharedPages">Pages shared with another view: the next write to each copies it.</param>
/// <param name="WritablePages">Pages mapped writable right now (written since the view's last snapshot).</param>
/// <param name="MappedPages">Pages mapped at all (a snapshot maps its pages on first touch), <paramref name="ZeroPages"/> included.</param>
/// <param name="Mappings">Kernel mappings (VMAs) the view's range consists of.</param>
/// <param name="WriteFaults">Write faults the engine resolved on this view.</param>
/// <param name="PagesCopied">Private copies made for this view, by faults and by PrepareForWrite.</param>
/// <param name="ZeroPages">Pages never written that are mapped onto the kernel's one zero page: reading them
/// allocates nothing (docs/design.md, zero pages).</param>
public readonly record struct CowViewStats(
    long PrivatePages,
    long SharedPages,
    long WritablePages,
    long MappedPages,
    long Mappings,
    long WriteFaults,
    long PagesCopied,
    long ZeroPages)
{
    /// <summary>Bytes only this view holds.</summary>
    public long PrivateBytes => PrivatePages * CowMemoryEngine.PageSize;

    /// <summary>Bytes this view shares with other views.</summary>
    public long SharedBytes => SharedPages * CowMemoryEngine.PageSize;
}

/// <summary>A moment's picture of an engine.</summary>
/// <param name="LiveViews">Regions and snapshots not yet disposed.</param>
/// <param name="SlotsInUse">4 KiB slots referenced by some view (the capacity counts these).</param>
/// <param name="CommittedBytes">Memory the slot pool really holds (the memfd's allocated blocks).</param>
/// <param name="CapacityBytes">The capacity limit.</param>
/// <param name="Mappings">Kernel mappings the engine uses: its views' mappings, the gaps between them and the pool window.</param>
/// <param name="MappingBudget">The most mappings the engine may use.</param>
/// <param name="WriteFaults">Write faults resolved by the handler.</param>
/// <param name="CopyFaults">Write faults that copied a shared page.</param>
/// <param name="PagesCopied">Private copies made, by faults and by PrepareForWrite.</param>
/// <param name="Snapshots">Snapshots taken.</param>
/// <param name="ReadFaults">First touches of snapshot pages, which map them.</param>
/// <param name="Evictions">2 MiB segments unmapped to stay within the mapping budget (mapped again on next touch).</param>
/// <param name="ReverseCopies">
/// First writes resolved by reverse copy-on-write: the views that shared the page (typically the last
/// snapshots, up to 8, none of which had read it) received one copy, and the writer kept its page in place,
/// so the write cost no new mapping. Included in <paramref name="PagesCopied"/>.
/// </param>
/// <param name="PagesRestoredByCopy">
/// Pages <see cref="CowView.RestoreTo"/> restored by copying the source's bytes into the view's own page
/// (which the view keeps, write-protected) instead of sharing the source's page and mapping it again.
/// </param>
public readonly record struct CowEngineStats(
    long LiveViews,
    long SlotsInUse,
    long CommittedBytes,
    long CapacityBytes,
    long Mappings,
    long MappingBudget,
    long WriteFaults,
    long CopyFaults,
    long PagesCopied,
    long Snapshots,
    long ReadFaults,
    long Evictions,
    long ReverseCopies,
    long PagesRestoredByCopy);
