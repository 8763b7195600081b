using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine;

/// <summary>
/// fsync of a directory, the last step of saving a view file: after the rename, the directory entry
/// that names the new file is itself data the kernel may still hold only in memory. .NET has no API
/// for it (a directory cannot be opened as a <see cref="Microsoft.Win32.SafeHandles.SafeFileHandle"/>),
/// so this calls libc directly.
/// </summary>
internal static partial class CowViewFileDirectory
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000; // Linux x86-64
    private const int OCloExec = 0x80000;
    private const int EINTR = 4;

    /// <summary>Flushes <paramref name="directory"/>'s entries to disk.</summary>
    /// <param name="directory">The directory that holds <paramref name="savedPath"/>.</param>
    /// <param name="savedPath">The file just renamed into it, for the message.</param>
    /// <exception cref="IOException">The directory could not be opened or flushed.</exception>
    public static void Sync(string directory, string savedPath)
    {
        int fd;
        do
            fd = Open(directory, ORdOnly | ODirectory | OCloExec);
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);
        if (fd < 0)
            throw Failure("open", Marshal.GetLastPInvokeError(), directory, savedPath);
        try
        {
            int result;
            do
                result = Fsync(fd);
            while (result != 0 && Marshal.GetLastPInvokeError() == EINTR);
            // EINVAL: a file system that cannot flush a directory (its entries are not kept on a
            // disk, or it syncs them itself); there is nothing more to do.
            if (result != 0 && Marshal.GetLastPInvokeError() is int error && error != Errno.EINVAL)
                throw Failure("fsync", error, directory, savedPath);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    private static IOException Failure(string call, int error, string directory, string savedPath) =>
        new($"{savedPath} was written, flushed and renamed into place, but {call} of its directory {directory} failed " +
            $"({Errno.NameOf(error)}): the new name may not survive a power failure.");

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
