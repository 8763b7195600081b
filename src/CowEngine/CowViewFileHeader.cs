namespace CowEngine;

/// <summary>What a view file holds (see <see cref="CowViewFile"/>).</summary>
public enum CowViewFileKind
{
    /// <summary>A whole view: the pages it lists; every page it does not list is zero.</summary>
    Full = 1,

    /// <summary>Changes to its parent file's view: the pages it lists; every other page is as in the parent.</summary>
    Changes = 2,
}

/// <summary>The header of a view file: what it holds and where it belongs in a chain (see <see cref="CowViewFile"/>).</summary>
/// <param name="Version">Format version (<see cref="CowViewFile.FormatVersion"/>).</param>
/// <param name="ViewLength">Bytes of the view the file describes.</param>
/// <param name="Kind">A full view, or changes to the parent file.</param>
/// <param name="PageCount">Pages stored in the file.</param>
/// <param name="ChainId">Identifies a chain: chosen by its full file, copied by every changes file after it.</param>
/// <param name="Sequence">Position in the chain: 0 for the full file, the parent's + 1 for a changes file.</param>
/// <param name="ParentChecksum">The parent file's <see cref="Checksum"/>; 0 for a full file.</param>
/// <param name="Checksum">The header's own checksum, which covers the page table and through it every page: identifies the file's contents.</param>
/// <param name="CreatedUtc">When the file was written.</param>
public sealed record CowViewFileHeader(
    int Version,
    long ViewLength,
    CowViewFileKind Kind,
    long PageCount,
    Guid ChainId,
    long Sequence,
    ulong ParentChecksum,
    ulong Checksum,
    DateTime CreatedUtc)
{
    /// <summary>Bytes of page data stored in the file.</summary>
    public long PageBytes => PageCount * CowMemoryEngine.PageSize;
}
