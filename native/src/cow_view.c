/*
 * cow_view.c - the mutations of views: create a region, snapshot, dispose, prepare for write, and
 * the read-only queries. Each runs as one native call and holds the view's lock for its whole
 * mutation, so a fault on the view either completes before it or starts after it.
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

static uint64_t cow_bitmap_words(const cow_view_t *view)
{
    return (view->page_count + 63) / 64;
}

static int cow_view_shape_is_valid(const cow_view_t *view)
{
    cow_process_t *process = cow_process();
    if (process == NULL || view->engine == NULL || view->page_count == 0)
        return 0;
    if (view->segment_count != (view->page_count + COW_LEAF_PAGES - 1) >> COW_LEAF_SHIFT)
        return 0;
    if ((view->base & (COW_SEGMENT_SIZE - 1)) != 0 || view->base < process->arena_base ||
        view->base + ((uint64_t)view->segment_count << COW_SEGMENT_SHIFT) >
            process->arena_base + process->arena_size)
        return 0;
    return view->index < process->view_capacity && &process->views[view->index] == view;
}

/* Maps every run of pages with file-contiguous slots with one mmap. */
static int cow_map_runs(cow_view_t *view, int writable)
{
    uint64_t start = 0;
    while (start < view->page_count) {
        uint32_t first_slot = cow_slot_of(view, start);
        uint64_t end = start + 1;
        while (end < view->page_count && cow_slot_of(view, end) == first_slot + (end - start))
            end++;
        int error = cow_os_map_slots(cow_page_address(view, start), (end - start) << COW_PAGE_SHIFT,
                                     writable, view->engine->memfd,
                                     (uint64_t)first_slot << COW_PAGE_SHIFT);
        if (error != 0)
            return error;
        start = end;
    }
    return 0;
}

/* Mappings a view would have with every page read-only: runs of file-contiguous slots. */
static int64_t cow_read_only_runs(cow_view_t *view)
{
    int64_t runs = 1;
    uint32_t previous = cow_slot_of(view, 0);
    for (uint64_t page = 1; page < view->page_count; page++) {
        uint32_t current = cow_slot_of(view, page);
        if (current != previous + 1)
            runs++;
        previous = current;
    }
    return runs;
}

static void cow_view_go_live(cow_view_t *view)
{
    cow_write_lock(&view->lock);
    view->write_faults = 0;
    view->pages_copied = 0;
    view->state = COW_VIEW_LIVE;
    cow_write_unlock(&view->lock);
    cow_directory_publish(view, view->index + 1);
}

int cow_region_create(cow_view_t *view)
{
    if (!cow_view_shape_is_valid(view) || cow_load_acquire(&view->state) == COW_VIEW_LIVE)
        return EINVAL;
    cow_engine_t *engine = view->engine;
    uint32_t segments = view->segment_count;
    int error = cow_slots_reserve(engine, view->page_count);
    if (error != 0)
        return error;

    /* One run of chunks when possible (one mapping for the whole region), else chunk by chunk. */
    uint32_t first_chunk;
    if (cow_chunks_allocate_run(engine, segments, &first_chunk) == 0) {
        for (uint32_t g = 0; g < segments; g++)
            view->write_chunks[g] = first_chunk + g;
    } else {
        for (uint32_t g = 0; g < segments; g++)
            view->write_chunks[g] = COW_NONE;
        for (uint32_t g = 0; g < segments && error == 0; g++)
            error = cow_chunks_allocate_run(engine, 1, &view->write_chunks[g]);
    }

    uint64_t pages_given = 0;
    for (uint32_t g = 0; g < segments; g++)
        view->leaves[g] = COW_NONE;
    for (uint32_t g = 0; g < segments && error == 0; g++) {
        error = cow_leaf_allocate(engine, &view->leaves[g]);
        if (error != 0)
            break;
        uint32_t *entries = cow_leaf_entries(engine, view->leaves[g]);
        uint32_t chunk = view->write_chunks[g];
        for (uint32_t i = 0; i < COW_LEAF_PAGES; i++) {
            uint64_t page = ((uint64_t)g << COW_LEAF_SHIFT) + i;
            if (page < view->page_count) {
                uint32_t slot = (chunk << COW_LEAF_SHIFT) + i;
                entries[i] = slot;
                cow_store_release(&engine->slot_refcounts[slot], 1u);
                cow_add(&engine->chunk_live[chunk], 1u);
                pages_given++;
            } else {
                entries[i] = COW_NONE;
            }
        }
    }
    if (error == 0)
        error = cow_map_runs(view, 1);
    if (error != 0) {
        cow_release_batch_t batch;
        cow_batch_begin(&batch, engine);
        cow_os_reserve_fixed(view->base, view->page_count << COW_PAGE_SHIFT);
        for (uint32_t g = 0; g < segments; g++) {
            if (view->leaves[g] != COW_NONE)
                cow_leaf_release(&batch, view->leaves[g]);
            if (view->write_chunks[g] != COW_NONE)
                cow_chunk_release(&batch, view->write_chunks[g]);
        }
        cow_batch_flush(&batch);
        cow_sub(&engine->slots_in_use, view->page_count - pages_given);
        return error;
    }

    memset(view->writable_bits, 0xFF, cow_bitmap_words(view) * sizeof(uint64_t));
    view->mappings = cow_boundaries(view, 0, view->page_count - 1);
    cow_add(&engine->mappings, view->mappings);
    cow_view_go_live(view);
    return 0;
}

int cow_view_snapshot(cow_view_t *source, cow_view_t *target, int64_t mapping_budget)
{
    if (!cow_view_shape_is_valid(source) || !cow_view_shape_is_valid(target) ||
        source->engine != target->engine || source->page_count != target->page_count ||
        cow_load_acquire(&target->state) == COW_VIEW_LIVE)
        return EINVAL;
    cow_engine_t *engine = source->engine;
    cow_write_lock(&source->lock);
    if (source->state != COW_VIEW_LIVE) {
        cow_write_unlock(&source->lock);
        return EINVAL;
    }

    /* Both views will consist of the read-only runs of the source's slots. */
    int64_t runs = cow_read_only_runs(source);
    int64_t after = cow_load_relaxed(&engine->mappings) - source->mappings + 2 * runs;
    if (mapping_budget >= 0 && after > mapping_budget) {
        cow_write_unlock(&source->lock);
        return EDQUOT;
    }

    /* The cut: once mprotect returns, every CPU's write to the source faults (the kernel flushed
     * the TLBs), and the faults wait for our lock. Everything written before is in the slots. */
    int error = cow_os_protect(source->base, source->page_count << COW_PAGE_SHIFT, 0);
    memset(source->writable_bits, 0, cow_bitmap_words(source) * sizeof(uint64_t));
    if (error != 0) {
        /* Some mappings may be read-only now: harmless, the pages stay private and the next write
         * makes them writable again. Recount so the budget stays right. */
        int64_t now = cow_boundaries(source, 0, source->page_count - 1);
        cow_add(&engine->mappings, now - source->mappings);
        source->mappings = now;
        cow_write_unlock(&source->lock);
        return error;
    }

    for (uint32_t g = 0; g < source->segment_count; g++) {
        target->leaves[g] = source->leaves[g];
        cow_add(&engine->leaf_refcounts[source->leaves[g]], 1u);
        target->write_chunks[g] = COW_NONE;
    }
    memset(target->writable_bits, 0, cow_bitmap_words(target) * sizeof(uint64_t));
    error = cow_map_runs(target, 0);
    if (error != 0) {
        cow_release_batch_t batch;
        cow_batch_begin(&batch, engine);
        cow_os_reserve_fixed(target->base, target->page_count << COW_PAGE_SHIFT);
        for (uint32_t g = 0; g < target->segment_count; g++)
            cow_leaf_release(&batch, target->leaves[g]);
        cow_batch_flush(&batch);
    } else {
        cow_add(&engine->mappings, 2 * runs - source->mappings);
        source->mappings = runs;
        target->mappings = runs;
        cow_add(&engine->snapshots, 1u);
    }
    cow_write_unlock(&source->lock);
    if (error == 0)
        cow_view_go_live(target);
    return error;
}

int cow_view_dispose(cow_view_t *view)
{
    if (!cow_view_shape_is_valid(view))
        return EINVAL;
    cow_write_lock(&view->lock);
    if (view->state != COW_VIEW_LIVE) {
        cow_write_unlock(&view->lock);
        return EINVAL;
    }
    view->state = COW_VIEW_DISPOSED;
    cow_write_unlock(&view->lock);
    cow_directory_publish(view, 0);

    /* Unmap before the slots go back: a stray write after this point faults (and is passed on as
     * an access violation) instead of landing in a slot that another view may reuse. */
    cow_engine_t *engine = view->engine;
    int error = cow_os_reserve_fixed(view->base, view->page_count << COW_PAGE_SHIFT);
    if (error != 0)
        return error; /* leak the slots rather than let them be reused while still mapped */
    cow_add(&engine->mappings, -view->mappings);

    cow_release_batch_t batch;
    cow_batch_begin(&batch, engine);
    for (uint32_t g = 0; g < view->segment_count; g++) {
        cow_leaf_release(&batch, view->leaves[g]);
        if (view->write_chunks[g] != COW_NONE)
            cow_chunk_release(&batch, view->write_chunks[g]);
    }
    cow_batch_flush(&batch);
    view->mappings = 0;
    return 0;
}

int cow_view_prepare_write(cow_view_t *view, uint64_t first_page, uint64_t page_count)
{
    if (!cow_view_shape_is_valid(view) || first_page > view->page_count ||
        page_count > view->page_count - first_page)
        return EINVAL;
    cow_read_lock(&view->lock);
    if (view->state != COW_VIEW_LIVE) {
        cow_read_unlock(&view->lock);
        return EINVAL;
    }
    int error = 0;
    uint64_t page = first_page, end = first_page + page_count;
    while (page < end && error == 0) {
        uint32_t segment = (uint32_t)(page >> COW_LEAF_SHIFT);
        uint64_t segment_end = ((uint64_t)segment + 1) << COW_LEAF_SHIFT;
        uint32_t count = (uint32_t)((end < segment_end ? end : segment_end) - page);
        uint32_t *stripe = cow_stripe_for(view, segment);
        cow_resolve_result_t result;
        cow_spin_lock(stripe);
        error = cow_resolve_segment_range(view, page, count, 1, &result);
        cow_spin_unlock(stripe);
        page += count;
    }
    cow_read_unlock(&view->lock);
    return error;
}

int cow_view_stats(cow_view_t *view, cow_view_stats_t *stats)
{
    memset(stats, 0, sizeof *stats);
    if (!cow_view_shape_is_valid(view))
        return EINVAL;
    cow_read_lock(&view->lock);
    if (view->state != COW_VIEW_LIVE) {
        cow_read_unlock(&view->lock);
        return EINVAL;
    }
    cow_engine_t *engine = view->engine;
    for (uint32_t g = 0; g < view->segment_count; g++) {
        uint32_t leaf = cow_load_acquire(&view->leaves[g]);
        int leaf_private = cow_load_relaxed(&engine->leaf_refcounts[leaf]) == 1;
        const uint32_t *entries = cow_leaf_entries(engine, leaf);
        for (uint32_t i = 0; i < COW_LEAF_PAGES; i++) {
            uint64_t page = ((uint64_t)g << COW_LEAF_SHIFT) + i;
            if (page >= view->page_count)
                break;
            uint32_t slot = cow_load_relaxed(&entries[i]);
            if (leaf_private && cow_load_relaxed(&engine->slot_refcounts[slot]) == 1)
                stats->private_pages++;
            else
                stats->shared_pages++;
            stats->writable_pages += (uint64_t)cow_is_writable(view, page);
        }
    }
    stats->mappings = cow_load_relaxed(&view->mappings);
    stats->write_faults = cow_load_relaxed(&view->write_faults);
    stats->pages_copied = cow_load_relaxed(&view->pages_copied);
    cow_read_unlock(&view->lock);
    return 0;
}

int64_t cow_view_count_mappings(cow_view_t *view)
{
    if (!cow_view_shape_is_valid(view))
        return -EINVAL;
    cow_read_lock(&view->lock);
    int64_t count = view->state == COW_VIEW_LIVE ? cow_boundaries(view, 0, view->page_count - 1) : 0;
    cow_read_unlock(&view->lock);
    return count;
}

uint32_t cow_view_slot_of(cow_view_t *view, uint64_t page)
{
    if (!cow_view_shape_is_valid(view))
        return COW_NONE;
    cow_read_lock(&view->lock);
    uint32_t slot = view->state == COW_VIEW_LIVE && page < view->page_count ? cow_slot_of(view, page)
                                                                            : COW_NONE;
    cow_read_unlock(&view->lock);
    return slot;
}

int cow_engine_init(cow_engine_t *engine)
{
    if (engine->pool == NULL || engine->slot_refcounts == NULL || engine->chunk_live == NULL ||
        engine->chunk_free == NULL || engine->leaf_refcounts == NULL || engine->leaf_entries == NULL ||
        engine->leaf_free == NULL || engine->chunk_capacity == 0 || engine->leaf_capacity == 0 ||
        engine->chunk_capacity > (COW_NONE >> COW_LEAF_SHIFT) || engine->memfd < 0)
        return EINVAL;
    engine->alloc_lock = 0;
    engine->chunk_free_count = 0;
    engine->chunk_bump = 0;
    engine->leaf_free_count = 0;
    engine->leaf_bump = 0;
    return 0;
}
