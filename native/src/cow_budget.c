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
 * Victims are chosen by a clock over (view, segment) across the process view table. Eviction never
 * blocks: every lock is tried, and a segment whose locks are busy, which has pages prepared for
 * writing, or whose unmapping would not lower the count, is skipped.
 */
#include "cow_internal.h"

#include <errno.h>
#include <sched.h>

#define COW_EVICT_SCAN_LIMIT 1024u

int64_t cow_engine_mappings(cow_engine_t *engine)
{
    return cow_load_relaxed(&engine->mappings) + cow_load_relaxed(&engine->live_views) + 1;
}

static int cow_segment_pinned(const cow_view_t *view, uint64_t first, uint64_t end)
{
    for (uint64_t word = first >> 6; word < (end + 63) >> 6; word++)
        if (view->pinned_bits[word] != 0)
            return 1;
    return 0;
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

/* Unmaps one segment if that lowers the mapping count; the caller holds the view's lock and the
 * segment's stripe (or the view's write lock). Returns 1 if it did. */
int cow_segment_evict(cow_view_t *view, uint32_t segment)
{
    uint64_t first = (uint64_t)segment << COW_LEAF_SHIFT;
    uint64_t end = first + COW_LEAF_PAGES < view->page_count ? first + COW_LEAF_PAGES : view->page_count;
    if (!cow_segment_mapped(view, first, end) || cow_segment_pinned(view, first, end))
        return 0;
    if (cow_segment_unmap_growth(view, segment) >= 0)
        return 0;
    if (cow_segment_unmap(view, segment) != 0)
        return 0;
    cow_add(&view->engine->evictions, 1u);
    return 1;
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

void cow_evict_to_except(cow_engine_t *engine, int64_t target, const cow_view_t *keep_view,
                         uint32_t keep_segment)
{
    cow_process_t *process = cow_process();
    if (process == NULL)
        return;
    for (uint32_t scanned = 0; scanned < COW_EVICT_SCAN_LIMIT && cow_engine_mappings(engine) > target; scanned++) {
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
        if (!cow_read_trylock(&view->lock))
            continue;
        if (view->state == COW_VIEW_LIVE && view->engine == engine && segment < view->segment_count) {
            uint32_t *stripe = cow_stripe_for(view, segment);
            if (cow_spin_trylock(stripe)) {
                cow_segment_evict(view, segment);
                cow_spin_unlock(stripe);
            }
        }
        cow_read_unlock(&view->lock);
    }
}

int cow_make_room_holding(cow_engine_t *engine, int64_t needed, cow_view_t *held)
{
    if (cow_make_room(engine, needed) == 0)
        return 0;
    /* Eviction could not touch the view whose write lock the caller holds: it may be the one
     * holding the mappings (a fragmented view being snapshotted). Its segments need no stripe. */
    int64_t budget = cow_load_relaxed(&engine->mapping_budget);
    for (uint32_t g = 0; g < held->segment_count && cow_engine_mappings(engine) + needed > budget; g++)
        cow_segment_evict(held, g);
    return cow_engine_mappings(engine) + needed <= budget ? 0 : EDQUOT;
}

int cow_make_room(cow_engine_t *engine, int64_t needed)
{
    int64_t budget = cow_load_relaxed(&engine->mapping_budget);
    if (budget <= 0 || cow_engine_mappings(engine) + needed <= budget)
        return 0;
    /* Eviction only tries locks, and concurrent faults hold some of them for microseconds: give it
     * a few passes before refusing the operation. */
    for (int pass = 0; pass < 8 && cow_engine_mappings(engine) + needed > budget; pass++) {
        if (pass != 0)
            sched_yield();
        cow_evict_to(engine, budget - needed - budget / 16);
    }
    return cow_engine_mappings(engine) + needed <= budget ? 0 : EDQUOT;
}
