using System.Runtime.InteropServices;
using CowEngine.TestSupport;

namespace CowEngine.Stress;

/// <summary>
/// The libc calls only the harness makes (the ones it shares with the tests are in
/// CowEngine.TestSupport's <see cref="LibC"/>): the exit of a run the watchdog ended, and the thread
/// of --simulate-hang gc.
/// </summary>
internal static unsafe partial class HarnessLibC
{
    private const string Library = "libc";

    /// <summary>Ends the process at once: no finalizers, no waiting for threads that may be deadlocked.</summary>
    [LibraryImport(Library, EntryPoint = "_exit")]
    public static partial void Exit(int status);

    /// <summary>
    /// sleep(3) without the transition to preemptive mode: the calling thread stays in cooperative
    /// mode. With every signal blocked first (so the runtime's suspension signal cannot interrupt
    /// it), that is the state of a thread inside the SIGSEGV handler: the next GC cannot suspend it
    /// and every managed thread stops. Only for --simulate-hang gc, which tests the watchdog.
    /// </summary>
    [DllImport(Library, EntryPoint = "sleep")]
    [SuppressGCTransition]
    public static extern uint SleepInCooperativeMode(uint seconds);

    /// <summary>Blocks every signal on the calling thread.</summary>
    public static void BlockAllSignals()
    {
        byte* all = stackalloc byte[LibC.SigsetBytes];
        new Span<byte>(all, LibC.SigsetBytes).Fill(0xFF);
        int error = LibC.PthreadSigmask(LibC.SigBlock, all, null);
        if (error != 0)
            throw new InvalidOperationException($"pthread_sigmask failed with error {error}");
    }
}
