/*
 * cow_budget.c - keeping the engine within its mapping budget.
 *
 * The kernel gives a process vm.max_map_count mappings, and every run of pages with a different
 * protection or a non-contiguous slot is one. The engine treats its mappings as a cache of the page
 * table: when it uses more than its budget, it unmaps whole 2 MiB segments of its views (one mmap
 * of PROT_NONE each, which merges the segment's mappings into one) and the next touch of a page maps
 * its run again (cow_map_for_read, or the write path). Nothing is copied, so memory does not grow;
 * the cost is a refault per run touched again.
 *
 * Victims are chosen by a clock over (view, segment) across the engine's live views. View locks are
 * only tried (a caller may hold other view locks, and waiting could then deadlock behind a pending
 * writer), except by a caller that holds none; segment guards are always waited for (their holders
 * never wait for anything). A view whose lock is busy is skipped; within a segment, pages prepared
 * for the kernel stay mapped; a segment is unmapped only if that does not raise the count.
 */
#include "cow_internal.h"

#include <errno.h>
#include <sched.h>

#define COW_EVICT_SCAN_LIMIT 1024u

/* A sweep also evicts segments whose unmapping does not lower the count by itself: a segment that is
 * one mapping between mapped neighbours gains nothing alone (its edges stay boundaries), but the
 * sweep goes on to the next segment, which then borders PROT_NONE and gains. Without this, views
 * whose segments are one mapping each could never be evicted, however far over budget. */
#define COW_EVICT_SWEEP_GROWTH 0

int64_t cow_engine_mappings(cow_engine_t *engine)
{
    return cow_engine_mapping_count(engine);
}

int64_t cow_engine_mapping_count(const cow_engine_t *engine)
{
    return cow_load_relaxed(&engine->mappings) + cow_load_relaxed(&engine->live_views) + 1;
}

/* Whether `needed` more mappings do not fit. Faults in flight may each be two over the budget until
 * they evict (they map first when their own segment holds the mappings), which is no reason to
 * refuse an API call: it is allowed for here. */
static int cow_over_budget(cow_engine_t *engine, int64_t needed, int64_t budget)
{
    int64_t in_flight = cow_load_relaxed(&engine->faults_in_flight);
    return cow_engine_mappings(engine) + needed > budget + 2 * in_flight;
}

static int cow_segment_mapped(const cow_view_t *view, uint64_t first, uint64_t end)
{
    for (uint64_t word = first >> 6; word < (end + 63) >> 6; word++)
        if (view->mapped_bits[word] != 0)
            return 1;
    return 0;
}

int64_t cow_segment_unmap_growth(cow_view_t *view, uint32_t segment)
{
    uint64_t first = (uint64_t)segment << COW_LEAF_SHIFT;
    uint64_t end = first + COW_LEAF_PAGES < view->page_count ? first + COW_LEAF_PAGES : view->page_count;
    if (!cow_segment_mapped(view, first, end))
        return 0;
    /* Unmapped, the segment starts a mapping if the page before it is mapped (or it is the first
     * segment), and ends one if the page after it is mapped. */
    int64_t after = (first == 0 || cow_is_mapped(view, first - 1)) +
                    (end < view->page_count && cow_is_mapped(view, end));
    return after - cow_boundaries(view, first, end);
}

int cow_segment_unmap(cow_view_t *view, uint32_t segment)
{
    uint64_t first = (uint64_t)segment << COW_LEAF_SHIFT;
    uint64_t end = first + COW_LEAF_PAGES < view->page_count ? first + COW_LEAF_PAGES : view->page_count;
    if (!cow_segment_mapped(view, first, end))
        return 0;
    int64_t before = cow_boundaries(view, first, end);
    int error = cow_os_reserve_fixed(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT);
    if (error != 0)
        return error;
    for (uint64_t p = first; p < end; p++) {
        cow_bit_clear(view->mapped_bits, p);
        cow_bit_clear(view->writable_bits, p);
    }
    cow_mappings_add(view, cow_boundaries(view, first, end) - before);
    return 0;
}

/* Unmaps the unpinned pages of one segment - all of it, or the runs between the pages prepared for
 * the kernel (a pinned segment must not keep a whole fragmented segment mapped) - if that changes
 * the mapping count by at most `max_growth`. The caller holds the view's lock and the segment's
 * guard (or the view's write lock). Returns 1 if it did. */
int cow_segment_evict(cow_view_t *view, uint32_t segment, int64_t max_growth)
{
    uint64_t first = (uint64_t)segment << COW_LEAF_SHIFT;
    uint64_t end = first + COW_LEAF_PAGES < view->page_count ? first + COW_LEAF_PAGES : view->page_count;
    if (!cow_segment_mapped(view, first, end))
        return 0;
    /* Without pins the loop below is one run: the whole segment in one PROT_NONE mapping. */
    int64_t before = cow_boundaries(view, first, end);
    if (cow_boundaries_if_evicted(view, first, end) - before > max_growth)
        return 0;
    int unmapped_any = 0;
    for (uint64_t page = first; page < end;) {
        if (cow_bit(view->pinned_bits, page)) {
            page++;
            continue;
        }
        uint64_t run_end = page;
        int mapped = 0;
        while (run_end < end && !cow_bit(view->pinned_bits, run_end))
            mapped |= cow_is_mapped(view, run_end++);
        if (mapped) {
            if (cow_os_reserve_fixed(cow_page_address(view, page), (run_end - page) << COW_PAGE_SHIFT) != 0)
                break; /* the runs unmapped so far are accounted for below; the rest stay mapped */
            for (uint64_t p = page; p < run_end; p++) {
                cow_bit_clear(view->mapped_bits, p);
                cow_bit_clear(view->writable_bits, p);
            }
            unmapped_any = 1;
        }
        page = run_end;
    }
    cow_mappings_add(view, cow_boundaries(view, first, end) - before);
    if (unmapped_any)
        cow_add(&view->engine->evictions, 1u);
    return unmapped_any;
}

static uint64_t cow_recent_key(const cow_view_t *view, uint32_t segment)
{
    return (((uint64_t)view->index << 32) | segment) + 1;
}

void cow_note_fault(cow_view_t *view, uint32_t segment)
{
    cow_engine_t *engine = view->engine;
    uint32_t slot = __atomic_fetch_add(&engine->recent_next, 1u, __ATOMIC_RELAXED) & 7u;
    cow_store_relaxed(&engine->recent_faults[slot], cow_recent_key(view, segment));
}

static int cow_recently_faulted(cow_engine_t *engine, const cow_view_t *view, uint32_t segment)
{
    uint64_t key = cow_recent_key(view, segment);
    for (int i = 0; i < 8; i++)
        if (cow_load_relaxed(&engine->recent_faults[i]) == key)
            return 1;
    return 0;
}

void cow_evict_to(cow_engine_t *engine, int64_t target)
{
    cow_evict_to_except(engine, target, NULL, 0);
}

/* Advances the eviction clock up to `limit` (view, segment) steps, evicting until the engine uses at
 * most `target` mappings. `wait`: wait for a busy view lock (only for callers that hold no view
 * lock), else skip that view. The caller must not hold a segment guard. */
static void cow_evict_scan(cow_engine_t *engine, int64_t target, const cow_view_t *keep_view,
                           uint32_t keep_segment, int wait, uint64_t limit)
{
    cow_process_t *process = cow_process();
    if (process == NULL)
        return;
    for (uint64_t scanned = 0; scanned < limit && cow_engine_mappings(engine) > target; scanned++) {
        /* Advance the clock over the engine's live views. The list may change under us (it is
         * read without its lock); every entry is a valid view index, and the view is checked
         * under its own lock before anything is done to it. */
        uint32_t views = cow_load_relaxed(&engine->live_count);
        if (views == 0)
            return;
        uint32_t position = cow_load_relaxed(&engine->evict_view) % views;
        uint32_t index = cow_load_relaxed(&engine->live_list[position]);
        uint32_t segment = cow_load_relaxed(&engine->evict_segment);
        if (index >= process->view_capacity)
            continue;
        cow_view_t *view = &process->views[index];
        if (cow_load_relaxed(&view->engine) != engine || cow_load_acquire(&view->state) != COW_VIEW_LIVE ||
            segment >= cow_load_relaxed(&view->segment_count)) {
            cow_store_relaxed(&engine->evict_view, (position + 1) % views);
            cow_store_relaxed(&engine->evict_segment, 0u);
            continue;
        }
        cow_store_relaxed(&engine->evict_segment, segment + 1);
        if ((view == keep_view && segment == keep_segment) || cow_recently_faulted(engine, view, segment))
            continue; /* a segment a fault just mapped: evicting it could fault again, forever */
        if (wait)
            cow_read_lock(&view->lock);
        else if (!cow_read_trylock(&view->lock))
            continue;
        if (view->state == COW_VIEW_LIVE && view->engine == engine && segment < view->segment_count) {
            /* Waiting for a segment guard is always safe: its holders never wait for anything
             * (they make a few system calls and release it), whatever locks the caller holds.
             * Concurrent faults hold guards most of the time, so trying would skip most
             * segments under load. */
            cow_segment_guard_t guard;
            cow_segment_lock(view, segment, &guard);
            cow_segment_evict(view, segment, COW_EVICT_SWEEP_GROWTH);
            cow_segment_unlock(&guard);
        }
        cow_read_unlock(&view->lock);
    }
}

void cow_evict_to_except(cow_engine_t *engine, int64_t target, const cow_view_t *keep_view,
                         uint32_t keep_segment)
{
    cow_evict_scan(engine, target, keep_view, keep_segment, 0, COW_EVICT_SCAN_LIMIT);
}

int cow_make_room_holding(cow_engine_t *engine, int64_t needed, cow_view_t *held)
{
    if (cow_make_room(engine, needed) == 0)
        return 0;
    /* Eviction could not touch the view whose write lock the caller holds: it may be the one
     * holding the mappings (a fragmented view being snapshotted). Its segments need no guard. */
    int64_t budget = cow_load_relaxed(&engine->mapping_budget);
    for (uint32_t g = 0; g < held->segment_count && cow_engine_mappings(engine) + needed > budget; g++)
        cow_segment_evict(held, g, COW_EVICT_SWEEP_GROWTH);
    return cow_over_budget(engine, needed, budget) ? EDQUOT : 0;
}

int cow_make_room(cow_engine_t *engine, int64_t needed)
{
    int64_t budget = cow_load_relaxed(&engine->mapping_budget);
    if (budget <= 0 || cow_engine_mappings(engine) + needed <= budget)
        return 0;
    /* Eviction only tries view locks, and concurrent snapshots hold some of them: give it a few
     * passes before refusing the operation. */
    for (int pass = 0; pass < 8 && cow_engine_mappings(engine) + needed > budget; pass++) {
        if (pass != 0)
            sched_yield();
        cow_evict_to(engine, budget - needed - budget / 16);
    }
    return cow_over_budget(engine, needed, budget) ? EDQUOT : 0;
}

int cow_make_room_unlocked(cow_engine_t *engine, int64_t needed)
{
    int64_t budget = cow_load_relaxed(&engine->mapping_budget);
    if (budget <= 0 || cow_engine_mappings(engine) + needed <= budget)
        return 0;
    cow_evict_to(engine, budget - needed - budget / 16);
    if (cow_engine_mappings(engine) + needed <= budget)
        return 0;
    /* Busy locks kept the cheap pass from making room: go round every segment of every live view
     * once more (twice the count, as the clock may start mid-view), waiting for each. */
    cow_process_t *process = cow_process();
    uint64_t segments = 0;
    uint32_t views = cow_load_relaxed(&engine->live_count);
    for (uint32_t i = 0; i < views; i++) {
        uint32_t index = cow_load_relaxed(&engine->live_list[i]);
        if (process != NULL && index < process->view_capacity)
            segments += cow_load_relaxed(&process->views[index].segment_count);
    }
    cow_evict_scan(engine, budget - needed - budget / 16, NULL, 0, 1, 2 * segments + views + 1);
    return cow_over_budget(engine, needed, budget) ? EDQUOT : 0;
}
