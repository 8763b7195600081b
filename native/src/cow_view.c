/*
 * cow_view.c - the life of a view: create a region, snapshot, dispose, and the freeze they share
 * (restore: cow_restore.c). Each runs as one native call and holds the view's lock for its whole mutation, so a fault
 * on the view either completes before it or starts after it.
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

int cow_view_shape_is_valid(const cow_view_t *view)
{
    cow_process_t *process = cow_process();
    if (process == NULL || view->engine == NULL || view->page_count == 0)
        return 0;
    if (view->segment_count != (view->page_count + COW_SEGMENT_PAGES - 1) >> COW_SEGMENT_PAGES_SHIFT)
        return 0;
    if ((view->base & (COW_SEGMENT_SIZE - 1)) != 0 || view->base < process->arena_base ||
        view->base + ((uint64_t)view->segment_count << COW_SEGMENT_SHIFT) > process->arena_base + process->arena_size)
        return 0;
    return view->index < process->view_capacity && &process->views[view->index] == view;
}

int cow_view_lock_live(cow_view_t *view, int write)
{
    if (!cow_view_shape_is_valid(view))
        return EINVAL;
    if (write)
        cow_write_lock(&view->lock);
    else
        cow_read_lock(&view->lock);
    if (view->state == COW_VIEW_LIVE)
        return 0;
    if (write)
        cow_write_unlock(&view->lock);
    else
        cow_read_unlock(&view->lock);
    return EINVAL;
}

/* ---- freezing ---- */

/* After a snapshot or TakeDirtyPages a new interval starts: nothing is dirty, nothing is pinned. */
static void cow_start_interval(cow_view_t *view)
{
    memset(view->dirty_bits, 0, cow_bitmap_words(view) * sizeof(uint64_t));
    memset(view->pinned_bits, 0, cow_bitmap_words(view) * sizeof(uint64_t));
}

int cow_view_freeze(cow_view_t *view, int new_interval)
{
    /* The cut: when a run's protection change returns, the kernel has flushed every CPU's TLB, so a
     * write to it faults and waits for our lock; everything written before is in the shared slots.
     * If a call fails, the dirty bits stay: the pages are still reported; and the operation is
     * refused, so the pages prepared for the kernel are made writable again. */
    int error = cow_map_protect_writable(view, NULL);
    if (error == 0 && new_interval)
        cow_start_interval(view);
    else if (error != 0)
        cow_view_thaw_pinned(view);
    return error;
}

static int cow_page_is_private(cow_view_t *view, uint64_t page)
{
    cow_engine_t *engine = view->engine;
    return cow_is_mapped(view, page) &&
           cow_load_acquire(&engine->leaf_refcounts[view->leaves[cow_segment_of(page)]]) == 1 &&
           cow_load_acquire(&engine->slot_refcounts[cow_slot_of(view, page)]) == 1;
}

void cow_view_thaw_pinned(cow_view_t *view)
{
    for (uint64_t page = 0;;) {
        uint64_t first = cow_bits_find(view->pinned_bits, page, view->page_count, 1);
        if (first == view->page_count)
            return;
        if (!cow_page_is_private(view, first)) {
            page = first + 1;
            continue;
        }
        uint64_t end = first + 1;
        while (end < view->page_count && cow_is_pinned(view, end) && cow_page_is_private(view, end))
            end++;
        uint64_t done;
        int failed_call;
        cow_map_pages(view, first, end, COW_CLASS_WRITE, NULL, 0, &done, &failed_call);
        for (uint64_t p = first; p < first + done; p++)
            cow_bit_set(view->dirty_bits, p); /* writable pages are always tracked as dirty */
        page = end;
    }
}

/* ---- region ---- */

void cow_view_begin_life(cow_view_t *view)
{
    view->incarnation++;
    view->base_view = 0;
    view->base_incarnation = 0;
    view->modifications = 0;
    view->base_modifications = 0;
}

void cow_view_set_base(cow_view_t *view, cow_view_t *base)
{
    /* Clears the changed pages: only the segments that have any (the view's arrays come zeroed). */
    for (uint64_t word = 0; word < (view->segment_count + 63u) / 64u; word++) {
        for (uint64_t bits = view->changed_segments[word]; bits != 0; bits &= bits - 1) {
            uint32_t segment = (uint32_t)(word * 64 + (uint64_t)__builtin_ctzll(bits));
            uint64_t first_word = cow_segment_first(segment) / 64,
                     end_word = (cow_segment_end(view, segment) + 63) / 64;
            memset(&view->changed_bits[first_word], 0, (end_word - first_word) * sizeof(uint64_t));
        }
        view->changed_segments[word] = 0;
    }
    view->base_view = base->index + 1;
    view->base_incarnation = base->incarnation;
    view->base_modifications = cow_load_relaxed(&base->modifications);
}

int cow_view_has_base(const cow_view_t *view, const cow_view_t *base)
{
    return view->base_view == base->index + 1 && view->base_incarnation == base->incarnation &&
           view->base_modifications == cow_load_relaxed(&base->modifications);
}

static void cow_view_go_live(cow_view_t *view)
{
    cow_engine_t *engine = view->engine;
    cow_spin_lock(&engine->alloc_lock);
    view->live_position = engine->live_count;
    engine->live_list[engine->live_count++] = view->index;
    cow_spin_unlock(&engine->alloc_lock);
    cow_add(&engine->live_views, 1);
    cow_write_lock(&view->lock);
    view->write_faults = 0;
    view->pages_copied = 0;
    view->state = COW_VIEW_LIVE;
    cow_write_unlock(&view->lock);
    cow_directory_publish(view, view->index + 1);
}

/* One run of consecutive chunks when possible (one mapping for the whole region), else one by one. */
static int cow_region_take_chunks(cow_view_t *view)
{
    uint32_t first_chunk;
    if (cow_chunks_allocate(view->engine, view->segment_count, &first_chunk) == 0) {
        for (uint32_t g = 0; g < view->segment_count; g++)
            view->write_chunks[g] = first_chunk + g;
        return 0;
    }
    for (uint32_t g = 0; g < view->segment_count; g++)
        view->write_chunks[g] = COW_NONE;
    int error = 0;
    for (uint32_t g = 0; g < view->segment_count && error == 0; g++)
        error = cow_chunks_allocate(view->engine, 1, &view->write_chunks[g]);
    return error;
}

/* Gives every segment a leaf whose entries are the segment's write chunk, slot i for page i. */
static int cow_region_fill_leaves(cow_view_t *view, uint64_t *pages_given)
{
    cow_engine_t *engine = view->engine;
    for (uint32_t g = 0; g < view->segment_count; g++)
        view->leaves[g] = COW_NONE;
    for (uint32_t g = 0; g < view->segment_count; g++) {
        int error = cow_leaf_allocate(engine, view, COW_NONE, &view->leaves[g]);
        if (error != 0)
            return error;
        uint32_t *entries = cow_leaf_entries(engine, view->leaves[g]);
        uint32_t chunk = view->write_chunks[g];
        for (uint32_t i = 0; i < COW_LEAF_ENTRIES; i++) {
            if (cow_segment_first(g) + i >= view->page_count) {
                entries[i] = COW_NONE;
                continue;
            }
            uint32_t slot = (chunk << COW_CHUNK_SLOTS_SHIFT) + i;
            entries[i] = slot;
            cow_store_release(&engine->slot_refcounts[slot], 1u);
            cow_add(&engine->chunk_live[chunk], 1u);
            (*pages_given)++;
        }
    }
    return 0;
}

static void cow_region_undo(cow_view_t *view, uint64_t pages_given)
{
    cow_engine_t *engine = view->engine;
    cow_release_batch_t batch;
    cow_batch_begin(&batch, engine);
    if (cow_map_release_view(view) != 0) {
        /* The range still maps the slots given to it: they must not be reused while it does. They stay
         * in use, and the owner never hands the range out again. */
        view->flags |= COW_VIEW_RANGE_KEPT;
        cow_sub(&engine->slots_in_use, view->page_count - pages_given);
        return;
    }
    for (uint32_t g = 0; g < view->segment_count; g++) {
        if (view->leaves[g] != COW_NONE)
            cow_leaf_release(&batch, view->leaves[g]);
        if (view->write_chunks[g] != COW_NONE)
            cow_chunk_release(&batch, view->write_chunks[g]);
    }
    cow_batch_flush(&batch);
    cow_sub(&engine->slots_in_use, view->page_count - pages_given);
}

int cow_region_create(cow_view_t *view, int track_writes)
{
    if (!cow_view_shape_is_valid(view) || cow_load_acquire(&view->state) == COW_VIEW_LIVE)
        return EINVAL;
    cow_engine_t *engine = view->engine;
    cow_budget_holder_t nothing = {COW_HOLDING_NOTHING, NULL, 0};
    int error = cow_budget_make_room(engine, 2, &nothing);
    if (error == 0)
        error = cow_slots_reserve(engine, view->page_count);
    if (error != 0)
        return error;
    cow_view_begin_life(view);
    /* Every bit clear: the range is one PROT_NONE mapping until it is mapped below. */
    size_t bytes = cow_bitmap_words(view) * sizeof(uint64_t);
    memset(view->mapped_bits, 0, bytes);
    memset(view->writable_bits, 0, bytes);
    memset(view->dirty_bits, 0, bytes);
    memset(view->pinned_bits, 0, bytes);
    memset(view->zero_bits, 0, bytes);
    memset(view->writable_segments, 0, ((view->segment_count + 63u) / 64u) * sizeof(uint64_t));
    cow_map_count_new_view(view);

    uint64_t pages_given = 0;
    int failed_call;
    error = cow_region_take_chunks(view);
    if (error == 0)
        error = cow_region_fill_leaves(view, &pages_given);
    /* Every page on the zero page: its slot is a hole, and reading it allocates nothing. The first
     * write to a page maps its slot writable in place of the zero page (no copy: the slot is the
     * region's own). */
    if (error == 0)
        error = cow_map_zero(view, 0, view->page_count, &failed_call);
    if (error != 0) {
        cow_region_undo(view, pages_given);
        return error;
    }
    view->flags = track_writes ? COW_VIEW_EXACT_WRITES : 0u;
    /* Without track_writes every page counts as dirty until the first freeze, and writes resolve
     * ahead (fault-around) - (exactly the bits of pages [0, page_count): the scans read whole words). */
    if (!track_writes) {
        memset(view->dirty_bits, 0xFF, bytes);
        if (view->page_count % 64 != 0)
            view->dirty_bits[cow_bitmap_words(view) - 1] = (1ull << (view->page_count % 64)) - 1;
    }
    cow_view_go_live(view);
    return 0;
}

/* ---- snapshot: of one view, or of several at one consistent cut ---- */

/* Whether no view appears twice among the sources and targets (a source locked twice would deadlock;
 * a target made twice would leak the first). */
static int cow_views_are_distinct(cow_view_t *const *sources, cow_view_t *const *targets, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        for (uint32_t j = 0; j < count; j++)
            if ((j > i && (sources[i] == sources[j] || targets[i] == targets[j])) || sources[i] == targets[j])
                return 0;
    return 1;
}

/* Write-locks every source in view-index order (docs/design.md, locking protocol: every operation that
 * locks several views takes them in that order, so two of them can never wait for each other). The
 * next one is found by a scan for the least index above the last one taken: no memory is needed, and
 * groups are small. Distinct entries of the view table have distinct indices. */
static void cow_sources_lock(cow_view_t *const *sources, uint32_t count)
{
    uint32_t last = 0;
    for (uint32_t k = 0; k < count; k++) {
        cow_view_t *next = NULL;
        for (uint32_t i = 0; i < count; i++)
            if ((k == 0 || sources[i]->index > last) && (next == NULL || sources[i]->index < next->index))
                next = sources[i];
        cow_write_lock(&next->lock);
        last = next->index;
    }
}

static void cow_sources_unlock(cow_view_t *const *sources, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        cow_write_unlock(&sources[i]->lock);
}

/* Room for `needed` mappings while holding the write locks of every source. Eviction with a view's
 * write lock held only tries other views' locks (so it skips the other sources, whose locks we hold)
 * and then evicts that view's own segments: asking once per held view lets it reach all of them. */
static int cow_sources_make_room(cow_engine_t *engine, cow_view_t *const *sources, uint32_t count, int64_t needed)
{
    int error = EDQUOT;
    for (uint32_t i = 0; i < count && error == EDQUOT; i++) {
        cow_budget_holder_t holding = {COW_HOLDING_VIEW, sources[i], 0};
        error = cow_budget_make_room(engine, needed, &holding);
    }
    return error;
}

/* The part of a snapshot that cannot fail: the frozen source's leaves are shared with the target.
 * Caller holds the source's write lock; the target goes LIVE afterwards (cow_view_go_live). */
static void cow_snapshot_share(cow_view_t *source, cow_view_t *target)
{
    cow_engine_t *engine = source->engine;
    cow_start_interval(source);
    for (uint32_t g = 0; g < source->segment_count; g++) {
        target->leaves[g] = source->leaves[g];
        cow_add(&engine->leaf_refcounts[source->leaves[g]], 1u);
        cow_leaf_hold(engine, source->leaves[g], target);
        target->write_chunks[g] = COW_NONE;
    }
    /* The target maps nothing yet (a FREE view's bitmaps come zeroed from its owner): each run is
     * mapped when first touched (cow_resolve_read). */
    cow_map_count_new_view(target);
    target->flags = 0;
    cow_view_begin_life(target);
    /* Equal now: each is the other's base until one of them changes. */
    cow_view_set_base(source, target);
    cow_view_set_base(target, source);
    cow_add(&engine->snapshots, 1u);
}

/* One attempt: EDQUOT when eviction under the sources' write locks (which only tries other locks)
 * could not make room; the caller then makes room without holding locks and tries again.
 *
 * The cut: every source is write-locked before any is frozen, and none is unlocked before all are
 * shared. A write to a source either completed before that source's freeze returned (it is in the
 * slots the target shares) or faults after it and waits for the source's lock, which is released
 * only after every freeze: so it completes after the whole cut, and so does everything its thread
 * (or any thread that saw it) does next. No write can be in one target while an earlier one is not. */
static int cow_views_snapshot_once(cow_view_t *const *sources, cow_view_t *const *targets, uint32_t count)
{
    cow_engine_t *engine = sources[0]->engine;
    int64_t needed = 2 * (int64_t)count; /* per target: one PROT_NONE run and a gap */
    cow_budget_holder_t nothing = {COW_HOLDING_NOTHING, NULL, 0};
    (void)cow_budget_make_room(engine, needed, &nothing); /* a first pass: the decision is taken under the locks */
    cow_sources_lock(sources, count);
    int error = 0;
    for (uint32_t i = 0; i < count; i++)
        if (sources[i]->state != COW_VIEW_LIVE)
            error = EINVAL;
    /* Freezing only merges mappings, so it comes first; the targets then need their runs and gaps. */
    uint32_t frozen = 0; /* sources whose freeze was attempted */
    while (error == 0 && frozen < count)
        error = cow_view_freeze(sources[frozen++], 0);
    if (error == 0)
        error = cow_sources_make_room(engine, sources, count, needed);
    if (error != 0) {
        /* Frozen (their dirty pages are still reported), contents untouched, no target changed. */
        for (uint32_t i = 0; i < frozen; i++)
            cow_view_thaw_pinned(sources[i]);
        cow_sources_unlock(sources, count);
        return error;
    }
    for (uint32_t i = 0; i < count; i++)
        cow_snapshot_share(sources[i], targets[i]);
    cow_sources_unlock(sources, count);
    for (uint32_t i = 0; i < count; i++)
        cow_view_go_live(targets[i]);
    return 0;
}

int cow_views_snapshot(cow_view_t *const *sources, cow_view_t *const *targets, uint32_t count)
{
    if (count == 0 || sources == NULL || targets == NULL)
        return EINVAL;
    for (uint32_t i = 0; i < count; i++)
        if (sources[i] == NULL || targets[i] == NULL || !cow_view_shape_is_valid(sources[i]) ||
            !cow_view_shape_is_valid(targets[i]) || sources[i]->engine != sources[0]->engine ||
            targets[i]->engine != sources[0]->engine || sources[i]->page_count != targets[i]->page_count ||
            cow_load_acquire(&targets[i]->state) == COW_VIEW_LIVE)
            return EINVAL;
    if (!cow_views_are_distinct(sources, targets, count))
        return EINVAL;
    int error = EDQUOT;
    for (int attempt = 0; attempt < COW_ROOM_ATTEMPTS && error == EDQUOT; attempt++)
        error = cow_views_snapshot_once(sources, targets, count);
    return error;
}

int cow_view_snapshot(cow_view_t *source, cow_view_t *target)
{
    /* A snapshot of one view is a group of one: one code path for both. */
    return cow_views_snapshot(&source, &target, 1);
}

/* ---- dispose ---- */

int cow_view_dispose(cow_view_t *view)
{
    if (cow_view_lock_live(view, 1) != 0)
        return EINVAL;
    view->state = COW_VIEW_DISPOSED;
    cow_write_unlock(&view->lock);
    /* Keep the range marked as this view's until it is reused: a touch of it is a use after
     * dispose, and the handler can then say so before passing the fault on. */
    cow_directory_publish(view, (view->index + 1) | COW_DIRECTORY_DISPOSED);
    cow_engine_t *engine = view->engine;
    cow_spin_lock(&engine->alloc_lock);
    uint32_t last = engine->live_list[--engine->live_count];
    engine->live_list[view->live_position] = last;
    cow_process()->views[last].live_position = view->live_position;
    cow_spin_unlock(&engine->alloc_lock);
    cow_sub(&engine->live_views, 1);

    /* Unmap before the slots go back: a stray write after this point faults (and is passed on as an
     * access violation) instead of landing in a slot that another view may reuse. */
    int error = cow_map_release_view(view);
    if (error != 0)
        return error; /* leak the slots rather than let them be reused while still mapped */
    cow_release_batch_t batch;
    cow_batch_begin_deferred(&batch, engine);
    for (uint32_t g = 0; g < view->segment_count; g++) {
        cow_leaf_unhold(engine, view->leaves[g], view);
        cow_leaf_release(&batch, view->leaves[g]);
        if (view->write_chunks[g] != COW_NONE)
            cow_chunk_release(&batch, view->write_chunks[g]);
    }
    cow_batch_flush(&batch);
    return 0;
}
