using System.Runtime.InteropServices;
using CowEngine.Internal;
using CowEngine.Interop;

namespace CowEngine;

/// <summary>
/// A state in several parts - an emulator's main RAM, video RAM and cartridge RAM, a simulator's
/// grid and its agents - held in live views of one engine, snapshotted as ONE consistent cut,
/// restored, compared and disposed together; each snapshot can carry a small unmanaged payload (a
/// struct, such as CPU registers) copied by value.
/// </summary>
/// <remarks>
/// <para>Members are views: regions, snapshots, and the typed collections through their views
/// (<c>new CowViewGroup(ram.View, vram.View, list.View)</c> for a <see cref="CowArray{T}"/> and a
/// <see cref="CowList{T}"/>). Restoring a member view restores the collection over it, a list's
/// count included.</para>
/// <para>The cut: <see cref="Snapshot()"/> is one native call that write-locks every member (in a
/// fixed order), write-protects all of them, shares all their pages and only then unlocks them.
/// Every write to any member, from any thread, lands wholly before the cut (it is in the snapshot)
/// or wholly after it (in no member's snapshot): a thread that writes member B and then member A can
/// never have its A write in the snapshot and its B write missing. Snapshotting the members one after
/// another would not give that. The writers of every member pause for the call; it costs what the
/// members' single snapshots cost together.</para>
/// <para>The payload is copied when <see cref="Snapshot{TPayload}(in TPayload)"/> is called: it is
/// the value the caller passes, consistent with the memory as far as the caller makes it so
/// (typically the thread that owns the registers takes the snapshot between two instructions).</para>
/// <para>Thread safety: all members of this type may be called from any thread, and
/// <see cref="Snapshot()"/> may run while other threads write to the members. <see cref="RestoreTo(CowGroupSnapshot)"/>
/// restores one member after another: it is not a cut. Restoring while other threads write to the
/// members is a race the caller must prevent (they would see some members restored and others not, and
/// their writes may land before or after each member's restore).</para>
/// <para>Lifetime: the group does not own its members; dispose them (or their engine) yourself. A
/// member disposed meanwhile makes the calls throw <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed unsafe class CowViewGroup
{
    /// <summary>Snapshots of more members than this pass their handles in arrays instead of on the stack.</summary>
    private const int StackMembers = 32;

    private readonly CowView[] _members;

    /// <summary>A group of <paramref name="members"/>, in that order.</summary>
    /// <param name="members">Live views of one engine, each at most once (at least one).</param>
    /// <exception cref="ArgumentException">No member; a member appears twice; or the members belong to different engines.</exception>
    /// <exception cref="ArgumentNullException">A member is null.</exception>
    /// <exception cref="ObjectDisposedException">A member is disposed.</exception>
    public CowViewGroup(params CowView[] members)
        : this((IEnumerable<CowView>)members)
    {
    }

    /// <summary>A group of <paramref name="members"/>, in that order.</summary>
    /// <param name="members">Live views of one engine, each at most once (at least one).</param>
    /// <exception cref="ArgumentException">No member; a member appears twice; or the members belong to different engines.</exception>
    /// <exception cref="ArgumentNullException">A member is null.</exception>
    /// <exception cref="ObjectDisposedException">A member is disposed.</exception>
    public CowViewGroup(IEnumerable<CowView> members)
    {
        ArgumentNullException.ThrowIfNull(members);
        _members = members.ToArray();
        if (_members.Length == 0)
            throw new ArgumentException("A group needs at least one view.", nameof(members));
        var seen = new HashSet<CowView>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < _members.Length; i++)
        {
            CowView member = _members[i] ?? throw new ArgumentNullException(nameof(members), $"Member {i} is null.");
            ThrowIfMemberDisposed(member, i);
            if (!ReferenceEquals(member.Engine, _members[0].Engine))
                throw new ArgumentException($"Member {i} belongs to another engine than member 0: a group's views must all be of one engine.", nameof(members));
            if (!seen.Add(member))
                throw new ArgumentException($"Member {i} is already in the group (each view may appear once).", nameof(members));
        }
        Engine = _members[0].Engine;
        Members = Array.AsReadOnly(_members);
    }

    /// <summary>The engine all members belong to.</summary>
    public CowMemoryEngine Engine { get; }

    /// <summary>The members, in the order given.</summary>
    public IReadOnlyList<CowView> Members { get; }

    /// <summary>Number of members.</summary>
    public int Count => _members.Length;

    /// <summary>Member <paramref name="index"/>.</summary>
    public CowView this[int index] => _members[index];

    /// <summary>
    /// Snapshots every member at one consistent cut (see the remarks of <see cref="CowViewGroup"/>):
    /// a new view per member, each holding its member's contents as of the cut. No copying.
    /// </summary>
    /// <returns>The group snapshot, without a payload; dispose it when done.</returns>
    /// <exception cref="ObjectDisposedException">A member is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The snapshots would exceed the mapping budget; no snapshot was made and every member holds its contents.</exception>
    /// <exception cref="CowSystemException">A system call failed; no snapshot was made and every member holds its contents.</exception>
    public CowGroupSnapshot Snapshot() => new(this, SnapshotMembers(), payload: null, payloadType: null);

    /// <summary>
    /// Snapshots every member at one consistent cut, as <see cref="Snapshot()"/>, and copies
    /// <paramref name="payload"/> into the snapshot by value.
    /// </summary>
    /// <typeparam name="TPayload">A small unmanaged struct (e.g. CPU registers); read it back with <see cref="CowGroupSnapshot.GetPayload{TPayload}"/> or <see cref="RestoreTo{TPayload}"/>.</typeparam>
    /// <param name="payload">The value to keep with the snapshot.</param>
    /// <returns>The group snapshot; dispose it when done.</returns>
    /// <exception cref="ObjectDisposedException">A member is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The snapshots would exceed the mapping budget; no snapshot was made and every member holds its contents.</exception>
    /// <exception cref="CowSystemException">A system call failed; no snapshot was made and every member holds its contents.</exception>
    public CowGroupSnapshot Snapshot<TPayload>(in TPayload payload) where TPayload : unmanaged
    {
        byte[] bytes = new byte[sizeof(TPayload)];
        MemoryMarshal.Write(bytes, in payload);
        return new CowGroupSnapshot(this, SnapshotMembers(), bytes, typeof(TPayload));
    }

    /// <summary>
    /// Makes every member hold exactly the contents of the corresponding member of
    /// <paramref name="snapshot"/> (<see cref="CowView.RestoreTo"/>, member by member, in order).
    /// </summary>
    /// <remarks>
    /// Not a cut: another thread writing to the members meanwhile is the caller's race (see the
    /// remarks of <see cref="CowViewGroup"/>). Everything is checked before the first member is
    /// restored; if a member's restore then fails (mapping budget, system call), the members before it
    /// hold the snapshot's contents and it and the ones after it their own: call it again.
    /// </remarks>
    /// <param name="snapshot">A group snapshot of as many members, each of this engine and of its member's size; usually one of this group.</param>
    /// <exception cref="ArgumentException">The snapshot has another number of members, or a member of another engine or size.</exception>
    /// <exception cref="ObjectDisposedException">The snapshot or a member is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">A member's restore could exceed the mapping budget (see remarks).</exception>
    /// <exception cref="CowSystemException">A system call failed (see remarks).</exception>
    public void RestoreTo(CowGroupSnapshot snapshot)
    {
        CheckCompatible(snapshot, nameof(snapshot));
        for (int i = 0; i < _members.Length; i++)
            _members[i].RestoreTo(snapshot[i]);
    }

    /// <summary>
    /// Restores every member as <see cref="RestoreTo(CowGroupSnapshot)"/> does and writes the
    /// snapshot's payload back into <paramref name="payload"/>.
    /// </summary>
    /// <param name="snapshot">A group snapshot taken with a payload of type <typeparamref name="TPayload"/>.</param>
    /// <param name="payload">Receives the payload (before any member is restored, so a wrong type changes nothing).</param>
    /// <exception cref="InvalidOperationException">The snapshot has no payload, or one of another type; nothing was restored.</exception>
    /// <exception cref="ArgumentException">The snapshot has another number of members, or a member of another engine or size.</exception>
    /// <exception cref="ObjectDisposedException">The snapshot or a member is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">A member's restore could exceed the mapping budget (see <see cref="RestoreTo(CowGroupSnapshot)"/>).</exception>
    /// <exception cref="CowSystemException">A system call failed (see <see cref="RestoreTo(CowGroupSnapshot)"/>).</exception>
    public void RestoreTo<TPayload>(CowGroupSnapshot snapshot, out TPayload payload) where TPayload : unmanaged
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        TPayload value = snapshot.GetPayload<TPayload>();
        RestoreTo(snapshot);
        payload = value;
    }

    /// <summary>
    /// Per member, the pages whose bytes differ between it and the corresponding member of
    /// <paramref name="snapshot"/> (<see cref="CowView.GetChangedPages"/>: the cost follows the pages
    /// written since they parted). The payload is not compared.
    /// </summary>
    /// <returns>One page set per member, in member order.</returns>
    /// <exception cref="ArgumentException">The snapshot has another number of members, or a member of another engine or size.</exception>
    /// <exception cref="ObjectDisposedException">The snapshot or a member is disposed.</exception>
    public IReadOnlyList<CowPageSet> GetChangedPages(CowGroupSnapshot snapshot)
    {
        CheckCompatible(snapshot, nameof(snapshot));
        var pages = new CowPageSet[_members.Length];
        for (int i = 0; i < _members.Length; i++)
            pages[i] = _members[i].GetChangedPages(snapshot[i]);
        return Array.AsReadOnly(pages);
    }

    /// <summary>Checks that <paramref name="other"/>'s members match these one for one (engine, size, not disposed).</summary>
    internal void CheckCompatible(CowGroupSnapshot other, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(other, parameterName);
        ObjectDisposedException.ThrowIf(other.IsDisposed, other);
        if (other.Count != _members.Length)
            throw new ArgumentException($"The group snapshot has {other.Count} members, the group {_members.Length}.", parameterName);
        for (int i = 0; i < _members.Length; i++)
        {
            CowView mine = _members[i], theirs = other[i];
            ThrowIfMemberDisposed(mine, i);
            if (theirs.IsDisposed)
                throw new ObjectDisposedException($"member {i} ({nameof(CowView)})", $"Member {i} of the group snapshot is disposed.");
            if (!ReferenceEquals(theirs.Engine, mine.Engine))
                throw new ArgumentException($"Member {i} of the group snapshot belongs to another engine.", parameterName);
            if (theirs.Length != mine.Length)
                throw new ArgumentException($"Member {i} differs in size ({theirs.Length} and {mine.Length} bytes).", parameterName);
        }
    }

    internal static void ThrowIfMemberDisposed(CowView member, int index)
    {
        if (member.IsDisposed)
            throw new ObjectDisposedException($"member {index} ({nameof(CowView)})", $"Member {index} of the group is disposed.");
    }

    /// <summary>One snapshot per member at one cut: the native call, and the new views' wrapping.</summary>
    private CowView[] SnapshotMembers()
    {
        for (int i = 0; i < _members.Length; i++)
            ThrowIfMemberDisposed(_members[i], i);
        int count = _members.Length;
        var targets = new ViewHandle[count];
        int allocated = 0;
        int error;
        try
        {
            for (; allocated < count; allocated++)
                targets[allocated] = ViewHandle.Allocate(Engine, _members[allocated].PageCount);
            error = Cut(targets);
        }
        catch
        {
            for (int i = 0; i < allocated; i++)
                targets[i].Dispose();
            throw;
        }
        if (error != 0)
        {
            foreach (ViewHandle target in targets)
                target.Dispose();
            throw Errno.ToException(error, count == 1 ? "taking a snapshot" : $"taking a snapshot of {count} views at one cut", Engine);
        }

        var views = new CowView[count];
        int tracked = 0;
        try
        {
            for (; tracked < count; tracked++)
                views[tracked] = Engine.Track(new CowView(Engine, targets[tracked], isSnapshot: true));
        }
        catch
        {
            // The engine was disposed meanwhile: Track disposed the view it refused; release the rest.
            for (int i = 0; i < tracked; i++)
                views[i].Dispose();
            for (int i = tracked + 1; i < count; i++)
                targets[i].Dispose();
            throw;
        }
        return views;
    }

    /// <summary>The native call, holding a reference on every member's handle for its length.</summary>
    private int Cut(ViewHandle[] targets)
    {
        int count = _members.Length;
        Span<nint> sources = count <= StackMembers ? stackalloc nint[count] : new nint[count];
        Span<nint> entries = count <= StackMembers ? stackalloc nint[count] : new nint[count];
        Span<bool> referenced = count <= StackMembers ? stackalloc bool[count] : new bool[count];
        try
        {
            for (int i = 0; i < count; i++)
            {
                // Throws ObjectDisposedException for a member disposed since the check.
                _members[i].Handle.DangerousAddRef(ref referenced[i]);
                sources[i] = _members[i].Handle.DangerousGetHandle();
                entries[i] = (nint)targets[i].Entry;
            }
            fixed (nint* s = sources, t = entries)
                return CowNative.ViewsSnapshot((CowViewEntry**)s, (CowViewEntry**)t, (uint)count);
        }
        finally
        {
            for (int i = 0; i < count; i++)
                if (referenced[i])
                    _members[i].Handle.DangerousRelease();
        }
    }
}
