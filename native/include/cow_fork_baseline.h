/*
 * cow_fork_baseline.h - fork() used as a snapshot mechanism: the baseline CowEngine's benchmarks
 * compare against (bench/CowEngine.Benchmarks, issue 3). Not part of the engine.
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
 * Functions return 0 or a positive errno value and never set errno for the caller. EIO means a
 * child did not behave as specified (exited with a non-zero status, was killed, or sent a short
 * report).
 */
#ifndef COW_FORK_BASELINE_H
#define COW_FORK_BASELINE_H

#include "cow_engine.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cow_fork_child_t.mode */
#define COW_FORK_CHILD_EXIT 0
#define COW_FORK_CHILD_HOLD 1
#define COW_FORK_CHILD_WRITE 2

/* A forked child as the parent sees it. Laid out for the C# mirror (ForkChildNative). */
typedef struct cow_fork_child {
    int32_t pid;                /* 0 once reaped */
    int32_t mode;               /* COW_FORK_CHILD_* */
    int32_t control_fd;         /* parent's write end: one byte = "go", close = "leave"; -1 if none */
    int32_t report_fd;          /* parent's read end of the child's reports; -1 if none */
    uint64_t fork_ns;           /* duration of the fork() call in the parent */
} cow_fork_child_t;

/* Maps `size` bytes of private anonymous read-write memory, without transparent huge pages (the
 * comparison with the engine is page for page at 4 KiB), and writes one byte into every page when
 * `touch` is non-zero so that all of it is resident and private before the first fork. */
COW_API int cow_fork_baseline_alloc(uint64_t size, int32_t touch, void **address_out);

COW_API int cow_fork_baseline_free(void *address, uint64_t size);

/* fork(); the child _exits at once; the parent waits for it. Reports the parent's fork() call and
 * the whole round trip (fork + the child's exit, which tears down its copy of the page tables,
 * + waitpid). Either pointer may be NULL. */
COW_API int cow_fork_baseline_fork_exit_wait(uint64_t *fork_ns_out, uint64_t *total_ns_out);

/* Forks a child in `mode`. For COW_FORK_CHILD_WRITE, the child writes into `base + page * 4096`
 * for each of the `count` entries of `pages` (read in the child: the array is part of the memory
 * fork copied, so the caller may free it once this returns). The child is not reaped here: call
 * cow_fork_baseline_release or cow_fork_baseline_kill (a second call does nothing). */
COW_API int cow_fork_baseline_spawn(int32_t mode, uint8_t *base, const uint32_t *pages, uint64_t count,
                                    cow_fork_child_t *child);

/* WRITE children only: tells the child to write its pages, waits for its report and returns the
 * nanoseconds the child measured (first store to last store, clock_gettime in the child). */
COW_API int cow_fork_baseline_go(cow_fork_child_t *child, uint64_t *child_ns_out);

/* Lets a child leave (closes its control pipe) and reaps it. Returns EIO if it did not exit with
 * status 0. Safe on a child that was already reaped (does nothing). */
COW_API int cow_fork_baseline_release(cow_fork_child_t *child);

/* SIGKILLs a child and reaps it (a fork server throwing its worker away). */
COW_API int cow_fork_baseline_kill(cow_fork_child_t *child);

#ifdef __cplusplus
}
#endif

#endif /* COW_FORK_BASELINE_H */
