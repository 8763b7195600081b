/*
 * cow_query.c - what the page table says: the pages two views differ in, the pages written since
 * the last freeze (get and reset), statistics, and the lookups tests use.
 *
 * A diff compares bytes: equal slots hold equal bytes, so only pages whose slots differ can differ,
 * and those are compared. (A restore that copies a source's bytes into the view's own page, and a
 * page written with the bytes it held, leave slots that differ and bytes that do not.)
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

/* Whether page i of two leaves holds different bytes. The leaves' entries may change under us: a view
 * that shares a slot with a writer in another view receives a copy when that writer faults (reverse
 * copy-on-write, cow_resolve.c), after which the writer writes the old slot. The copy is published
 * (the entry points at it) before the writer can write, so a comparison whose entries are still the
 * same afterwards compared bytes no such write had touched; otherwise it is done again. */
static int cow_diff_page(cow_engine_t *engine, const uint32_t *entries_a, const uint32_t *entries_b, uint32_t i,
                         int *error_out)
{
    for (;;) {
        uint32_t slot_a = cow_load_acquire(&entries_a[i]), slot_b = cow_load_acquire(&entries_b[i]);
        int differ = slot_a != slot_b && cow_slots_differ(engine, slot_a, slot_b, error_out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (cow_load_acquire(&entries_a[i]) == slot_a && cow_load_acquire(&entries_b[i]) == slot_b)
            return differ;
    }
}

/* Sets the bits of the pages of one segment whose bytes differ (only pages whose slots differ can);
 * returns how many. */
static uint64_t cow_diff_segment(cow_view_t *a, uint32_t segment, uint32_t leaf_a, uint32_t leaf_b, uint64_t *bits_out,
                                 int *error_out)
{
    const uint32_t *entries_a = cow_leaf_entries(a->engine, leaf_a);
    const uint32_t *entries_b = cow_leaf_entries(a->engine, leaf_b);
    uint64_t first = cow_segment_first(segment), end = cow_segment_end(a, segment), count = 0;
    for (uint64_t p = first; p < end; p++) {
        if (cow_diff_page(a->engine, entries_a, entries_b, (uint32_t)(p - first), error_out)) {
            cow_bit_set(bits_out, p);
            count++;
        }
    }
    return count;
}

/* The diff of a view against its base: only its changed pages can differ. */
static uint64_t cow_diff_changed(cow_view_t *view, cow_view_t *base, uint64_t *bits_out, int *error_out)
{
    uint64_t count = 0;
    for (uint64_t word = 0; word < (view->segment_count + 63u) / 64u; word++)
        for (uint64_t bits = cow_load_relaxed(&view->changed_segments[word]); bits != 0; bits &= bits - 1) {
            uint32_t g = (uint32_t)(word * 64 + (uint64_t)__builtin_ctzll(bits));
            uint32_t leaf_a = cow_load_acquire(&view->leaves[g]), leaf_b = cow_load_acquire(&base->leaves[g]);
            if (leaf_a == leaf_b)
                continue;
            const uint32_t *entries_a = cow_leaf_entries(view->engine, leaf_a);
            const uint32_t *entries_b = cow_leaf_entries(view->engine, leaf_b);
            uint64_t first = cow_segment_first(g), end = cow_segment_end(view, g);
            for (uint64_t p = cow_bits_find(view->changed_bits, first, end, 1); p < end;
                 p = cow_bits_find(view->changed_bits, p + 1, end, 1)) {
                if (cow_diff_page(view->engine, entries_a, entries_b, (uint32_t)(p - first), error_out)) {
                    cow_bit_set(bits_out, p);
                    count++;
                }
            }
        }
    return count;
}

int cow_view_diff(cow_view_t *a, cow_view_t *b, uint64_t *bits_out, uint64_t *count_out)
{
    *count_out = 0;
    if (!cow_view_shape_is_valid(a) || !cow_view_shape_is_valid(b) || a->engine != b->engine ||
        a->page_count != b->page_count)
        return EINVAL;
    if (a == b)
        return cow_load_acquire(&a->state) == COW_VIEW_LIVE ? 0 : EINVAL;
    cow_views_lock(a, b, 0);
    if (a->state != COW_VIEW_LIVE || b->state != COW_VIEW_LIVE) {
        cow_views_unlock(a, b, 0);
        return EINVAL;
    }
    /* A mincore that fails (after its retries) fails the diff: whether an unread page is reported must
     * not depend on a failure (the answer would differ between a and b, and b and a). */
    uint64_t count = 0;
    int error = 0;
    if (cow_view_has_base(a, b)) {
        count = cow_diff_changed(a, b, bits_out, &error);
    } else if (cow_view_has_base(b, a)) {
        count = cow_diff_changed(b, a, bits_out, &error);
    } else {
        for (uint32_t g = 0; g < a->segment_count && error == 0; g++) {
            uint32_t leaf_a = cow_load_acquire(&a->leaves[g]), leaf_b = cow_load_acquire(&b->leaves[g]);
            if (leaf_a != leaf_b) /* one leaf: identical pages, whatever the segment holds */
                count += cow_diff_segment(a, g, leaf_a, leaf_b, bits_out, &error);
        }
    }
    cow_views_unlock(a, b, 0);
    *count_out = error == 0 ? count : 0;
    return error;
}

int cow_view_take_dirty(cow_view_t *view, uint64_t *bits_out, uint64_t *count_out)
{
    *count_out = 0;
    if (cow_view_lock_live(view, 1) != 0)
        return EINVAL;
    memcpy(bits_out, view->dirty_bits, cow_bitmap_words(view) * sizeof(uint64_t));
    uint64_t count = 0;
    for (uint64_t word = 0; word < cow_bitmap_words(view); word++)
        count += (uint64_t)__builtin_popcountll(bits_out[word]);
    int error = cow_view_freeze(view, 1);
    cow_write_unlock(&view->lock);
    *count_out = error == 0 ? count : 0;
    return error;
}

/* Adds one segment's pages to the statistics. */
static void cow_stats_segment(cow_view_t *view, uint32_t segment, cow_view_stats_t *stats)
{
    cow_engine_t *engine = view->engine;
    uint32_t leaf = cow_load_acquire(&view->leaves[segment]);
    int leaf_private = cow_load_relaxed(&engine->leaf_refcounts[leaf]) == 1;
    const uint32_t *entries = cow_leaf_entries(engine, leaf);
    uint64_t first = cow_segment_first(segment), end = cow_segment_end(view, segment);
    for (uint64_t page = first; page < end; page++) {
        uint32_t slot = cow_load_relaxed(&entries[page - first]);
        if (leaf_private && cow_load_relaxed(&engine->slot_refcounts[slot]) == 1)
            stats->private_pages++;
        else
            stats->shared_pages++;
        stats->writable_pages += (uint64_t)cow_is_writable(view, page);
        stats->mapped_pages += (uint64_t)cow_is_readable(view, page);
        stats->zero_pages += (uint64_t)cow_is_zero(view, page);
    }
}

int cow_view_stats(cow_view_t *view, cow_view_stats_t *stats)
{
    memset(stats, 0, sizeof *stats);
    if (cow_view_lock_live(view, 0) != 0)
        return EINVAL;
    for (uint32_t g = 0; g < view->segment_count; g++)
        cow_stats_segment(view, g, stats);
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
    int64_t count = view->state == COW_VIEW_LIVE ? cow_map_boundaries(view, 0, view->page_count - 1) : 0;
    cow_read_unlock(&view->lock);
    return count;
}

uint32_t cow_view_slot_of(cow_view_t *view, uint64_t page)
{
    if (!cow_view_shape_is_valid(view))
        return COW_NONE;
    cow_read_lock(&view->lock);
    uint32_t slot = view->state == COW_VIEW_LIVE && page < view->page_count ? cow_slot_of(view, page) : COW_NONE;
    cow_read_unlock(&view->lock);
    return slot;
}
