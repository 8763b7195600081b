using System.Globalization;
using CowEngine;
using CowEngine.TestSupport;
using Kind = CowEngine.TestSupport.FailureInjection.Kind;

namespace CowEngine.TestChild;

/// <summary>
/// Scenarios with injected system-call failures (issue 15; native/include/cow_test_inject.h), for
/// tests/CowEngine.Tests/FaultPathInjectionTests.cs. Each runs in a process of its own: the fault
/// handler's failures end the process by design, and the engine set-up's need a process in which
/// no engine was made yet.
/// </summary>
internal static unsafe partial class Program
{
    private const int FaultPage = 5;

    /// <summary>
    /// "inject-fault:ACCESS:KIND:ERRNO:MODE": a 16-page region (filled with 0x11) and a snapshot of it;
    /// KIND fails with ERRNO inside the fault handler (MODE every: each call; once: the first), then
    /// one access at page 5 faults:
    /// write-forward (the snapshot has the page mapped: the copy goes to the region, mmap),
    /// write-reverse (the snapshot has not: it takes the copy, the region's page is unprotected in place),
    /// write-private (a tracked region with no snapshot, written and its dirty pages taken: unprotected in place),
    /// write-zero (a tracked region never written: the page's slot mapped over the zero page),
    /// read (the snapshot's page, not mapped yet: mapped read-only),
    /// read-zero (the same, of a region never written: mapped onto the zero page).
    /// With every, the handler must end the process with its one-line diagnostic; with once, the
    /// failure is one the handler tries again (ENOMEM, EAGAIN, EINTR) and the access must complete
    /// with the right bytes.
    /// </summary>
    private static int InjectFault(string name)
    {
        string[] parts = name.Split(':');
        if (parts.Length != 5 || !Enum.TryParse(parts[2], out Kind kind) || ErrnoNamed(parts[3]) is not int errno ||
            parts[4] is not ("every" or "once") ||
            parts[1] is not ("write-forward" or "write-reverse" or "write-private" or "write-zero" or "read" or "read-zero"))
            return UnknownScenario(name);
        string access = parts[1];
        bool every = parts[4] == "every";

        var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20, FaultAroundPages = 1 });
        bool tracked = access is "write-private" or "write-zero";
        byte fill = access is "write-zero" or "read-zero" ? (byte)0 : (byte)0x11;
        CowView region = engine.CreateRegion(16 * PageSize, trackWrites: tracked);
        CowView? snapshot = null;
        if (fill != 0)
            region.AsSpan().Fill(fill);
        if (access == "write-private")
            _ = region.TakeDirtyPages(); // written, then protected again: private pages, read-only
        if (!tracked)
        {
            snapshot = region.Snapshot();
            if (access == "write-forward" && ReadByte(snapshot.Pointer + FaultPage * PageSize) != 0x11)
                return 3;
        }
        bool read = access is "read" or "read-zero";
        byte* target = (read ? snapshot!.Pointer : region.Pointer) + FaultPage * PageSize + 8;
        Progress($"engine with {engine.WriteProtection}; {FailureInjection.Name(kind)} fails with {parts[3]} inside the fault handler ({parts[4]})");
        FailureInjection.Configure(kind, FailureInjection.Context.Fault, every ? 0UL : 1UL, every ? FailureInjection.Million : 0, errno);
        Progress($"faulting at 0x{(ulong)target:x} ({access})");
        byte seen = read ? ReadByte(target) : (byte)0;
        if (!read)
            WriteByte(target, 0x77);
        ulong injected = FailureInjection.Injected(kind, FailureInjection.Context.Fault);
        FailureInjection.Reset();
        if (every)
        {
            Progress($"UNEXPECTED: the access returned ({injected} failures injected)");
            return 0;
        }
        bool bytesOk = access switch
        {
            "read" or "read-zero" => seen == fill && AllBytesAre(region, fill),
            "write-private" or "write-zero" => region.Pointer[FaultPage * PageSize + 8] == 0x77,
            _ => region.Pointer[FaultPage * PageSize + 8] == 0x77 && AllBytesAre(snapshot!, 0x11),
        };
        Progress($"the access completed; failures injected in the handler: {injected}; bytes ok: {bytesOk}");
        region.Dispose();
        snapshot?.Dispose();
        CowEngineStats stats = engine.GetStats();
        Progress($"after dispose: slots in use {stats.SlotsInUse}, committed {stats.CommittedBytes}");
        engine.Dispose();
        return bytesOk && injected == 1 ? 0 : 3;
    }

    /// <summary>
    /// "inject-evict-fails": a tiny mapping budget makes the handler evict on almost every fault, and
    /// every unmapping inside the handler fails (ENOMEM). Eviction is only a cache policy: the faults
    /// must still complete with the right bytes (the engine then stays above its budget).
    /// </summary>
    private static int InjectEvictionFails()
    {
        const int Pages = 2048;
        using var engine = new CowMemoryEngine(new CowEngineOptions
        {
            CapacityBytes = 64L << 20, MappingBudget = 24, FaultAroundPages = 1, WriteProtection = CowWriteProtection.Mprotect,
        });
        using CowView region = engine.CreateRegion(Pages * PageSize);
        region.AsSpan().Fill(0x11);
        using CowView snapshot = region.Snapshot();
        FailureInjection.FailEvery(Kind.ReserveFixed, FailureInjection.Context.Fault, FailureInjection.ENOMEM);
        var random = new Random(7);
        var written = new bool[Pages];
        for (int i = 0; i < 400; i++)
        {
            int page = random.Next(Pages);
            WriteByte(region.Pointer + (long)page * PageSize, 0x22);
            written[page] = true;
        }
        ulong failed = FailureInjection.Injected(Kind.ReserveFixed, FailureInjection.Context.Fault);
        FailureInjection.Reset();
        bool ok = true;
        for (int page = 0; page < Pages; page++)
            ok &= region.Pointer[(long)page * PageSize] == (written[page] ? 0x22 : 0x11) && snapshot.Pointer[(long)page * PageSize] == 0x11;
        CowEngineStats stats = engine.GetStats();
        Progress($"unmappings refused inside the handler: {failed}; bytes ok: {ok}; mappings {stats.Mappings} of a budget of {stats.MappingBudget}");
        return ok && failed > 0 ? 0 : 3;
    }

    /// <summary>
    /// "inject-cleanup-fails:KIND": a mapping's KIND call fails once (ENOMEM), and so does every
    /// attempt to make the range PROT_NONE again afterwards. MapZero: CreateRegion's mapping of the
    /// range onto the zero page; MapSlots, UffdRegister: PrepareForWrite of a fresh region's pages,
    /// which maps their slots over the zero page. MapZero, MapSlots: the mmap itself failed, so the
    /// kernel replaced nothing and the range is as it was - the call throws the documented exception
    /// and nothing is left behind. UffdRegister (userfaultfd): the mmap had replaced the range, which now
    /// maps its slots unprotected and unregistered - the process must end with the one-line diagnostic.
    /// </summary>
    private static int InjectCleanupFails(string name)
    {
        string[] parts = name.Split(':');
        if (parts.Length != 2 || !Enum.TryParse(parts[1], out Kind kind))
            return UnknownScenario(name);
        var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20 });
        CowView? region = kind == Kind.MapZero ? null : engine.CreateRegion(16 * PageSize, trackWrites: true);
        FailureInjection.FailNth(kind, FailureInjection.Context.Api, 1, FailureInjection.ENOMEM);
        FailureInjection.FailEvery(Kind.ReserveFixed, FailureInjection.Context.Api, FailureInjection.ENOMEM);
        string step = region is null ? "creating a region" : "preparing a region's pages for writing";
        Progress($"{step} whose {FailureInjection.Name(kind)} and clean-up fail ({engine.WriteProtection})");
        try
        {
            if (region is null)
            {
                CowView created = engine.CreateRegion(16 * PageSize);
                Progress($"UNEXPECTED: the region was created at 0x{(ulong)created.Pointer:x}");
            }
            else
            {
                region.PrepareForWrite(0, 4 * PageSize);
                Progress("UNEXPECTED: the pages were prepared");
            }
            return 0;
        }
        catch (Exception e)
        {
            ulong refused = FailureInjection.Injected(Kind.ReserveFixed, FailureInjection.Context.Api);
            FailureInjection.Reset();
            CowEngineStats stats = engine.GetStats();
            Progress($"refused: {Describe(e)}; clean-ups refused {refused}; live views {stats.LiveViews}, slots in use {stats.SlotsInUse}");
        }
        if (region is not null)
        {
            Progress($"the region still reads zero: {AllBytesAre(region, 0)}");
            region.Dispose();
        }
        using CowView again = engine.CreateRegion(16 * PageSize);
        again.AsSpan().Fill(0x55);
        using CowView snapshot = again.Snapshot();
        again.AsSpan().Fill(0x66);
        Progress($"copy-on-write afterwards ok: {AllBytesAre(again, 0x66) && AllBytesAre(snapshot, 0x55)}");
        return 0;
    }

    /// <summary>
    /// "inject-setup": in a process with no engine yet, each call an engine's creation makes fails in
    /// turn; each must throw the documented exception and leave no mapping and no file descriptor
    /// behind. One line per case: "SETUP case: outcome; injected N; large mappings +N MiB, fds +N".
    /// The process tables are made once per process: their cases come first, then one in which
    /// nothing fails makes them, so that the cases after it measure the engine alone.
    /// </summary>
    private static int InjectSetup()
    {
        var cases = new (string Case, Kind Kind, ulong Nth, int Errno, CowWriteProtection Protection)[]
        {
            // The first run of a failing constructor loads what the runtime needs to throw: not measured.
            ("warm-up", Kind.Reserve, 1, FailureInjection.ENOMEM, CowWriteProtection.Mprotect),
            ("arena reservation", Kind.Reserve, 1, FailureInjection.ENOMEM, CowWriteProtection.Mprotect),
            ("view directory", Kind.AllocateTable, 1, FailureInjection.ENOMEM, CowWriteProtection.Mprotect),
            ("view table", Kind.AllocateTable, 2, FailureInjection.EAGAIN, CowWriteProtection.Mprotect),
            // Nothing fails: the process tables are made (and kept) here, so the cases after it measure the engine alone.
            ("process tables", Kind.Close, 1, FailureInjection.EINTR, CowWriteProtection.Mprotect),
            ("memfd_create", Kind.MemfdCreate, 1, EMFILE, CowWriteProtection.Mprotect),
            ("ftruncate refused", Kind.Ftruncate, 1, FailureInjection.EPERM, CowWriteProtection.Mprotect),
            ("ftruncate interrupted once", Kind.Ftruncate, 1, FailureInjection.EINTR, CowWriteProtection.Mprotect),
            ("pool window", Kind.MapPool, 1, FailureInjection.ENOMEM, CowWriteProtection.Mprotect),
            ("an engine table", Kind.AllocateTable, 3, FailureInjection.ENOMEM, CowWriteProtection.Mprotect),
            ("userfaultfd", Kind.Userfaultfd, 1, FailureInjection.EPERM, CowWriteProtection.Userfaultfd),
            ("UFFDIO_API", Kind.UffdApi, 1, FailureInjection.EPERM, CowWriteProtection.Userfaultfd),
            ("userfaultfd, automatic", Kind.Userfaultfd, 1, FailureInjection.EPERM, CowWriteProtection.Automatic),
        };
        foreach (var (label, kind, nth, errno, protection) in cases)
        {
            long maps = MapsCount();
            int fds = FdCount();
            FailureInjection.FailNth(kind, FailureInjection.Context.Anywhere, nth, errno);
            string outcome;
            CowMemoryEngine? engine = null;
            try
            {
                engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20, WriteProtection = protection });
                outcome = $"created ({engine.WriteProtection})";
            }
            catch (Exception e)
            {
                outcome = Describe(e);
            }
            ulong injected = FailureInjection.Injected(kind, FailureInjection.Context.Api);
            FailureInjection.Reset();
            engine?.Dispose();
            Progress($"SETUP {label}: {outcome}; injected {injected}; large mappings +{MapsCount() - maps} MiB, fds +{FdCount() - fds}");
        }

        // fstat, which GetStats uses for CommittedBytes: the call throws, nothing changes.
        using var working = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20 });
        using CowView view = working.CreateRegion(4 * PageSize);
        view.AsSpan().Fill(0x33);
        FailureInjection.FailNth(Kind.Fstat, FailureInjection.Context.Api, 1, FailureInjection.EIO);
        string stats;
        try
        {
            stats = $"returned {working.GetStats()}";
        }
        catch (Exception e)
        {
            stats = Describe(e);
        }
        FailureInjection.Reset();
        Progress($"SETUP fstat in GetStats: {stats}; afterwards {working.GetStats().SlotsInUse} slots in use");
        using CowView snapshot = view.Snapshot();
        view.AsSpan().Fill(0x44);
        Progress($"copy-on-write after the failures ok: {AllBytesAre(view, 0x44) && AllBytesAre(snapshot, 0x33)}");
        return 0;
    }

    private static string Describe(Exception e) => e switch
    {
        CowSystemException system => $"{e.GetType().Name} errno {system.ErrorNumber}: {e.Message}",
        CowMappingBudgetExceededException { InnerException: CowSystemException inner } =>
            $"{e.GetType().Name} errno {inner.ErrorNumber}: {e.Message}",
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    /// <summary>MiB of address space in mappings of 64 MiB or more: the engine's tables, pool window and arena
    /// are that large, the runtime's own small mappings come and go.</summary>
    private static long MapsCount()
    {
        long bytes = 0;
        foreach (string line in File.ReadAllLines("/proc/self/maps"))
        {
            string[] range = line.Split(' ', 2)[0].Split('-');
            long size = (long)(ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture) -
                               ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            if (size >= 64L << 20)
                bytes += size;
        }
        return bytes >> 20;
    }

    private static int FdCount() => Directory.GetFiles("/proc/self/fd").Length;

    private const int EMFILE = 24;

    private static int? ErrnoNamed(string name) => name switch
    {
        "EPERM" => FailureInjection.EPERM,
        "EINTR" => FailureInjection.EINTR,
        "EIO" => FailureInjection.EIO,
        "EAGAIN" => FailureInjection.EAGAIN,
        "ENOMEM" => FailureInjection.ENOMEM,
        "ENOSPC" => FailureInjection.ENOSPC,
        _ => int.TryParse(name, NumberStyles.Integer, CultureInfo.InvariantCulture, out int number) ? number : null,
    };

    /// <summary>The injection scenarios, by name (Main's switch sends every "inject-" name here).</summary>
    private static int InjectionScenario(string name) => name switch
    {
        "inject-setup" => InjectSetup(),
        "inject-evict-fails" => InjectEvictionFails(),
        _ when name.StartsWith("inject-cleanup-fails:", StringComparison.Ordinal) => InjectCleanupFails(name),
        _ when name.StartsWith("inject-fault:", StringComparison.Ordinal) => InjectFault(name),
        _ => UnknownScenario(name),
    };
}
