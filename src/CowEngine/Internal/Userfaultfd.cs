using CowEngine.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace CowEngine.Internal;

/// <summary>Owns an engine's userfaultfd (write protection by UFFDIO_WRITEPROTECT).</summary>
internal sealed class UserfaultfdHandle : SafeHandleMinusOneIsInvalid
{
    public UserfaultfdHandle() : base(ownsHandle: true) { }

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => CowNative.Close((int)handle) == 0;

    /// <summary>
    /// The write protection an engine gets: the one asked for (options, else the
    /// COWENGINE_WRITE_PROTECTION environment variable, else mprotect), with the userfaultfd it needs.
    /// </summary>
    /// <exception cref="PlatformNotSupportedException">userfaultfd was asked for and the kernel refuses it.</exception>
    /// <exception cref="ArgumentException">The environment variable holds something else than a mechanism's name.</exception>
    public static (CowWriteProtection Chosen, UserfaultfdHandle? Handle) Choose(CowWriteProtection? requested, ILogger logger)
    {
        CowWriteProtection wanted = requested ?? FromEnvironment() ?? CowWriteProtection.Mprotect;
        if (wanted == CowWriteProtection.Mprotect)
            return (CowWriteProtection.Mprotect, null);
        int error = CowNative.UserfaultfdOpen(out int fd);
        if (error == 0)
            error = ProcessTables.InstallSigbusHandler();
        if (error == 0)
        {
            var handle = new UserfaultfdHandle();
            handle.SetHandle(fd);
            return (CowWriteProtection.Userfaultfd, handle);
        }
        if (fd > 0)
            CowNative.Close(fd);
        string reason = Explain(error);
        if (wanted == CowWriteProtection.Userfaultfd)
            throw new PlatformNotSupportedException($"CowEngine cannot use userfaultfd write protection: {reason}. Use CowWriteProtection.Mprotect or Automatic.");
        Log.UserfaultfdUnavailable(logger, reason);
        return (CowWriteProtection.Mprotect, null);
    }

    /// <summary>COWENGINE_WRITE_PROTECTION: mprotect, userfaultfd or automatic (any case), or unset.</summary>
    public const string EnvironmentVariable = "COWENGINE_WRITE_PROTECTION";

    private static CowWriteProtection? FromEnvironment()
    {
        string? value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(value))
            return null;
        return Enum.TryParse(value.Trim(), ignoreCase: true, out CowWriteProtection parsed) && Enum.IsDefined(parsed)
            ? parsed
            : throw new ArgumentException($"{EnvironmentVariable} is '{value}'; it must be mprotect, userfaultfd or automatic.");
    }

    /// <summary>Why the kernel refused, with what would change its mind.</summary>
    private static string Explain(int error) => error switch
    {
        Errno.ENOSYS => "this kernel has no userfaultfd (built without CONFIG_USERFAULTFD)",
        Errno.EPERM => "the kernel refused to open a userfaultfd (EPERM): a seccomp profile forbids the system call, " +
                       "or the kernel predates UFFD_USER_MODE_ONLY (Linux 5.11) and vm.unprivileged_userfaultfd is 0 " +
                       "(sysctl vm.unprivileged_userfaultfd=1, or CAP_SYS_PTRACE, would allow it)",
        Errno.EOPNOTSUPP => "this kernel's userfaultfd cannot write-protect shared memory or deliver faults as SIGBUS " +
                            "(Linux 5.19 or newer is needed)",
        _ => $"userfaultfd failed with {Errno.NameOf(error)}",
    };
}
