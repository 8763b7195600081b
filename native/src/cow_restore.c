/*
 * cow_restore.c - RestoreTo: make a view hold exactly another view's contents.
 *
 * Which pages a restore shares and which it copies (docs/design.md, restore): a page of the view
 * whose slot the view owns alone (its leaf and its slot both referenced once) is COPIED BACK: the
 * source's 4 KiB are copied into it through the pool window, and the view keeps its slot,
 * write-protected. No unmap, no refault, no new mapping, and the next write to it needs no copy (a
 * protection fault only). Every other page that differs is SHARED: the view's segment takes the
 * source's leaf (as before copy-back existed). Its pages whose slots differ are unmapped, to be mapped
 * again on their next touch; the pages whose slots the two views already share keep their mappings
 * (up to COW_RESTORE_UNMAP_RUNS runs to unmap; beyond that the whole segment is unmapped in one
 * call). The extra memory is the view's private copies of the pages that differed, which it had
 * before the restore anyway.
 *
 * Which pages differ: when the source is the view's BASE (the view was snapshotted into it, or last
 * restored to it, and the source has not changed since), exactly the view's changed pages - the cost
 * follows the pages written since, not the view's size. Otherwise every segment whose leaf differs
 * is compared entry by entry, and the source becomes the base.
 *
 * Two phases, so that a failure leaves both views with their old contents: phase 1 only protects and
 * unmaps (both preserve contents: an unmapped page is mapped again from the page table); phase 2,
 * which cannot fail, copies, shares and releases.
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

#define COW_SEGMENT_WORDS (COW_SEGMENT_PAGES / 64)

/* The pages of segment `g` to restore, as a mask: those whose slot differs from the source's, and
 * with `only_changed`, of those only the view's changed pages. */
static void cow_restore_candidates(cow_view_t *view, cow_view_t *source, uint32_t g, int only_changed,
                                   uint64_t mask[COW_SEGMENT_WORDS])
{
    const uint32_t *mine = cow_leaf_entries(view->engine, view->leaves[g]);
    const uint32_t *theirs = cow_leaf_entries(view->engine, source->leaves[g]);
    uint64_t first = cow_segment_first(g), end = cow_segment_end(view, g);
    for (uint32_t w = 0; w < COW_SEGMENT_WORDS; w++) {
        uint64_t word_first = first + 64u * w;
        mask[w] = 0;
        if (word_first >= end)
            continue; /* the last segment of a view may be partial: its bitmaps end with the view */
        uint64_t candidates = only_changed ? view->changed_bits[word_first / 64] : ~0ull;
        for (uint64_t bits = candidates; bits != 0; bits &= bits - 1) {
            uint64_t page = word_first + (uint64_t)__builtin_ctzll(bits);
            if (page < end && mine[page - first] != theirs[page - first])
                mask[w] |= 1ull << (page - word_first);
        }
    }
}

/* Whether the view can copy the source's bytes into each candidate page: its leaf is its own, and so
 * is every candidate's slot. Otherwise the segment takes the source's leaf. */
static int cow_restore_can_copy_back(cow_view_t *view, uint32_t g, const uint64_t mask[COW_SEGMENT_WORDS])
{
    cow_engine_t *engine = view->engine;
    if (cow_load_acquire(&engine->leaf_refcounts[view->leaves[g]]) != 1)
        return 0;
    const uint32_t *mine = cow_leaf_entries(engine, view->leaves[g]);
    for (uint32_t w = 0; w < COW_SEGMENT_WORDS; w++)
        for (uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
            uint32_t i = 64u * w + (uint32_t)__builtin_ctzll(bits);
            if (cow_load_acquire(&engine->slot_refcounts[mine[i]]) != 1)
                return 0;
        }
    return 1;
}

static int cow_mask_is_empty(const uint64_t mask[COW_SEGMENT_WORDS])
{
    for (uint32_t w = 0; w < COW_SEGMENT_WORDS; w++)
        if (mask[w] != 0)
            return 0;
    return 1;
}

/* Calls `step` for every segment the restore must look at whose leaf differs from the source's: the
 * view's changed segments (the source is its base), or all of them. Stops at the first error. */
typedef int (*cow_restore_step_t)(cow_view_t *view, cow_view_t *source, uint32_t g, int only_changed,
                                  cow_release_batch_t *batch);

static int cow_restore_each_segment(cow_view_t *view, cow_view_t *source, int only_changed, cow_restore_step_t step,
                                    cow_release_batch_t *batch)
{
    if (!only_changed) {
        for (uint32_t g = 0; g < view->segment_count; g++) {
            int error = view->leaves[g] == source->leaves[g] ? 0 : step(view, source, g, 0, batch);
            if (error != 0)
                return error;
        }
        return 0;
    }
    for (uint64_t word = 0; word < (view->segment_count + 63u) / 64u; word++)
        for (uint64_t bits = view->changed_segments[word]; bits != 0; bits &= bits - 1) {
            uint32_t g = (uint32_t)(word * 64 + (uint64_t)__builtin_ctzll(bits));
            int error = view->leaves[g] == source->leaves[g] ? 0 : step(view, source, g, 1, batch);
            if (error != 0)
                return error;
        }
    return 0;
}

/* Unmaps pages [first, end) of the view, making room for the mappings that splits first. Unmapping a
 * fragmented range lowers the count; unmapping part of a larger mapping splits it (two more at most). */
static int cow_restore_unmap(cow_view_t *view, uint64_t first, uint64_t end)
{
    cow_budget_holder_t holding = {COW_HOLDING_VIEW, view, 0};
    int64_t growth = cow_map_growth_if_unmapped(view, first, end, 1);
    int error = growth > 0 ? cow_budget_make_room(view->engine, growth, &holding) : 0;
    return error == 0 ? cow_map_unmap(view, first, end, 0, NULL) : error;
}

/* Most runs of pages a segment that takes the source's leaf unmaps one by one; beyond this, it unmaps
 * the whole segment in one call. */
#define COW_RESTORE_UNMAP_RUNS 32u

/* Keeps in `mask` (the pages of the segment starting at `first`) those that one of `view`'s bitmaps
 * `a`, `b` (b may be NULL) has set. The bitmaps end with the view, which may end inside its last
 * segment: the words past them hold no page. */
static void cow_mask_keep(const cow_view_t *view, uint64_t mask[COW_SEGMENT_WORDS], uint64_t first, const uint64_t *a,
                          const uint64_t *b)
{
    uint64_t words = cow_bitmap_words(view);
    for (uint32_t w = 0; w < COW_SEGMENT_WORDS; w++) {
        uint64_t word = first / 64 + w;
        mask[w] = word < words ? mask[w] & (a[word] | (b != NULL ? b[word] : 0)) : 0;
    }
}

/* The runs of consecutive pages in `mask`. */
static uint64_t cow_mask_runs(const uint64_t mask[COW_SEGMENT_WORDS])
{
    uint64_t runs = 0;
    for (uint32_t w = 0; w < COW_SEGMENT_WORDS; w++) {
        uint64_t carried = w > 0 ? mask[w - 1] >> 63 : 0; /* the run goes on from the previous word */
        runs += (uint64_t)__builtin_popcountll(mask[w] & ~((mask[w] << 1) | carried));
    }
    return runs;
}

/* Unmaps each run of the pages in `mask` (of the segment [first, end)). */
static int cow_restore_unmap_runs(cow_view_t *view, uint64_t first, uint64_t end,
                                  const uint64_t mask[COW_SEGMENT_WORDS])
{
    for (uint64_t page = first; page < end;) {
        if (!cow_bit(mask, page - first)) {
            page++;
            continue;
        }
        uint64_t stop = page + 1;
        while (stop < end && cow_bit(mask, stop - first))
            stop++;
        int error = cow_restore_unmap(view, page, stop);
        if (error != 0)
            return error;
        page = stop;
    }
    return 0;
}

/* Phase 1 for one segment. One that will take the source's leaf unmaps the pages whose slots differ
 * from the source's - every one, not only the candidates, since each would still show its old slot.
 * The pages whose slots are the same keep their mappings (read-only since the freeze, and still onto
 * their slots: invariant 2 holds), so the restore does not tear down, and the next touch does not
 * fault in again, the part of the segment the two views share; more than COW_RESTORE_UNMAP_RUNS
 * runs, and the whole segment goes in one call instead, which also leaves fewer mappings. One that
 * copies back unmaps only its candidates on the zero page: the copy makes their slots hold data,
 * which the zero page would hide (invariant 12); they are mapped again, onto their slots, when next
 * touched. */
static int cow_restore_prepare_segment(cow_view_t *view, cow_view_t *source, uint32_t g, int only_changed,
                                       cow_release_batch_t *unused)
{
    (void)unused;
    uint64_t mask[COW_SEGMENT_WORDS];
    cow_restore_candidates(view, source, g, only_changed, mask);
    if (cow_mask_is_empty(mask))
        return 0;
    uint64_t first = cow_segment_first(g), end = cow_segment_end(view, g);
    if (!cow_restore_can_copy_back(view, g, mask)) {
        cow_restore_candidates(view, source, g, 0, mask); /* every page whose slot differs */
        cow_mask_keep(view, mask, first, view->mapped_bits, view->zero_bits);
        if (cow_mask_runs(mask) > COW_RESTORE_UNMAP_RUNS)
            return cow_restore_unmap(view, first, end);
        return cow_restore_unmap_runs(view, first, end, mask);
    }
    cow_mask_keep(view, mask, first, view->zero_bits, NULL);
    return cow_restore_unmap_runs(view, first, end, mask);
}

static void cow_restore_share_leaf(cow_view_t *view, cow_view_t *source, uint32_t g, cow_release_batch_t *batch)
{
    cow_engine_t *engine = view->engine;
    uint32_t old_leaf = view->leaves[g], new_leaf = source->leaves[g];
    const uint32_t *old_entries = cow_leaf_entries(engine, old_leaf);
    const uint32_t *new_entries = cow_leaf_entries(engine, new_leaf);
    uint64_t first = cow_segment_first(g), end = cow_segment_end(view, g);
    for (uint64_t p = first; p < end; p++) {
        if (cow_slots_differ(engine, old_entries[p - first], new_entries[p - first], NULL))
            cow_bit_set(view->dirty_bits, p); /* its contents may differ from the view's last snapshot */
        cow_bit_clear(view->pinned_bits, p);
    }
    cow_add(&engine->leaf_refcounts[new_leaf], 1u);
    cow_leaf_hold(engine, new_leaf, view);
    cow_store_release(&view->leaves[g], new_leaf);
    cow_leaf_unhold(engine, old_leaf, view);
    cow_leaf_release(batch, old_leaf);
}

/* Phase 2 for one segment, which cannot fail: copy the source's bytes into the view's own pages, or
 * take the source's leaf (the segment was unmapped in phase 1). */
static int cow_restore_segment(cow_view_t *view, cow_view_t *source, uint32_t g, int only_changed,
                               cow_release_batch_t *batch)
{
    uint64_t mask[COW_SEGMENT_WORDS];
    cow_restore_candidates(view, source, g, only_changed, mask);
    if (cow_mask_is_empty(mask))
        return 0;
    if (!cow_restore_can_copy_back(view, g, mask)) {
        cow_restore_share_leaf(view, source, g, batch);
        return 0;
    }
    cow_engine_t *engine = view->engine;
    const uint32_t *mine = cow_leaf_entries(engine, view->leaves[g]);
    const uint32_t *theirs = cow_leaf_entries(engine, source->leaves[g]);
    uint64_t first = cow_segment_first(g), copied = 0;
    for (uint32_t w = 0; w < COW_SEGMENT_WORDS; w++)
        for (uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
            uint32_t i = 64u * w + (uint32_t)__builtin_ctzll(bits);
            cow_bit_clear(view->pinned_bits, first + i);
            if (!cow_slot_copy_if_differs(engine, mine[i], theirs[i]))
                continue; /* equal bytes (a page written back to what it held, or resolved ahead and never written) */
            cow_bit_set(view->dirty_bits, first + i);
            copied++;
        }
    cow_add(&engine->pages_restored_by_copy, copied);
    return 0;
}

static int cow_restore_once(cow_view_t *view, cow_view_t *source)
{
    cow_budget_holder_t nothing = {COW_HOLDING_NOTHING, NULL, 0};
    (void)cow_budget_make_room(view->engine, 2, &nothing); /* a first pass: the decision is taken under the locks */
    cow_views_lock(view, source, 1);
    int error = view->state == COW_VIEW_LIVE && source->state == COW_VIEW_LIVE ? 0 : EINVAL;
    /* The source's pages are about to be shared, and the view's own about to be written: both are
     * write-protected first (they stay dirty for their own TakeDirtyPages). */
    int frozen = 0; /* views frozen so far (a failed freeze thaws its own view's pinned pages) */
    if (error == 0 && (error = cow_view_freeze(source, 0)) == 0)
        frozen = 1;
    if (error == 0 && (error = cow_view_freeze(view, 0)) == 0)
        frozen = 2;
    int only_changed = error == 0 && cow_view_has_base(view, source);
    if (error == 0)
        error = cow_restore_each_segment(view, source, only_changed, cow_restore_prepare_segment, NULL);
    if (error != 0 && frozen >= 1) {
        /* Refused: the pages prepared for the kernel are writable again, as before the call. */
        cow_view_thaw_pinned(source);
        if (frozen == 2)
            cow_view_thaw_pinned(view);
    }
    if (error == 0) {
        cow_release_batch_t batch;
        cow_batch_begin_deferred(&batch, view->engine);
        cow_restore_each_segment(view, source, only_changed, cow_restore_segment, &batch);
        cow_batch_flush(&batch);
        cow_add(&view->modifications, 1u);
        cow_view_set_base(view, source); /* equal now */
    }
    cow_views_unlock(view, source, 1);
    return error;
}

int cow_view_restore(cow_view_t *view, cow_view_t *source)
{
    if (!cow_view_shape_is_valid(view) || !cow_view_shape_is_valid(source) || view->engine != source->engine ||
        view->page_count != source->page_count)
        return EINVAL;
    if (view == source)
        return 0;
    int error = EDQUOT;
    for (int attempt = 0; attempt < COW_ROOM_ATTEMPTS && error == EDQUOT; attempt++)
        error = cow_restore_once(view, source);
    return error;
}
