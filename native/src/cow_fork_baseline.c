/*
 * cow_fork_baseline.c - fork() as a snapshot mechanism, for the benchmarks (see cow_fork_baseline.h).
 *
 * Everything a child runs is in this file and is async-signal-safe: a child of a multi-threaded
 * process may only call such functions (another thread may have held malloc's or the runtime's
 * locks at the moment of fork), and it must never return into the .NET runtime it was copied from.
 */
#include "cow_fork_baseline.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE_BYTES 4096u

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void close_if_open(int32_t *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* waitpid that survives EINTR: the runtime signals its threads (GC suspension) at any time. */
static int wait_for(pid_t pid, int *status)
{
    for (;;) {
        if (waitpid(pid, status, 0) == pid)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

/* Closes every descriptor but `keep_a` and `keep_b` (-1 = none) and the standard ones. A child must
 * not keep the control pipes of its older siblings open: a sibling whose write end we still held
 * would never see EOF when the parent releases it, and release would wait forever. */
static void child_close_inherited(int keep_a, int keep_b)
{
    int low = keep_a < keep_b ? keep_a : keep_b;
    int high = keep_a < keep_b ? keep_b : keep_a;
    unsigned int next = 3;
    if (low >= 3) {
        close_range(next, (unsigned int)low - 1, 0); /* EINVAL when empty: nothing to close */
        next = (unsigned int)low + 1;
    }
    if (high >= 3) {
        close_range(next, (unsigned int)high - 1, 0);
        next = (unsigned int)high + 1;
    }
    close_range(next, ~0u, 0);
}

static int write_all(int fd, const void *data, size_t size)
{
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Returns 0, an errno, or EIO on EOF before `size` bytes (the child died without reporting). */
static int read_all(int fd, void *data, size_t size)
{
    uint8_t *p = data;
    while (size > 0) {
        ssize_t n = read(fd, p, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EIO;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/* One store per page, nothing else: the same work the C# side does on the engine's views, so the
 * time is the fault's. A store (not a read-modify-write) so a page that is not present takes one
 * write fault, not a read fault followed by a write fault. */
static void write_pages(uint8_t *base, const uint32_t *pages, uint64_t count, uint8_t value)
{
    for (uint64_t i = 0; i < count; i++)
        *(volatile uint8_t *)(base + (uint64_t)pages[i] * PAGE_SIZE_BYTES) = value;
}

static __attribute__((noreturn)) void child_main(int32_t mode, int control_fd, int report_fd, uint8_t *base,
                                                 const uint32_t *pages, uint64_t count)
{
    if (mode == COW_FORK_CHILD_EXIT)
        _exit(0);

    /* The signal handlers we inherited (the runtime's, the engine's) expect threads and a runtime
     * that do not exist in this copy; keep every signal out. SIGKILL still ends us, and a fault
     * with SIGSEGV blocked kills us too, which is what we want. */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    child_close_inherited(control_fd, report_fd);

    uint8_t value = 1;
    for (;;) {
        char command;
        ssize_t n = read(control_fd, &command, 1);
        if (n == 0)
            _exit(0); /* released, or the parent died: either way our copy is no longer wanted */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            _exit(2);
        }
        if (mode != COW_FORK_CHILD_WRITE)
            continue;
        uint64_t start = now_ns();
        write_pages(base, pages, count, ++value);
        uint64_t elapsed = now_ns() - start;
        if (write_all(report_fd, &elapsed, sizeof elapsed) != 0)
            _exit(3);
    }
}

int cow_fork_baseline_alloc(uint64_t size, int32_t touch, void **address_out)
{
    if (size == 0 || size % PAGE_SIZE_BYTES != 0 || address_out == NULL)
        return EINVAL;
    uint8_t *address = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (address == MAP_FAILED)
        return errno;
    /* With huge pages fork would copy one entry per 2 MiB and a COW fault would copy 2 MiB: a
     * different trade-off from the engine's 4 KiB pages. Fails harmlessly (EINVAL) on a kernel
     * without transparent huge pages, which is the same as what we ask for. */
    madvise(address, size, MADV_NOHUGEPAGE);
    if (touch) {
        for (uint64_t offset = 0; offset < size; offset += PAGE_SIZE_BYTES)
            *(volatile uint8_t *)(address + offset) = 1;
    }
    *address_out = address;
    return 0;
}

int cow_fork_baseline_free(void *address, uint64_t size)
{
    return munmap(address, size) == 0 ? 0 : errno;
}

int cow_fork_baseline_fork_exit_wait(uint64_t *fork_ns_out, uint64_t *total_ns_out)
{
    uint64_t start = now_ns();
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    uint64_t forked = now_ns();
    if (pid < 0)
        return errno;
    int status;
    int error = wait_for(pid, &status);
    uint64_t done = now_ns();
    if (error != 0)
        return error;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return EIO;
    if (fork_ns_out != NULL)
        *fork_ns_out = forked - start;
    if (total_ns_out != NULL)
        *total_ns_out = done - start;
    return 0;
}

int cow_fork_baseline_spawn(int32_t mode, uint8_t *base, const uint32_t *pages, uint64_t count,
                            cow_fork_child_t *child)
{
    if (child == NULL || mode < COW_FORK_CHILD_EXIT || mode > COW_FORK_CHILD_WRITE ||
        (mode == COW_FORK_CHILD_WRITE && count != 0 && (base == NULL || pages == NULL)))
        return EINVAL;
    child->pid = 0;
    child->mode = mode;
    child->control_fd = -1;
    child->report_fd = -1;
    child->fork_ns = 0;

    /* Pipes only for children that wait: an EXIT child's fork is measured bare. O_CLOEXEC keeps
     * them out of programs the parent may exec later (the child closes what it does not need). */
    int control[2] = {-1, -1}, report[2] = {-1, -1};
    if (mode != COW_FORK_CHILD_EXIT && pipe2(control, O_CLOEXEC) != 0)
        return errno;
    if (mode == COW_FORK_CHILD_WRITE && pipe2(report, O_CLOEXEC) != 0) {
        int error = errno;
        close(control[0]);
        close(control[1]);
        return error;
    }

    uint64_t start = now_ns();
    pid_t pid = fork();
    if (pid == 0)
        child_main(mode, control[0], report[1], base, pages, count);
    uint64_t forked = now_ns();
    int error = pid < 0 ? errno : 0;

    close_if_open(&control[0]);
    close_if_open(&report[1]);
    if (error != 0) {
        close_if_open(&control[1]);
        close_if_open(&report[0]);
        return error;
    }
    child->pid = pid;
    child->control_fd = control[1];
    child->report_fd = report[0];
    child->fork_ns = forked - start;
    return 0;
}

int cow_fork_baseline_go(cow_fork_child_t *child, uint64_t *child_ns_out)
{
    if (child == NULL || child->pid <= 0 || child->mode != COW_FORK_CHILD_WRITE || child_ns_out == NULL)
        return EINVAL;
    char go = 'g';
    int error = write_all(child->control_fd, &go, 1);
    if (error != 0)
        return error == EPIPE ? EIO : error; /* EPIPE: the child is gone (SIGPIPE is ignored by .NET) */
    uint64_t elapsed;
    error = read_all(child->report_fd, &elapsed, sizeof elapsed);
    if (error != 0)
        return error;
    *child_ns_out = elapsed;
    return 0;
}

static int reap(cow_fork_child_t *child, int killed)
{
    close_if_open(&child->control_fd);
    close_if_open(&child->report_fd);
    int status;
    int error = wait_for(child->pid, &status);
    child->pid = 0;
    if (error != 0)
        return error;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        return 0;
    return EIO;
}

int cow_fork_baseline_release(cow_fork_child_t *child)
{
    if (child == NULL)
        return EINVAL;
    if (child->pid <= 0)
        return 0;
    return reap(child, 0);
}

int cow_fork_baseline_kill(cow_fork_child_t *child)
{
    if (child == NULL)
        return EINVAL;
    if (child->pid <= 0)
        return 0;
    if (kill(child->pid, SIGKILL) != 0 && errno != ESRCH)
        return errno;
    return reap(child, 1);
}
