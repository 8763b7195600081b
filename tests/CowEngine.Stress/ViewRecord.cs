using System.Runtime.InteropServices;

namespace CowEngine.Stress;

/// <summary>
/// One live view and its model: a byte-for-byte shadow copy of what the view must contain, in
/// native memory (so that thousands of megabytes of shadow churn do not turn into GC work the run
/// did not ask for; the GC thread makes its own garbage). Writers update the view and the shadow
/// together under the page's lock; whole-view operations replace the shadow under the gate.
/// </summary>
internal sealed unsafe class ViewRecord
{
    private byte* _shadow;

    public ViewRecord(int id, Family family, CowView view, ViewRecord? parent, string origin, bool frozen)
    {
        Id = id;
        Family = family;
        View = view;
        Origin = origin;
        ParentId = parent?.Id ?? -1;
        Depth = parent is null ? 0 : parent.Depth + 1;
        Frozen = frozen;
        _shadow = (byte*)NativeMemory.Alloc((nuint)family.Length);
        Locks = new PageLocks(family.PageCount);
        DirtySinceFreeze = new byte[family.PageCount];
    }

    public int Id { get; }

    public Family Family { get; }

    public CowView View { get; }

    /// <summary>How the view was made ("region", "snapshot", "racing snapshot"), for reports.</summary>
    public string Origin { get; }

    public int ParentId { get; }

    /// <summary>Snapshot nesting depth: 0 for a region, parent's depth + 1 for a snapshot.</summary>
    public int Depth { get; }

    /// <summary>
    /// Never written through (no writer, restore or pipe picks it): its contents must stay exactly
    /// what they were when it was taken, which <see cref="FrozenChecksum"/> re-checks independently
    /// of the shadow.
    /// </summary>
    public bool Frozen { get; }

    public ulong FrozenChecksum { get; set; }

    public ViewGate Gate { get; } = new();

    public PageLocks Locks { get; }

    /// <summary>Serialises chain waves on this view (see PageLayout.ChainOffset).</summary>
    public object ChainWave { get; } = new();

    /// <summary>
    /// Pages the harness wrote (or prepared for writing) since the engine last write-protected the
    /// view (snapshot of it, restore to or from it, TakeDirtyPages). Set under the page lock, read and
    /// cleared under the Exclusive gate, or cleared page by page under the page locks after a racing
    /// freeze returned (see SnapshotWorker.ClearDirty). The check is "the harness's pages are a
    /// subset of the engine's".
    /// </summary>
    public byte[] DirtySinceFreeze { get; }

    /// <summary>Set under the Exclusive gate when the view is being disposed; checked after entering the gate.</summary>
    public volatile bool Dead;

    public byte* Shadow => _shadow;

    public byte* Pointer => View.Pointer;

    public long Length => Family.Length;

    public Span<byte> ShadowPage(long page) => new(_shadow + page * PageLayout.PageSize, PageLayout.PageSize);

    public Span<byte> ViewPage(long page) => new(View.Pointer + page * PageLayout.PageSize, PageLayout.PageSize);

    public void FreeShadow()
    {
        NativeMemory.Free(_shadow);
        _shadow = null;
    }

    public override string ToString() =>
        $"view #{Id} ({Origin}, {Family}, depth {Depth}{(ParentId >= 0 ? $", from #{ParentId}" : "")}{(Frozen ? ", frozen" : "")})";
}
