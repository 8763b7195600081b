using System.Runtime.InteropServices;

namespace CowEngine.Stress;

/// <summary>The libc calls the harness makes itself: a pipe whose read() the kernel performs into view memory, and the watchdog's exits.</summary>
internal static unsafe partial class LibC
{
    private const string Library = "libc";

    /// <summary>prctl option: who may ptrace this process (Yama); lets the watchdog's gdb child attach to us.</summary>
    public const int PrSetPtracer = 0x59616d61;

    /// <summary>PR_SET_PTRACER_ANY.</summary>
    public static readonly nuint PtracerAny = nuint.MaxValue;

    [LibraryImport(Library, EntryPoint = "pipe", SetLastError = true)]
    public static partial int Pipe(int* fileDescriptors);

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "prctl", SetLastError = true)]
    public static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

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

    /// <summary>pthread_sigmask's SIG_BLOCK.</summary>
    public const int SigBlock = 0;

    /// <summary>Returns 0 or an error number.</summary>
    [LibraryImport(Library, EntryPoint = "pthread_sigmask")]
    public static partial int PthreadSigmask(int how, byte* set, byte* oldSet);

    /// <summary>Blocks every signal on the calling thread (glibc's sigset_t is 128 bytes).</summary>
    public static void BlockAllSignals()
    {
        byte* all = stackalloc byte[128];
        new Span<byte>(all, 128).Fill(0xFF);
        int error = PthreadSigmask(SigBlock, all, null);
        if (error != 0)
            throw new InvalidOperationException($"pthread_sigmask failed with error {error}");
    }

    public static (int ReadEnd, int WriteEnd) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (Pipe(fds) != 0)
            throw new InvalidOperationException($"pipe failed with errno {Marshal.GetLastPInvokeError()}");
        return (fds[0], fds[1]);
    }
}
