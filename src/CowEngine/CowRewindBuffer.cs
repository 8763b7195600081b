namespace CowEngine;

/// <summary>
/// The last N frames of a state - one view, or the members of a <see cref="CowViewGroup"/> with an
/// optional payload - for an emulator's or a simulator's rewind: <see cref="Capture()"/> once per
/// frame (once <see cref="Capacity"/> frames are kept, the oldest is dropped), and
/// <see cref="RewindTo(int)"/> to go back i frames and play on from there.
/// </summary>
/// <remarks>
/// <para><b>Rewinding drops the future.</b> <see cref="RewindTo(int)"/> restores the frame
/// <c>framesBack</c> frames before the newest and disposes the newer ones: that frame becomes the
/// newest, and the next <see cref="Capture()"/> continues the timeline from it, as an emulator's
/// rewind does. So the frames kept are always the last <see cref="Count"/> frames of the timeline the
/// state really went through, and "i frames back" means what it says after any number of rewinds
/// (rewinding by one, again and again, steps back frame by frame).</para>
/// <para><b>Per frame</b>, <see cref="Capture()"/> is one group snapshot (<see cref="CowViewGroup.Snapshot()"/>):
/// a native call that write-protects the pages written since the previous frame and shares the members'
/// page tables (one step per 2 MiB), and, once the buffer is full, the disposal of the oldest frame (its
/// ranges unmapped, the pages only it held released). The frame's state then pays for its first write
/// to each page after a capture: one fault, and a 4 KiB copy where a kept frame shares the page.
/// <see cref="RewindTo(int)"/> costs a restore of each member - following the pages that differ from
/// that frame (at most the pages written in the frames rewound) - and the disposal of the dropped frames.
/// docs/benchmarks.md (scenario 9) measures this loop.</para>
/// <para><b>Memory</b>: a frame holds, as data, the pages the state overwrote after it (4 KiB per page
/// written in the next frame, not per page of the state); and as tables, per member, five bits per
/// page of bitmaps and a few bytes per 2 MiB, plus 2 KiB of page table for every 2 MiB segment written
/// in the next frame. Each frame's member views also count against the engine's mapping budget (at
/// least two mappings each): keep <c>Capacity * members * 2</c> well below
/// <see cref="CowMemoryEngine.MappingBudget"/>.</para>
/// <para>Thread safety: <see cref="Capture()"/> may run while other threads write to the state (it is a
/// consistent cut). The buffer's own methods must not run concurrently with one another (like
/// <see cref="List{T}"/>); <see cref="RewindTo(int)"/> while other threads write to the state is the
/// caller's race (see <see cref="CowViewGroup.RestoreTo(CowGroupSnapshot)"/>).</para>
/// <para>Lifetime: the buffer owns its frames (<see cref="Dispose"/> disposes them), not the state.</para>
/// </remarks>
public sealed class CowRewindBuffer : IDisposable
{
    private readonly CowGroupSnapshot?[] _frames;
    private int _newest = -1; // ring index of the newest frame
    private bool _disposed;

    /// <summary>A buffer of up to <paramref name="capacity"/> frames of one view.</summary>
    /// <param name="view">The live view whose frames are kept.</param>
    /// <param name="capacity">Frames kept at most (positive).</param>
    /// <exception cref="ArgumentOutOfRangeException">The capacity is not positive.</exception>
    /// <exception cref="ObjectDisposedException">The view is disposed.</exception>
    public CowRewindBuffer(CowView view, int capacity)
        : this(new CowViewGroup(view ?? throw new ArgumentNullException(nameof(view))), capacity)
    {
    }

    /// <summary>A buffer of up to <paramref name="capacity"/> frames of a group's members.</summary>
    /// <param name="group">The views whose frames are kept, each frame one consistent cut of all of them.</param>
    /// <param name="capacity">Frames kept at most (positive).</param>
    /// <exception cref="ArgumentOutOfRangeException">The capacity is not positive.</exception>
    public CowRewindBuffer(CowViewGroup group, int capacity)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Group = group;
        _frames = new CowGroupSnapshot?[capacity];
    }

    /// <summary>The state whose frames are kept.</summary>
    public CowViewGroup Group { get; }

    /// <summary>The most frames kept.</summary>
    public int Capacity => _frames.Length;

    /// <summary>Frames kept now (at most <see cref="Capacity"/>).</summary>
    public int Count { get; private set; }

    /// <summary>
    /// Keeps the state as it is now as the newest frame; once <see cref="Capacity"/> frames are kept,
    /// the oldest is disposed (after the new one was taken: a refused capture drops nothing).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The buffer or a member of the state is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The snapshot would exceed the mapping budget; the buffer is unchanged.</exception>
    /// <exception cref="CowSystemException">A system call failed; the buffer is unchanged.</exception>
    public void Capture()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Push(Group.Snapshot());
    }

    /// <summary>
    /// Keeps the state as it is now, with <paramref name="payload"/> (e.g. CPU registers) copied by
    /// value, as the newest frame; see <see cref="Capture()"/>.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The buffer or a member of the state is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">The snapshot would exceed the mapping budget; the buffer is unchanged.</exception>
    /// <exception cref="CowSystemException">A system call failed; the buffer is unchanged.</exception>
    public void Capture<TPayload>(in TPayload payload) where TPayload : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Push(Group.Snapshot(in payload));
    }

    /// <summary>
    /// Restores the state to the frame <paramref name="framesBack"/> frames before the newest (0: the
    /// newest frame itself) and disposes the newer frames: that frame becomes the newest, and the next
    /// <see cref="Capture()"/> follows it.
    /// </summary>
    /// <param name="framesBack">From 0 to <see cref="Count"/> - 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesBack"/> is negative or not less than <see cref="Count"/>.</exception>
    /// <exception cref="ObjectDisposedException">The buffer or a member of the state is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">A member's restore could exceed the mapping budget; no frame was dropped (see <see cref="CowViewGroup.RestoreTo(CowGroupSnapshot)"/> for the members).</exception>
    /// <exception cref="CowSystemException">A system call failed; no frame was dropped.</exception>
    public void RewindTo(int framesBack)
    {
        CowGroupSnapshot frame = GetFrame(framesBack);
        Group.RestoreTo(frame);
        DropNewest(framesBack);
    }

    /// <summary>
    /// Rewinds as <see cref="RewindTo(int)"/> does and writes the frame's payload back into
    /// <paramref name="payload"/>.
    /// </summary>
    /// <param name="framesBack">From 0 to <see cref="Count"/> - 1.</param>
    /// <param name="payload">Receives the payload captured with the frame.</param>
    /// <exception cref="InvalidOperationException">The frame was captured without a payload, or with one of another type; nothing changed.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesBack"/> is negative or not less than <see cref="Count"/>.</exception>
    /// <exception cref="ObjectDisposedException">The buffer or a member of the state is disposed.</exception>
    /// <exception cref="CowMappingBudgetExceededException">A member's restore could exceed the mapping budget; no frame was dropped.</exception>
    /// <exception cref="CowSystemException">A system call failed; no frame was dropped.</exception>
    public void RewindTo<TPayload>(int framesBack, out TPayload payload) where TPayload : unmanaged
    {
        CowGroupSnapshot frame = GetFrame(framesBack);
        Group.RestoreTo(frame, out payload);
        DropNewest(framesBack);
    }

    /// <summary>
    /// The frame <paramref name="framesBack"/> frames before the newest, to look at or compare
    /// (e.g. <c>buffer.Group.GetChangedPages(buffer.GetFrame(10))</c>). The buffer still owns it: do not
    /// dispose it; it stays valid until it is dropped (by a capture once it is the oldest, a rewind
    /// past it, <see cref="Clear"/> or <see cref="Dispose"/>). Writing to its members changes what a
    /// rewind to it restores.
    /// </summary>
    /// <param name="framesBack">From 0 to <see cref="Count"/> - 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesBack"/> is negative or not less than <see cref="Count"/>.</exception>
    /// <exception cref="ObjectDisposedException">The buffer is disposed.</exception>
    public CowGroupSnapshot GetFrame(int framesBack)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (framesBack < 0 || framesBack >= Count)
            throw new ArgumentOutOfRangeException(nameof(framesBack), framesBack,
                Count == 0 ? "The rewind buffer holds no frame yet: Capture() one first."
                           : $"The rewind buffer holds {Count} frames: framesBack must be from 0 (the newest) to {Count - 1} (the oldest).");
        return _frames[Slot(framesBack)]!;
    }

    /// <summary>Disposes every frame kept; the state stays as it is.</summary>
    /// <exception cref="ObjectDisposedException">The buffer is disposed.</exception>
    public void Clear()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        DropNewest(Count);
    }

    /// <summary>Disposes every frame kept (not the state). Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        DropNewest(Count);
        _disposed = true;
    }

    private int Slot(int framesBack) => (_newest - framesBack + _frames.Length) % _frames.Length;

    private void Push(CowGroupSnapshot frame)
    {
        int slot = (_newest + 1) % _frames.Length;
        CowGroupSnapshot? oldest = Count == _frames.Length ? _frames[slot] : null;
        _frames[slot] = frame;
        _newest = slot;
        if (oldest is null)
            Count++;
        oldest?.Dispose();
    }

    private void DropNewest(int frames)
    {
        for (int i = 0; i < frames; i++)
        {
            CowGroupSnapshot frame = _frames[_newest]!;
            _frames[_newest] = null;
            _newest = (_newest - 1 + _frames.Length) % _frames.Length;
            Count--;
            frame.Dispose();
        }
    }
}
