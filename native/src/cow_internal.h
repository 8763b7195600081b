/*
 * cow_internal.h - declarations shared by the shim's subsystems. Not part of the public header.
 *
 * One subsystem per file; each section below is one file's interface. Dependencies point down the
 * list (a file uses only the sections above its own), so no two files use each other:
 *
 *   cow_inject.c    test-only failure injection (cow_inject.h; below cow_os.c)   cow_os.c   system calls
 *   cow_lock.c      spin and reader-writer locks
 *   cow_diag.c      the one-line fatal diagnostics    cow_registry.c  the process tables, fork policy
 *   cow_alloc.c     slots, chunks, leaves; engine init
 *   cow_map.c       what a view's pages map to: the only code that maps, protects or unmaps them,
 *                   and that keeps the mapped/writable bits and the mapping counts
 *   cow_budget.c    the mapping-budget policy: when to evict, what, and when to refuse
 *   cow_resolve.c   making pages private and writable (write faults, PrepareForWrite); mapping
 *                   a snapshot's untouched pages (read faults)
 *   cow_fault.c     one SIGSEGV that may be ours: find the view, resolve, stay within the budget
 *   cow_signal.c    the handler itself and chaining to the previous one
 *   cow_view.c      region, snapshot, restore, dispose     cow_prepare.c  PrepareForWrite/Read
 *   cow_query.c     diff, dirty pages, statistics           cow_layout.c   the layout contract
 */
#ifndef COW_INTERNAL_H
#define COW_INTERNAL_H

#include "cow_engine.h"
#include "cow_atomic.h"

#include <stddef.h>
#include <stdint.h>

_Static_assert(COW_CHUNK_SLOTS == COW_SEGMENT_PAGES && COW_LEAF_ENTRIES == COW_SEGMENT_PAGES,
               "a copy of page i of a segment goes to slot i of a chunk: the counts must agree");

/* ---- geometry of a view ---- */

static inline uint64_t cow_view_end(const cow_view_t *view)
{
    return view->base + (view->page_count << COW_PAGE_SHIFT);
}

static inline uint64_t cow_page_address(const cow_view_t *view, uint64_t page)
{
    return view->base + (page << COW_PAGE_SHIFT);
}

static inline uint32_t cow_segment_of(uint64_t page)
{
    return (uint32_t)(page >> COW_SEGMENT_PAGES_SHIFT);
}

static inline uint64_t cow_segment_first(uint32_t segment)
{
    return (uint64_t)segment << COW_SEGMENT_PAGES_SHIFT;
}

/* One past the segment's last page: the last segment of a view may be partial. */
static inline uint64_t cow_segment_end(const cow_view_t *view, uint32_t segment)
{
    uint64_t end = cow_segment_first(segment) + COW_SEGMENT_PAGES;
    return end < view->page_count ? end : view->page_count;
}

static inline uint32_t *cow_leaf_entries(cow_engine_t *engine, uint32_t leaf)
{
    return engine->leaf_entries + ((uint64_t)leaf * COW_LEAF_ENTRIES);
}

/* Slot behind a page (through the view's leaf for that page's segment). */
static inline uint32_t cow_slot_of(cow_view_t *view, uint64_t page)
{
    uint32_t leaf = view->leaves[cow_segment_of(page)];
    return cow_leaf_entries(view->engine, leaf)[page & (COW_SEGMENT_PAGES - 1)];
}

/* ---- per-page bits. A segment's 512 bits fill 8 whole words, so the bits of one segment are only
 * ever written under that segment's guard (or the view's write lock). ---- */

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

static inline uint64_t cow_bitmap_words(const cow_view_t *view)
{
    return (view->page_count + 63) / 64;
}

/* First page in [from, end) whose bit is set (`want` 1) or clear (`want` 0), or `end`. */
static inline uint64_t cow_bits_find(const uint64_t *bits, uint64_t from, uint64_t end, int want)
{
    while (from < end) {
        uint64_t word = (want ? bits[from >> 6] : ~bits[from >> 6]) >> (from & 63);
        if (word != 0) {
            from += (uint64_t)__builtin_ctzll(word);
            return from < end ? from : end;
        }
        from = (from | 63) + 1;
    }
    return end;
}

static inline int cow_is_writable(const cow_view_t *view, uint64_t page)
{
    return cow_bit(view->writable_bits, page);
}

static inline int cow_is_mapped(const cow_view_t *view, uint64_t page)
{
    return cow_bit(view->mapped_bits, page);
}

/* Mapped onto the kernel's zero page: never written (docs/design.md, invariant 12). */
static inline int cow_is_zero(const cow_view_t *view, uint64_t page)
{
    return cow_bit(view->zero_bits, page);
}

static inline int cow_is_pinned(const cow_view_t *view, uint64_t page)
{
    return cow_bit(view->pinned_bits, page);
}

/* A page that may now differ from the view's base (made writable, restored): its bit, and its
 * segment's bit (one word holds 64 segments, which faults under other guards set too: atomically). */
static inline void cow_mark_changed(cow_view_t *view, uint64_t page)
{
    cow_bit_set(view->changed_bits, page);
    uint32_t segment = cow_segment_of(page);
    uint64_t bit = 1ull << (segment & 63);
    if ((cow_load_relaxed(&view->changed_segments[segment >> 6]) & bit) == 0)
        __atomic_fetch_or(&view->changed_segments[segment >> 6], bit, __ATOMIC_RELAXED);
}

/* Pages [first, end) were made writable: their segments' summary bits (cow_map.c, the freeze). One
 * word holds 64 segments, which faults under other guards set too: atomically. */
static inline void cow_mark_writable_segments(cow_view_t *view, uint64_t first, uint64_t end)
{
    for (uint32_t segment = cow_segment_of(first); segment <= cow_segment_of(end - 1); segment++) {
        uint64_t bit = 1ull << (segment & 63);
        if ((cow_load_relaxed(&view->writable_segments[segment >> 6]) & bit) == 0)
            __atomic_fetch_or(&view->writable_segments[segment >> 6], bit, __ATOMIC_RELAXED);
    }
}

/* ---- os layer (cow_os.c) ---- */
COW_INTERNAL int cow_os_map_slots(uint64_t address, uint64_t length, int writable, int populate, int fd,
                                  uint64_t offset);
COW_INTERNAL int cow_os_protect(uint64_t address, uint64_t length, int writable);
COW_INTERNAL int cow_os_reserve_fixed(uint64_t address, uint64_t length);
/* cow_os_reserve_fixed for a clean-up (after a failed call, or of a view being released), which the
 * engine cannot do without: tried a few times before its error is returned. */
COW_INTERNAL int cow_os_reset_fixed(uint64_t address, uint64_t length);
COW_INTERNAL int cow_os_punch(int fd, uint64_t offset, uint64_t length);
/* userfaultfd: register a range for write-protect faults; write-protect it (protect 1) or not. */
COW_INTERNAL int cow_os_uffd_register(int fd, uint64_t address, uint64_t length);
COW_INTERNAL int cow_os_uffd_protect(int fd, uint64_t address, uint64_t length, int protect);
/* Maps [address, address + length) read-only onto the kernel's zero page (private anonymous memory,
 * never written: reading it allocates nothing, and neighbouring ranges merge into one mapping). */
COW_INTERNAL int cow_os_map_zero(uint64_t address, uint64_t length);
/* *run_out: how many of the `pages` pages of a shared mapping from `first` are in memory before the
 * first one that is not (mincore, 64 pages a call). Returns 0 or mincore's errno (then *run_out
 * counts the pages known before the failure). */
COW_INTERNAL int cow_os_resident_run(const uint8_t *first, uint64_t pages, uint64_t *run_out);
/* The first offset at or after `offset` of the file that holds data (`data` 1) or is a hole (`data`
 * 0), as lseek(SEEK_DATA / SEEK_HOLE) says; *found_out is UINT64_MAX when there is no data. Data
 * includes swapped-out memory; a hole reads zero and holds no memory. The kernel walks the file's
 * pages from `offset` to the answer: SEEK_HOLE across a long run of data costs that run (the engine
 * asks SEEK_DATA only, which skips absent pages quickly). */
COW_INTERNAL int cow_os_seek(int fd, uint64_t offset, int data, uint64_t *found_out);
/* *resident_out: 1 if the page (of a shared mapping) is in memory, so reading it will not allocate or
 * swap it in. Returns 0 or the errno of mincore (then *resident_out is 0: unknown). */
COW_INTERNAL int cow_os_is_resident(const void *page, int *resident_out);

/* ---- locks (cow_lock.c) ---- */
COW_INTERNAL void cow_spin_lock(uint32_t *lock);
COW_INTERNAL void cow_spin_unlock(uint32_t *lock);
COW_INTERNAL int cow_spin_trylock(uint32_t *lock);
COW_INTERNAL int cow_read_trylock(uint32_t *lock);
COW_INTERNAL void cow_read_lock(uint32_t *lock);
COW_INTERNAL void cow_read_unlock(uint32_t *lock);
COW_INTERNAL void cow_write_lock(uint32_t *lock);
COW_INTERNAL void cow_write_unlock(uint32_t *lock);
/* The locks (write or read) of two different views, taken in view-index order, so two operations on
 * the same pair can never wait for each other. */
COW_INTERNAL void cow_views_lock(cow_view_t *a, cow_view_t *b, int write);
COW_INTERNAL void cow_views_unlock(cow_view_t *a, cow_view_t *b, int write);

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
/* Takes all of them or none (1 if it did), for a caller that may hold the guards `held[0..held_count)`
 * (an entry may be NULL: none) of other (view, segment)s: stripes shared with one of those are
 * already the caller's, so they are neither taken again nor, at unlock, released (unlock the guards
 * in the reverse order of taking them). */
COW_INTERNAL int cow_segment_trylock_beside(cow_view_t *view, uint32_t segment, const cow_segment_guard_t *const *held,
                                            uint32_t held_count, cow_segment_guard_t *guard);
COW_INTERNAL void cow_segment_unlock(cow_segment_guard_t *guard);

/* ---- diagnostics (cow_diag.c): async-signal-safe, for states the engine cannot leave safely ---- */

/* The call that failed, for the fatal diagnostic. */
#define COW_CALL_NONE              0
#define COW_CALL_MMAP              1
#define COW_CALL_MPROTECT          2
#define COW_CALL_ALLOCATE          3
#define COW_CALL_UFFD_REGISTER     4
#define COW_CALL_UFFD_WRITEPROTECT 5

/* The fault at `address` cannot be resolved: one line naming the call and its cause, then abort(). */
COW_INTERNAL __attribute__((noreturn)) void cow_die_in_fault(uint64_t address, int error, int failed_call);
/* `failed_call` failed with `error` after the mmap of the range at `address` had replaced its mapping,
 * and making it PROT_NONE again failed with `reset_error`: what the range maps is unknown (perhaps a
 * slot about to be reused), so no later access could be trusted. One line, then abort(). */
COW_INTERNAL __attribute__((noreturn)) void cow_die_mapping_unknown(uint64_t address, int failed_call, int error,
                                                                    int reset_error);
/* One line on stderr: `address` lies in the range of view `view_index`, which was disposed. */
COW_INTERNAL void cow_report_use_after_dispose(uint64_t address, uint32_t view_index);

/* ---- the process registry (cow_registry.c) ---- */

/* The registered process tables, or NULL (none yet, or in a forked child). */
COW_INTERNAL cow_process_t *cow_process(void);
COW_INTERNAL void cow_registry_set(cow_process_t *process);
/* Sets the directory entries of every segment of the view's range to `value`. */
COW_INTERNAL void cow_directory_publish(cow_view_t *view, uint32_t value);
/* pthread_atfork child handler: the child sees no views (docs/design.md, fork). */
COW_INTERNAL void cow_registry_forget_in_child(void);

/* ---- allocation and reference counting (cow_alloc.c) ---- */

/* Frees slots in batches so that contiguous freed slots cost one fallocate, and so that a chunk
 * is never handed out again before its punched holes have been punched. */
typedef struct cow_release_batch {
    cow_engine_t *engine;
    uint64_t punch_first; /* first slot of the pending range */
    uint64_t punch_count;
    int deferred; /* queue ranges for cow_engine_reclaim instead of punching now */
} cow_release_batch_t;

COW_INTERNAL void cow_batch_begin(cow_release_batch_t *batch, cow_engine_t *engine);
/* A batch whose ranges go to the engine's reclaim queue (punched at once if the queue is full). */
COW_INTERNAL void cow_batch_begin_deferred(cow_release_batch_t *batch, cow_engine_t *engine);
COW_INTERNAL int cow_batch_flush(cow_release_batch_t *batch);

COW_INTERNAL void cow_slot_release(cow_release_batch_t *batch, uint32_t slot);
COW_INTERNAL void cow_leaf_release(cow_release_batch_t *batch, uint32_t leaf);
/* Drops the "a view writes into me" reference of a chunk. */
COW_INTERNAL void cow_chunk_release(cow_release_batch_t *batch, uint32_t chunk);

/* Allocates `count` chunks at consecutive indices (each holding the writer reference). */
COW_INTERNAL int cow_chunks_allocate(cow_engine_t *engine, uint32_t count, uint32_t *first_out);
/* A leaf of refcount 1 for `holder`, copied from `origin` (COW_NONE: a new one); its entries are the
 * caller's to fill. */
COW_INTERNAL int cow_leaf_allocate(cow_engine_t *engine, const cow_view_t *holder, uint32_t origin, uint32_t *leaf_out);
/* Lineage hints: record that `holder` holds / no longer holds `leaf`; another holder of `leaf` than
 * `view` (index + 1), or 0 if none is known. */
COW_INTERNAL void cow_leaf_hold(cow_engine_t *engine, uint32_t leaf, const cow_view_t *holder);
COW_INTERNAL void cow_leaf_unhold(cow_engine_t *engine, uint32_t leaf, const cow_view_t *holder);
COW_INTERNAL uint32_t cow_leaf_other_holder(cow_engine_t *engine, uint32_t leaf, const cow_view_t *view);
/* Counts `count` more slots as in use, failing with ENOSPC past the engine's slot limit. */
COW_INTERNAL int cow_slots_reserve(cow_engine_t *engine, uint64_t count);

/* Whether two slots may hold different bytes: compared through the pool window, unless one of them is
 * not in memory - reading it would allocate a page (shared memory allocates on a read fault) or swap
 * it in. A hole (never written) reads zero, which is known without reading it; a swapped-out page
 * counts as differing. */
/* If mincore fails, the bytes decide (reading may allocate a page) and *error_out (may be NULL) receives
 * its errno: a caller that can refuse (a diff) does, so that its answer never depends on a failure. */
COW_INTERNAL int cow_slots_differ(cow_engine_t *engine, uint32_t a, uint32_t b, int *error_out);

/* Makes slot `to` hold slot `from`'s bytes; returns whether it wrote them (0: they were equal, seen
 * without allocating `from`). One residency check, of `from` only: `to` is about to be written anyway. */
COW_INTERNAL int cow_slot_copy_if_differs(cow_engine_t *engine, uint32_t to, uint32_t from);

/* Takes the slot for a private copy of `page` of `view`: position page % 512 of the view's write
 * chunk for that segment, replacing the write chunk when that position is taken. Caller holds the
 * view's read or write lock and the segment's guard. */
COW_INTERNAL int cow_copy_slot_take(cow_view_t *view, uint64_t page, cow_release_batch_t *batch, uint32_t *slot_out);

/* ---- mappings (cow_map.c) ----
 *
 * A page's MAPPING CLASS is what the kernel's mapping of it looks like: unmapped (PROT_NONE,
 * anonymous: a snapshot page not touched yet, or evicted), read-only onto its slot, or read-write
 * onto its slot. A view's mapping count is the number of places where a page starts a new kernel
 * mapping: the first page, every page whose class differs from the page before it, and every
 * mapped page whose slot does not follow the slot of the page before it (the kernel's merge rule).
 *
 * Write protection goes through a PROTECTOR (the mechanism that makes pages read-only and writable
 * again). With mprotect, protection is part of the mapping, so read-only and read-write are two
 * classes and every protection change can split or merge mappings. Every function here keeps the
 * view's mapped and writable bits and its mapping count (and its engine's) exact; the caller holds
 * the view's write lock, or its read lock and the guard of every segment the range touches. */

#define COW_CLASS_UNMAPPED 0
#define COW_CLASS_READ     1
#define COW_CLASS_WRITE    2
#define COW_CLASS_ZERO     3 /* read-only onto the kernel's zero page: anonymous, no slot (invariant 12) */

typedef struct cow_protector {
    const char *name;
    /* 1 if protection is part of the kernel's mapping (mprotect): read-only and read-write pages are
     * different mappings. 0 if it is kept per page table entry (userfaultfd): only unmapped pages
     * differ from mapped ones, and a protection change splits nothing. */
    int protection_splits;
    /* Maps pages [first, end) onto consecutive slots from `slot`, read-only (COW_CLASS_READ) or
     * writable: the mapping does not let a write through unseen at any moment. Each sets
     * *failed_call_out to the COW_CALL_* it made last (the one that failed, if it returns an error). */
    int (*map)(cow_view_t *view, uint64_t first, uint64_t end, int class, uint32_t slot, int populate,
               int *failed_call_out);
    /* Makes mapped pages [first, end) read-only / read-write, in place (same slots). */
    int (*protect)(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out);
    int (*unprotect)(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out);
} cow_protector_t;

COW_INTERNAL extern const cow_protector_t cow_protector_mprotect;
COW_INTERNAL extern const cow_protector_t cow_protector_userfaultfd; /* cow_protect_uffd.c */

static inline int cow_page_class(const cow_view_t *view, uint64_t page)
{
    if (cow_is_mapped(view, page))
        return 1 + cow_is_writable(view, page);
    return cow_is_zero(view, page) ? COW_CLASS_ZERO : COW_CLASS_UNMAPPED;
}

/* Whether the page is accessible at all: mapped onto its slot, or onto the zero page. */
static inline int cow_is_readable(const cow_view_t *view, uint64_t page)
{
    return cow_is_mapped(view, page) || cow_is_zero(view, page);
}

/* Pages of [first, last] (inclusive, clamped to the view) that start a new mapping. */
COW_INTERNAL int64_t cow_map_boundaries(cow_view_t *view, uint64_t first, uint64_t last);
/* How the view's mapping count would change if the unpinned pages of [first, end) (all of them with
 * `include_pinned`) were unmapped. */
COW_INTERNAL int64_t cow_map_growth_if_unmapped(cow_view_t *view, uint64_t first, uint64_t end, int include_pinned);

/* Maps pages [first, end) of one segment with class READ or WRITE. With `slots` (one per page, the
 * new slot of each), the leaf entries are pointed at them first and the pages mapped onto them;
 * without, the pages keep their slots. Pages that get a new slot or are not mapped yet are mapped
 * with mmap (one call per run of file-contiguous slots, `populate`: fill the page table now); the
 * others change protection in place. On failure *done_out pages from `first` are done (their
 * entries, bits and counts updated); the rest are exactly as before, entries included. */
COW_INTERNAL int cow_map_pages(cow_view_t *view, uint64_t first, uint64_t end, int class, const uint32_t *slots,
                               int populate, uint64_t *done_out, int *failed_call_out);
/* Maps pages [first, end) of one segment onto the zero page (COW_CLASS_ZERO); their slots must read
 * zero and stay so while the pages are (invariant 12). */
COW_INTERNAL int cow_map_zero(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out);
/* Maps one mapped page again as its bits say it is (a fault on a page the bits call accessible). */
COW_INTERNAL int cow_map_refresh(cow_view_t *view, uint64_t page, int *failed_call_out);
/* Write-protects every writable page of the view (one protector call per writable run). If a call
 * fails, the runs before it are recorded as protected and the rest as still writable. *pages_out
 * (may be NULL) receives the pages protected. */
COW_INTERNAL int cow_map_protect_writable(cow_view_t *view, uint64_t *pages_out);
/* Unmaps (PROT_NONE) pages [first, end); with `keep_pinned`, pinned pages stay mapped (and the runs
 * between them are unmapped). Returns 0 or the error of the first call that failed (the runs
 * unmapped before it are accounted for); *unmapped_out (may be NULL): 1 if anything was unmapped. */
COW_INTERNAL int cow_map_unmap(cow_view_t *view, uint64_t first, uint64_t end, int keep_pinned, int *unmapped_out);
/* The whole range of a view being disposed becomes PROT_NONE (tried a few times: cow_os_reset_fixed);
 * its count leaves the engine's. On failure nothing changed: the range still maps the view's slots. */
COW_INTERNAL int cow_map_release_view(cow_view_t *view);
/* Adds a view that has just been mapped (or created unmapped) to its engine's count. */
COW_INTERNAL void cow_map_count_new_view(cow_view_t *view);

/* ---- the mapping budget (cow_budget.c) ---- */

/* What the caller of cow_budget_make_room holds, which decides what eviction may wait for. */
typedef enum cow_budget_holder_kind {
    COW_HOLDING_NOTHING, /* an API call before it locks anything: may wait for any view lock */
    COW_HOLDING_VIEW,    /* the write lock of `view`: only tries other views' locks; evicts `view` too */
    COW_HOLDING_FAULT,   /* a fault handler: the read lock of `view`; spares `segment` (just mapped) */
} cow_budget_holder_kind_t;

typedef struct cow_budget_holder {
    cow_budget_holder_kind_t kind;
    cow_view_t *view;
    uint32_t segment;
} cow_budget_holder_t;

/* `needed` for "evict everything that can be evicted" (the kernel itself refused a mapping). */
#define COW_BUDGET_EVERYTHING (INT64_MAX / 4)

/* Makes room for `needed` more mappings within the engine's budget, evicting segments if the engine
 * would go over it. Returns 0, or EDQUOT when the room could not be made (for a fault: the faulting
 * segment itself holds the mappings). Never waits for anything that can wait for the caller. */
COW_INTERNAL int cow_budget_make_room(cow_engine_t *engine, int64_t needed, const cow_budget_holder_t *holder);

/* ---- resolving (cow_resolve.c) ---- */

typedef enum cow_resolve_purpose {
    COW_RESOLVE_FAULT,   /* a write fault: every page is resolved with a system call */
    COW_RESOLVE_PREPARE, /* PrepareForWrite: pages already writable are kept; every page is pinned */
} cow_resolve_purpose_t;

typedef struct cow_resolve_result {
    int failed_call; /* COW_CALL_* that failed, when the return value is not 0 */
    uint32_t copies; /* pages that received a private copy */
} cow_resolve_result_t;

/* Makes pages [first, first + count) of one segment private and writable. Caller holds the view's
 * read (or write) lock and the segment's guard `held` (NULL only under the write lock). On failure
 * every page is either fully resolved or left with its contents as they were. */
COW_INTERNAL int cow_resolve_write(cow_view_t *view, uint64_t first, uint32_t count, cow_resolve_purpose_t purpose,
                                   const cow_segment_guard_t *held, cow_resolve_result_t *result);
/* A read fault or PrepareForRead: maps read-only the run of not-yet-mapped pages with file-contiguous
 * slots around `page`, within its segment; a mapped page is mapped again as its bits say. Same
 * locking as cow_resolve_write. */
COW_INTERNAL int cow_resolve_read(cow_view_t *view, uint64_t page, int *failed_call_out);

/* ---- the fault path (cow_fault.c) ---- */

typedef enum cow_fault_kind {
    COW_FAULT_READ,            /* SIGSEGV, SEGV_ACCERR, a read */
    COW_FAULT_WRITE,           /* SIGSEGV, SEGV_ACCERR, a write */
    COW_FAULT_WRITE_PROTECTED, /* SIGBUS, BUS_ADRERR: a userfaultfd write-protect fault, if ours */
} cow_fault_kind_t;

/* Resolves a fault at `address` if it is ours. 1: resolved, return from the handler; 0: not ours,
 * chain it. Never returns when it cannot resolve one of ours. */
COW_INTERNAL int cow_fault_resolve(uint64_t address, cow_fault_kind_t kind);

/* ---- views (cow_view.c), for cow_restore.c, cow_query.c and cow_prepare.c ---- */

/* How often Snapshot and RestoreTo make room without locks and try again before they refuse. */
#define COW_ROOM_ATTEMPTS 4

/* A new life for a view entry: a new incarnation, no base. Before the view goes LIVE. */
COW_INTERNAL void cow_view_begin_life(cow_view_t *view);
/* `base` becomes the view's base: its contents are the base's, no page is changed. Under the write
 * locks of both (or before the view is LIVE). */
COW_INTERNAL void cow_view_set_base(cow_view_t *view, cow_view_t *base);
/* 1 if `base` is still the view's base: the same incarnation, not modified since. */
COW_INTERNAL int cow_view_has_base(const cow_view_t *view, const cow_view_t *base);

/* Checks the fields the owner set: engine, size, alignment, place in the arena and the view table. */
COW_INTERNAL int cow_view_shape_is_valid(const cow_view_t *view);
/* Takes the view's write (or read) lock if the view is valid and LIVE: 0 with the lock held, else
 * EINVAL with no lock held. */
COW_INTERNAL int cow_view_lock_live(cow_view_t *view, int write);
/* Write-protects every writable page and, with `new_interval`, clears the dirty and pinned bits. If a
 * call fails, the pinned pages are made writable again (cow_view_thaw_pinned): the caller refuses. */
COW_INTERNAL int cow_view_freeze(cow_view_t *view, int new_interval);
/* Makes the pinned private pages writable again after a freeze whose operation was refused: pages
 * prepared for the kernel must stay writable. (Pages prepared for reading may be shared: those stay
 * read-only, as they were.) Best effort: a page whose call fails stays read-only, still dirty. Caller
 * holds the write lock. */
COW_INTERNAL void cow_view_thaw_pinned(cow_view_t *view);

#endif /* COW_INTERNAL_H */
