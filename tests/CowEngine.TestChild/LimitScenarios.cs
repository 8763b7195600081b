using System.Runtime.CompilerServices;
using CowEngine;

namespace CowEngine.TestChild;

/// <summary>
/// Scenarios about the address-space limit (RLIMIT_AS) and the lifetime of views, for
/// tests/CowEngine.Tests/AddressSpaceLimitTests.cs and ViewLifetimeTests.cs.
/// </summary>
internal static unsafe partial class Program
{
    /// <summary>
    /// Run by the test under `ulimit -v` (the limit set before the runtime starts, as a user's shell
    /// would): the runtime sizes its own reservations to the limit, then a default engine must work,
    /// and an engine whose explicit capacity cannot fit must throw the exception that names
    /// RLIMIT_AS, leaving the process able to make the next engine.
    /// </summary>
    private static int AddressSpaceAtStart()
    {
        Progress($"RLIMIT_AS {Limits("Max address space")}; VmSize at start {VmSizeBytes()} bytes");
        var log = new LinesLogger();
        using (var engine = new CowMemoryEngine(new CowEngineOptions { LoggerFactory = log }))
        {
            Progress($"default engine: capacity {engine.CapacityBytes} bytes, write protection {engine.WriteProtection}");
            Progress($"copy-on-write ok: {CopyOnWriteWorks(engine, 64L << 20)}");
        }
        foreach (string line in log.Lines)
            Progress($"log: {line}");
        try
        {
            using var huge = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 1L << 40 });
            Progress($"UNEXPECTED: an engine of 1 TiB capacity was created under the limit ({huge.CapacityBytes} bytes)");
            return 0;
        }
        catch (CowAddressSpaceExhaustedException e)
        {
            Progress($"1 TiB engine: {e.GetType().Name}: limit {e.LimitBytes}, in use {e.InUseBytes}, requested {e.RequestedBytes}");
            Progress($"message: {e.Message}");
        }
        using var next = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 256L << 20 });
        Progress($"next engine copy-on-write ok: {CopyOnWriteWorks(next, 64L << 20)}");
        return 0;
    }

    /// <summary>
    /// The safety net of the lifetime contract: an engine that is never disposed, with views that
    /// are never disposed (written, snapshotted, copy faults resolved), becomes unreachable. The
    /// finalizers must release all of it - views, pool, the reclaimer thread - without ending the
    /// process, logging a warning, and a new engine must work afterwards.
    /// </summary>
    private static int UnreachableEngine()
    {
        var log = new LinesLogger();
        int memfdsBefore = CountMemfds();
        WeakReference engine = MakeAndDropEngine(log, out WeakReference region, out WeakReference snapshot);
        Progress($"memfds while the engine lives: {CountMemfds() - memfdsBefore}");
        bool collected = false, closed = false;
        for (int round = 0; round < 40 && !(collected && closed); round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            collected = !engine.IsAlive && !region.IsAlive && !snapshot.IsAlive;
            closed = CountMemfds() == memfdsBefore; // the pool goes once the reclaimer thread has ended
            if (!closed)
                Thread.Sleep(50);
        }
        Progress($"engine and views collected: {collected}");
        Progress($"pool closed: {closed}");
        lock (log.Lines)
            foreach (string line in log.Lines)
                if (line.StartsWith("Warning", StringComparison.Ordinal))
                    Progress($"log: {line}");
        using var next = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20 });
        Progress($"next engine copy-on-write ok: {CopyOnWriteWorks(next, 16 * PageSize)}");
        return 0;
    }

    /// <summary>Not inlined, so that no reference to the engine or its views outlives this frame.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference MakeAndDropEngine(LinesLogger log, out WeakReference region, out WeakReference snapshot)
    {
        var engine = new CowMemoryEngine(new CowEngineOptions { CapacityBytes = 64L << 20, LoggerFactory = log });
        CowView view = engine.CreateRegion(64 * PageSize);
        view.AsSpan().Fill(0x5A);
        CowView copy = view.Snapshot();
        view.AsSpan(0, 8 * PageSize).Fill(0x5B); // copy faults: both views own private pages now
        _ = copy.Pointer[10 * PageSize];        // and the snapshot has a mapping of its own
        Progress($"engine made: {engine.GetStats().LiveViews} live views, region intact {!view.AsSpan(0, 8 * PageSize).ContainsAnyExcept((byte)0x5B)}, " +
                 $"snapshot intact {AllBytesAre(copy, 0x5A)}");
        region = new WeakReference(view);
        snapshot = new WeakReference(copy);
        return new WeakReference(engine);
    }

    /// <summary>A region, a snapshot of it, a write: the snapshot keeps the old bytes, the region the new.</summary>
    private static bool CopyOnWriteWorks(CowMemoryEngine engine, long bytes)
    {
        using CowView region = engine.CreateRegion(bytes);
        region.AsSpan(0, PageSize).Fill(0x11);
        using CowView snapshot = region.Snapshot();
        region.AsSpan(0, PageSize).Fill(0x22);
        return !region.AsSpan(0, PageSize).ContainsAnyExcept((byte)0x22) && !snapshot.AsSpan(0, PageSize).ContainsAnyExcept((byte)0x11);
    }

    private static int CountMemfds()
    {
        int count = 0;
        foreach (string fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget?.StartsWith("/memfd:cowengine-slots", StringComparison.Ordinal) == true)
                    count++;
            }
            catch (IOException)
            {
                // Closed between listing and reading.
            }
        }
        return count;
    }

    private static long VmSizeBytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmSize:", StringComparison.Ordinal))
                return long.Parse(line["VmSize:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        return -1;
    }

    private static string Limits(string name)
    {
        foreach (string line in File.ReadLines("/proc/self/limits"))
            if (line.StartsWith(name, StringComparison.Ordinal))
                return line[name.Length..].Trim();
        return "?";
    }
}
