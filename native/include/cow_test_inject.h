/*
 * cow_test_inject.h - TEST ONLY: make the shim's system calls fail on demand.
 *
 * Every system call of the shim goes through native/src/cow_os.c, and each call there first asks
 * the injection state (native/src/cow_inject.c) whether to fail. When nothing is configured that is
 * one relaxed load of a global word and a branch predicted not taken, so the production library
 * carries it (the .NET tests, the stress program and users load the same libcowengine.so); nothing
 * in the engine calls these functions. Not part of the engine's API: for tests and tools only.
 *
 * A failure is injected before the real call is made, with the errno asked for, as if the kernel had
 * refused: the engine's own handling of that errno is what gets tested.
 *
 * Everything here is lock-free (atomics only): the fault handler consults the same state.
 */
#ifndef COW_TEST_INJECT_H
#define COW_TEST_INJECT_H

#include "cow_engine.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The kinds of call: one per system call of cow_os.c (the function that makes it in brackets). */
#define COW_INJECT_MEMFD_CREATE      0u  /* memfd_create (cow_os_memfd_create) */
#define COW_INJECT_FTRUNCATE         1u  /* ftruncate of the new memfd (cow_os_memfd_create) */
#define COW_INJECT_CLOSE             2u  /* close (cow_os_close) */
#define COW_INJECT_RESERVE           3u  /* mmap PROT_NONE of the arena (cow_os_reserve) */
#define COW_INJECT_ALLOCATE_TABLE    4u  /* mmap of anonymous tables (cow_os_allocate_table) */
#define COW_INJECT_RELEASE           5u  /* munmap (cow_os_release, cow_os_reserve's trims) */
#define COW_INJECT_MAP_POOL          6u  /* mmap of the pool window (cow_os_map_pool) */
#define COW_INJECT_FSTAT             7u  /* fstat of the pool (cow_os_file_allocated_bytes) */
#define COW_INJECT_MAP_SLOTS         8u  /* mmap MAP_FIXED of slots over a view's pages (cow_os_map_slots) */
#define COW_INJECT_PROTECT           9u  /* mprotect of a view's pages (cow_os_protect) */
#define COW_INJECT_RESERVE_FIXED     10u /* mmap PROT_NONE MAP_FIXED over a view's pages (cow_os_reserve_fixed) */
#define COW_INJECT_PUNCH             11u /* fallocate PUNCH_HOLE of freed slots (cow_os_punch) */
#define COW_INJECT_MINCORE           12u /* mincore of a pool page (cow_os_is_resident) */
#define COW_INJECT_USERFAULTFD       13u /* the userfaultfd system call (cow_os_userfaultfd_open) */
#define COW_INJECT_UFFD_API          14u /* ioctl UFFDIO_API (cow_os_userfaultfd_open) */
#define COW_INJECT_UFFD_REGISTER     15u /* ioctl UFFDIO_REGISTER (cow_os_uffd_register) */
#define COW_INJECT_UFFD_WRITEPROTECT 16u /* ioctl UFFDIO_WRITEPROTECT, each attempt (cow_os_uffd_protect) */
#define COW_INJECT_MAP_ZERO          17u /* mmap MAP_FIXED of the zero page over a view's pages (cow_os_map_zero) */
#define COW_INJECT_SEEK_DATA         18u /* lseek SEEK_DATA / SEEK_HOLE of the pool (cow_os_seek_data) */
#define COW_INJECT_KINDS             19u

/* Where a call is made: on a thread inside the engine's fault handler, or anywhere else (API calls,
 * the background reclaimer, engine set-up). */
#define COW_INJECT_IN_API   1u
#define COW_INJECT_IN_FAULT 2u
#define COW_INJECT_ANYWHERE (COW_INJECT_IN_API | COW_INJECT_IN_FAULT)

/* Makes calls of `kind` made in `contexts` (COW_INJECT_IN_*; 0 disarms the kind) fail with `error`.
 * The calls are numbered from 1 from now on. With `nth` 0, each fails with probability
 * rate_per_million / 1,000,000. With `nth` N: calls before the Nth never fail, the Nth always does,
 * and each later one with that probability (so nth N, rate 0: only the Nth; nth N, rate 1,000,000:
 * the Nth and every one after it). The draws come from `seed` and the call's number, so the same
 * sequence of calls gets the same failures. Resets the kind's counts.
 * Returns 0, or EINVAL (unknown kind, unknown context bit, error not positive, rate above 1,000,000). */
COW_API int cow_test_inject_configure(uint32_t kind, uint32_t contexts, uint64_t nth, uint32_t rate_per_million,
                                      int32_t error, uint64_t seed);

/* Disarms every kind and sets every count to zero. */
COW_API void cow_test_inject_reset(void);

/* 1: no call fails and nothing is counted until cow_test_inject_suspend(0), for checks a test makes
 * between operations (statistics, drains) that must see the engine's real state. Not nested. */
COW_API void cow_test_inject_suspend(int32_t suspended);

/* Failures injected into calls of `kind` made in `context` (one COW_INJECT_IN_* bit) since the kind
 * was configured; and the calls of that kind and context seen meanwhile (made while it was armed and
 * nothing suspended, failed or not). 0 for an unknown kind or context. */
COW_API uint64_t cow_test_inject_count(uint32_t kind, uint32_t context);
COW_API uint64_t cow_test_inject_calls(uint32_t kind, uint32_t context);

/* The kind's name ("map_slots"), or NULL for an unknown kind. */
COW_API const char *cow_test_inject_kind_name(uint32_t kind);

#ifdef __cplusplus
}
#endif

#endif /* COW_TEST_INJECT_H */
