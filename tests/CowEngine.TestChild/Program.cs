using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CowEngine;

namespace CowEngine.TestChild;

/// <summary>
/// Runs one crash scenario per process for tests/CowEngine.Tests/FatalFaultTests.cs. Every scenario
/// prints progress lines to stdout (flushed before the deliberate crash, so the test can tell how
/// far it got) and most of them end the process on purpose. A line starting with "UNEXPECTED" means
/// the crash did not happen; the process then exits with 0, which the tests treat as a failure.
/// </summary>
/// <remarks>Exit codes of its own: 0 scenario returned, 2 bad usage, 3 the scenario's setup failed.</remarks>
internal static unsafe partial class Program
{
    private const int PageSize = CowMemoryEngine.PageSize;

    private static int Main(string[] args)
    {
        if (args.Length != 1)
        {
            Console.Error.WriteLine("usage: CowEngine.TestChild <scenario>");
            return 2;
        }
        // A crash is the expected outcome: do not spend seconds writing a core file for it.
        DisableCoreDumps();
        Progress($"scenario {args[0]} pid {Environment.ProcessId}");
        return args[0] switch
        {
            "clean-exit" => CleanExit(),
            "capacity-exhausted" => CapacityExhausted(),
            "mapping-limit" => MappingLimit(),
            "stale-pointer-write" => StalePointerWrite(),
            "stack-overflow" => StackOverflow(),
            "read-past-view-end" => ReadPastViewEnd(),
            "write-past-view-end" => WritePastViewEnd(),
            "execute-in-view" => ExecuteInView(),
            "memfd-growth-refused" => MemfdGrowthRefused(),
            "foreign-handler" => ForeignHandler(),
            "dispose-while-writing" => DisposeWhileWriting(),
            "userfaultfd-refused" => UserfaultfdRefused(),
            "sigbus-elsewhere" => SigbusElsewhere(withEngine: false),
            "sigbus-elsewhere-with-engine" => SigbusElsewhere(withEngine: true),
            "torn-saves" => TornSaves(),
            "address-space-at-start" => AddressSpaceAtStart(),
            "unreachable-engine" => UnreachableEngine(),
            var name when name.StartsWith("tgkill-", StringComparison.Ordinal) => SignalFromElsewhere(name),
            var name when name.StartsWith("inject-", StringComparison.Ordinal) => InjectionScenario(name),
            _ => UnknownScenario(args[0]),
        };
    }

    /// <summary>The harness's control case: copy-on-write works and the process exits normally.</summary>
    private static int CleanExit()
    {
        using var engine = new CowMemoryEngine();
        using CowView region = engine.CreateRegion(4 * PageSize);
        region.AsSpan().Fill(0x11);
        using CowView snapshot = region.Snapshot();
        region.AsSpan().Fill(0x22);
        bool ok = AllBytesAre(region, 0x22) && AllBytesAre(snapshot, 0x11);
        Progress($"copy-on-write ok: {ok}");
        return ok ? 0 : 3;
    }

    /// <summary>
    /// The fault path needs a slot for the copy, and the engine's capacity (16 pages) is taken by the
    /// region itself: the handler can neither resolve the fault nor return, so it must abort.
    /// </summary>
    private static int CapacityExhausted()
    {
        var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 16 * PageSize });
        CowView region = engine.CreateRegion(16 * PageSize);
        region.AsSpan().Fill(0x11);
        CowView snapshot = region.Snapshot();
        Progress($"region and snapshot share 16 pages; slots in use {engine.GetStats().SlotsInUse} of 16");
        Progress("writing a shared page");
        WriteByte(region.Pointer + 5 * PageSize, 0x77);
        Progress($"UNEXPECTED: the write returned; snapshot byte {snapshot.Pointer[5 * PageSize]}");
        return 0;
    }

    /// <summary>
    /// The kernel refuses the mapping a copy needs (vm.max_map_count), and the engine cannot make
    /// room by unmapping its own mappings: the handler must abort with a line naming the limit.
    /// </summary>
    /// <remarks>
    /// <para>The engine's answer to ENOMEM is to unmap (evict) its evictable segments and retry
    /// once. So the region's only segment is pinned first (PrepareForWrite on page 0 pins it until
    /// the next snapshot), the snapshot is never touched (nothing of it is mapped), and there is no
    /// other view: eviction finds nothing, and the retry fails too.</para>
    /// <para>After the exhaustion loop the process may not need anything new from the kernel's
    /// mapping table before the fault: no GC allocation that could commit heap memory, no
    /// compilation of a method (tiered compilation is off for this program and every method used
    /// afterwards has run once already), no new thread. The loop ends one mapping past the limit
    /// (mmap checks "count > limit", a split checks "count >= limit"); one of our pages is freed
    /// again as a margin for the runtime, which leaves the process exactly at vm.max_map_count. The
    /// copy of a page in the middle of a read-only run must split that run twice, which the kernel
    /// then refuses (measured: freeing two pages would already let it succeed).</para>
    /// </remarks>
    private static int MappingLimit()
    {
        var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(8 * PageSize);
        region.AsSpan().Fill(0x11);
        CowView snapshot = region.Snapshot();
        region.PrepareForWrite(0, PageSize); // page 0 private and pinned; pages 1-7 one read-only run
        // Warm up (compile, resolve) everything that runs after the exhaustion: the write helper
        // (on the prepared page: no fault), Progress with a number, mmap and munmap.
        WriteByte(region.Pointer, 0x12);
        nint warmUp = LibC.Mmap(0, PageSize, LibC.ProtRead, LibC.MapPrivate | LibC.MapAnonymous, -1, 0);
        LibC.Munmap(warmUp, PageSize);
        Progress($"region of 8 pages snapshotted, page 0 prepared; region mappings {region.GetStats().Mappings}");

        int limit = ReadMaxMapCount();
        nint[] pages = new nint[limit + 4096];
        int count = 0;
        int error = 0;
        while (count < pages.Length)
        {
            // Neighbouring anonymous pages with different protections never merge: one mapping each.
            int protection = (count & 1) == 0 ? LibC.ProtRead : LibC.ProtNone;
            nint page = LibC.Mmap(0, PageSize, protection, LibC.MapPrivate | LibC.MapAnonymous, -1, 0);
            if (page == LibC.MapFailed)
            {
                error = Marshal.GetLastPInvokeError();
                break;
            }
            pages[count++] = page;
        }
        if (error != LibC.ENOMEM)
        {
            Progress($"setup failed: mmap stopped after {count} pages with errno {error}, expected ENOMEM");
            return 3;
        }
        LibC.Munmap(pages[--count], PageSize);
        Progress($"mappings exhausted after {count} mmaps; writing a page in the middle of the shared run");
        WriteByte(region.Pointer + 4 * PageSize, 0x22);
        Progress($"UNEXPECTED: the write returned; snapshot byte {snapshot.Pointer[4 * PageSize]}");
        return 0;
    }

    /// <summary>
    /// A write through a pointer into a disposed view must fault (the range is PROT_NONE and no longer
    /// in the engine's directory) instead of landing anywhere, in particular not in a newer view.
    /// </summary>
    private static int StalePointerWrite()
    {
        var engine = new CowMemoryEngine();
        CowView disposed = engine.CreateRegion(4 * PageSize);
        disposed.AsSpan().Fill(0x33);
        byte* stale = disposed.Pointer;
        disposed.Dispose();

        CowView second = engine.CreateRegion(4 * PageSize);
        second.AsSpan().Fill(0x44);
        CowView secondSnapshot = second.Snapshot();
        Progress($"second view intact: {AllBytesAre(second, 0x44) && AllBytesAre(secondSnapshot, 0x44)}");
        Progress($"second view reuses the stale range: {second.Pointer == stale}");
        Progress("writing through the stale pointer");
        WriteByte(stale + 100, 0x55);
        Progress($"UNEXPECTED: the stray write returned; second view intact: {AllBytesAre(second, 0x44) && AllBytesAre(secondSnapshot, 0x44)}");
        return 0;
    }

    /// <summary>A managed stack overflow must still reach the runtime, which reports it.</summary>
    private static int StackOverflow()
    {
        using var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(PageSize);
        CowView snapshot = region.Snapshot();
        WriteByte(region.Pointer, 1); // one resolved fault, so the handler has run before
        Progress($"copy-on-write fault resolved: {region.Pointer[0] == 1 && snapshot.Pointer[0] == 0}");
        Progress("recursing");
        int result = Recurse(0);
        Progress($"UNEXPECTED: the recursion returned {result}");
        return 0;
    }

    /// <summary>
    /// A read of the PROT_NONE rest of a view's 2 MiB segment is not a write fault: the handler must
    /// pass it on (the runtime then ends the process), not swallow it or loop on it.
    /// </summary>
    private static int ReadPastViewEnd()
    {
        var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(PageSize);
        region.AsSpan().Fill(0x66);
        CowView snapshot = region.Snapshot();
        Progress($"last byte of the view: {ReadByte(region.Pointer + PageSize - 1)}");
        Progress("reading the first byte past the view");
        byte value = ReadByte(region.Pointer + PageSize);
        Progress($"UNEXPECTED: the read returned {value}; snapshot {snapshot.Pointer[0]}");
        return 0;
    }

    /// <summary>
    /// A write to the PROT_NONE rest of a view's segment is a write fault in a segment the directory
    /// maps to a live view, but outside the view's pages: it must be passed on as well.
    /// </summary>
    private static int WritePastViewEnd()
    {
        var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(PageSize);
        CowView snapshot = region.Snapshot();
        WriteByte(region.Pointer + PageSize - 1, 0x66);
        Progress($"last byte of the view written: {region.Pointer[PageSize - 1] == 0x66 && snapshot.Pointer[PageSize - 1] == 0}");
        Progress("writing the first byte past the view");
        WriteByte(region.Pointer + PageSize, 0x67);
        Progress("UNEXPECTED: the write returned");
        return 0;
    }

    /// <summary>
    /// An instruction fetch from a view (its pages are never executable) is SEGV_ACCERR on a page of
    /// a live view, but not a write: the handler must pass it on, not resolve or swallow it.
    /// </summary>
    private static int ExecuteInView()
    {
        var engine = new CowMemoryEngine();
        CowView region = engine.CreateRegion(PageSize);
        region.AsSpan().Fill(0xC3); // x86 "ret": would return at once if the page were executable
        CowView snapshot = region.Snapshot();
        Progress($"snapshot holds the code bytes: {snapshot.Pointer[0] == 0xC3}");
        Progress("calling into the view");
        ((delegate* unmanaged<void>)region.Pointer)();
        Progress("UNEXPECTED: the call returned");
        return 0;
    }

    /// <summary>
    /// The slot pool cannot be created or grown: a tiny RLIMIT_FSIZE makes the memfd's ftruncate
    /// fail (EFBIG once SIGXFSZ is ignored). The API must throw CowSystemException naming it.
    /// </summary>
    private static int MemfdGrowthRefused()
    {
        LibC.Signal(LibC.SigXfsz, LibC.SigIgn);
        var limit = new LibC.RLimit { Current = 1 << 20, Maximum = 1 << 20 };
        if (LibC.SetRLimit(LibC.RLimitFsize, &limit) != 0)
            return 4;
        try
        {
            using var engine = new CowMemoryEngine();
            Progress("UNEXPECTED: the engine was created");
            return 3;
        }
        catch (CowSystemException exception)
        {
            Progress($"refused: errno {exception.ErrorNumber}: {exception.Message}");
            return 0;
        }
    }

    /// <summary>
    /// Another native library installs its SIGSEGV handler after ours and chains to it. Chaining must
    /// keep working both ways: copy-on-write faults still resolve (through its handler into ours),
    /// null dereferences still become NullReferenceException (through both into the runtime's), and
    /// its handler sees every fault.
    /// </summary>
    private static int ForeignHandler()
    {
        // mprotect: its write faults are SIGSEGVs, which the foreign SIGSEGV handler must see first
        // (with userfaultfd they are SIGBUSes: the sigbus-from-elsewhere scenario covers those).
        using var engine = new CowMemoryEngine(new CowEngineOptions { WriteProtection = CowWriteProtection.Mprotect });
        using CowView region = engine.CreateRegion(8 * PageSize);
        region.AsSpan().Fill(0x11); // its first writes (off the zero page) fault before the foreign handler is there
        long faultsBefore = engine.GetStats().WriteFaults;
        if (Foreign.Install() != 0)
            return 4;
        using CowView snapshot = region.Snapshot();
        region.AsSpan().Fill(0x22); // 8 copy-on-write faults, each through the foreign handler first
        bool cow = AllBytesAre(region, 0x22) && AllBytesAre(snapshot, 0x11);
        int caught = 0;
        for (int i = 0; i < 100; i++)
        {
            try
            {
                ReadByte((byte*)0);
            }
            catch (NullReferenceException)
            {
                caught++;
            }
        }
        Progress($"copy-on-write through the foreign handler: {cow}");
        Progress($"null references caught: {caught}");
        Progress($"foreign handler saw: {Foreign.Seen()}");
        // Every copy-on-write fault (fewer than the 8 pages: fault-around) and every null reference.
        return cow && caught == 100 && (long)Foreign.Seen() >= 100 + engine.GetStats().WriteFaults - faultsBefore ? 0 : 3;
    }

    /// <summary>
    /// Disposing a view while other threads still write to it is a caller bug (documented on
    /// CowView), but its damage must stay inside that view: every write after the dispose faults and
    /// is passed on - never lands in another view - and the engine stays consistent. A handler
    /// installed before the engine's (so the engine chains to it) absorbs those passed-on faults by
    /// mapping a scratch page over the faulting page, so this process survives to check everything.
    /// </summary>
    private static int DisposeWhileWriting()
    {
        if (Catcher.Install() != 0)
            return 3;
        // Page by page (FaultAroundPages = 1): the slot count checked at the end is exact.
        using var engine = new CowMemoryEngine(new CowEngineOptions { FaultAroundPages = 1 });
        const int Pages = 64, HalfPages = Pages / 2, Writers = 3;
        CowView victim = engine.CreateRegion(Pages * PageSize);
        using CowView victimSnapshot = victim.Snapshot(); // victim's pages are shared: its writers take copy faults
        using CowView other = engine.CreateRegion(Pages * PageSize);
        other.AsSpan().Fill(0x44);
        using CowView otherSnapshot = other.Snapshot();
        byte* victimBase = victim.Pointer, otherBase = other.Pointer;
        Catcher.Watch((ulong)victimBase, (ulong)victimBase + Pages * PageSize);

        long writes = 0;
        int stop = 0;
        var threads = new List<Thread>();
        for (int w = 0; w < Writers; w++)
        {
            int seed = w;
            threads.Add(new Thread(() =>
            {
                var random = new Random(seed);
                while (Volatile.Read(ref stop) == 0)
                {
                    long* field = (long*)(victimBase + random.Next(Pages) * PageSize + random.Next(PageSize / 8) * 8);
                    Volatile.Write(ref *field, Interlocked.Increment(ref writes));
                }
            })
            { IsBackground = true, Name = $"victim writer {w}" });
        }
        // Meanwhile another thread writes half of the other view (copy faults on that view too).
        threads.Add(new Thread(() =>
        {
            for (int round = 0; Volatile.Read(ref stop) == 0; round++)
                for (int page = 0; page < HalfPages; page++)
                    new Span<byte>(otherBase + page * PageSize, PageSize).Fill(0x66);
        })
        { IsBackground = true, Name = "other writer" });
        foreach (Thread thread in threads)
            thread.Start();

        SpinUntil(() => Interlocked.Read(ref writes) >= 20_000);
        long writesAtDispose = Interlocked.Read(ref writes);
        victim.Dispose();
        Progress($"disposed the victim after {writesAtDispose} writes");
        SpinUntil(() => Interlocked.Read(ref writes) >= writesAtDispose + 20_000 && Catcher.Caught() > 0);
        Volatile.Write(ref stop, 1);
        foreach (Thread thread in threads)
            thread.Join();
        Progress($"writes after the dispose: {Interlocked.Read(ref writes) - writesAtDispose}");
        Progress($"stray writes passed on: {Catcher.Caught() > 0}, scratch mappings failed: {Catcher.Failed()}");

        bool otherIntact = true;
        for (int page = 0; page < Pages; page++)
            otherIntact &= !other.AsSpan(page * (long)PageSize, PageSize).ContainsAnyExcept(page < HalfPages ? (byte)0x66 : (byte)0x44);
        Progress($"other view intact: {otherIntact}");
        Progress($"snapshots intact: {AllBytesAre(otherSnapshot, 0x44) && AllBytesAre(victimSnapshot, 0)}");

        // The victim's copies went back to the pool; what is left is exactly the live views' pages:
        // the victim snapshot's 64, the other view's 64 originals (shared with its snapshot) and its
        // 32 copies. The reclaimer punches freed slots in the background: wait for it.
        long expectedSlots = Pages + Pages + HalfPages;
        SpinUntil(() => engine.GetStats().SlotsInUse == expectedSlots);
        CowEngineStats stats = engine.GetStats();
        Progress($"live views: {stats.LiveViews}, slots in use: {stats.SlotsInUse} (expected {expectedSlots})");
        using CowView fresh = engine.CreateRegion(Pages * PageSize);
        Progress($"a new region is zero-filled: {AllBytesAre(fresh, 0)}");
        return 0;
    }

    /// <summary>Waits (at most 60 s, then gives up with a line the test reports) for a condition.</summary>
    private static void SpinUntil(Func<bool> condition)
    {
        if (!SpinWait.SpinUntil(condition, TimeSpan.FromSeconds(60)))
            Progress("UNEXPECTED: timed out waiting for a condition");
    }

    private static partial class Catcher
    {
        [LibraryImport("foreignhandler", EntryPoint = "catcher_install")]
        public static partial int Install();

        [LibraryImport("foreignhandler", EntryPoint = "catcher_watch")]
        public static partial void Watch(ulong low, ulong high);

        [LibraryImport("foreignhandler", EntryPoint = "catcher_caught_count")]
        public static partial ulong Caught();

        [LibraryImport("foreignhandler", EntryPoint = "catcher_failed_count")]
        public static partial ulong Failed();
    }

    private static partial class Foreign
    {
        [LibraryImport("foreignhandler", EntryPoint = "foreign_install")]
        public static partial int Install();

        [LibraryImport("foreignhandler", EntryPoint = "foreign_seen")]
        public static partial ulong Seen();
    }

    private static int UnknownScenario(string name)
    {
        Console.Error.WriteLine($"unknown scenario '{name}'");
        return 2;
    }

    // ---- helpers ----

    private static void Progress(string line)
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void WriteByte(byte* address, byte value) => Volatile.Write(ref *address, value);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static byte ReadByte(byte* address) => Volatile.Read(ref *address);

    /// <summary>Recursion the JIT cannot turn into a loop: work after the call, a frame of ~200 bytes.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Recurse(int depth)
    {
        Span<byte> frame = stackalloc byte[128];
        frame[depth & 127] = (byte)depth;
        return Recurse(depth + 1) + frame[(depth + 1) & 127];
    }

    private static bool AllBytesAre(CowView view, byte value) => !view.AsSpan().ContainsAnyExcept(value);

    private static int ReadMaxMapCount() =>
        int.Parse(File.ReadAllText("/proc/sys/vm/max_map_count").Trim(), System.Globalization.CultureInfo.InvariantCulture);

    private static void DisableCoreDumps()
    {
        var none = new LibC.RLimit();
        if (LibC.SetRLimit(LibC.RLimitCore, &none) != 0)
            Console.Error.WriteLine($"setrlimit(RLIMIT_CORE) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    private static partial class LibC
    {
        public const int ProtNone = 0;
        public const int ProtRead = 1;
        public const int MapPrivate = 0x02;
        public const int MapAnonymous = 0x20;
        public const nint MapFailed = -1;
        public const int ENOMEM = 12;
        public const int RLimitCore = 4;
        public const int RLimitFsize = 1;
        public const int SigXfsz = 25;
        public const nint SigIgn = 1;

        [LibraryImport("libc", EntryPoint = "signal")]
        public static partial nint Signal(int signalNumber, nint handler);

        [StructLayout(LayoutKind.Sequential)]
        public struct RLimit
        {
            public ulong Current;
            public ulong Maximum;
        }

        [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
        public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

        [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
        public static partial int Munmap(nint address, nuint length);

        [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
        public static partial int SetRLimit(int resource, RLimit* limit);
    }
}
