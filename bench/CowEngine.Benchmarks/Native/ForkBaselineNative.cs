using System.Runtime.InteropServices;

namespace CowEngine.Benchmarks.Native;

/// <summary>Mirror of <c>cow_fork_child_t</c> (Native/fork_baseline.c).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct ForkChildNative
{
    public int Pid;
    public int Mode;
    public int ControlFd;
    public int ReportFd;
    public ulong ForkNanoseconds;
}

/// <summary>What a forked child does (<c>COW_FORK_CHILD_*</c>).</summary>
internal enum ForkChildMode
{
    /// <summary>Leaves at once: fork per snapshot, the snapshot thrown away.</summary>
    Exit = 0,

    /// <summary>Keeps its copy of the memory until released: a snapshot kept alive.</summary>
    Hold = 1,

    /// <summary>Like <see cref="Hold"/>, and writes its page list on each "go", timing that itself.</summary>
    Write = 2,
}

/// <summary>
/// The fork baseline, libcowforkbaseline.so (Native/fork_baseline.c). Forking happens only there:
/// a child of a .NET process must never run managed code.
/// </summary>
internal static unsafe partial class ForkBaselineNative
{
    private const string Library = "cowforkbaseline";

    [LibraryImport(Library, EntryPoint = "cow_fork_baseline_alloc")]
    public static partial int Alloc(ulong size, int touch, out nint address);

    [LibraryImport(Library, EntryPoint = "cow_fork_baseline_free")]
    public static partial int Free(nint address, ulong size);

    [LibraryImport(Library, EntryPoint = "cow_fork_baseline_fork_exit_wait")]
    public static partial int ForkExitWait(ulong* forkNanoseconds, ulong* totalNanoseconds);

    [LibraryImport(Library, EntryPoint = "cow_fork_baseline_spawn")]
    public static partial int Spawn(int mode, byte* baseAddress, uint* pages, ulong count, ForkChildNative* child);

    [LibraryImport(Library, EntryPoint = "cow_fork_baseline_go")]
    public static partial int Go(ForkChildNative* child, ulong* childNanoseconds);

    [LibraryImport(Library, EntryPoint = "cow_fork_baseline_release")]
    public static partial int Release(ForkChildNative* child);

    [LibraryImport(Library, EntryPoint = "cow_fork_baseline_kill")]
    public static partial int Kill(ForkChildNative* child);

    /// <summary>Turns a shim return value (0 or an errno) into an exception.</summary>
    public static void Check(int error, string what)
    {
        if (error != 0)
            throw new IOException($"{what} failed: {Marshal.GetPInvokeErrorMessage(error)} (errno {error})");
    }
}
