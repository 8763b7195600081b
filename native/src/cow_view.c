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
                                     writable, 0, view->engine->memfd,
                                     (uint64_t)first_slot << COW_PAGE_SHIFT);
        if (error != 0)
            return error;
        start = end;
    }
    return 0;
}

static void cow_bits_clear_all(cow_view_t *view)
{
    size_t bytes = cow_bitmap_words(view) * sizeof(uint64_t);
    memset(view->mapped_bits, 0, bytes);
    memset(view->writable_bits, 0, bytes);
    memset(view->dirty_bits, 0, bytes);
    memset(view->pinned_bits, 0, bytes);
}

/* After a snapshot or TakeDirtyPages a new interval starts: nothing is dirty, nothing is pinned. */
static void cow_start_interval(cow_view_t *view)
{
    memset(view->dirty_bits, 0, cow_bitmap_words(view) * sizeof(uint64_t));
    memset(view->pinned_bits, 0, cow_bitmap_words(view) * sizeof(uint64_t));
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

/* Write-protects every writable run of a view and starts a new dirty interval; the caller holds
 * its write lock. Costs one mprotect per writable run (the pages written since the last freeze),
 * not the view's size. If a call fails, the runs before it are recorded as protected and the rest
 * keep their bits (dirty bits included), so the bits always say exactly which pages are writable. */
static int cow_freeze(cow_view_t *view, int new_interval, uint64_t *pages_out)
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
    if (new_interval)
        cow_start_interval(view);
    if (pages_out != NULL)
        *pages_out = frozen;
    return 0;
}

/* Makes the pinned (prepared) private pages writable again after a freeze whose operation was
 * refused, so mprotect suffices. Caller holds the write lock. */
static int cow_page_is_private(cow_view_t *view, uint64_t page)
{
    cow_engine_t *engine = view->engine;
    return cow_is_mapped(view, page) &&
           cow_load_acquire(&engine->leaf_refcounts[view->leaves[page >> COW_LEAF_SHIFT]]) == 1 &&
           cow_load_acquire(&engine->slot_refcounts[cow_slot_of(view, page)]) == 1;
}

static void cow_unfreeze_pinned(cow_view_t *view)
{
    uint64_t page = 0;
    for (;;) {
        /* Pinned pages that are private (prepared for reading, a page may be shared: those stay
         * read-only, as they were). */
        uint64_t first = cow_next_set(view->pinned_bits, page, view->page_count);
        if (first == view->page_count)
            return;
        if (!cow_page_is_private(view, first)) {
            page = first + 1;
            continue;
        }
        uint64_t end = first + 1;
        while (end < view->page_count && cow_bit(view->pinned_bits, end) && cow_page_is_private(view, end))
            end++;
        int64_t before = cow_boundaries(view, first, end);
        if (cow_os_protect(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT, 1) == 0) {
            for (uint64_t p = first; p < end; p++) {
                cow_bit_set(view->writable_bits, p);
                cow_bit_set(view->dirty_bits, p); /* writable pages are always tracked as dirty */
            }
            cow_mappings_add(view, cow_boundaries(view, first, end) - before);
        }
        page = end;
    }
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

int cow_region_create(cow_view_t *view, int track_writes)
{
    if (!cow_view_shape_is_valid(view) || cow_load_acquire(&view->state) == COW_VIEW_LIVE)
        return EINVAL;
    cow_engine_t *engine = view->engine;
    uint32_t segments = view->segment_count;
    int error = cow_make_room_unlocked(engine, 2);
    if (error != 0)
        return error;
    error = cow_slots_reserve(engine, view->page_count);
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
    cow_bits_clear_all(view);
    for (uint64_t page = 0; page < view->page_count; page++) {
        cow_bit_set(view->mapped_bits, page);
        if (!track_writes) {
            cow_bit_set(view->writable_bits, page);
            cow_bit_set(view->dirty_bits, page);
        }
    }
    view->mappings = cow_boundaries(view, 0, view->page_count - 1);
    cow_add(&engine->mappings, view->mappings);
    cow_view_go_live(view);
    return 0;
}

/* How often Snapshot and RestoreTo make room without locks and try again before they refuse. */
#define COW_ROOM_ATTEMPTS 4

/* One attempt: EDQUOT when eviction under the source's write lock (which only tries other locks)
 * could not make room; the caller then makes room without holding locks and tries again. */
static int cow_view_snapshot_once(cow_view_t *source, cow_view_t *target)
{
    if (!cow_view_shape_is_valid(source) || !cow_view_shape_is_valid(target) ||
        source->engine != target->engine || source->page_count != target->page_count ||
        cow_load_acquire(&target->state) == COW_VIEW_LIVE)
        return EINVAL;
    cow_engine_t *engine = source->engine;
    cow_make_room_unlocked(engine, 2);
    cow_write_lock(&source->lock);
    if (source->state != COW_VIEW_LIVE) {
        cow_write_unlock(&source->lock);
        return EINVAL;
    }
    /* The cut: when a run's mprotect returns, the kernel has flushed every CPU's TLB, so a write to
     * it faults and waits for our lock; everything written before is in the shared slots. Freezing
     * only merges mappings, so it comes first; the target then needs one PROT_NONE run and a gap. */
    int error = cow_freeze(source, 0, NULL);
    if (error == 0) {
        error = cow_make_room_holding(engine, 2, source);
        if (error != 0)
            cow_unfreeze_pinned(source); /* refused: prepared pages must stay writable */
    }
    if (error != 0) {
        cow_write_unlock(&source->lock); /* frozen, but its dirty pages are still reported */
        return error;
    }
    cow_start_interval(source);
    for (uint32_t g = 0; g < source->segment_count; g++) {
        target->leaves[g] = source->leaves[g];
        cow_add(&engine->leaf_refcounts[source->leaves[g]], 1u);
        target->write_chunks[g] = COW_NONE;
    }
    /* The target maps nothing yet: each run is mapped when first touched (cow_map_for_read). */
    /* The target's bitmaps are zero already: a FREE view's arrays come zeroed from its owner. */
    target->mappings = 1;
    cow_add(&engine->mappings, 1);
    cow_add(&engine->snapshots, 1u);
    cow_write_unlock(&source->lock);
    cow_view_go_live(target);
    return 0;
}

int cow_view_snapshot(cow_view_t *source, cow_view_t *target)
{
    int error = EDQUOT;
    for (int attempt = 0; attempt < COW_ROOM_ATTEMPTS && error == EDQUOT; attempt++)
        error = cow_view_snapshot_once(source, target);
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
    /* Keep the range marked as this view's until it is reused: a touch of it is a use after
     * dispose, and the handler can then say so before passing the fault on. */
    cow_directory_publish(view, (view->index + 1) | COW_DIRECTORY_DISPOSED);
    cow_engine_t *owner = view->engine;
    cow_spin_lock(&owner->alloc_lock);
    uint32_t last = owner->live_list[--owner->live_count];
    owner->live_list[view->live_position] = last;
    cow_process()->views[last].live_position = view->live_position;
    cow_spin_unlock(&owner->alloc_lock);
    cow_sub(&owner->live_views, 1);

    /* Unmap before the slots go back: a stray write after this point faults (and is passed on as
     * an access violation) instead of landing in a slot that another view may reuse. */
    cow_engine_t *engine = view->engine;
    int error = cow_os_reserve_fixed(view->base, view->page_count << COW_PAGE_SHIFT);
    if (error != 0)
        return error; /* leak the slots rather than let them be reused while still mapped */
    cow_add(&engine->mappings, -view->mappings);

    cow_release_batch_t batch;
    cow_batch_begin_deferred(&batch, engine);
    for (uint32_t g = 0; g < view->segment_count; g++) {
        cow_leaf_release(&batch, view->leaves[g]);
        if (view->write_chunks[g] != COW_NONE)
            cow_chunk_release(&batch, view->write_chunks[g]);
    }
    cow_batch_flush(&batch);
    view->mappings = 0;
    return 0;
}

static uint64_t cow_segment_end(const cow_view_t *view, uint32_t segment)
{
    uint64_t end = ((uint64_t)segment + 1) << COW_LEAF_SHIFT;
    return end < view->page_count ? end : view->page_count;
}

/* One attempt; EDQUOT as for cow_view_snapshot_once. */
static int cow_view_restore_once(cow_view_t *view, cow_view_t *source)
{
    if (!cow_view_shape_is_valid(view) || !cow_view_shape_is_valid(source) ||
        view->engine != source->engine || view->page_count != source->page_count)
        return EINVAL;
    if (view == source)
        return 0;
    cow_engine_t *engine = view->engine;
    cow_make_room_unlocked(engine, 2);
    cow_lock_pair(view, source, 1);
    if (view->state != COW_VIEW_LIVE || source->state != COW_VIEW_LIVE) {
        cow_unlock_pair(view, source, 1);
        return EINVAL;
    }
    /* The source's pages are about to be shared: write-protect the ones it wrote (they stay dirty
     * for the source's own TakeDirtyPages). */
    int error = cow_freeze(source, 0, NULL);
    if (error != 0) {
        cow_unlock_pair(view, source, 1);
        return error;
    }

    /* Phase 1, which changes no contents: unmap every segment that will change. An unmapped page
     * is mapped again from the page table on its next touch, so whether this phase completes or
     * stops at an error, the view still holds its old contents. Unmapping a fragmented segment
     * lowers the mapping count; unmapping part of a larger mapping splits it (two more at most),
     * so room is made for those only. */
    for (uint32_t g = 0; g < view->segment_count && error == 0; g++) {
        if (view->leaves[g] == source->leaves[g])
            continue;
        int64_t growth = cow_segment_unmap_growth(view, g);
        if (growth > 0)
            error = cow_make_room_holding(engine, growth, view);
        if (error == 0)
            error = cow_segment_unmap(view, g);
    }
    if (error != 0) {
        cow_unlock_pair(view, source, 1);
        return error;
    }

    /* Phase 2, which cannot fail: share the source's leaves and drop ours. Pages whose slot changes
     * count as dirty: their contents may differ from the view's last snapshot. */
    cow_release_batch_t batch;
    cow_batch_begin_deferred(&batch, engine);
    for (uint32_t g = 0; g < view->segment_count; g++) {
        uint32_t old_leaf = view->leaves[g], new_leaf = source->leaves[g];
        if (old_leaf == new_leaf)
            continue;
        const uint32_t *old_entries = cow_leaf_entries(engine, old_leaf);
        const uint32_t *new_entries = cow_leaf_entries(engine, new_leaf);
        uint64_t first = (uint64_t)g << COW_LEAF_SHIFT, end = cow_segment_end(view, g);
        for (uint64_t p = first; p < end; p++) {
            if (old_entries[p - first] != new_entries[p - first])
                cow_bit_set(view->dirty_bits, p);
            cow_bit_clear(view->pinned_bits, p);
        }
        cow_add(&engine->leaf_refcounts[new_leaf], 1u);
        cow_store_release(&view->leaves[g], new_leaf);
        cow_leaf_release(&batch, old_leaf);
    }
    cow_batch_flush(&batch);
    cow_unlock_pair(view, source, 1);
    return 0;
}

int cow_view_restore(cow_view_t *view, cow_view_t *source)
{
    int error = EDQUOT;
    for (int attempt = 0; attempt < COW_ROOM_ATTEMPTS && error == EDQUOT; attempt++)
        error = cow_view_restore_once(view, source);
    return error;
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
    memcpy(bits_out, view->dirty_bits, cow_bitmap_words(view) * sizeof(uint64_t));
    uint64_t count = 0;
    for (uint64_t word = 0; word < cow_bitmap_words(view); word++)
        count += (uint64_t)__builtin_popcountll(bits_out[word]);
    int error = cow_freeze(view, 1, NULL);
    cow_write_unlock(&view->lock);
    *count_out = error == 0 ? count : 0;
    return error;
}

/* Prepares pages [first, first + count) of one segment for the kernel to write: private, writable,
 * pinned. Caller holds the view's read lock and the segment's guard. */
static int cow_prepare_segment_for_write(cow_view_t *view, uint64_t first, uint32_t count)
{
    cow_resolve_result_t result;
    return cow_resolve_segment_range(view, first, count, 1, &result);
}

/* Prepares pages of one segment for the kernel to read: mapped (read-only where they were not
 * mapped), pinned. Same locking. */
static int cow_prepare_segment_for_read(cow_view_t *view, uint64_t first, uint32_t count)
{
    for (uint64_t page = first; page < first + count; page++) {
        if (!cow_is_mapped(view, page)) {
            int error = cow_map_for_read(view, page); /* maps the whole untouched run around it */
            if (error != 0)
                return error;
        }
        cow_bit_set(view->pinned_bits, page);
    }
    return 0;
}

/* Runs a per-segment preparation over a page range, segment by segment under each segment's guard,
 * then lets eviction make room elsewhere (prepared pages are pinned). */
static int cow_view_prepare(cow_view_t *view, uint64_t first_page, uint64_t page_count,
                            int (*prepare_segment)(cow_view_t *, uint64_t, uint32_t))
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
        cow_segment_guard_t guard;
        cow_segment_lock(view, segment, &guard);
        error = prepare_segment(view, page, count);
        cow_segment_unlock(&guard);
        page += count;
    }
    cow_read_unlock(&view->lock);
    cow_make_room_unlocked(view->engine, 0);
    return error;
}

int cow_view_prepare_write(cow_view_t *view, uint64_t first_page, uint64_t page_count)
{
    return cow_view_prepare(view, first_page, page_count, cow_prepare_segment_for_write);
}

int cow_view_prepare_read(cow_view_t *view, uint64_t first_page, uint64_t page_count)
{
    return cow_view_prepare(view, first_page, page_count, cow_prepare_segment_for_read);
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
        engine->leaf_free == NULL || engine->live_list == NULL || engine->chunk_capacity == 0 || engine->leaf_capacity == 0 ||
        engine->chunk_capacity > (COW_NONE >> COW_LEAF_SHIFT) || engine->memfd < 0)
        return EINVAL;
    engine->alloc_lock = 0;
    engine->chunk_free_count = 0;
    engine->chunk_bump = 0;
    engine->leaf_free_count = 0;
    engine->leaf_bump = 0;
    engine->live_count = 0;
    if ((engine->reclaim_capacity & (engine->reclaim_capacity - 1)) != 0 ||
        (engine->reclaim_capacity != 0 && engine->reclaim_ring == NULL))
        return EINVAL;
    engine->reclaim_head = engine->reclaim_tail = engine->reclaim_lock = 0;
    return 0;
}
