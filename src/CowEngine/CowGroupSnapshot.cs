using System.Runtime.InteropServices;

namespace CowEngine;

/// <summary>
/// What <see cref="CowViewGroup.Snapshot()"/> made: one snapshot view per member of the group, all
/// taken at one consistent cut, and the payload copied with them (if any). Disposed together.
/// </summary>
/// <remarks>
/// <para>The member snapshots are ordinary views (<see cref="CowView.IsSnapshot"/>): readable,
/// writable, and snapshots can be taken of them; a group of them (<c>new CowViewGroup(snapshot.Members)</c>)
/// branches from the cut. Writing to them changes what a later restore to them gives.</para>
/// <para>Thread safety: the members are thread-safe as any view; the payload is immutable (each read
/// returns a copy). <see cref="Dispose"/> disposes every member: using a member, or the snapshot, while
/// another thread disposes it is the caller's race, as for a view.</para>
/// </remarks>
public sealed class CowGroupSnapshot : IDisposable
{
    private readonly CowView[] _members;
    private readonly byte[]? _payload;
    private int _disposed;

    internal CowGroupSnapshot(CowViewGroup group, CowView[] members, byte[]? payload, Type? payloadType)
    {
        Engine = group.Engine;
        _members = members;
        _payload = payload;
        PayloadType = payloadType;
        Members = Array.AsReadOnly(members);
    }

    /// <summary>The engine the member snapshots belong to.</summary>
    public CowMemoryEngine Engine { get; }

    /// <summary>The member snapshots, in the order of the group's members.</summary>
    public IReadOnlyList<CowView> Members { get; }

    /// <summary>Number of members.</summary>
    public int Count => _members.Length;

    /// <summary>The snapshot of member <paramref name="index"/>.</summary>
    public CowView this[int index] => _members[index];

    /// <summary>True if the snapshot was taken with a payload (<see cref="CowViewGroup.Snapshot{TPayload}(in TPayload)"/>).</summary>
    public bool HasPayload => _payload is not null;

    /// <summary>The payload's type, or null without one.</summary>
    public Type? PayloadType { get; }

    /// <summary>True once <see cref="Dispose"/> was called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>A copy of the payload taken with the snapshot.</summary>
    /// <typeparam name="TPayload">The payload's type, exactly as it was passed to <see cref="CowViewGroup.Snapshot{TPayload}(in TPayload)"/>.</typeparam>
    /// <exception cref="InvalidOperationException">The snapshot has no payload, or one of another type.</exception>
    public TPayload GetPayload<TPayload>() where TPayload : unmanaged
    {
        if (_payload is null)
            throw new InvalidOperationException("This group snapshot holds no payload: it was taken with Snapshot(), not Snapshot(payload).");
        if (PayloadType != typeof(TPayload))
            throw new InvalidOperationException($"This group snapshot holds a payload of type {PayloadType}, not {typeof(TPayload)}.");
        return MemoryMarshal.Read<TPayload>(_payload);
    }

    /// <summary>
    /// Per member, the pages whose bytes differ between this snapshot and <paramref name="other"/>
    /// (<see cref="CowView.GetChangedPages"/>; for two cuts of one group the cost follows the pages
    /// written between them). The payloads are not compared.
    /// </summary>
    /// <returns>One page set per member, in member order.</returns>
    /// <exception cref="ArgumentException">The other snapshot has another number of members, or a member of another engine or size.</exception>
    /// <exception cref="ObjectDisposedException">Either snapshot is disposed.</exception>
    public IReadOnlyList<CowPageSet> GetChangedPages(CowGroupSnapshot other)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return new CowViewGroup(_members).GetChangedPages(other);
    }

    /// <summary>Disposes every member snapshot. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        foreach (CowView member in _members)
            member.Dispose();
    }
}
