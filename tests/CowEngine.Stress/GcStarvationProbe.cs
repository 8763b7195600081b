using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace CowEngine.Stress;

/// <summary>
/// `dotnet CowEngine.Stress.dll --gc-starvation-probe engine|plain|plain-pinvoke [seconds]`: measures
/// how much progress two writer threads make while a third thread calls <c>GC.Collect()</c> back to
/// back. Each writer writes 32 pages per round. engine: the pages are an engine view, snapshotted
/// every round (two P/Invokes, Snapshot and Dispose, and 32 copy-on-write faults a round); plain:
/// native memory, no engine; plain-pinvoke: native memory, and the same two P/Invokes a round
/// (getpid) without the engine. Prints, once a second, the pages written, the collections, and how
/// late a <c>Thread.Sleep(1000)</c> on the main thread returned.
/// </summary>
/// <remarks>
/// The evidence behind issue 16 (docs/reliability.md, "The 60-second stall"): without the engine the
/// same loop delays the sleeping main thread by seconds and leaves the writers a few per cent of a
/// core, so a test that waits for writers beside a bare GC.Collect loop depends on the runtime's
/// fairness, not on the engine.
/// </remarks>
internal static unsafe partial class GcStarvationProbe
{
    public const string Option = "--gc-starvation-probe";

    private const int Pages = 32;
    private const int PageSize = 4096;

    /// <summary>An ordinary P/Invoke (preemptive mode for the call), like the engine's own calls.</summary>
    [LibraryImport("libc", EntryPoint = "getpid")]
    private static partial int GetProcessId();

    public static int Run(string[] args)
    {
        string mode = args.Length > 1 ? args[1] : "";
        int seconds = args.Length > 2 && int.TryParse(args[2], CultureInfo.InvariantCulture, out int s) && s > 0 ? s : 10;
        if (mode is not ("engine" or "plain" or "plain-pinvoke"))
        {
            Console.Error.WriteLine($"usage: CowEngine.Stress {Option} engine|plain|plain-pinvoke [seconds]");
            return 2;
        }
        using CowMemoryEngine? engine = mode == "engine" ? new CowMemoryEngine() : null;
        bool pinvoke = mode == "plain-pinvoke";
        long written = 0, collections = 0;
        bool stop = false;
        var keep = new List<object>();
        var threads = new List<Thread>
        {
            new(() =>
            {
                while (!Volatile.Read(ref stop))
                {
                    GC.Collect();
                    Interlocked.Increment(ref collections);
                }
            }) { IsBackground = true, Name = "GC.Collect loop" },
        };
        for (int w = 0; w < 2; w++)
        {
            CowView? region = engine?.CreateRegion(Pages * PageSize);
            byte* plain = region is null ? (byte*)NativeMemory.AllocZeroed(Pages * PageSize) : region.Pointer;
            if (region is not null)
                keep.Add(region);
            threads.Add(new Thread(() =>
            {
                while (!Volatile.Read(ref stop))
                {
                    CowView? snapshot = region?.Snapshot(); // every page shared: each write below faults
                    if (pinvoke)
                        _ = GetProcessId();
                    for (int page = 0; page < Pages; page++)
                    {
                        *(long*)(plain + page * PageSize) += 1;
                        _ = new byte[256];
                        Interlocked.Increment(ref written);
                    }
                    snapshot?.Dispose();
                    if (pinvoke)
                        _ = GetProcessId();
                }
                GC.KeepAlive(region);
            })
            { IsBackground = true, Name = $"writer {w}" });
        }
        foreach (Thread thread in threads)
            thread.Start();
        long lastWritten = 0, lastCollections = 0;
        var clock = Stopwatch.StartNew();
        double lastTime = 0;
        for (int second = 0; second < seconds; second++)
        {
            Thread.Sleep(1000);
            double now = clock.Elapsed.TotalSeconds;
            long w = Interlocked.Read(ref written), c = Interlocked.Read(ref collections);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{mode}: t={now,5:F1} s  Sleep(1000) took {now - lastTime,5:F2} s  pages written {w - lastWritten,9}  collections {c - lastCollections,6}"));
            (lastWritten, lastCollections, lastTime) = (w, c, now);
        }
        Volatile.Write(ref stop, true);
        foreach (Thread thread in threads)
            thread.Join();
        GC.KeepAlive(keep);
        return 0;
    }
}
