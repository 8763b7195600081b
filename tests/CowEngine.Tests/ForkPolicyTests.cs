using System.Runtime.InteropServices;

namespace CowEngine.Tests;

/// <summary>
/// fork() while views exist. A forked child shares the engine's memfds with the parent, so a write
/// the child made into a view would land in the parent's memory (a page that is writable in the
/// parent is a MAP_SHARED mapping of the parent's slot). The engine's policy: in a forked child
/// every view is inaccessible. The child here runs only native code (the fork baseline of the
/// benchmarks, libcowforkbaseline.so), as a .NET process's forked child must.
/// </summary>
public sealed unsafe partial class ForkPolicyTests
{
    private const int PageSize = CowMemoryEngine.PageSize;

    [Fact]
    public void AForkedChildsWriteIntoAView_KillsTheChild_AndLeavesTheParentsViewsIntact()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);
        region.AsSpan().Fill(0x11); // writable in the parent: a shared mapping of the parent's slots
        using CowView snapshot = region.Snapshot();
        region.AsSpan(0, PageSize).Fill(0x22);

        uint[] pages = [0, 1, 2, 3];
        ForkChild child;
        fixed (uint* list = pages)
            Assert.Equal(0, Spawn(ModeWrite, region.Pointer, list, (ulong)pages.Length, &child));
        int go = Go(&child, out _);   // the child writes one byte into each page of the view...
        int release = Release(&child);

        // ...and must die of it (EIO: it did not report and did not exit with status 0).
        Assert.NotEqual(0, go);
        Assert.NotEqual(0, release);
        Assert.False(region.AsSpan(0, PageSize).ContainsAnyExcept((byte)0x22), "the child's write reached the parent's region");
        Assert.False(region.AsSpan(PageSize, 3 * PageSize).ContainsAnyExcept((byte)0x11), "the child's write reached the parent's region");
        Assert.False(snapshot.AsSpan().ContainsAnyExcept((byte)0x11), "the child's write reached the parent's snapshot");

        // The parent's engine keeps working.
        region.AsSpan()[PageSize] = 0x33;
        Assert.Equal(0x11, snapshot.AsSpan()[PageSize]);
    }

    private const int ModeWrite = 2;

    [StructLayout(LayoutKind.Sequential)]
    private struct ForkChild
    {
        public int Pid;
        public int Mode;
        public int ControlFd;
        public int ReportFd;
        public ulong ForkNs;
    }

    [LibraryImport("cowforkbaseline", EntryPoint = "cow_fork_baseline_spawn")]
    private static partial int Spawn(int mode, byte* baseAddress, uint* pages, ulong count, ForkChild* child);

    [LibraryImport("cowforkbaseline", EntryPoint = "cow_fork_baseline_go")]
    private static partial int Go(ForkChild* child, out ulong childNanoseconds);

    [LibraryImport("cowforkbaseline", EntryPoint = "cow_fork_baseline_release")]
    private static partial int Release(ForkChild* child);
}
