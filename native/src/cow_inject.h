/*
 * cow_inject.h - the fast path of failure injection (cow_inject.c; native/include/cow_test_inject.h),
 * for the files that make the calls it can fail: cow_os.c, and the fault handler that marks its
 * thread. Depends only on cow_atomic.h, so injection sits below the OS layer.
 */
#ifndef COW_INJECT_H
#define COW_INJECT_H

#include "cow_atomic.h"
#include "cow_test_inject.h"

#include <stdint.h>

/* ---- failure injection for tests (cow_inject.c; native/include/cow_test_inject.h) ---- */

/* Nonzero while some kind of call is armed and injection is not suspended: the one word the fast
 * path reads. */
COW_INTERNAL extern uint32_t cow_inject_active;
COW_INTERNAL int cow_inject_check(uint32_t kind);
COW_INTERNAL uint32_t cow_inject_fault_enter_slow(void);
COW_INTERNAL void cow_inject_fault_leave_slow(uint32_t entry);

/* 0, or the errno the next call of `kind` is to fail with. Costs one relaxed load when nothing is
 * armed (production). Async-signal-safe. */
static inline int cow_inject(uint32_t kind)
{
    if (__builtin_expect(cow_load_relaxed(&cow_inject_active) != 0, 0))
        return cow_inject_check(kind);
    return 0;
}

/* The fault handler marks its thread for the length of a fault, so injection can tell calls made
 * inside it from the others; returns what cow_inject_fault_leave takes (0: not marked). */
static inline uint32_t cow_inject_fault_enter(void)
{
    if (__builtin_expect(cow_load_relaxed(&cow_inject_active) != 0, 0))
        return cow_inject_fault_enter_slow();
    return 0;
}

static inline void cow_inject_fault_leave(uint32_t entry)
{
    if (__builtin_expect(entry != 0, 0))
        cow_inject_fault_leave_slow(entry);
}

#endif
