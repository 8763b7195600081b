using System.Diagnostics;
using System.Runtime.InteropServices;
using CowEngine.Internal;
using CowEngine.Tests.Support;

namespace CowEngine.Tests;

/// <summary>
/// Issue 14, item 4: under an address-space limit (RLIMIT_AS, <c>ulimit -v</c>) the engine reserves
/// what the limit allows, and when the address space itself runs out it throws
/// <see cref="CowAddressSpaceExhaustedException"/> naming RLIMIT_AS with the numbers, keeps nothing
/// half made, and the process carries on. A limit applies to the whole process (and every mapping
/// the engine's arena holds is process-wide), so each test runs in a child process: the isolated
/// ones lower RLIMIT_AS in the child to what it has mapped plus a few GiB (the .NET runtime has
/// already made its own reservations: about half the limit, or 2x the machine's memory, for the GC);
/// one starts the child under `ulimit -v` from a shell, as a user would.
/// </summary>
public sealed partial class AddressSpaceLimitTests
{
    private const int PageSize = CowMemoryEngine.PageSize;
    private const long GiB = 1L << 30;
    private const long MiB = 1L << 20;
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromSeconds(180);

    [Fact]
    public void Enomem_IsTakenForTheAddressSpaceOnlyWhenTheRequestDoesNotFitUnderTheLimit()
    {
        const ulong Limit = 100UL << 30;
        // A reservation that would pass the limit: the address space, whatever the mapping count.
        Assert.Equal(EnomemCause.AddressSpace, SystemLimits.ClassifyEnomem(Limit, 99UL << 30, 2UL << 30, 100, 65530));
        Assert.Equal(EnomemCause.AddressSpace, SystemLimits.ClassifyEnomem(Limit, 99UL << 30, 2UL << 30, 65530, 65530));
        Assert.Equal(EnomemCause.AddressSpace, SystemLimits.ClassifyEnomem(Limit, 101UL << 30, 0, 100, 65530));
        // One that fits: the mapping count if the process is at vm.max_map_count, else neither.
        Assert.Equal(EnomemCause.MappingCount, SystemLimits.ClassifyEnomem(Limit, 50UL << 30, 2UL << 30, 65530, 65530));
        Assert.Equal(EnomemCause.MappingCount, SystemLimits.ClassifyEnomem(null, 50UL << 30, 0, 65000, 65530));
        Assert.Equal(EnomemCause.Neither, SystemLimits.ClassifyEnomem(Limit, 50UL << 30, 2UL << 30, 30000, 65530));
        Assert.Equal(EnomemCause.Neither, SystemLimits.ClassifyEnomem(null, 50UL << 30, 1UL << 40, 30000, 65530));
        Assert.Equal(EnomemCause.Neither, SystemLimits.ClassifyEnomem(null, 0, 0, -1, 65530)); // /proc unreadable
    }

    [Fact]
    public void TheLimitAndTheAddressSpaceInUse_AreReadFromProc()
    {
        // What getrlimit says (the suite itself runs without a limit, but need not).
        RLimit actual = CurrentAddressSpaceLimit();
        Assert.Equal(actual.Current == ulong.MaxValue ? null : actual.Current, SystemLimits.AddressSpaceLimit());
        Assert.Equal(actual.Current == ulong.MaxValue, SystemLimits.AddressSpaceAvailable() is null);
        ulong before = SystemLimits.AddressSpaceInUse();
        Assert.True(before > 0, "VmSize was not read");
        nint block = Marshal.AllocHGlobal((nint)(256 * MiB)); // glibc maps a block this large on its own
        try
        {
            ulong during = SystemLimits.AddressSpaceInUse();
            Assert.True(during >= before + (ulong)(200 * MiB), $"VmSize {before} -> {during} after mapping 256 MiB");
        }
        finally
        {
            Marshal.FreeHGlobal(block);
        }
        Assert.True(SystemLimits.ProcessMappings() > 10);
        Assert.Equal(GiB, (long)SystemLimits.Headroom(4UL << 30));
        Assert.Equal(4 * GiB, (long)SystemLimits.Headroom(100UL << 30));
    }

    /// <summary>
    /// An engine whose default slot space (128 GiB of pool window) cannot fit is made with a smaller
    /// one; one whose capacity cannot fit at all throws naming RLIMIT_AS with the numbers, and keeps
    /// nothing: the address space in use and the open memfds are what they were, the first engine
    /// keeps working and the next one can be made.
    /// </summary>
    [Fact]
    public async Task EngineUnderATightLimit_GetsASmallerSlotPool_OrThrowsNamingRlimitAs_AndKeepsNothing()
    {
        if (!IsolatedTest.IsChildFor(nameof(EngineUnderATightLimit_GetsASmallerSlotPool_OrThrowsNamingRlimitAs_AndKeepsNothing)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(GetType(), nameof(EngineUnderATightLimit_GetsASmallerSlotPool_OrThrowsNamingRlimitAs_AndKeepsNothing), ChildTimeout);
            return;
        }
        EngineUnderATightLimit();
    }

    private static unsafe void EngineUnderATightLimit()
    {
        ulong limit = LimitAddressSpaceTo(8 * GiB); // 4 GiB of it is the runtime's headroom: 4 GiB for the engine

        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = GiB });
        uint chunks = engine.Handle.Table->ChunkCapacity;
        Assert.Equal(GiB, engine.CapacityBytes); // an explicit capacity is never shrunk
        Assert.InRange(chunks, 512u + 128u, 65_535u); // at least capacity + 1/4, less than the default 65,536
        Assert.True(ProcessTables.IsGrowable, "the arena was made under the limit, so it grows on demand");
        Assert.True(CopyOnWriteWorks(engine, 256 * MiB));

        ulong inUseBefore = SystemLimits.AddressSpaceInUse();
        int memfdsBefore = CountMemfds();
        var refused = Assert.Throws<CowAddressSpaceExhaustedException>(() => new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 16 * GiB }));
        Assert.Contains("RLIMIT_AS", refused.Message);
        Assert.Contains("ulimit -v", refused.Message);
        Assert.Contains("creating an engine", refused.Message);
        Assert.Contains($"{limit:N0} bytes", refused.Message);
        Assert.DoesNotContain("max_map_count", refused.Message);
        Assert.Equal((long)limit, refused.LimitBytes);
        Assert.True(refused.RequestedBytes >= 20 * GiB, $"requested {refused.RequestedBytes}: 16 GiB and a quarter more of slot pool");
        Assert.InRange(refused.InUseBytes, (long)inUseBefore - 64 * MiB, (long)limit);
        Assert.Equal(memfdsBefore, CountMemfds());
        Assert.InRange((long)SystemLimits.AddressSpaceInUse(), (long)inUseBefore - 64 * MiB, (long)inUseBefore + 64 * MiB);

        // The process carries on: the first engine works, and smaller engines can be made, a default
        // one too (its capacity, the machine's memory by default, shrunk to fit, with a warning).
        Assert.True(CopyOnWriteWorks(engine, 256 * MiB));
        using (var smaller = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 256 * MiB }))
            Assert.True(CopyOnWriteWorks(smaller, 64 * MiB));
        var log = new CapturingLoggerFactory();
        using var defaulted = new CowMemoryEngine(new CowEngineOptions { LoggerFactory = log });
        Assert.InRange(defaulted.CapacityBytes, 64 * MiB, (long)(SystemLimits.AddressSpaceLimit() ?? 0) / 2);
        Assert.True(defaulted.CapacityBytes < GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
        Assert.Contains(log.Entries, e => e.EventId == 22 && e.Level == Microsoft.Extensions.Logging.LogLevel.Warning && e.Message.Contains("RLIMIT_AS"));
        Assert.True(CopyOnWriteWorks(defaulted, 64 * MiB));
    }

    /// <summary>
    /// Views take their ranges from the arena, which grows on demand under the limit. Snapshots of a
    /// 1 GiB region until the address space runs out: the one that does not fit throws naming
    /// RLIMIT_AS (and so does a region), every view made before stays intact and copy-on-write keeps
    /// working in them, and once a view is disposed its range is reused: the next request succeeds.
    /// </summary>
    [Fact]
    public async Task ViewsBeyondTheLimit_ThrowNamingRlimitAs_AndTheProcessKeepsWorking()
    {
        if (!IsolatedTest.IsChildFor(nameof(ViewsBeyondTheLimit_ThrowNamingRlimitAs_AndTheProcessKeepsWorking)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(GetType(), nameof(ViewsBeyondTheLimit_ThrowNamingRlimitAs_AndTheProcessKeepsWorking), ChildTimeout);
            return;
        }
        ViewsBeyondTheLimit();
    }

    private static unsafe void ViewsBeyondTheLimit()
    {
        ulong limit = LimitAddressSpaceTo(10 * GiB); // 6 GiB beyond the headroom
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 2 * GiB });
        ulong arenaAtStart = ProcessTables.ReservedBytes;
        using CowView region = engine.CreateRegion(GiB);
        long pages = region.PageCount;
        FillPages(region, 1);

        var snapshots = new List<CowView>();
        CowAddressSpaceExhaustedException? refused = null;
        try
        {
            for (int i = 0; i < 64 && refused is null; i++)
            {
                try
                {
                    snapshots.Add(region.Snapshot());
                    region.Pointer[i * PageSize] = (byte)(i + 2); // each snapshot differs from the next
                }
                catch (CowAddressSpaceExhaustedException e)
                {
                    refused = e;
                }
            }
            Assert.NotNull(refused);
            Assert.NotEmpty(snapshots);
            Assert.Contains("taking a snapshot", refused.Message);
            Assert.Contains("RLIMIT_AS", refused.Message);
            Assert.Contains($"{limit:N0} bytes", refused.Message);
            Assert.Equal((long)limit, refused.LimitBytes);
            Assert.InRange(refused.RequestedBytes, 2 * MiB, GiB); // what the arena had to grow by for the 1 GiB snapshot
            Assert.True(ProcessTables.ReservedBytes > arenaAtStart + (ulong)GiB, $"the arena grew from {arenaAtStart} to {ProcessTables.ReservedBytes}");

            var region2 = Assert.Throws<CowAddressSpaceExhaustedException>(() => engine.CreateRegion(512 * MiB));
            Assert.Contains("creating a region", region2.Message);
            Assert.Equal(snapshots.Count + 1, engine.GetStats().LiveViews); // nothing half made

            // Every view is intact, and copy-on-write works in the views placed in the grown arena.
            // Snapshot i saw pages j < i written (j + 2) and the others not yet (1).
            for (int i = 0; i < snapshots.Count; i++)
            {
                for (int j = 0; j <= i; j++)
                    Assert.Equal(j < i ? (byte)(j + 2) : (byte)1, snapshots[i].Pointer[j * PageSize]);
                Assert.Equal((byte)1, snapshots[i].Pointer[(pages - 1) * PageSize]);
                snapshots[i].Pointer[(pages - 1) * PageSize] = 0x77;
                Assert.Equal((byte)0x77, snapshots[i].Pointer[(pages - 1) * PageSize]);
                Assert.Equal((byte)1, region.Pointer[(pages - 1) * PageSize]);
            }

            // Disposing a view gives its range back: the next request fits.
            snapshots[^1].Dispose();
            snapshots.RemoveAt(snapshots.Count - 1);
            using CowView smaller = engine.CreateRegion(512 * MiB);
            FillPages(smaller, 9);
            using CowView ofSmaller = smaller.Snapshot();
            smaller.Pointer[0] = 10;
            Assert.Equal((byte)9, ofSmaller.Pointer[0]);
            Assert.Equal((byte)10, smaller.Pointer[0]);
        }
        finally
        {
            foreach (CowView snapshot in snapshots)
                snapshot.Dispose();
        }
    }

    /// <summary>
    /// The fork policy covers the grown arena: a forked child's write into a view placed in the part
    /// the arena grew into (past its first 256 MiB) kills the child, as anywhere in the arena, and the
    /// parent's views are intact (the child remaps [base, base + arena_size) with the size as grown).
    /// </summary>
    [Fact]
    public async Task AForkedChildsWriteIntoAViewInTheGrownArena_KillsTheChild_AndLeavesTheParentIntact()
    {
        if (!IsolatedTest.IsChildFor(nameof(AForkedChildsWriteIntoAViewInTheGrownArena_KillsTheChild_AndLeavesTheParentIntact)))
        {
            await IsolatedTest.RunAndAssertPassedAsync(GetType(), nameof(AForkedChildsWriteIntoAViewInTheGrownArena_KillsTheChild_AndLeavesTheParentIntact), ChildTimeout);
            return;
        }
        ForkIntoTheGrownArena();
    }

    private static unsafe void ForkIntoTheGrownArena()
    {
        LimitAddressSpaceTo(8 * GiB);
        using var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = GiB });
        ulong first = ProcessTables.ReservedBytes;
        using CowView region = engine.CreateRegion(512 * MiB); // more than the first part: the arena grows
        Assert.True(ProcessTables.ReservedBytes > first, "the arena did not grow");
        uint lastPage = (uint)region.PageCount - 1;
        region.Pointer[(long)lastPage * PageSize] = 0x11;
        using CowView snapshot = region.Snapshot();
        // Written after the snapshot: private and writable in the parent, a shared mapping of the
        // parent's slots that a child's write would reach if the child could still see it.
        region.Pointer[(long)(lastPage - 1) * PageSize] = 0x22;
        region.Pointer[(long)lastPage * PageSize] = 0x22;

        uint[] pages = [lastPage - 1, lastPage];
        ForkChild child;
        fixed (uint* list = pages)
            Assert.Equal(0, Spawn(ModeWrite, region.Pointer, list, (ulong)pages.Length, &child));
        int go = Go(&child, out _);
        int release = Release(&child);

        Assert.NotEqual(0, go);      // the child died of its write (it did not report, nor exit with 0)
        Assert.NotEqual(0, release);
        Assert.Equal((byte)0x22, region.Pointer[(long)(lastPage - 1) * PageSize]);
        Assert.Equal((byte)0x22, region.Pointer[(long)lastPage * PageSize]);
        Assert.Equal((byte)0, snapshot.Pointer[(long)(lastPage - 1) * PageSize]);
        Assert.Equal((byte)0x11, snapshot.Pointer[(long)lastPage * PageSize]);
        region.Pointer[(long)lastPage * PageSize] = 0x33; // and the parent's engine keeps working
        Assert.Equal((byte)0x11, snapshot.Pointer[(long)lastPage * PageSize]);
    }

    /// <summary>
    /// The situation: the program started under `ulimit -v` (~95 GiB), so the runtime sized its
    /// own reservations to the limit first. The default engine (whose 32 TiB arena and 128 GiB pool the
    /// old code asked for, to fail with a message about vm.max_map_count) now works; an engine that
    /// cannot fit names RLIMIT_AS, and the next engine works.
    /// </summary>
    [Fact]
    public async Task DefaultEngine_InAProcessStartedUnderUlimitV_Works_AndAnEngineThatCannotFitNamesRlimitAs()
    {
        const long LimitKiB = 95L << 20; // `ulimit -v` counts KiB: 95 GiB
        ChildResult result = await RunChildUnderUlimitAsync("address-space-at-start", LimitKiB);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain("UNEXPECTED", result.StandardOutput);
        Assert.Contains($"RLIMIT_AS {LimitKiB * 1024}", result.StandardOutput);
        Assert.Contains("copy-on-write ok: True", result.StandardOutput);
        Assert.Contains("CowEngine address space is limited (RLIMIT_AS 95 GiB", result.StandardOutput); // the warning (EventId 22)
        Assert.Contains("1 TiB engine: CowAddressSpaceExhaustedException: limit " + LimitKiB * 1024, result.StandardOutput);
        Assert.Contains("RLIMIT_AS, `ulimit -v`", result.StandardOutput);
        Assert.DoesNotContain("max_map_count", result.StandardOutput.Split('\n').First(l => l.StartsWith("message:", StringComparison.Ordinal)));
        Assert.Contains("next engine copy-on-write ok: True", result.StandardOutput);
    }

    // ---- helpers ----

    /// <summary>Lowers this (child) process's RLIMIT_AS to what it has mapped plus <paramref name="more"/>; returns the limit.</summary>
    private static unsafe ulong LimitAddressSpaceTo(long more)
    {
        ulong limit = (SystemLimits.AddressSpaceInUse() + (ulong)more) & ~(ulong)(PageSize - 1);
        var value = new RLimit { Current = limit, Maximum = CurrentAddressSpaceLimit().Maximum };
        Assert.True(SetRLimit(RLimitAs, &value) == 0, $"setrlimit(RLIMIT_AS) failed: errno {Marshal.GetLastPInvokeError()}");
        Assert.Equal(limit, SystemLimits.AddressSpaceLimit());
        return limit;
    }

    private static unsafe void FillPages(CowView view, byte value)
    {
        for (long page = 0; page < view.PageCount; page++)
            view.Pointer[page * PageSize] = value;
    }

    private static bool CopyOnWriteWorks(CowMemoryEngine engine, long bytes)
    {
        using CowView region = engine.CreateRegion(bytes);
        region.AsSpan(0, PageSize).Fill(0x11);
        using CowView snapshot = region.Snapshot();
        region.AsSpan(0, PageSize).Fill(0x22);
        return !region.AsSpan(0, PageSize).ContainsAnyExcept((byte)0x22) && !snapshot.AsSpan(0, PageSize).ContainsAnyExcept((byte)0x11);
    }

    private static int CountMemfds() =>
        Directory.EnumerateFileSystemEntries("/proc/self/fd")
            .Count(fd => (new FileInfo(fd).LinkTarget ?? "").StartsWith("/memfd:cowengine-slots", StringComparison.Ordinal));

    /// <summary>
    /// Runs a CowEngine.TestChild scenario from a shell that sets `ulimit -v` first, so the limit is in
    /// force before the runtime starts; kills it (with its stacks in the report) if it hangs.
    /// </summary>
    private static Task<ChildResult> RunChildUnderUlimitAsync(string scenario, long limitKiB) =>
        ChildProcess.RunProgramAsync(scenario, "/bin/sh",
            ["-c", $"ulimit -v {limitKiB} && exec \"$0\" \"$@\"", ChildProcess.DotnetHostPath(), ChildProcess.ChildAssemblyPath, scenario],
            ChildTimeout);

    private const int ModeWrite = 2; // the fork baseline's child writes one byte into each listed page

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
    private static unsafe partial int Spawn(int mode, byte* baseAddress, uint* pages, ulong count, ForkChild* child);

    [LibraryImport("cowforkbaseline", EntryPoint = "cow_fork_baseline_go")]
    private static unsafe partial int Go(ForkChild* child, out ulong childNanoseconds);

    [LibraryImport("cowforkbaseline", EntryPoint = "cow_fork_baseline_release")]
    private static unsafe partial int Release(ForkChild* child);

    private const int RLimitAs = 9;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static unsafe partial int SetRLimit(int resource, RLimit* limit);

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static unsafe partial int GetRLimit(int resource, RLimit* limit);

    private static unsafe RLimit CurrentAddressSpaceLimit()
    {
        RLimit value;
        Assert.True(GetRLimit(RLimitAs, &value) == 0, $"getrlimit(RLIMIT_AS) failed: errno {Marshal.GetLastPInvokeError()}");
        return value;
    }
}
