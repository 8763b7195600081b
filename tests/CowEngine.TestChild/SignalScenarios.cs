using System.Runtime.InteropServices;
using CowEngine;

namespace CowEngine.TestChild;

/// <summary>Scenarios about signals sent from elsewhere (issue 15): kill/tgkill, not a fault.</summary>
internal static unsafe partial class Program
{
    private const int SigBus = 7, SigSegv = 11;

    /// <summary>
    /// "tgkill-SIGNAL-MODE": two writer threads store into memory in a loop - with MODE alone, plain
    /// native memory; with mprotect or userfaultfd, a view of an engine with that mechanism, which the
    /// main thread snapshots again and again so that every few stores is a copy-on-write fault being
    /// resolved - and once faults are flowing, the main thread sends SIGNAL (SIGSEGV or SIGBUS) with
    /// tgkill (si_code SI_TKILL) to a third thread that spins in managed code beside them. The signal
    /// is not a fault: the engine must pass it on to the runtime's handler exactly as it arrived, so
    /// the process ends (or goes on) exactly as it does with MODE alone. The test compares the runs.
    /// (Not to a writer: a writer may have a fault's signal of the same number pending at that moment,
    /// and the kernel then drops the sent one - a classic signal is pending once - so the run would
    /// measure the kernel's merging, not the engine.)
    /// </summary>
    private static int SignalFromElsewhere(string name)
    {
        string[] parts = name.Split('-');
        int signal = parts[1] switch { "sigsegv" => SigSegv, "sigbus" => SigBus, _ => 0 };
        string mode = parts[2];
        if (signal == 0 || mode is not ("alone" or "mprotect" or "userfaultfd"))
            return UnknownScenario(name);

        CowMemoryEngine? engine = mode == "alone" ? null : new CowMemoryEngine(new CowEngineOptions
        {
            WriteProtection = mode == "mprotect" ? CowWriteProtection.Mprotect : CowWriteProtection.Userfaultfd,
        });
        const int Pages = 256;
        CowView? region = engine?.CreateRegion(Pages * PageSize);
        byte* memory = region is null ? (byte*)NativeMemory.AlignedAlloc(Pages * PageSize, PageSize) : region.Pointer;
        var writerThreadIds = new int[2];
        int bystanderThreadId = 0;
        long spins = 0;
        var bystander = new Thread(() =>
        {
            Volatile.Write(ref bystanderThreadId, Threads.Gettid());
            while (true)
                Interlocked.Increment(ref spins);
        })
        { IsBackground = true, Name = "bystander" };
        bystander.Start();
        long stores = 0;
        var writers = new Thread[2];
        for (int w = 0; w < writers.Length; w++)
        {
            int index = w;
            writers[w] = new Thread(() =>
            {
                Volatile.Write(ref writerThreadIds[index], Threads.Gettid());
                for (long i = 0; ; i++)
                {
                    WriteByte(memory + ((i * 7 + index) % Pages) * PageSize + index, (byte)i);
                    Interlocked.Increment(ref stores);
                }
            })
            { IsBackground = true, Name = $"writer {index}" };
            writers[w].Start();
        }

        // Faults flowing: snapshots keep every page shared, so the writers keep faulting.
        var snapshots = new Queue<CowView>();
        long faultsBefore = engine?.GetStats().WriteFaults ?? 0;
        SpinUntil(() =>
        {
            if (region is not null)
            {
                snapshots.Enqueue(region.Snapshot());
                if (snapshots.Count > 4)
                    snapshots.Dequeue().Dispose();
            }
            return Interlocked.Read(ref stores) > 100_000 && Volatile.Read(ref writerThreadIds[1]) != 0 &&
                   Volatile.Read(ref bystanderThreadId) != 0 &&
                   (engine is null || engine.GetStats().WriteFaults - faultsBefore > 1_000);
        });
        long faults = engine is null ? 0 : engine.GetStats().WriteFaults - faultsBefore;
        Progress($"mode {mode}: {Interlocked.Read(ref stores)} stores, {faults} faults resolved; sending signal {signal} with tgkill to the bystander thread");
        int error = Threads.Tgkill(Environment.ProcessId, bystanderThreadId, signal);
        if (error != 0)
        {
            Progress($"UNEXPECTED: tgkill failed: errno {Marshal.GetLastPInvokeError()}");
            return 3;
        }
        // If the runtime's handler lets the process go on, the writers keep storing (and faulting).
        long storesAfter = Interlocked.Read(ref stores);
        Thread.Sleep(500);
        Progress($"survived the signal; the writers stored {Interlocked.Read(ref stores) - storesAfter} more times, the bystander spun {Interlocked.Read(ref spins)} times");
        GC.KeepAlive(region);
        GC.KeepAlive(engine);
        return 0;
    }

    private static partial class Threads
    {
        private const long SysGettid = 186, SysTgkill = 234;

        [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
        private static partial long Syscall(long number, long a1, long a2, long a3);

        public static int Gettid() => (int)Syscall(SysGettid, 0, 0, 0);

        public static int Tgkill(int pid, int tid, int signal) => (int)Syscall(SysTgkill, pid, tid, signal);
    }
}
