/*
 * fork_baseline.c - fork() used as a snapshot mechanism: the baseline CowEngine's benchmarks
 * compare against (issue 3). Not part of the engine: built into libcowforkbaseline.so by
 * ForkBaseline.targets (beside this file), for the benchmarks and the tests' fork-policy test,
 * and never shipped in libcowengine.so.
 *
 * WHY IT IS IN C
 *   A child forked from a .NET process has one thread and a copy of a runtime that believes it has
 *   many: running managed code there (a GC, the JIT, a lock some other thread held at fork time) can
 *   deadlock or crash. So every fork here happens in C, the child runs only the async-signal-safe
 *   code below (reads, writes to memory, clock_gettime, read/write on pipes) and leaves with _exit.
 *
 * WHAT IS MEASURED
 *   The state a fork-based snapshotter would snapshot is PRIVATE anonymous memory
 *   (cow_fork_baseline_alloc): fork() copies its page table entries and write-protects them, and the
 *   first write on either side takes the kernel's copy-on-write fault. MAP_SHARED memory (a memfd,
 *   like the engine's pool) would make fork look nearly free, because fork does not copy the page
 *   tables of shared mappings - and would not be a snapshot at all, since both sides see each
 *   other's writes.
 *
 * CHILDREN
 *   cow_fork_baseline_spawn starts a child in one of three modes. EXIT: the child _exits at once
 *   (fork per snapshot, snapshot discarded). HOLD: the child keeps its copy of the memory alive
 *   until released (fork-server / snapshot kept). WRITE: like HOLD, but on each "go" from the
 *   parent the child first writes one byte into each listed page, timing that in the child, and
 *   reports the elapsed nanoseconds back through a pipe.
 *   A HOLD or WRITE child also leaves when the parent process dies (its control pipe reaches EOF),
 *   so a crashed benchmark does not leave gigabytes of orphans behind.
 *
 * Everything a child runs is in this file and is async-signal-safe: a child of a multi-threaded
 * process may only call such functions (another thread may have held malloc's or the runtime's
 * locks at the moment of fork), and it must never return into the .NET runtime it was copied from.
 *
 * Functions return 0 or a positive errno value and never set errno for the caller. EIO means a
 * child did not behave as specified (exited with a non-zero status, was killed, or sent a short
 * report).
 */

/* close_range and pipe2 are GNU extensions. */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Built with -fvisibility=hidden: exactly the functions marked so are exported. */
#define FORK_BASELINE_API __attribute__((visibility("default")))

/* cow_fork_child_t.mode */
#define COW_FORK_CHILD_EXIT  0
#define COW_FORK_CHILD_HOLD  1
#define COW_FORK_CHILD_WRITE 2

/* A forked child as the parent sees it. Laid out for the C# mirror (ForkChildNative). */
typedef struct cow_fork_child {
    int32_t pid;        /* 0 once reaped */
    int32_t mode;       /* COW_FORK_CHILD_* */
    int32_t control_fd; /* parent's write end: one byte = "go", close = "leave"; -1 if none */
    int32_t report_fd;  /* parent's read end of the child's reports; -1 if none */
    uint64_t fork_ns;   /* duration of the fork() call in the parent */
} cow_fork_child_t;

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

/* Maps `size` bytes of private anonymous read-write memory, without transparent huge pages (the
 * comparison with the engine is page for page at 4 KiB), and writes one byte into every page when
 * `touch` is non-zero so that all of it is resident and private before the first fork. */
FORK_BASELINE_API int cow_fork_baseline_alloc(uint64_t size, int32_t touch, void **address_out)
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

FORK_BASELINE_API int cow_fork_baseline_free(void *address, uint64_t size)
{
    return munmap(address, size) == 0 ? 0 : errno;
}

/* fork(); the child _exits at once; the parent waits for it. Reports the parent's fork() call and
 * the whole round trip (fork + the child's exit, which tears down its copy of the page tables,
 * + waitpid). Either pointer may be NULL. */
FORK_BASELINE_API int cow_fork_baseline_fork_exit_wait(uint64_t *fork_ns_out, uint64_t *total_ns_out)
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

/* Forks a child in `mode`. For COW_FORK_CHILD_WRITE, the child writes into `base + page * 4096`
 * for each of the `count` entries of `pages` (read in the child: the array is part of the memory
 * fork copied, so the caller may free it once this returns). The child is not reaped here: call
 * cow_fork_baseline_release or cow_fork_baseline_kill (a second call does nothing). */
FORK_BASELINE_API int cow_fork_baseline_spawn(int32_t mode, uint8_t *base, const uint32_t *pages, uint64_t count,
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

/* WRITE children only: tells the child to write its pages, waits for its report and returns the
 * nanoseconds the child measured (first store to last store, clock_gettime in the child). */
FORK_BASELINE_API int cow_fork_baseline_go(cow_fork_child_t *child, uint64_t *child_ns_out)
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

/* Lets a child leave (closes its control pipe) and reaps it. Returns EIO if it did not exit with
 * status 0. Safe on a child that was already reaped (does nothing). */
FORK_BASELINE_API int cow_fork_baseline_release(cow_fork_child_t *child)
{
    if (child == NULL)
        return EINVAL;
    if (child->pid <= 0)
        return 0;
    return reap(child, 0);
}

/* SIGKILLs a child and reaps it (a fork server throwing its worker away). */
FORK_BASELINE_API int cow_fork_baseline_kill(cow_fork_child_t *child)
{
    if (child == NULL)
        return EINVAL;
    if (child->pid <= 0)
        return 0;
    if (kill(child->pid, SIGKILL) != 0 && errno != ESRCH)
        return errno;
    return reap(child, 1);
}
