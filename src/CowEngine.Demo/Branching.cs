using System.Diagnostics;
using System.Runtime.InteropServices;
using CowEngine;

namespace CowEngine.Demo;

/// <summary>The two states a round saves: where it started, and the best future so far.</summary>
internal enum Saved
{
    Root,
    Best,
}

/// <summary>
/// The memory a world lives in and the way it is saved and rolled back: the one thing the demo's two
/// runs do differently (<see cref="EngineBranching"/>, <see cref="CopyBranching"/>). Counts the saves
/// and rollbacks and times them.
/// </summary>
internal abstract unsafe class Branching : IDisposable
{
    private readonly Stopwatch _time = new();

    /// <summary>The world's memory: <see cref="Length"/> bytes, zero-filled at first.</summary>
    public abstract byte* State { get; }

    public abstract long Length { get; }

    /// <summary>The world's bytes (<see cref="State"/>), to compare.</summary>
    public ReadOnlySpan<byte> AsSpan() => new(State, checked((int)Length));

    /// <summary>States saved (<see cref="Save"/>).</summary>
    public long Snapshots { get; private set; }

    /// <summary>Rollbacks (<see cref="RollBack"/>).</summary>
    public long Rollbacks { get; private set; }

    /// <summary>Time spent inside <see cref="Save"/>, <see cref="RollBack"/> and <see cref="Release"/>.</summary>
    public TimeSpan Time => _time.Elapsed;

    /// <summary>A few words on the work so far, for the progress line.</summary>
    public abstract string Status { get; }

    /// <summary>Saves the state as <paramref name="saved"/> (replacing what was saved there).</summary>
    public void Save(Saved saved)
    {
        Timed(saved, OnSave);
        Snapshots++;
    }

    /// <summary>Rolls the state back to what <see cref="Save"/> saved as <paramref name="saved"/>.</summary>
    public void RollBack(Saved saved)
    {
        Timed(saved, OnRollBack);
        Rollbacks++;
    }

    /// <summary>Frees what was saved as <paramref name="saved"/>, if anything needs freeing.</summary>
    public void Release(Saved saved) => Timed(saved, OnRelease);

    /// <summary>Called after each future, outside the rounds' time: a chance to sample memory use.</summary>
    public virtual void AfterFuture()
    {
    }

    public abstract void Dispose();

    protected abstract void OnSave(Saved saved);

    protected abstract void OnRollBack(Saved saved);

    protected abstract void OnRelease(Saved saved);

    private void Timed(Saved saved, Action<Saved> operation)
    {
        _time.Start();
        try
        {
            operation(saved);
        }
        finally
        {
            _time.Stop();
        }
    }
}

/// <summary>
/// The world in a CowEngine region: a save is <see cref="CowView.Snapshot"/>, a rollback
/// <see cref="CowView.RestoreTo"/>, and the pages a future writes are copied by copy-on-write faults
/// while it runs (outside <see cref="Branching.Time"/>, inside the rounds' time).
/// </summary>
internal sealed unsafe class EngineBranching(CowMemoryEngine engine, long bytes) : Branching
{
    private readonly CowView?[] _saved = new CowView?[Enum.GetValues<Saved>().Length];

    /// <summary>The region holding the world.</summary>
    public CowView View { get; } = engine.CreateRegion(bytes);

    public override byte* State => View.Pointer;

    public override long Length => View.Length;

    /// <summary>The most bytes the engine had committed after a future.</summary>
    public long PeakCommittedBytes { get; private set; }

    public override string Status => $"pages copied {engine.GetStats().PagesCopied,8:N0}";

    public override void AfterFuture() => PeakCommittedBytes = Math.Max(PeakCommittedBytes, engine.GetStats().CommittedBytes);

    public override void Dispose()
    {
        foreach (Saved saved in Enum.GetValues<Saved>())
            OnRelease(saved);
        View.Dispose();
    }

    protected override void OnSave(Saved saved)
    {
        OnRelease(saved);
        _saved[(int)saved] = View.Snapshot();
    }

    protected override void OnRollBack(Saved saved) =>
        View.RestoreTo(_saved[(int)saved] ?? throw new InvalidOperationException($"Nothing is saved as {saved}."));

    protected override void OnRelease(Saved saved)
    {
        _saved[(int)saved]?.Dispose();
        _saved[(int)saved] = null;
    }
}

/// <summary>
/// The world in plain memory, the way a program without CowEngine would branch: a save is a memcpy of
/// the whole state into a buffer of its own, a rollback a memcpy back, and writes cost nothing extra.
/// Every buffer is allocated and touched once, up front, so no round pays the kernel's first touch.
/// </summary>
internal sealed unsafe class CopyBranching : Branching
{
    private readonly long _length;
    private readonly byte* _state;
    private readonly byte*[] _saved = new byte*[Enum.GetValues<Saved>().Length];
    private bool _disposed;

    public CopyBranching(long bytes)
    {
        _length = bytes;
        _state = Allocate(bytes);
        for (int i = 0; i < _saved.Length; i++)
            _saved[i] = Allocate(bytes);
    }

    public override byte* State => _state;

    public override long Length => _length;

    /// <summary>Buffers of <see cref="Length"/> bytes allocated: the state and one per saved state.</summary>
    public int Buffers => 1 + _saved.Length;

    /// <summary>Whole-state copies made so far.</summary>
    public long FullCopies => Snapshots + Rollbacks;

    public override string Status => $"full copies {FullCopies,4:N0}";

    public override void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        NativeMemory.AlignedFree(_state);
        foreach (byte* buffer in _saved)
            NativeMemory.AlignedFree(buffer);
    }

    protected override void OnSave(Saved saved) => NativeMemory.Copy(_state, _saved[(int)saved], (nuint)_length);

    protected override void OnRollBack(Saved saved) => NativeMemory.Copy(_saved[(int)saved], _state, (nuint)_length);

    protected override void OnRelease(Saved saved)
    {
        // The buffer is kept for the next round.
    }

    private static byte* Allocate(long bytes)
    {
        var buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, CowMemoryEngine.PageSize);
        NativeMemory.Clear(buffer, (nuint)bytes); // zero-filled, like a region, and touched
        return buffer;
    }
}
