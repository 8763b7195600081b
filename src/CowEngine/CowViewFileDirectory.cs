using System.Runtime.InteropServices;
using CowEngine.Interop;

namespace CowEngine;

/// <summary>
/// What saving a view file does to its directory. fsync of the directory, the last step of a save:
/// after the rename, the directory entry that names the new file is itself data the kernel may still
/// hold only in memory. .NET has no API for it (a directory cannot be opened as a
/// <see cref="Microsoft.Win32.SafeHandles.SafeFileHandle"/>), so this calls libc directly. And the
/// removal of temporary files that killed saves left behind.
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

    /// <summary>
    /// Deletes the temporary files that saves killed before their rename left in
    /// <paramref name="directory"/>: names <c>.{target}.{pid}.{32 hex digits}.tmp</c> whose target
    /// <paramref name="isTarget"/> accepts and whose process no longer runs. A temporary of a live
    /// process (this one included: another thread may be saving) is never touched, and neither is any
    /// other file. Best effort: a file that cannot be deleted stays, and the save goes on.
    /// </summary>
    public static void RemoveStaleTemporaries(string directory, Func<string, bool> isTarget)
    {
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateFiles(directory, ".*.tmp");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return;
        }
        foreach (string path in candidates)
        {
            if (!IsStaleTemporary(Path.GetFileName(path), isTarget))
                continue;
            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left for a later save; it is never loaded.
            }
        }
    }

    private static bool IsStaleTemporary(string name, Func<string, bool> isTarget)
    {
        // .{target}.{pid}.{id}.tmp, split from the end: the target's own name may hold dots.
        if (!name.StartsWith('.') || !name.EndsWith(".tmp", StringComparison.Ordinal))
            return false;
        string[] parts = name[1..^4].Split('.');
        if (parts.Length < 3)
            return false;
        string id = parts[^1], pid = parts[^2];
        if (id.Length != 32 || !id.All(Uri.IsHexDigit) || !int.TryParse(pid, System.Globalization.NumberStyles.None, null, out int process))
            return false;
        string target = string.Join('.', parts[..^2]);
        return process != Environment.ProcessId && isTarget(target) && !Directory.Exists($"/proc/{process}");
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
