/*
 * cow_budget.c - the mapping-budget policy: when to evict, which segments, and when to refuse.
 *
 * The kernel gives a process vm.max_map_count mappings, and every run of pages with a different
 * class or a non-contiguous slot is one. The engine treats its mappings as a cache of the page
 * table: when it would use more than its budget, it unmaps (evicts) whole 2 MiB segments of its
 * views - one PROT_NONE mapping each, which merges a fragmented segment's mappings into one - and
 * the next touch of a page maps its run again. Nothing is copied and no data moves.
 *
 * Victims come from a clock over (view, segment) across the engine's live views. What eviction may
 * wait for depends on what the caller holds (cow_budget_holder_t): view locks are only tried by a
 * caller that holds a view lock (waiting could deadlock behind a pending writer), and waited for by
 * a caller that holds none; segment guards are always waited for, because their holders never wait
 * for anything (they make a few system calls and release them).
 */
#include "cow_internal.h"

#include <errno.h>
#include <sched.h>

/* Every number of the policy, and why it is what it is. */
static const struct cow_budget_tunables {
    /* Evict down to budget - budget / headroom_divisor, not just to the budget: one eviction pass then
     * buys room for many faults instead of one. */
    int64_t headroom_divisor;
    /* Mappings one fault may add before it has evicted: a write in the middle of a read-only run
     * splits it in three. An API call is refused only if the engine would be over the budget by more
     * than this per fault in flight, since those faults evict as soon as they have mapped. */
    int64_t fault_growth;
    /* (view, segment) steps per clock pass: bounds the time one fault spends evicting. */
    uint64_t scan_limit;
    /* Passes for a caller holding a view's write lock: it can only try other views' locks, and
     * concurrent snapshots hold some of them for a moment; it yields between passes. */
    int holding_view_passes;
    /* A segment is evicted by a sweep if that changes the count by at most this. 0, not -1: a segment
     * that is one mapping between mapped neighbours gains nothing alone (its edges stay boundaries),
     * but the sweep goes on to the next one, which then borders PROT_NONE and gains. Without this,
     * views whose segments are one mapping each could never be evicted, however far over budget. */
    int64_t sweep_max_growth;
} cow_budget_tunables = {
    .headroom_divisor = 16,
    .fault_growth = 2,
    .scan_limit = 1024,
    .holding_view_passes = 8,
    .sweep_max_growth = 0,
};

/* ---- the recently faulted segments: eviction spares them, so an instruction that needs two
 * segments at once (a store across a 2 MiB edge), or a few threads' hot spots, cannot have one
 * fault undo another's mapping forever ---- */

static uint64_t cow_recent_key(const cow_view_t *view, uint32_t segment)
{
    return (((uint64_t)view->index << 32) | segment) + 1;
}

static void cow_note_fault(cow_view_t *view, uint32_t segment)
{
    cow_engine_t *engine = view->engine;
    uint32_t slot = __atomic_fetch_add(&engine->recent_next, 1u, __ATOMIC_RELAXED) % COW_RECENT_FAULTS;
    cow_store_relaxed(&engine->recent_faults[slot], cow_recent_key(view, segment));
}

static int cow_recently_faulted(cow_engine_t *engine, const cow_view_t *view, uint32_t segment)
{
    uint64_t key = cow_recent_key(view, segment);
    for (int i = 0; i < COW_RECENT_FAULTS; i++)
        if (cow_load_relaxed(&engine->recent_faults[i]) == key)
            return 1;
    return 0;
}

/* ---- evicting one segment ---- */

/* Unmaps the unpinned pages of a segment if that changes the count by at most `max_growth`; 1 if
 * it unmapped anything. The caller holds the view's lock and the segment's guard, or its write lock. */
static int cow_evict_segment(cow_view_t *view, uint32_t segment, int64_t max_growth)
{
    uint64_t first = cow_segment_first(segment), end = cow_segment_end(view, segment);
    if (cow_map_growth_if_unmapped(view, first, end, 0) > max_growth)
        return 0;
    int unmapped = 0;
    cow_map_unmap(view, first, end, 1, &unmapped); /* a failed call leaves the rest mapped: no harm */
    if (unmapped)
        cow_add(&view->engine->evictions, 1u);
    return unmapped;
}

/* What one step of the clock found. */
typedef enum cow_clock_step {
    COW_CLOCK_EMPTY,   /* the engine has no live view */
    COW_CLOCK_MOVED,   /* the clock moved on to the next view */
    COW_CLOCK_SEGMENT, /* (*view_out, *segment_out) is the next candidate */
} cow_clock_step_t;

static cow_clock_step_t cow_clock_next(cow_engine_t *engine, cow_process_t *process, cow_view_t **view_out,
                                       uint32_t *segment_out)
{
    /* The list may change under us (it is read without its lock); every entry is a valid view index,
     * and the view is checked under its own lock before anything is done to it. */
    uint32_t views = cow_load_relaxed(&engine->live_count);
    if (views == 0)
        return COW_CLOCK_EMPTY;
    uint32_t position = cow_load_relaxed(&engine->evict_view) % views;
    uint32_t index = cow_load_relaxed(&engine->live_list[position]);
    uint32_t segment = cow_load_relaxed(&engine->evict_segment);
    cow_view_t *view = index < process->view_capacity ? &process->views[index] : NULL;
    if (view == NULL || cow_load_relaxed(&view->engine) != engine || cow_load_acquire(&view->state) != COW_VIEW_LIVE ||
        segment >= cow_load_relaxed(&view->segment_count)) {
        cow_store_relaxed(&engine->evict_view, (position + 1) % views);
        cow_store_relaxed(&engine->evict_segment, 0u);
        return COW_CLOCK_MOVED;
    }
    cow_store_relaxed(&engine->evict_segment, segment + 1);
    *view_out = view;
    *segment_out = segment;
    return COW_CLOCK_SEGMENT;
}

/* Advances the clock up to `limit` steps, evicting until the engine uses at most `target` mappings.
 * `wait`: wait for a busy view lock (only for callers that hold none), else skip that view. */
static void cow_sweep(cow_engine_t *engine, int64_t target, const cow_budget_holder_t *holder, int wait, uint64_t limit)
{
    cow_process_t *process = cow_process();
    if (process == NULL)
        return;
    for (uint64_t step = 0; step < limit && cow_engine_mapping_count(engine) > target; step++) {
        cow_view_t *view = NULL;
        uint32_t segment = 0;
        cow_clock_step_t found = cow_clock_next(engine, process, &view, &segment);
        if (found == COW_CLOCK_EMPTY)
            return;
        if (found == COW_CLOCK_MOVED)
            continue;
        if ((holder->kind == COW_HOLDING_FAULT && view == holder->view && segment == holder->segment) ||
            cow_recently_faulted(engine, view, segment))
            continue; /* a segment a fault just mapped: evicting it could fault again, forever */
        if (wait)
            cow_read_lock(&view->lock);
        else if (!cow_read_trylock(&view->lock))
            continue;
        if (view->state == COW_VIEW_LIVE && view->engine == engine && segment < view->segment_count) {
            /* Waiting for a segment guard is always safe (see above); concurrent faults hold guards
             * most of the time, so trying them would skip most segments under load. */
            cow_segment_guard_t guard;
            cow_segment_lock(view, segment, &guard);
            cow_evict_segment(view, segment, cow_budget_tunables.sweep_max_growth);
            cow_segment_unlock(&guard);
        }
        cow_read_unlock(&view->lock);
    }
}

/* Segments the clock may have to visit to see every segment of every live view once (twice the
 * count, as the clock may start in the middle of a view). */
static uint64_t cow_full_sweep_length(cow_engine_t *engine)
{
    cow_process_t *process = cow_process();
    uint64_t segments = 0;
    uint32_t views = cow_load_relaxed(&engine->live_count);
    for (uint32_t i = 0; i < views; i++) {
        uint32_t index = cow_load_relaxed(&engine->live_list[i]);
        if (process != NULL && index < process->view_capacity)
            segments += cow_load_relaxed(&process->views[index].segment_count);
    }
    return 2 * segments + views + 1;
}

static int cow_fits(cow_engine_t *engine, int64_t needed, int64_t budget)
{
    return cow_engine_mapping_count(engine) + needed <= budget;
}

/* The refusal test for API calls: the faults in flight may each be fault_growth over the budget
 * until they evict, which is no reason to refuse. */
static int cow_fits_allowing_faults(cow_engine_t *engine, int64_t needed, int64_t budget)
{
    int64_t in_flight = cow_load_relaxed(&engine->faults_in_flight);
    return cow_fits(engine, needed, budget + cow_budget_tunables.fault_growth * in_flight);
}

int cow_budget_make_room(cow_engine_t *engine, int64_t needed, const cow_budget_holder_t *holder)
{
    int64_t budget = cow_load_relaxed(&engine->mapping_budget);
    if (budget <= 0 || cow_fits(engine, needed, budget))
        return 0;
    int64_t target = budget - needed - budget / cow_budget_tunables.headroom_divisor;
    switch (holder->kind) {
    case COW_HOLDING_FAULT:
        /* Recorded first: a store across a 2 MiB edge faults on each segment in turn, and neither
         * fault may evict the other's. */
        cow_note_fault(holder->view, holder->segment);
        cow_sweep(engine, target, holder, 0, cow_budget_tunables.scan_limit);
        return cow_fits(engine, needed, budget) ? 0 : EDQUOT;
    case COW_HOLDING_VIEW:
        for (int pass = 0; pass < cow_budget_tunables.holding_view_passes && !cow_fits(engine, needed, budget);
             pass++) {
            if (pass != 0)
                sched_yield();
            cow_sweep(engine, target, holder, 0, cow_budget_tunables.scan_limit);
        }
        /* The sweep could not touch the held view, which may be the one holding the mappings (a
         * fragmented view being snapshotted): its segments need no guard under its write lock. */
        for (uint32_t g = 0; g < holder->view->segment_count && !cow_fits(engine, needed, budget); g++)
            cow_evict_segment(holder->view, g, cow_budget_tunables.sweep_max_growth);
        return cow_fits_allowing_faults(engine, needed, budget) ? 0 : EDQUOT;
    case COW_HOLDING_NOTHING:
    default:
        cow_sweep(engine, target, holder, 0, cow_budget_tunables.scan_limit);
        if (!cow_fits(engine, needed, budget)) /* busy locks kept the cheap pass short: wait for them */
            cow_sweep(engine, target, holder, 1, cow_full_sweep_length(engine));
        return cow_fits_allowing_faults(engine, needed, budget) ? 0 : EDQUOT;
    }
}
