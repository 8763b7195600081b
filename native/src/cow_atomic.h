/*
 * cow_atomic.h - the visibility marker and the atomics every subsystem of the shim uses. A header of
 * its own so that cow_inject.c, which cow_os.c calls, depends on nothing above the OS layer.
 */
#ifndef COW_ATOMIC_H
#define COW_ATOMIC_H

#define COW_INTERNAL __attribute__((visibility("hidden")))

/* ---- atomics (GCC builtins: lock-free, usable in a signal handler) ---- */
#define cow_load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define cow_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define cow_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define cow_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define cow_add(p, v)           __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define cow_sub(p, v)           __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)

#endif
