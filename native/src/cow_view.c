/*
 * cow_view.c - the mutations of views: create a region, snapshot, dispose, prepare for write, and
 * the read-only queries. Each runs as one native call and holds the view's lock for its whole
 * mutation, so a fault on the view either completes before it or starts after it.
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

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

/* First page >= from whose bit is set (or `end`). */
static uint64_t cow_next_set(const uint64_t *bits, uint64_t from, uint64_t end)
{
    while (from < end) {
        uint64_t word = bits[from >> 6] >> (from & 63);
        if (word != 0) {
            from += (uint64_t)__builtin_ctzll(word);
            return from < end ? from : end;
        }
        from = (from | 63) + 1;
    }
    return end;
}

/* First page >= from whose bit is clear (or `end`). */
static uint64_t cow_next_clear(const uint64_t *bits, uint64_t from, uint64_t end)
{
    while (from < end) {
        uint64_t word = ~bits[from >> 6] >> (from & 63);
        if (word != 0) {
            from += (uint64_t)__builtin_ctzll(word);
            return from < end ? from : end;
        }
        from = (from | 63) + 1;
    }
    return end;
}

/* Write-protects every writable run of a view; the caller holds its write lock. Costs one mprotect
 * per writable run (the pages written since the last freeze), not the view's size. If a call
 * fails, the runs before it are recorded as protected and the rest keep their bits, so the bits
 * always say exactly which pages are writable. */
static int cow_freeze(cow_view_t *view, uint64_t *pages_out)
{
    uint64_t page = 0, frozen = 0;
    for (;;) {
        uint64_t first = cow_next_set(view->writable_bits, page, view->page_count);
        if (first == view->page_count)
            break;
        uint64_t end = cow_next_clear(view->writable_bits, first, view->page_count);
        int64_t before = cow_boundaries(view, first, end);
        int error = cow_os_protect(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT, 0);
        if (error != 0)
            return error;
        for (uint64_t p = first; p < end; p++)
            cow_bit_clear(view->writable_bits, p);
        cow_mappings_add(view, cow_boundaries(view, first, end) - before);
        frozen += end - first;
        page = end;
    }
    if (pages_out != NULL)
        *pages_out = frozen;
    return 0;
}

/* Takes the write (or read) locks of two views in index order, so two operations on the same pair
 * can never wait for each other. */
static void cow_lock_pair(cow_view_t *a, cow_view_t *b, int write)
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

static void cow_unlock_pair(cow_view_t *a, cow_view_t *b, int write)
{
    if (write) {
        cow_write_unlock(&a->lock);
        cow_write_unlock(&b->lock);
    } else {
        cow_read_unlock(&a->lock);
        cow_read_unlock(&b->lock);
    }
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

int cow_region_create(cow_view_t *view, int track_writes)
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
        error = cow_map_runs(view, !track_writes);
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

    /* Set exactly the bits of pages [0, page_count): the boundary scans read them. */
    memset(view->mapped_bits, 0, cow_bitmap_words(view) * sizeof(uint64_t));
    memset(view->writable_bits, 0, cow_bitmap_words(view) * sizeof(uint64_t));
    for (uint64_t page = 0; page < view->page_count; page++) {
        cow_bit_set(view->mapped_bits, page);
        if (!track_writes)
            cow_bit_set(view->writable_bits, page);
    }
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
    /* Freezing only merges mappings; the target starts as one PROT_NONE run. */
    if (mapping_budget >= 0 && cow_load_relaxed(&engine->mappings) + 1 > mapping_budget) {
        cow_write_unlock(&source->lock);
        return EDQUOT;
    }

    /* The cut: when a run's mprotect returns, the kernel has flushed every CPU's TLB, so a write to
     * it faults and waits for our lock; everything written before is in the shared slots. */
    int error = cow_freeze(source, NULL);
    if (error != 0) {
        cow_write_unlock(&source->lock);
        return error;
    }
    for (uint32_t g = 0; g < source->segment_count; g++) {
        target->leaves[g] = source->leaves[g];
        cow_add(&engine->leaf_refcounts[source->leaves[g]], 1u);
        target->write_chunks[g] = COW_NONE;
    }
    /* The target maps nothing yet: each run is mapped when first touched (cow_map_for_read). */
    memset(target->mapped_bits, 0, cow_bitmap_words(target) * sizeof(uint64_t));
    memset(target->writable_bits, 0, cow_bitmap_words(target) * sizeof(uint64_t));
    target->mappings = 1;
    cow_add(&engine->mappings, 1);
    cow_add(&engine->snapshots, 1u);
    cow_write_unlock(&source->lock);
    cow_view_go_live(target);
    return 0;
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

/* A page of a segment being restored needs a new mapping if it is mapped and either its slot
 * changes or it is writable (every page of the restored segment ends read-only and shared). */
static int cow_restore_selects(cow_view_t *view, uint64_t page, const uint32_t *a, const uint32_t *b)
{
    uint32_t i = (uint32_t)(page & (COW_LEAF_PAGES - 1));
    return cow_is_mapped(view, page) && (a[i] != b[i] || cow_is_writable(view, page));
}

/* Maps the selected pages of [first, end) (one segment) onto `to` entries: read-only, or with the
 * protection the bits record when keep_class (undoing). One call per run of contiguous slots.
 * *done_out is the first page not handled when a call fails. */
static int cow_restore_map(cow_view_t *view, uint64_t first, uint64_t end, const uint32_t *to,
                           const uint32_t *from, int keep_class, uint64_t *done_out)
{
    uint64_t page = first;
    while (page < end) {
        if (!cow_restore_selects(view, page, to, from)) {
            page++;
            continue;
        }
        int writable = keep_class && cow_is_writable(view, page);
        uint64_t run_end = page + 1;
        while (run_end < end && cow_restore_selects(view, run_end, to, from) &&
               to[run_end & (COW_LEAF_PAGES - 1)] == to[(run_end - 1) & (COW_LEAF_PAGES - 1)] + 1 &&
               (keep_class && cow_is_writable(view, run_end)) == writable)
            run_end++;
        int error = cow_os_map_slots(cow_page_address(view, page), (run_end - page) << COW_PAGE_SHIFT,
                                     writable, view->engine->memfd,
                                     (uint64_t)to[page & (COW_LEAF_PAGES - 1)] << COW_PAGE_SHIFT);
        if (error != 0) {
            *done_out = page;
            return error;
        }
        page = run_end;
    }
    *done_out = end;
    return 0;
}

static uint64_t cow_segment_end(const cow_view_t *view, uint32_t segment)
{
    uint64_t end = ((uint64_t)segment + 1) << COW_LEAF_SHIFT;
    return end < view->page_count ? end : view->page_count;
}

/* The boundary positions a changed segment accounts for: its own pages, and the first page of the
 * next segment only if that one does not change too (else the next segment counts it), so that
 * the counts before and after see each position once, in its initial and in its final state. */
static uint64_t cow_restore_last_position(cow_view_t *view, cow_view_t *source, uint32_t segment)
{
    uint64_t end = cow_segment_end(view, segment);
    int next_changes = segment + 1 < view->segment_count &&
                       view->leaves[segment + 1] != source->leaves[segment + 1];
    return next_changes ? end - 1 : end;
}

int cow_view_restore(cow_view_t *view, cow_view_t *source, int64_t mapping_budget)
{
    if (!cow_view_shape_is_valid(view) || !cow_view_shape_is_valid(source) ||
        view->engine != source->engine || view->page_count != source->page_count)
        return EINVAL;
    if (view == source)
        return 0;
    cow_engine_t *engine = view->engine;
    cow_lock_pair(view, source, 1);
    if (view->state != COW_VIEW_LIVE || source->state != COW_VIEW_LIVE) {
        cow_unlock_pair(view, source, 1);
        return EINVAL;
    }
    /* The source's pages are about to be shared: write-protect the ones it wrote. */
    int error = cow_freeze(source, NULL);
    if (error != 0) {
        cow_unlock_pair(view, source, 1);
        return error;
    }

    /* Pass 1: the segments that differ, the mappings they count now, the runs they will remap. */
    int64_t before = 0, remapped = 0;
    for (uint32_t g = 0; g < view->segment_count; g++) {
        if (view->leaves[g] == source->leaves[g])
            continue;
        uint64_t first = (uint64_t)g << COW_LEAF_SHIFT, end = cow_segment_end(view, g);
        const uint32_t *old = cow_leaf_entries(engine, view->leaves[g]);
        const uint32_t *new = cow_leaf_entries(engine, source->leaves[g]);
        before += cow_boundaries(view, first, cow_restore_last_position(view, source, g));
        for (uint64_t p = first; p < end; p++)
            remapped += cow_restore_selects(view, p, new, old) && (p == first || !cow_restore_selects(view, p - 1, new, old));
    }
    if (mapping_budget >= 0 && cow_load_relaxed(&engine->mappings) + 2 * remapped > mapping_budget) {
        cow_unlock_pair(view, source, 1);
        return EDQUOT;
    }

    /* Pass 2: map the source's slots over the pages that change; undo everything on failure. */
    uint32_t failed_segment = view->segment_count;
    uint64_t failed_page = 0;
    for (uint32_t g = 0; g < view->segment_count && error == 0; g++) {
        if (view->leaves[g] == source->leaves[g])
            continue;
        error = cow_restore_map(view, (uint64_t)g << COW_LEAF_SHIFT, cow_segment_end(view, g),
                                cow_leaf_entries(engine, source->leaves[g]),
                                cow_leaf_entries(engine, view->leaves[g]), 0, &failed_page);
        if (error != 0)
            failed_segment = g;
    }
    if (error != 0) {
        for (uint32_t g = 0; g <= failed_segment && g < view->segment_count; g++) {
            if (view->leaves[g] == source->leaves[g])
                continue;
            uint64_t end = g == failed_segment ? failed_page : cow_segment_end(view, g), ignored;
            int undo = cow_restore_map(view, (uint64_t)g << COW_LEAF_SHIFT, end,
                                       cow_leaf_entries(engine, view->leaves[g]),
                                       cow_leaf_entries(engine, source->leaves[g]), 1, &ignored);
            if (undo != 0)
                cow_die("undoing a failed restore", undo);
        }
        cow_unlock_pair(view, source, 1);
        return error;
    }

    /* Pass 3: commit - share the source's leaves, drop ours; every restored page is read-only. */
    cow_release_batch_t batch;
    cow_batch_begin(&batch, engine);
    int64_t after = 0;
    for (uint32_t g = 0; g < view->segment_count; g++) {
        uint32_t old_leaf = view->leaves[g];
        if (old_leaf == source->leaves[g])
            continue;
        uint64_t first = (uint64_t)g << COW_LEAF_SHIFT, end = cow_segment_end(view, g);
        cow_add(&engine->leaf_refcounts[source->leaves[g]], 1u);
        cow_store_release(&view->leaves[g], source->leaves[g]);
        cow_leaf_release(&batch, old_leaf);
        for (uint64_t p = first; p < end; p++)
            cow_bit_clear(view->writable_bits, p);
        after += cow_boundaries(view, first, cow_restore_last_position(view, source, g));
    }
    cow_batch_flush(&batch);
    cow_mappings_add(view, after - before);
    cow_unlock_pair(view, source, 1);
    return 0;
}

int cow_view_diff(cow_view_t *a, cow_view_t *b, uint64_t *bits_out, uint64_t *count_out)
{
    *count_out = 0;
    if (!cow_view_shape_is_valid(a) || !cow_view_shape_is_valid(b) || a->engine != b->engine ||
        a->page_count != b->page_count)
        return EINVAL;
    if (a == b)
        return cow_load_acquire(&a->state) == COW_VIEW_LIVE ? 0 : EINVAL;
    cow_engine_t *engine = a->engine;
    cow_lock_pair(a, b, 0);
    if (a->state != COW_VIEW_LIVE || b->state != COW_VIEW_LIVE) {
        cow_unlock_pair(a, b, 0);
        return EINVAL;
    }
    uint64_t count = 0;
    for (uint32_t g = 0; g < a->segment_count; g++) {
        uint32_t leaf_a = cow_load_acquire(&a->leaves[g]), leaf_b = cow_load_acquire(&b->leaves[g]);
        if (leaf_a == leaf_b)
            continue; /* one leaf: identical pages, whatever the segment holds */
        const uint32_t *entries_a = cow_leaf_entries(engine, leaf_a);
        const uint32_t *entries_b = cow_leaf_entries(engine, leaf_b);
        uint64_t first = (uint64_t)g << COW_LEAF_SHIFT, end = cow_segment_end(a, g);
        for (uint64_t p = first; p < end; p++) {
            uint32_t i = (uint32_t)(p - first);
            if (cow_load_relaxed(&entries_a[i]) != cow_load_relaxed(&entries_b[i])) {
                cow_bit_set(bits_out, p);
                count++;
            }
        }
    }
    cow_unlock_pair(a, b, 0);
    *count_out = count;
    return 0;
}

int cow_view_take_dirty(cow_view_t *view, uint64_t *bits_out, uint64_t *count_out)
{
    *count_out = 0;
    if (!cow_view_shape_is_valid(view))
        return EINVAL;
    cow_write_lock(&view->lock);
    if (view->state != COW_VIEW_LIVE) {
        cow_write_unlock(&view->lock);
        return EINVAL;
    }
    memcpy(bits_out, view->writable_bits, cow_bitmap_words(view) * sizeof(uint64_t));
    int error = cow_freeze(view, count_out);
    cow_write_unlock(&view->lock);
    return error;
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
            stats->mapped_pages += (uint64_t)cow_is_mapped(view, page);
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
