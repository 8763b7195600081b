using System.Runtime.InteropServices;

namespace CowEngine.Tests.Support;

/// <summary>
/// The libc calls the tests make directly: to put the kernel (not managed code) in front of the
/// engine's pages, and to read the thread's signal mask. Functions that report failure through
/// errno set it for <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class LibC
{
    private const string Library = "libc";

    public const int EFAULT = 14;

    /// <summary>pthread_sigmask's "how"; ignored when the new set is null (then it only reads).</summary>
    public const int SigBlock = 0;

    /// <summary>Bytes of glibc's sigset_t (1024 bits); the kernel fills only the first 8.</summary>
    public const int SigsetBytes = 128;

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

    /// <summary>The calling thread's blocked-signal mask, as 128 bytes.</summary>
    public static byte[] CurrentThreadSignalMask()
    {
        byte* set = stackalloc byte[SigsetBytes];
        new Span<byte>(set, SigsetBytes).Clear();
        int error = PthreadSigmask(SigBlock, null, set);
        if (error != 0)
            throw new InvalidOperationException($"pthread_sigmask failed with error {error}");
        return new Span<byte>(set, SigsetBytes).ToArray();
    }

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
                throw new InvalidOperationException($"write returned {written}, errno {Marshal.GetLastPInvokeError()}");
        }
    }
}
