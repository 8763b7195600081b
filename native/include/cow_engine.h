/*
 * cow_engine.h - the native half of CowEngine: a SIGSEGV-driven copy-on-write page engine.
 *
 * WHO OWNS WHAT
 *   Every table declared here is allocated and laid out by the managed library (C#), which mirrors
 *   these structs field for field (checked by static_assert below and by a C# test that compares
 *   against cow_layout_entry()). The shim never calls malloc: it only reads and updates memory the
 *   managed side handed to it, and it owns no state but the previous SIGSEGV disposition and a
 *   pointer to the process table.
 *
 * THE HANDLER'S CONTRACT (what runs inside SIGSEGV)
 *   - It acts only on a fault with si_code SEGV_ACCERR on a page of a LIVE view that is not an
 *     instruction fetch: a write to a page that is shared or write-protected (it makes the page
 *     private and writable), or any access to a page of a snapshot that is not mapped yet (snapshots
 *     are mapped lazily, run by run, on first touch). Everything else - executes, addresses outside
 *     the arena or past a view's last page, disposed views, unmapped memory - goes to the handler
 *     that was installed before ours, called exactly as the kernel would have called it
 *     (see cow_signal.c).
 *   - It calls only async-signal-safe functions: mmap, mprotect, fallocate, write, sched_yield,
 *     pthread_sigmask, abort. No malloc, no stdio, no managed callback (a call into .NET from here
 *     kills the runtime), no lock that managed code can hold. errno is saved and restored.
 *   - The locks it takes (a view's reader-writer lock, a striped per-segment lock, the engine's
 *     allocator lock) are only ever held by native code that runs to completion without waiting for
 *     managed code, so a GC that cannot suspend the faulting thread can never be what the lock
 *     holder waits for.
 *   - Its stack use is a few hundred bytes (the runtime gives it a 16 KiB alternate stack).
 *   - When it cannot resolve a fault it must not return (the write would fault forever) nor lose
 *     data: it writes one line naming the cause to stderr and calls abort().
 *
 * FORK: in a child made by fork() every view is inaccessible (the arena is remapped PROT_NONE and
 * the handler stops recognising views), because the child shares the parent's memfds.
 *
 * MAPPINGS ARE A CACHE of the page table: when the engine's mappings exceed its budget, whole
 * 2 MiB segments of its views are unmapped (PROT_NONE) and mapped again, run by run, on their next
 * touch. Pages prepared for writing are never unmapped before the view's next freeze.
 *
 * FUNCTIONS return 0 or a positive errno value; they never set errno for the caller. Two values have
 * an engine-specific meaning on top of the system's:
 *   ENOSPC  the engine's slot capacity, chunk space or leaf table is exhausted;
 *   EDQUOT  the operation would take the engine past its mapping budget (a share of
 *           vm.max_map_count); nothing was changed.
 */
#ifndef COW_ENGINE_H
#define COW_ENGINE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COW_API __attribute__((visibility("default")))

/*
 * Units (docs/design.md, "Glossary"). A page is 4 KiB of a view's address space, a slot 4 KiB of the
 * pool file. A segment is 512 consecutive pages of a view (2 MiB), a chunk 512 consecutive slots
 * (2 MiB of the pool), a leaf the table of one segment's 512 slot numbers. The three counts are one
 * number on purpose: a view's private copy of page i of a segment goes to slot i of its chunk.
 */
#define COW_PAGE_SHIFT          12
#define COW_PAGE_SIZE           (1u << COW_PAGE_SHIFT)
#define COW_SEGMENT_PAGES_SHIFT 9
#define COW_SEGMENT_PAGES       (1u << COW_SEGMENT_PAGES_SHIFT)
#define COW_SEGMENT_SHIFT       (COW_PAGE_SHIFT + COW_SEGMENT_PAGES_SHIFT)
#define COW_SEGMENT_SIZE        (1ull << COW_SEGMENT_SHIFT)
#define COW_CHUNK_SLOTS_SHIFT   COW_SEGMENT_PAGES_SHIFT
#define COW_CHUNK_SLOTS         COW_SEGMENT_PAGES
#define COW_LEAF_ENTRIES        COW_SEGMENT_PAGES
#define COW_STRIPE_COUNT        1024u

/* Segments the last faults mapped, which eviction spares (docs/design.md, the mapping budget). */
#define COW_RECENT_FAULTS 8

/* "No slot / no chunk / no leaf" in any uint32 index field. */
#define COW_NONE 0xFFFFFFFFu

/* cow_view_t.state */
#define COW_VIEW_FREE     0u
#define COW_VIEW_LIVE     1u
#define COW_VIEW_DISPOSED 2u

/* cow_engine_t.write_protection: how pages are write-protected and made writable again in place */
#define COW_PROTECT_MPROTECT    0u /* mprotect; a write to a protected page raises SIGSEGV */
#define COW_PROTECT_USERFAULTFD 1u /* userfaultfd write-protect (UFFDIO_WRITEPROTECT): SIGBUS, no mapping splits */

/* cow_view_t.flags */
#define COW_VIEW_EXACT_WRITES 1u /* a region made with track_writes: faults never resolve pages ahead */
/* Set by a cow_region_create that failed and could not unmap what it had mapped: the range still
 * maps slots, which stay in use; the owner must never hand the range out again. The owner clears
 * the flags of an entry it rents. */
#define COW_VIEW_RANGE_KEPT 2u

/* Directory entry flag: the view (index + 1 in the low bits) owning this segment was disposed. */
#define COW_DIRECTORY_DISPOSED 0x80000000u

/*
 * One engine: a memfd of chunk_capacity * 2 MiB used as a pool of 4 KiB slots.
 * Slot s lives at file offset s * 4096 and belongs to chunk s / COW_CHUNK_SLOTS.
 */
typedef struct cow_engine {
    /* ---- set by the owner before cow_engine_init, constant afterwards ---- */
    uint8_t *pool;            /* the whole memfd mapped read-write (copies are made through it) */
    uint32_t *slot_refcounts; /* [chunk_capacity * 512] leaves referencing each slot */
    uint32_t *chunk_live;     /* [chunk_capacity] live slots + 1 while a view writes into it */
    uint32_t *chunk_free;     /* [chunk_capacity] stack of free chunk indices */
    uint32_t *leaf_refcounts; /* [leaf_capacity] views referencing each leaf */
    uint32_t *leaf_entries;   /* [leaf_capacity * 512] slot per page of each leaf, or COW_NONE */
    uint32_t *leaf_free;      /* [leaf_capacity] stack of free leaf indices */
    uint64_t slot_limit;      /* most slots that may be in use at once (the capacity option) */
    uint32_t chunk_capacity;
    uint32_t leaf_capacity;
    int32_t memfd;
    uint32_t fault_around_pages; /* most pages one write fault resolves (a sequential run); 1: none ahead */

    /* ---- allocator state, under alloc_lock ---- */
    uint32_t alloc_lock;
    uint32_t chunk_free_count;
    uint32_t chunk_bump; /* chunks [chunk_bump, chunk_capacity) were never used */
    uint32_t leaf_free_count;
    uint32_t leaf_bump;
    uint32_t write_protection; /* COW_PROTECT_*, set by the owner before cow_engine_init */

    /* ---- counters, updated atomically, read racily for statistics ---- */
    uint64_t slots_in_use;
    uint64_t chunks_in_use;
    uint64_t leaves_in_use;
    int64_t mappings;      /* sum of the mappings of this engine's live views */
    uint64_t write_faults; /* faults resolved by the handler */
    uint64_t copy_faults;  /* ... of which copied a shared page */
    uint64_t pages_copied; /* by faults and by cow_view_prepare_write */
    uint64_t snapshots;
    uint64_t read_faults;      /* first touches of lazily mapped snapshot pages */
    uint64_t evictions;        /* segments unmapped to stay within the mapping budget */
    int64_t live_views;        /* LIVE views of this engine */
    int64_t mapping_budget;    /* most mappings the engine may use (set by the owner, may change) */
    uint32_t evict_view;       /* eviction clock: next position in live_list ... */
    uint32_t evict_segment;    /* ... and segment to consider */
    uint32_t *live_list;       /* [view capacity] indices of this engine's LIVE views; set by the owner */
    uint32_t live_count;       /* entries in live_list, under alloc_lock */
    uint32_t faults_in_flight; /* handlers resolving a fault of this engine right now (each may be
                                 * up to two mappings over the budget until it has evicted) */

    /* ---- reclaim queue: ranges of freed slots whose holes are still to be punched ---- */
    uint64_t *reclaim_ring;    /* [reclaim_capacity] (first slot << 32) | slot count; set by the owner */
    uint32_t reclaim_capacity; /* a power of two; 0 = punch at once */
    uint32_t reclaim_head;     /* under reclaim_lock */
    uint32_t reclaim_tail;
    uint32_t reclaim_lock;  /* guards head and tail */
    uint32_t reclaim_owner; /* held by whoever is reclaiming, so a drain ends with nothing in flight */

    /* ---- the segments faults touched last: eviction spares them, so an instruction that needs two
     * segments at once (a store across a 2 MiB boundary), or a few threads' hot spots, cannot have
     * one fault undo another's mapping forever ---- */
    uint64_t recent_faults[COW_RECENT_FAULTS]; /* (view index << 32) | segment, + 1 (0 = empty) */
    uint32_t recent_next;
    uint32_t reserved3;

    /* ---- striped per-(view, segment) locks ---- */
    uint32_t stripes[COW_STRIPE_COUNT];

    /* ---- leaf lineage, for reverse copy-on-write (docs/design.md, the fault path). Hints only:
     * whoever acts on them validates them under the locks of the view they name. Set by the owner:
     * [leaf_capacity] and [leaf_capacity * 2]. ---- */
    uint32_t *leaf_origins;  /* the leaf each leaf was copied from when a view unshared it, or COW_NONE */
    uint32_t *leaf_holders;  /* two views (index + 1, 0 = none) known to hold each leaf */
    uint64_t reverse_copies; /* first writes that gave the copy to the other holder (the writer kept its slot) */
    uint64_t pages_restored_by_copy; /* pages a restore copied back into the view's own slots */
    int32_t uffd;                    /* with COW_PROTECT_USERFAULTFD: the engine's userfaultfd (set by the owner) */
    uint32_t reserved4;
} cow_engine_t;

/*
 * One view: a region or a snapshot. Lives in the process view table, whose entries are never
 * freed, only recycled, so the handler may always dereference a view it found in the directory and
 * then validate it under the view's lock.
 */
typedef struct cow_view {
    /* ---- set by the owner while the view is FREE (arrays zero-filled); constant while LIVE ---- */
    uint64_t base; /* address of page 0; 2 MiB aligned, inside the arena */
    uint64_t page_count;
    cow_engine_t *engine;
    uint32_t *leaves;        /* [segment_count] leaf per segment */
    uint32_t *write_chunks;  /* [segment_count] chunk receiving this view's copies, or COW_NONE */
    uint64_t *mapped_bits;   /* [(page_count + 63) / 64] page mapped onto its slot (else PROT_NONE, or zero_bits) */
    uint64_t *writable_bits; /* [(page_count + 63) / 64] page mapped writable (a subset of mapped) */
    uint64_t *dirty_bits;    /* [(page_count + 63) / 64] made writable since the last freeze */
    uint64_t *pinned_bits;   /* [(page_count + 63) / 64] prepared for write: never evicted until the next freeze */
    uint32_t segment_count;
    uint32_t index; /* this entry's position in the view table */

    /* ---- synchronisation ---- */
    uint32_t lock;  /* reader-writer spin lock: faults read, mutations write */
    uint32_t state; /* COW_VIEW_*; written only under the write lock */

    /* ---- counters ---- */
    int64_t mappings;       /* kernel mappings this view's range currently consists of */
    uint64_t write_faults;  /* faults the handler resolved on this view */
    uint64_t pages_copied;  /* private copies made for this view (faults and prepare_write) */
    uint32_t live_position; /* position in its engine's live_list while LIVE */
    uint32_t flags;         /* COW_VIEW_*, set by the native call that makes the view LIVE */

    /* ---- set by the owner while FREE, zero-filled ---- */
    uint32_t *fault_streaks;    /* [segment_count] the run of write faults in each segment (cow_fault.c) */
    uint64_t *changed_bits;     /* [(page_count + 63) / 64] pages that may differ from the base */
    uint64_t *changed_segments; /* [(segment_count + 63) / 64] segments with a changed page */

    /* ---- the base: a view whose contents this one has, but for the changed pages, so that a restore
     * to it costs the changed pages (docs/design.md, restore) ---- */
    uint64_t modifications;      /* bumped whenever a page of this view may change (made writable, restored) */
    uint64_t base_modifications; /* the base's modifications when it became the base */
    uint32_t base_view;          /* index + 1 of the base view, 0 = none */
    uint32_t base_incarnation;   /* the base's incarnation then (entries are recycled) */
    uint32_t incarnation;        /* bumped each time this entry goes LIVE; kept while FREE */
    uint32_t reserved2;

    /* ---- set by the owner while FREE, zero-filled ---- */
    uint64_t *writable_segments; /* [(segment_count + 63) / 64] segments that may have a writable page
                                  * (a superset): a freeze costs the segments written, not the view's size */
    uint64_t *zero_bits;         /* [(page_count + 63) / 64] page mapped read-only onto the kernel's zero page
                          * (anonymous memory): its slot was never written; never set with mapped_bits */
} cow_view_t;

/* The process-wide tables the handler starts from. */
typedef struct cow_process {
    uint64_t arena_base; /* one PROT_NONE reservation that holds every view */
    uint64_t arena_size; /* bytes reserved from arena_base, a multiple of 2 MiB; under an address-space
                          * limit it grows (never shrinks) up to the directory's range */
    uint32_t *directory; /* [the arena's whole range / 2 MiB] view index + 1 owning that segment, 0 = none;
                                 * with COW_DIRECTORY_DISPOSED: the segment's view was disposed and
                                 * the range is not reused yet (a touch is reported, then passed on) */
    cow_view_t *views;   /* [view_capacity] */
    uint32_t view_capacity;
    uint32_t view_high_water; /* entries [0, view_high_water) have ever been used */
} cow_process_t;

typedef struct cow_view_stats {
    uint64_t private_pages;  /* pages only this view references */
    uint64_t shared_pages;   /* pages whose slot another view (or leaf) also references */
    uint64_t writable_pages; /* pages currently mapped writable */
    uint64_t mapped_pages;   /* pages mapped at all (a snapshot maps its pages on first touch), zero_pages included */
    int64_t mappings;
    uint64_t write_faults;
    uint64_t pages_copied;
    uint64_t zero_pages; /* pages mapped onto the kernel's zero page: never written, holding no memory */
} cow_view_stats_t;

_Static_assert(sizeof(void *) == 8, "CowEngine supports 64-bit targets only");

/* ---- process ---- */

/* Registers the process tables and installs the SIGSEGV handler (once; later calls only check
 * that the same tables are passed). Returns EBUSY if a different table is already installed. */
COW_API int cow_install(cow_process_t *process);

/* 1 if our handler is the current SIGSEGV disposition, 0 if someone replaced it. */
COW_API int cow_handler_is_current(void);

/* Installs the SIGBUS handler that resolves userfaultfd write-protect faults (once; before the first
 * engine with COW_PROTECT_USERFAULTFD). It runs on the faulting thread's own stack (no SA_ONSTACK):
 * the SIGBUS it does not recognise goes to the previous handler (the .NET runtime's, installed without
 * SA_ONSTACK) exactly as the kernel would have delivered it. */
COW_API int cow_install_sigbus(void);

/* ---- engine ---- */

/* Initialises the allocator state of an engine whose tables the owner filled in. */
COW_API int cow_engine_init(cow_engine_t *engine);

/* Kernel mappings the engine uses: its live views' own, one gap after each view in the arena, and
 * the pool window. The mapping budget is compared against this number. */
COW_API int64_t cow_engine_mapping_count(const cow_engine_t *engine);

/* Punches the holes of every slot run that dispose and restore queued (they defer it, so that
 * giving memory back does not lengthen the call that freed it), then makes those slots free.
 * *reclaimed_out (may be NULL) receives the number of slots reclaimed. Returns 0, or the errno of the
 * first punch (fallocate) that failed: that run stays queued, its slots in use, for the next call.
 * Called by the owner's background reclaimer, and by the engine itself when it needs slots. Safe
 * from any thread, any time. */
COW_API int cow_engine_reclaim(cow_engine_t *engine, uint64_t *reclaimed_out);

/* ---- views (each is one native call, so a GC never stops one halfway) ---- */

/* Backs a FREE view (base, page_count, engine and arrays set by the owner) with fresh zeroed slots,
 * maps it and publishes it. Mapped read-write, so that first writes cost only the kernel's own
 * fault; with track_writes, mapped read-only, so that every page's first write is seen (one
 * mprotect fault each) and cow_view_take_dirty reports exactly the pages written. */
COW_API int cow_region_create(cow_view_t *view, int track_writes);

/* Makes `target` (FREE, same page_count as source) a copy-on-write snapshot of `source`: the
 * source's writable pages are write-protected, its leaves shared with the target, and the target
 * left unmapped until it is touched. Costs the writable runs of the source plus one step per 2 MiB.
 * Consistent cut: writes that completed before the call are in both, later writes in neither. */
COW_API int cow_view_snapshot(cow_view_t *source, cow_view_t *target);

/* Makes each targets[i] a snapshot of sources[i], all at ONE consistent cut: a write to any source
 * that completed before the call is in its target, and a write not yet completed lands after the cut
 * in every source - so no target holds a write while another target lacks one that happened before it
 * (on the same thread, or on a thread that saw it). Snapshotting the sources one after another would
 * not give that: a thread writing A then B could land its B write in B's snapshot and miss A's.
 * Requirements (else EINVAL, nothing changed): count >= 1; every source LIVE and every target FREE,
 * all of one engine; targets[i] has the page_count of sources[i]; no view appears twice in either
 * array or in both. How: the sources' write locks are taken in view-index order (the order of every
 * multi-view lock, docs/design.md), then every source is frozen, the engine's budget checked for
 * 2 * count mappings, every target given its source's leaves, and only then are the locks released:
 * writers faulting on any source meanwhile wait. Costs the sum of the single snapshots; the sources'
 * writers pause for the whole call. Failure (EDQUOT after four attempts to make room, or a
 * protection call failing: ENOMEM): every target is still FREE (untouched), every source keeps its
 * contents, stays writable where it was prepared for writing (pinned), and keeps reporting its dirty
 * pages; some of the sources' written pages are left write-protected (the next write to each is a
 * protection fault, nothing more). */
COW_API int cow_views_snapshot(cow_view_t *const *sources, cow_view_t *const *targets, uint32_t count);

/* Makes `view` hold exactly the contents of `source` (same engine and page_count). A differing page
 * the view owns alone gets the source's bytes copied into it (it keeps its slot, write-protected);
 * the rest of a differing segment takes the source's leaf (unmapped, mapped again on first touch).
 * When the source is the view's base, only the pages changed since are looked at; otherwise every
 * segment whose leaf differs. Both views stay writable. On failure both hold their old contents. */
COW_API int cow_view_restore(cow_view_t *view, cow_view_t *source);

/* Sets bit p of `bits_out` (zeroed by the caller, (page_count + 63) / 64 words) for every page
 * whose bytes differ between the two views (same page_count), and for every page whose slots differ
 * where one slot is not in memory (it is not read: that would allocate it). Only pages whose slots
 * differ can differ, and only those are compared: segments that share a leaf are skipped, and when one view is
 * the other's base (a snapshot and its source, a view and what it was last restored to) only the
 * pages changed since, so the cost follows what differs, not the views' size. If mincore fails
 * (after retrying EAGAIN), returns its errno and *count_out 0 (the bits are then meaningless). */
COW_API int cow_view_diff(cow_view_t *a, cow_view_t *b, uint64_t *bits_out, uint64_t *count_out);

/* Get and reset: copies into bits_out the pages made writable since the view was created (if it
 * tracks writes), last snapshotted or last asked (and the pages a restore changed), then
 * write-protects them again, so the next call reports only pages written after this one. Costs the
 * dirty runs plus one pass over the bitmap (1 bit per page). */
COW_API int cow_view_take_dirty(cow_view_t *view, uint64_t *bits_out, uint64_t *count_out);

/* Unpublishes a LIVE view, replaces its range with PROT_NONE and releases its pages. */
COW_API int cow_view_dispose(cow_view_t *view);

/* Makes pages [first_page, first_page + page_count) private and writable now, so that the kernel
 * (read(2), io_uring, ...) can write into them without faulting. */
COW_API int cow_view_prepare_write(cow_view_t *view, uint64_t first_page, uint64_t page_count);

/* Maps pages [first_page, first_page + page_count) now (read-only where not already mapped), so
 * that the kernel can read them (write(2), send(2) from a view: a snapshot's pages are otherwise
 * mapped only when touched, and the kernel's own accesses raise no fault). The pages stay mapped
 * (pinned against eviction) until the view's next freeze or restore. */
COW_API int cow_view_prepare_read(cow_view_t *view, uint64_t first_page, uint64_t page_count);

COW_API int cow_view_stats(cow_view_t *view, cow_view_stats_t *stats);

/* Counts this view's mappings from its page table (slow: one pass over the pages). */
COW_API int64_t cow_view_count_mappings(cow_view_t *view);

/* Physical slot behind a page, for tests and tools (COW_NONE if out of range). */
COW_API uint32_t cow_view_slot_of(cow_view_t *view, uint64_t page);

/* ---- OS layer, for the managed owner ---- */

COW_API int cow_os_memfd_create(const char *name, uint64_t size, int32_t *fd_out);
/* A userfaultfd for write protection by SIGBUS (user-mode faults only, which an ordinary user may open
 * whatever vm.unprivileged_userfaultfd says): O_CLOEXEC | O_NONBLOCK, features SIGBUS and write-protect
 * of shared memory. ENOSYS: no userfaultfd; EPERM: refused (seccomp, sysctl); EOPNOTSUPP: the kernel
 * lacks write-protect of shared memory (before 5.19) or SIGBUS delivery. */
COW_API int cow_os_userfaultfd_open(int32_t *fd_out);
COW_API int cow_os_close(int32_t fd);
/* Reserves size bytes of PROT_NONE address space aligned to `alignment` (a power of two), wherever the
 * kernel finds room when *address_inout is NULL, else exactly at *address_inout (2 MiB-aligned):
 * EEXIST if anything is mapped there. */
COW_API int cow_os_reserve(uint64_t size, uint64_t alignment, void **address_inout);
/* Anonymous read-write zero memory, committed page by page on first touch. */
COW_API int cow_os_allocate_table(uint64_t size, void **address_out);
COW_API int cow_os_release(void *address, uint64_t size);
COW_API int cow_os_map_pool(int32_t fd, uint64_t size, void **address_out);
/* Bytes of memory the file really holds (st_blocks * 512). */
COW_API int cow_os_file_allocated_bytes(int32_t fd, uint64_t *bytes_out);
COW_API const char *cow_os_error_name(int error);

/* ---- layout check ---- */

/* Entry i of the table of (struct, field, offset, size) the C# layout test compares against.
 * Returns 0 past the end. */
COW_API int cow_layout_entry(uint32_t i, const char **struct_name, const char **field_name, uint32_t *offset,
                             uint32_t *size);

#ifdef __cplusplus
}
#endif

#endif /* COW_ENGINE_H */
