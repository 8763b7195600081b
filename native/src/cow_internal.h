/*
 * cow_internal.h - declarations shared by the shim's subsystems. Not part of the public header.
 */
#ifndef COW_INTERNAL_H
#define COW_INTERNAL_H

#include "cow_engine.h"

#include <stddef.h>
#include <stdint.h>

#define COW_INTERNAL __attribute__((visibility("hidden")))

/* ---- atomics (GCC builtins: lock-free, usable in a signal handler) ---- */
#define cow_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define cow_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define cow_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define cow_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define cow_add(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define cow_sub(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)

static inline uint64_t cow_view_end(const cow_view_t *view)
{
    return view->base + (view->page_count << COW_PAGE_SHIFT);
}

static inline uint64_t cow_page_address(const cow_view_t *view, uint64_t page)
{
    return view->base + (page << COW_PAGE_SHIFT);
}

static inline uint32_t *cow_leaf_entries(cow_engine_t *engine, uint32_t leaf)
{
    return engine->leaf_entries + ((uint64_t)leaf << COW_LEAF_SHIFT);
}

/* Slot behind a page (through the view's leaf for that page's segment). */
static inline uint32_t cow_slot_of(cow_view_t *view, uint64_t page)
{
    uint32_t leaf = view->leaves[page >> COW_LEAF_SHIFT];
    return cow_leaf_entries(view->engine, leaf)[page & (COW_LEAF_PAGES - 1)];
}

/* Per-page state bits. A segment's 512 bits fill 8 whole words, so the bits of one segment are
 * only ever written under that segment's guard (or the view's write lock). */
static inline int cow_bit(const uint64_t *bits, uint64_t page)
{
    return (int)((bits[page >> 6] >> (page & 63)) & 1);
}

static inline void cow_bit_set(uint64_t *bits, uint64_t page)
{
    bits[page >> 6] |= 1ull << (page & 63);
}

static inline void cow_bit_clear(uint64_t *bits, uint64_t page)
{
    bits[page >> 6] &= ~(1ull << (page & 63));
}

static inline int cow_is_writable(const cow_view_t *view, uint64_t page)
{
    return cow_bit(view->writable_bits, page);
}

static inline int cow_is_mapped(const cow_view_t *view, uint64_t page)
{
    return cow_bit(view->mapped_bits, page);
}

/* Mapping class of a page: what the kernel's mapping of it looks like. */
#define COW_CLASS_UNMAPPED 0 /* PROT_NONE anonymous (a snapshot page not touched yet) */
#define COW_CLASS_READ 1     /* the slot, read-only */
#define COW_CLASS_WRITE 2    /* the slot, read-write */

static inline int cow_page_class(const cow_view_t *view, uint64_t page)
{
    return cow_is_mapped(view, page) ? 1 + cow_is_writable(view, page) : COW_CLASS_UNMAPPED;
}

static inline uint64_t cow_bitmap_words(const cow_view_t *view)
{
    return (view->page_count + 63) / 64;
}

/* ---- os layer (cow_os.c) ---- */
COW_INTERNAL int cow_os_map_slots(uint64_t address, uint64_t length, int writable, int populate, int fd,
                                  uint64_t offset);
COW_INTERNAL int cow_os_protect(uint64_t address, uint64_t length, int writable);
COW_INTERNAL int cow_os_reserve_fixed(uint64_t address, uint64_t length);
COW_INTERNAL int cow_os_punch(int fd, uint64_t offset, uint64_t length);

/* ---- locks (cow_lock.c) ---- */
COW_INTERNAL void cow_spin_lock(uint32_t *lock);
COW_INTERNAL void cow_spin_unlock(uint32_t *lock);
COW_INTERNAL int cow_spin_trylock(uint32_t *lock);
COW_INTERNAL int cow_read_trylock(uint32_t *lock);
COW_INTERNAL void cow_read_lock(uint32_t *lock);
COW_INTERNAL void cow_read_unlock(uint32_t *lock);
COW_INTERNAL void cow_write_lock(uint32_t *lock);
COW_INTERNAL void cow_write_unlock(uint32_t *lock);
COW_INTERNAL uint32_t *cow_stripe_for(cow_view_t *view, uint32_t segment);

/* The locks that make a segment of a view ours to change: the stripes of the segment AND of its two
 * neighbours. A mapping can span a segment edge, so whether the page after the edge starts a new
 * mapping depends on pages of both segments; holding the neighbours' stripes too is what keeps the
 * per-view mapping count exact when faults in adjacent segments run at once. Stripes are taken in
 * address order (duplicates once), so two guards can never wait for each other. */
typedef struct cow_segment_guard {
    uint32_t *stripes[3];
    uint32_t count;
} cow_segment_guard_t;

COW_INTERNAL void cow_segment_lock(cow_view_t *view, uint32_t segment, cow_segment_guard_t *guard);
/* Takes all of them or none; 1 if it did. */
COW_INTERNAL int cow_segment_trylock(cow_view_t *view, uint32_t segment, cow_segment_guard_t *guard);
COW_INTERNAL void cow_segment_unlock(cow_segment_guard_t *guard);

/* ---- allocation and reference counting (cow_alloc.c) ---- */

/* Frees slots in batches so that contiguous freed slots cost one fallocate, and so that a chunk
 * is never handed out again before its punched holes have been punched. */
typedef struct cow_release_batch {
    cow_engine_t *engine;
    uint64_t punch_first;       /* first slot of the pending run */
    uint64_t punch_count;
    int deferred;               /* queue runs for cow_engine_reclaim instead of punching now */
} cow_release_batch_t;

COW_INTERNAL void cow_batch_begin(cow_release_batch_t *batch, cow_engine_t *engine);
/* A batch whose runs go to the engine's reclaim queue (punched at once if the queue is full). */
COW_INTERNAL void cow_batch_begin_deferred(cow_release_batch_t *batch, cow_engine_t *engine);
COW_INTERNAL int cow_batch_flush(cow_release_batch_t *batch);

COW_INTERNAL void cow_slot_release(cow_release_batch_t *batch, uint32_t slot);
COW_INTERNAL void cow_leaf_release(cow_release_batch_t *batch, uint32_t leaf);
/* Drops the "a view writes into me" reference of a chunk. */
COW_INTERNAL void cow_chunk_release(cow_release_batch_t *batch, uint32_t chunk);

/* Allocates `count` chunks at consecutive indices (each holding the writer reference). */
COW_INTERNAL int cow_chunks_allocate_run(cow_engine_t *engine, uint32_t count, uint32_t *first_out);
COW_INTERNAL int cow_leaf_allocate(cow_engine_t *engine, uint32_t *leaf_out);
/* Counts `count` more slots as in use, failing with ENOSPC past the engine's slot limit. */
COW_INTERNAL int cow_slots_reserve(cow_engine_t *engine, uint64_t count);

/* Takes the slot for a private copy of `page` of `view`: position page % 512 of the view's write
 * chunk for that segment, replacing the write chunk when that position is taken. Caller holds the
 * view's read or write lock and the segment's guard. */
COW_INTERNAL int cow_copy_slot_take(cow_view_t *view, uint64_t page, cow_release_batch_t *batch,
                                    uint32_t *slot_out);

/* ---- resolving writes (cow_resolve.c) ---- */

/* Makes pages [first, first + count) of one segment private and writable. Caller holds the view's
 * read (or write) lock and the segment's guard. On failure every page is either fully resolved
 * or left exactly as it was. */
typedef struct cow_resolve_result {
    int failed_call;            /* COW_CALL_* that failed, when the return value is not 0 */
    uint32_t copies;            /* pages that received a private copy */
} cow_resolve_result_t;

COW_INTERNAL int cow_resolve_segment_range(cow_view_t *view, uint64_t first, uint32_t count,
                                           int trust_writable_bits, cow_resolve_result_t *result);

/* Maps read-only the run of not-yet-mapped pages with file-contiguous slots around `page`, within
 * its segment (a first touch of a snapshot page), or, if the page is mapped already, maps it again
 * with the protection the page table says it has. Same locking as cow_resolve_segment_range. */
COW_INTERNAL int cow_map_for_read(cow_view_t *view, uint64_t page);

/* Number of mapping boundaries ("this page starts a new mapping") in [first, last]. */
COW_INTERNAL int64_t cow_boundaries(cow_view_t *view, uint64_t first, uint64_t last);
/* cow_boundaries(view, first, end) as it would be once the unpinned pages of [first, end) are
 * unmapped (pinned pages keep their mapping; slots do not change). */
COW_INTERNAL int64_t cow_boundaries_if_evicted(cow_view_t *view, uint64_t first, uint64_t end);

/* Adds `delta` to the mapping count of the view and of its engine. */
COW_INTERNAL void cow_mappings_add(cow_view_t *view, int64_t delta);

/* ---- the mapping budget (cow_budget.c) ---- */

/* Mappings the engine uses: its views' own, one gap after each view, and the pool window. */
COW_INTERNAL int64_t cow_engine_mappings(cow_engine_t *engine);
/* How many mappings unmapping a segment would add (negative: remove). */
COW_INTERNAL int64_t cow_segment_unmap_growth(cow_view_t *view, uint32_t segment);
/* Unmaps a segment of a view (PROT_NONE); the caller holds the view's lock and the segment's guard. */
COW_INTERNAL int cow_segment_unmap(cow_view_t *view, uint32_t segment);
/* Unmaps segments of the engine's views, without ever blocking, until it uses at most `target`. */
COW_INTERNAL void cow_evict_to(cow_engine_t *engine, int64_t target);
/* Records that a fault just mapped a segment (eviction spares the last eight). */
COW_INTERNAL void cow_note_fault(cow_view_t *view, uint32_t segment);
/* The same, sparing one segment (the one a fault just resolved). */
COW_INTERNAL void cow_evict_to_except(cow_engine_t *engine, int64_t target, const cow_view_t *keep_view,
                                      uint32_t keep_segment);
/* Makes room for `needed` more mappings within the budget, evicting if necessary; EDQUOT if it
 * cannot. The caller may hold view locks (eviction only tries view locks) but no segment guard. */
COW_INTERNAL int cow_make_room(cow_engine_t *engine, int64_t needed);
/* The same for a caller that holds NO view lock and no guard (an API call about to take them):
 * when trying view locks is not enough, it waits for them. */
COW_INTERNAL int cow_make_room_unlocked(cow_engine_t *engine, int64_t needed);
/* The same, also evicting segments of `held`, whose write lock the caller holds. */
COW_INTERNAL int cow_make_room_holding(cow_engine_t *engine, int64_t needed, cow_view_t *held);
/* Unmaps one segment if that changes the mapping count by at most `max_growth` (never a pinned
 * one); 1 if it did. The caller holds the view's lock and the segment's guard, or the view's write
 * lock. */
COW_INTERNAL int cow_segment_evict(cow_view_t *view, uint32_t segment, int64_t max_growth);

/* ---- fault path (cow_signal.c) ---- */

/* One line naming the cause on stderr, then abort(): for states the engine cannot leave safely. */
COW_INTERNAL __attribute__((noreturn)) void cow_die(const char *what, int error);
COW_INTERNAL cow_process_t *cow_process(void);
COW_INTERNAL void cow_directory_publish(cow_view_t *view, uint32_t value);

/* The call that failed, for the fatal diagnostic. */
#define COW_CALL_NONE 0
#define COW_CALL_MMAP 1
#define COW_CALL_MPROTECT 2
#define COW_CALL_ALLOCATE 3

#endif /* COW_INTERNAL_H */
