using System.Runtime.InteropServices;

namespace CowEngine.TestSupport;

/// <summary>
/// The libc calls the tests and the stress program make directly: a pipe, so that the kernel (not
/// managed code) reads and writes the engine's pages; the thread's signal mask; and the permission
/// for gdb to attach to the process. Functions that report failure through errno set it for
/// <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
public static unsafe partial class LibC
{
    private const string Library = "libc";

    /// <summary>errno "Bad address": what read(2) and write(2) fail with on memory the kernel cannot access.</summary>
    public const int EFAULT = 14;

    /// <summary>pthread_sigmask's "how" SIG_BLOCK; ignored when the new set is null (then it only reads).</summary>
    public const int SigBlock = 0;

    /// <summary>Bytes of glibc's sigset_t (1024 bits); the kernel fills only the first 8.</summary>
    public const int SigsetBytes = 128;

    /// <summary>prctl option PR_SET_PTRACER: who may ptrace this process (Yama).</summary>
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

    /// <summary>Returns 0 or an error number (pthread functions do not use errno).</summary>
    [LibraryImport(Library, EntryPoint = "pthread_sigmask", SetLastError = true)]
    public static partial int PthreadSigmask(int how, byte* set, byte* oldSet);

    [LibraryImport(Library, EntryPoint = "prctl", SetLastError = true)]
    public static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    /// <summary>A pipe's (read end, write end).</summary>
    public static (int ReadEnd, int WriteEnd) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (Pipe(fds) != 0)
            throw new InvalidOperationException($"pipe failed with errno {Marshal.GetLastPInvokeError()}");
        return (fds[0], fds[1]);
    }

    /// <summary>Writes all of <paramref name="data"/> (small: a pipe takes 64 KiB without blocking).</summary>
    public static void WriteAll(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* bytes = data)
        {
            nint written = Write(fd, bytes, (nuint)data.Length);
            if (written != data.Length)
                throw new InvalidOperationException($"write returned {written} of {data.Length} bytes, errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>
    /// Lets a debugger started by this process (gdb, for its threads' native stacks) attach to it
    /// where the Yama LSM restricts ptrace to ancestors (kernel.yama.ptrace_scope = 1). A setting of
    /// this process only, not of the system; harmless where Yama is absent (the call then fails
    /// with EINVAL, which is ignored).
    /// </summary>
    public static void AllowAnyTracer() => _ = Prctl(PrSetPtracer, PtracerAny, 0, 0, 0);
}
