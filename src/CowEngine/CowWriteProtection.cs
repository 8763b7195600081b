namespace CowEngine;

/// <summary>How an engine write-protects shared pages and learns of the first write to each.</summary>
/// <remarks>
/// Both mechanisms give the same results; they differ in cost and in what the kernel must offer.
/// System calls behave the same with both: the kernel raises no fault for its own accesses, so
/// read(2) into a write-protected page fails with EFAULT (<see cref="CowView.PrepareForWrite"/>).
/// </remarks>
public enum CowWriteProtection
{
    /// <summary>
    /// <c>mprotect</c>: a write to a protected page raises SIGSEGV. Works on every Linux kernel the
    /// engine supports. Each page made writable in the middle of a read-only stretch splits a kernel
    /// mapping (the engine keeps within its mapping budget by evicting), and changing protection
    /// takes the process's mmap lock for writing, so writer threads fault one at a time.
    /// </summary>
    Mprotect = 0,

    /// <summary>
    /// userfaultfd write-protect (<c>UFFDIO_WRITEPROTECT</c>, delivered as SIGBUS to the writing
    /// thread): protection is kept per page, so it splits no mapping and writer threads fault in
    /// parallel. Needs Linux 5.19 or newer (write-protect of shared memory) and a userfaultfd the
    /// process may open: the engine asks for one limited to user-mode faults
    /// (<c>UFFD_USER_MODE_ONLY</c>, Linux 5.11), which an ordinary user gets whatever
    /// <c>vm.unprivileged_userfaultfd</c> says; a seccomp profile (some container runtimes) can still
    /// refuse it. Creating an engine with this choice throws
    /// <see cref="PlatformNotSupportedException"/> naming the cause when the kernel refuses.
    /// </summary>
    Userfaultfd = 1,

    /// <summary>userfaultfd when the kernel offers it, else mprotect (the engine logs why, once).</summary>
    Automatic = 2,
}
