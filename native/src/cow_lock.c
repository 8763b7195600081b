/*
 * cow_lock.c - the shim's locks. All are spin locks that fall back to sched_yield: they are taken
 * inside the SIGSEGV handler, where nothing may block on a kernel object owned by managed code, and
 * they are only ever held by native code that finishes without waiting for anything managed.
 *
 * The view lock is a reader-writer lock that prefers writers: fault handlers hold it shared (so
 * faults on different segments of one view run in parallel), and mutations (snapshot, dispose)
 * hold it exclusive. A pending writer stops new readers, so a stream of faults cannot starve a
 * snapshot.
 */
#include "cow_internal.h"

#include <sched.h>

#define COW_WRITER         0x80000000u
#define COW_WRITER_PENDING 0x40000000u
#define COW_READERS        0x3FFFFFFFu

static inline void cow_backoff(unsigned *spins)
{
    if (++*spins < 64)
        __builtin_ia32_pause();
    else
        sched_yield();
}

void cow_spin_lock(uint32_t *lock)
{
    unsigned spins = 0;
    for (;;) {
        if (cow_load_relaxed(lock) == 0 && __atomic_exchange_n(lock, 1u, __ATOMIC_ACQUIRE) == 0)
            return;
        cow_backoff(&spins);
    }
}

int cow_spin_trylock(uint32_t *lock)
{
    return cow_load_relaxed(lock) == 0 && __atomic_exchange_n(lock, 1u, __ATOMIC_ACQUIRE) == 0;
}

int cow_read_trylock(uint32_t *lock)
{
    uint32_t seen = cow_load_relaxed(lock);
    return (seen & (COW_WRITER | COW_WRITER_PENDING)) == 0 &&
           __atomic_compare_exchange_n(lock, &seen, seen + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

void cow_spin_unlock(uint32_t *lock)
{
    cow_store_release(lock, 0u);
}

void cow_read_lock(uint32_t *lock)
{
    unsigned spins = 0;
    for (;;) {
        uint32_t seen = cow_load_relaxed(lock);
        if ((seen & (COW_WRITER | COW_WRITER_PENDING)) == 0 &&
            __atomic_compare_exchange_n(lock, &seen, seen + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        cow_backoff(&spins);
    }
}

void cow_read_unlock(uint32_t *lock)
{
    __atomic_sub_fetch(lock, 1u, __ATOMIC_RELEASE);
}

void cow_write_lock(uint32_t *lock)
{
    unsigned spins = 0;
    /* Claim the pending bit (one writer at a time), which also stops new readers... */
    for (;;) {
        uint32_t seen = cow_load_relaxed(lock);
        if ((seen & COW_WRITER_PENDING) == 0 &&
            __atomic_compare_exchange_n(lock, &seen, seen | COW_WRITER_PENDING, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            break;
        cow_backoff(&spins);
    }
    /* ...then wait for the readers already inside to leave. */
    spins = 0;
    for (;;) {
        uint32_t seen = COW_WRITER_PENDING;
        if (__atomic_compare_exchange_n(lock, &seen, COW_WRITER_PENDING | COW_WRITER, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return;
        cow_backoff(&spins);
    }
}

void cow_write_unlock(uint32_t *lock)
{
    cow_store_release(lock, 0u);
}

static uint32_t *cow_stripe_for(cow_view_t *view, uint32_t segment)
{
    uint32_t hash = (view->index * 0x9E3779B1u) ^ (segment * 0x85EBCA77u);
    hash ^= hash >> 15;
    return &view->engine->stripes[hash & (COW_STRIPE_COUNT - 1)];
}

static void cow_guard_add(cow_segment_guard_t *guard, uint32_t *stripe)
{
    /* Insertion sort by address, dropping a duplicate (neighbours can hash to the same stripe). */
    uint32_t i = guard->count;
    for (uint32_t j = 0; j < guard->count; j++)
        if (guard->stripes[j] == stripe)
            return;
    while (i > 0 && guard->stripes[i - 1] > stripe) {
        guard->stripes[i] = guard->stripes[i - 1];
        i--;
    }
    guard->stripes[i] = stripe;
    guard->count++;
}

static void cow_guard_init(cow_view_t *view, uint32_t segment, cow_segment_guard_t *guard)
{
    guard->count = 0;
    cow_guard_add(guard, cow_stripe_for(view, segment));
    if (segment > 0)
        cow_guard_add(guard, cow_stripe_for(view, segment - 1));
    if (segment + 1 < view->segment_count)
        cow_guard_add(guard, cow_stripe_for(view, segment + 1));
}

void cow_segment_lock(cow_view_t *view, uint32_t segment, cow_segment_guard_t *guard)
{
    cow_guard_init(view, segment, guard);
    for (uint32_t i = 0; i < guard->count; i++)
        cow_spin_lock(guard->stripes[i]);
}

static int cow_guard_holds(const cow_segment_guard_t *guard, const uint32_t *stripe)
{
    for (uint32_t i = 0; guard != NULL && i < guard->count; i++)
        if (guard->stripes[i] == stripe)
            return 1;
    return 0;
}

int cow_segment_trylock_beside(cow_view_t *view, uint32_t segment, const cow_segment_guard_t *const *held,
                               uint32_t held_count, cow_segment_guard_t *guard)
{
    cow_segment_guard_t all;
    cow_guard_init(view, segment, &all);
    guard->count = 0;
    for (uint32_t i = 0; i < all.count; i++) {
        int ours = 0;
        for (uint32_t h = 0; h < held_count && !ours; h++)
            ours = cow_guard_holds(held[h], all.stripes[i]);
        if (ours)
            continue; /* already ours: one of the caller's guards shares this stripe */
        if (!cow_spin_trylock(all.stripes[i])) {
            cow_segment_unlock(guard);
            return 0;
        }
        guard->stripes[guard->count++] = all.stripes[i];
    }
    return 1;
}

void cow_segment_unlock(cow_segment_guard_t *guard)
{
    for (uint32_t i = guard->count; i > 0; i--)
        cow_spin_unlock(guard->stripes[i - 1]);
}

void cow_views_lock(cow_view_t *a, cow_view_t *b, int write)
{
    cow_view_t *first = a->index < b->index ? a : b, *second = first == a ? b : a;
    if (write) {
        cow_write_lock(&first->lock);
        cow_write_lock(&second->lock);
    } else {
        cow_read_lock(&first->lock);
        cow_read_lock(&second->lock);
    }
}

void cow_views_unlock(cow_view_t *a, cow_view_t *b, int write)
{
    if (write) {
        cow_write_unlock(&a->lock);
        cow_write_unlock(&b->lock);
    } else {
        cow_read_unlock(&a->lock);
        cow_read_unlock(&b->lock);
    }
}
