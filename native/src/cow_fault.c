/*
 * cow_fault.c - one fault that may be ours: find the view it hit, resolve it, stay within the
 * mapping budget. Runs inside the SIGSEGV handler (cow_signal.c), with every signal blocked, on the
 * thread that faulted; everything here is async-signal-safe and never waits for managed code.
 *
 *   1. Address outside the arena, or its 2 MiB directory entry empty?                   -> not ours.
 *      A disposed view's range? Say so on stderr (a use after dispose)                   -> not ours.
 *   2. Read-lock the view, check it is LIVE and the address within its pages.            -> else not ours.
 *   3. Near the budget? Evict cold segments first (cow_budget.c). Lock the segment's guard (its
 *      stripe and its neighbours'). A write: make the page private and writable. A read: map the
 *      untouched run around the page read-only (snapshots are mapped lazily).
 *   4. Over the budget? Evict again; if only the faulting segment can go, collapse it and map the
 *      faulting page (and its neighbours) back before returning.
 * If a step cannot complete, the process cannot continue correctly: cow_die_in_fault.
 */
#include "cow_inject.h"
#include "cow_internal.h"

#include <errno.h>

/* ---- write fault-around ----
 * A write fault at the page where the segment's last write fault ended continues a sequential run.
 * From the second continuation on, the fault also resolves the pages after it, the window doubling
 * (2, 4, 8, ...) up to the engine's fault_around_pages while the run holds, and back to one page
 * when it breaks: a sequential pass pays one signal per many pages, while two random writes that
 * happen to be neighbours resolve nothing ahead. Pages resolved ahead but never written cost a copy
 * each (and count as dirty): at most the last window of a run. Strided and random writes never
 * continue a run. The streak lives in view->fault_streaks[segment] - the index of the page after the
 * last one resolved, and the run's length in faults in the high half - under the segment's guard. */
static uint32_t cow_fault_window(cow_view_t *view, uint64_t page)
{
    uint32_t segment = cow_segment_of(page), limit = view->engine->fault_around_pages;
    uint64_t first = cow_segment_first(segment), end = cow_segment_end(view, segment);
    if (limit <= 1 || (view->flags & COW_VIEW_EXACT_WRITES) != 0)
        return 1;
    uint32_t streak = view->fault_streaks[segment];
    uint32_t next = streak & 0xFFFFu, run = streak >> 16;
    run = next == page - first && run != 0 ? (run < 16 ? run + 1 : run) : 1;
    uint32_t window = run <= 1 ? 1u : 1u << (run - 1 < 10 ? run - 1 : 10);
    if (window > limit)
        window = limit;
    uint64_t stop = page + 1;
    while (stop < end && stop < page + window && !cow_is_writable(view, stop))
        stop++;
    view->fault_streaks[segment] = (run << 16) | (uint32_t)(stop - first);
    return (uint32_t)(stop - page);
}

/* ---- filling a fragmented segment ----
 * A region without write tracking starts on the zero page, and each first write maps one page (or a
 * fault-around window) of its slots over it. Scattered first writes - a random fill - would cut the
 * zero page into a mapping per write: a fault and a split each, ten times the kernel's own first
 * touch. So once a segment's pages go on or off the zero page COW_FILL_BOUNDARIES times (each is a
 * mapping boundary), a write fault on a page of
 * its zero page that is dirty (every page is, until the region's first freeze) and private (no copy
 * needed) makes all such pages of the segment writable at once: one fault, and the rest of the
 * segment's first writes are the kernel's. Those pages' never-written neighbours then allocate when
 * read, as any mapped slot does (docs/design.md, the zero page). Exact-write regions and pages shared
 * with a snapshot keep the page-granular path. */
#define COW_FILL_BOUNDARIES 16

static int cow_fault_fills(cow_view_t *view, uint64_t page)
{
    cow_engine_t *engine = view->engine;
    return cow_is_zero(view, page) && cow_bit(view->dirty_bits, page) &&
           cow_load_acquire(&engine->leaf_refcounts[view->leaves[cow_segment_of(page)]]) == 1 &&
           cow_load_acquire(&engine->slot_refcounts[cow_slot_of(view, page)]) == 1;
}

/* Where the segment's pages go on or off the zero page (each is a mapping boundary): the bits that
 * differ from the bit before them, within the segment - a few words, cheap enough for every fault. */
static uint32_t cow_zero_edges(const cow_view_t *view, uint32_t segment)
{
    uint64_t first = cow_segment_first(segment), end = cow_segment_end(view, segment), carry = 0;
    uint32_t edges = 0;
    for (uint64_t word = first / 64; word < (end + 63) / 64; word++) {
        uint64_t bits = view->zero_bits[word], valid = end - word * 64 >= 64 ? ~0ull : (1ull << (end - word * 64)) - 1;
        edges += (uint32_t)__builtin_popcountll(((bits ^ (bits << 1 | carry)) & valid));
        carry = bits >> 63;
    }
    return edges;
}

/* Whether the write fault at `page` fills its segment (above). */
static int cow_fault_should_fill(cow_view_t *view, uint64_t page)
{
    if ((view->flags & COW_VIEW_EXACT_WRITES) != 0 || !cow_fault_fills(view, page))
        return 0;
    return cow_zero_edges(view, cow_segment_of(page)) >= COW_FILL_BOUNDARIES;
}

/* Makes every page of the segment of `page` that cow_fault_fills writable, one run of them at a
 * time; `page` is one of them. */
static int cow_fault_fill_segment(cow_view_t *view, uint64_t page, const cow_segment_guard_t *guard,
                                  cow_resolve_result_t *result)
{
    uint32_t segment = cow_segment_of(page);
    uint64_t end = cow_segment_end(view, segment);
    for (uint64_t first = cow_segment_first(segment); first < end;) {
        if (!cow_fault_fills(view, first)) {
            first++;
            continue;
        }
        uint64_t stop = first + 1;
        while (stop < end && cow_fault_fills(view, stop))
            stop++;
        int error = cow_resolve_write(view, first, (uint32_t)(stop - first), COW_RESOLVE_FAULT, guard, result);
        if (error != 0)
            return error;
        first = stop;
    }
    return 0;
}

/* Resolves `page` as a write (with `ahead` - 1 more pages after it) or a read, under the segment's
 * guard `guard` (which the caller holds). */
static int cow_fault_resolve_page(cow_view_t *view, uint64_t page, int is_write, uint32_t ahead,
                                  const cow_segment_guard_t *guard, cow_resolve_result_t *result)
{
    result->failed_call = COW_CALL_MMAP;
    result->copies = 0;
    if (!is_write)
        return cow_resolve_read(view, page, &result->failed_call);
    if (cow_fault_should_fill(view, page))
        return cow_fault_fill_segment(view, page, guard, result);
    return cow_resolve_write(view, page, ahead, COW_RESOLVE_FAULT, guard, result);
}

/* Maps a page of a collapsed segment again, as it was (`class`) or as the fault needs it. */
static void cow_fault_map_back(cow_view_t *view, uint64_t page, int class, const cow_segment_guard_t *guard)
{
    cow_resolve_result_t result;
    int error = cow_fault_resolve_page(view, page, class == COW_CLASS_WRITE, 1, guard, &result);
    if (error != 0)
        cow_die_in_fault(cow_page_address(view, page), error, result.failed_call);
}

/* The faulting segment itself holds the mappings (a single 2 MiB hot spot written all over): unmap
 * it if that lowers the count, then map back the faulting page and its two neighbours as they were -
 * one instruction can touch two pages (an unaligned store across a page boundary), and the retried
 * instruction must find both, or it would fault again, forever. The caller holds the read lock. */
static void cow_fault_collapse_segment(cow_view_t *view, uint64_t page, int is_write)
{
    uint32_t segment = cow_segment_of(page);
    uint64_t first = cow_segment_first(segment), end = cow_segment_end(view, segment);
    cow_segment_guard_t guard;
    cow_segment_lock(view, segment, &guard);
    int previous_class = page > first ? cow_page_class(view, page - 1) : COW_CLASS_UNMAPPED;
    int next_class = page + 1 < end ? cow_page_class(view, page + 1) : COW_CLASS_UNMAPPED;
    int unmapped = 0;
    if (cow_map_growth_if_unmapped(view, first, end, 0) < 0)
        cow_map_unmap(view, first, end, 1, &unmapped);
    if (unmapped) {
        cow_add(&view->engine->evictions, 1u);
        cow_fault_map_back(view, page, is_write ? COW_CLASS_WRITE : COW_CLASS_READ, &guard);
        if (previous_class != COW_CLASS_UNMAPPED)
            cow_fault_map_back(view, page - 1, previous_class, &guard);
        if (next_class != COW_CLASS_UNMAPPED)
            cow_fault_map_back(view, page + 1, next_class, &guard);
    }
    cow_segment_unlock(&guard);
}

/* Steps 3 and 4 for a fault on `page` of `view`, whose read lock the caller holds. */
static void cow_fault_resolve_in_view(cow_view_t *view, uint64_t page, int is_write, uint64_t address)
{
    cow_engine_t *engine = view->engine;
    uint32_t segment = cow_segment_of(page);
    cow_budget_holder_t holder = {COW_HOLDING_FAULT, view, segment};
    /* Resolving can add two mappings (a page split out of the middle of a run): make room first, so
     * the budget is exceeded at most by what the faults running at this moment add. A fault always
     * goes on, whatever the budget says. */
    (void)cow_budget_make_room(engine, 2, &holder);
    cow_resolve_result_t result;
    int error = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        cow_segment_guard_t guard;
        cow_segment_lock(view, segment, &guard);
        error =
            cow_fault_resolve_page(view, page, is_write, is_write ? cow_fault_window(view, page) : 1, &guard, &result);
        cow_segment_unlock(&guard);
        if (error != ENOMEM && error != EAGAIN && error != EINTR)
            break;
        /* A refusal that may pass: once more (a failed resolve left every page resolved or as it was).
         * For ENOMEM the kernel is out of mappings (the rest of the process may be using them): unmap
         * as many of ours as we can first. */
        if (error == ENOMEM)
            (void)cow_budget_make_room(engine, COW_BUDGET_EVERYTHING, &holder);
    }
    if (error != 0)
        cow_die_in_fault(address, error, result.failed_call);
    if (is_write) {
        cow_add(&view->write_faults, 1u);
        cow_add(&engine->write_faults, 1u);
        if (result.copies != 0)
            cow_add(&engine->copy_faults, 1u);
    } else {
        cow_add(&engine->read_faults, 1u);
    }
    if (cow_budget_make_room(engine, 0, &holder) != 0)
        cow_fault_collapse_segment(view, page, is_write);
}

static int cow_fault_resolve_marked(uint64_t address, cow_fault_kind_t kind);

int cow_fault_resolve(uint64_t address, cow_fault_kind_t kind)
{
    /* For failure injection only (nothing while it is off): the calls made from here on are "in
     * the fault handler". */
    uint32_t marked = cow_inject_fault_enter();
    int ours = cow_fault_resolve_marked(address, kind);
    cow_inject_fault_leave(marked);
    return ours;
}

static int cow_fault_resolve_marked(uint64_t address, cow_fault_kind_t kind)
{
    int is_write = kind != COW_FAULT_READ;
    cow_process_t *process = cow_process();
    if (process == NULL || address - process->arena_base >= process->arena_size)
        return 0;
    uint32_t entry = cow_load_acquire(&process->directory[(address - process->arena_base) >> COW_SEGMENT_SHIFT]);
    if ((entry & COW_DIRECTORY_DISPOSED) != 0) {
        cow_report_use_after_dispose(address, (entry & ~COW_DIRECTORY_DISPOSED) - 1);
        return 0;
    }
    if (entry == 0 || entry > process->view_capacity)
        return 0;
    cow_view_t *view = &process->views[entry - 1];

    cow_read_lock(&view->lock);
    if (kind == COW_FAULT_WRITE_PROTECTED && view->state == COW_VIEW_LIVE &&
        view->engine->write_protection != COW_PROTECT_USERFAULTFD) {
        cow_read_unlock(&view->lock); /* a SIGBUS, but not one of our write-protect faults */
        return 0;
    }
    if (view->state != COW_VIEW_LIVE || address < view->base || address >= cow_view_end(view)) {
        /* Disposed a moment ago, before its directory entries were flagged. */
        int disposed = view->state == COW_VIEW_DISPOSED && address >= view->base && address < cow_view_end(view);
        cow_read_unlock(&view->lock);
        if (disposed)
            cow_report_use_after_dispose(address, entry - 1);
        return 0;
    }
    cow_add(&view->engine->faults_in_flight, 1u);
    cow_fault_resolve_in_view(view, (address - view->base) >> COW_PAGE_SHIFT, is_write, address);
    cow_sub(&view->engine->faults_in_flight, 1u);
    cow_read_unlock(&view->lock);
    return 1;
}
