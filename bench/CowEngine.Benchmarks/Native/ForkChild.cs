namespace CowEngine.Benchmarks.Native;

/// <summary>A child forked (in C) from this process; see <see cref="ForkChildMode"/>.</summary>
internal sealed unsafe class ForkChild : IDisposable
{
    private ForkChildNative _native;

    private ForkChild()
    {
    }

    public int Pid => _native.Pid;

    /// <summary>How long the parent's fork() call took, measured in C around the call.</summary>
    public double ForkCallMicroseconds => _native.ForkNanoseconds / 1000.0;

    /// <summary>Forks a child in <paramref name="mode"/>.</summary>
    /// <param name="mode">What the child does.</param>
    /// <param name="memory">For <see cref="ForkChildMode.Write"/>: the memory whose pages the child writes.</param>
    /// <param name="pages">For <see cref="ForkChildMode.Write"/>: page indices, written in this order.</param>
    public static ForkChild Spawn(ForkChildMode mode, PrivateMemory? memory = null, uint[]? pages = null)
    {
        if (mode == ForkChildMode.Write && (memory is null || pages is null))
            throw new ArgumentException("A writing child needs memory and pages.");
        var child = new ForkChild();
        fixed (uint* pagePointer = pages)
        fixed (ForkChildNative* native = &child._native)
        {
            ForkBaselineNative.Check(
                ForkBaselineNative.Spawn((int)mode, memory is null ? null : memory.Pointer, pagePointer,
                    (ulong)(pages?.Length ?? 0), native),
                $"forking a {mode} child");
        }
        return child;
    }

    /// <summary>Makes a <see cref="ForkChildMode.Write"/> child write its pages; returns the
    /// nanoseconds it measured itself.</summary>
    public double Go()
    {
        ulong nanoseconds;
        fixed (ForkChildNative* native = &_native)
            ForkBaselineNative.Check(ForkBaselineNative.Go(native, &nanoseconds), $"running child {Pid}");
        return nanoseconds;
    }

    /// <summary>Lets the child leave and reaps it.</summary>
    public void Release()
    {
        fixed (ForkChildNative* native = &_native)
            ForkBaselineNative.Check(ForkBaselineNative.Release(native), $"releasing child {_native.Pid}");
    }

    /// <summary>SIGKILLs the child and reaps it.</summary>
    public void Kill()
    {
        fixed (ForkChildNative* native = &_native)
            ForkBaselineNative.Check(ForkBaselineNative.Kill(native), $"killing child {_native.Pid}");
    }

    public void Dispose() => Release();
}
