/*
 * cow_resolve.c - making pages private and writable. One routine serves both the fault handler
 * (one page) and cow_view_prepare_write (many pages), so both follow the same protocol.
 *
 * A page of a view is PRIVATE when the view's leaf for its segment has refcount 1 and the page's
 * slot has refcount 1: no other view can see that slot. Only private pages are ever mapped
 * writable. Making page p of segment g writable:
 *   1. If the leaf is shared, give the view its own copy of the leaf (512 slot numbers; every slot
 *      gains a reference, so all of them are now shared at slot level).
 *   2. If the slot is shared, copy its 4 KiB through the pool window into the slot at position
 *      p % 512 of the view's write chunk (file-contiguous with its neighbours), map that slot
 *      read-write over the page with one mmap, then point the leaf at it and drop the old slot.
 *      Otherwise mprotect the page read-write.
 *   Runs of neighbouring pages whose new slots are contiguous take one mmap/mprotect together.
 * The caller holds the view's lock (shared) and the segment's guard (cow_segment_lock), so no other
 * thread resolves pages of this segment (or its neighbours) of this view, and no snapshot of this
 * view runs, meanwhile.
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

#define COW_RESOLVE_BATCH 64u

/* A page's class, or the class it would have if the unpinned pages of [evict_first, evict_end) were
 * unmapped (an empty range: the class it has). */
static inline int cow_class_unless_evicted(const cow_view_t *view, uint64_t page, uint64_t evict_first,
                                           uint64_t evict_end)
{
    if (page >= evict_first && page < evict_end && !cow_bit(view->pinned_bits, page))
        return COW_CLASS_UNMAPPED;
    return cow_page_class(view, page);
}

static int64_t cow_count_boundaries(cow_view_t *view, uint64_t first, uint64_t last, uint64_t evict_first,
                                    uint64_t evict_end)
{
    if (last >= view->page_count)
        last = view->page_count - 1;
    int64_t count = 0;
    for (uint64_t page = first; page <= last; page++) {
        if (page == 0) {
            count++;
            continue;
        }
        int previous_class = cow_class_unless_evicted(view, page - 1, evict_first, evict_end);
        int current_class = cow_class_unless_evicted(view, page, evict_first, evict_end);
        if (current_class != previous_class)
            count++;
        else if (current_class != COW_CLASS_UNMAPPED &&
                 cow_slot_of(view, page) != cow_slot_of(view, page - 1) + 1)
            count++;
    }
    return count;
}

int64_t cow_boundaries(cow_view_t *view, uint64_t first, uint64_t last)
{
    return cow_count_boundaries(view, first, last, 0, 0);
}

int64_t cow_boundaries_if_evicted(cow_view_t *view, uint64_t first, uint64_t end)
{
    return cow_count_boundaries(view, first, end, first, end);
}

void cow_mappings_add(cow_view_t *view, int64_t delta)
{
    if (delta == 0)
        return;
    cow_add(&view->mappings, delta);
    cow_add(&view->engine->mappings, delta);
}

int cow_map_for_read(cow_view_t *view, uint64_t page)
{
    uint64_t segment_first = page & ~(uint64_t)(COW_LEAF_PAGES - 1);
    uint64_t segment_end = segment_first + COW_LEAF_PAGES;
    if (segment_end > view->page_count)
        segment_end = view->page_count;
    uint64_t first = page, end = page + 1;
    int class = cow_page_class(view, page);
    if (class == COW_CLASS_UNMAPPED) {
        /* First touch: map the whole run of untouched pages with contiguous slots around it, so a
         * sequential reader takes one fault per run, not one per page. */
        while (first > segment_first && !cow_is_mapped(view, first - 1) &&
               cow_slot_of(view, first - 1) + 1 == cow_slot_of(view, first))
            first--;
        while (end < segment_end && !cow_is_mapped(view, end) &&
               cow_slot_of(view, end) == cow_slot_of(view, end - 1) + 1)
            end++;
    }
    int64_t before = cow_boundaries(view, first, end);
    int error = cow_os_map_slots(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT,
                                 class == COW_CLASS_WRITE, 0, view->engine->memfd,
                                 (uint64_t)cow_slot_of(view, first) << COW_PAGE_SHIFT);
    if (error != 0)
        return error;
    for (uint64_t p = first; p < end; p++)
        cow_bit_set(view->mapped_bits, p);
    cow_mappings_add(view, cow_boundaries(view, first, end) - before);
    return 0;
}

/* Maps pages [first, first + count) read-write onto `slots` (their new slots) with one call per run
 * of contiguous slots: mmap where the run contains a fresh copy or a page not mapped yet, mprotect
 * where it does not. Returns the number of pages mapped before the first failure in *mapped_out. */
static int cow_map_batch(cow_view_t *view, uint64_t first, uint32_t count, const uint32_t *slots,
                         const uint32_t *old_slots, uint32_t *mapped_out, int *failed_call_out)
{
    uint32_t start = 0;
    while (start < count) {
        uint32_t end = start + 1;
        int needs_mmap = old_slots[start] != COW_NONE || !cow_is_mapped(view, first + start);
        while (end < count && slots[end] == slots[end - 1] + 1) {
            needs_mmap |= old_slots[end] != COW_NONE || !cow_is_mapped(view, first + end);
            end++;
        }
        uint64_t address = cow_page_address(view, first + start);
        uint64_t length = (uint64_t)(end - start) << COW_PAGE_SHIFT;
        int error;
        if (needs_mmap) {
            error = cow_os_map_slots(address, length, 1, 1, view->engine->memfd,
                                     (uint64_t)slots[start] << COW_PAGE_SHIFT);
            *failed_call_out = COW_CALL_MMAP;
        } else {
            error = cow_os_protect(address, length, 1);
            *failed_call_out = COW_CALL_MPROTECT;
        }
        if (error != 0) {
            *mapped_out = start;
            return error;
        }
        start = end;
    }
    *failed_call_out = COW_CALL_NONE;
    *mapped_out = count;
    return 0;
}

static int cow_unshare_leaf(cow_view_t *view, uint32_t segment, cow_release_batch_t *batch)
{
    cow_engine_t *engine = view->engine;
    uint32_t shared = view->leaves[segment];
    if (cow_load_acquire(&engine->leaf_refcounts[shared]) == 1)
        return 0;
    uint32_t own;
    int error = cow_leaf_allocate(engine, &own);
    if (error != 0)
        return error;
    const uint32_t *from = cow_leaf_entries(engine, shared);
    uint32_t *to = cow_leaf_entries(engine, own);
    for (uint32_t i = 0; i < COW_LEAF_PAGES; i++) {
        to[i] = from[i];
        if (from[i] != COW_NONE)
            cow_add(&engine->slot_refcounts[from[i]], 1u);
    }
    cow_store_release(&view->leaves[segment], own);
    cow_leaf_release(batch, shared);
    return 0;
}

int cow_resolve_segment_range(cow_view_t *view, uint64_t first, uint32_t count, int trust_writable_bits,
                              cow_resolve_result_t *result)
{
    int *failed_call_out = &result->failed_call;
    cow_engine_t *engine = view->engine;
    uint32_t segment = (uint32_t)(first >> COW_LEAF_SHIFT);
    cow_release_batch_t batch;
    cow_batch_begin(&batch, engine);
    *failed_call_out = COW_CALL_ALLOCATE;

    int error = cow_unshare_leaf(view, segment, &batch);
    if (error != 0) {
        cow_batch_flush(&batch);
        result->copies = 0;
        return error;
    }
    uint32_t *entries = cow_leaf_entries(engine, view->leaves[segment]);
    int64_t boundaries_before = cow_boundaries(view, first, first + count);

    uint32_t slots[COW_RESOLVE_BATCH], old_slots[COW_RESOLVE_BATCH];
    uint64_t copies = 0;
    for (uint32_t done = 0; done < count && error == 0;) {
        /* Skip pages already known to be writable (only callers outside the handler trust the
         * bits: a fault on a page whose bit is set must still be resolved with a system call). */
        uint64_t page = first + done;
        if (trust_writable_bits && cow_is_writable(view, page)) {
            cow_bit_set(view->pinned_bits, page);
            done++;
            continue;
        }
        uint32_t batch_count = 0;
        while (batch_count < COW_RESOLVE_BATCH && done + batch_count < count &&
               !(trust_writable_bits && cow_is_writable(view, page + batch_count))) {
            uint64_t p = page + batch_count;
            uint32_t slot = entries[p & (COW_LEAF_PAGES - 1)];
            old_slots[batch_count] = COW_NONE;
            slots[batch_count] = slot;
            if (cow_load_acquire(&engine->slot_refcounts[slot]) != 1) {
                uint32_t fresh;
                error = cow_copy_slot_take(view, p, &batch, &fresh);
                if (error != 0) {
                    *failed_call_out = COW_CALL_ALLOCATE;
                    break;
                }
                memcpy(engine->pool + ((uint64_t)fresh << COW_PAGE_SHIFT),
                       engine->pool + ((uint64_t)slot << COW_PAGE_SHIFT), COW_PAGE_SIZE);
                old_slots[batch_count] = slot;
                slots[batch_count] = fresh;
            }
            batch_count++;
        }

        uint32_t mapped = 0;
        if (batch_count != 0) {
            int map_error = cow_map_batch(view, page, batch_count, slots, old_slots, &mapped,
                                          failed_call_out);
            if (error == 0)
                error = map_error;
        }
        /* Commit what was mapped; give back the copies that were not. */
        for (uint32_t i = 0; i < batch_count; i++) {
            uint64_t p = page + i;
            if (i < mapped) {
                if (old_slots[i] != COW_NONE) {
                    entries[p & (COW_LEAF_PAGES - 1)] = slots[i];
                    cow_slot_release(&batch, old_slots[i]);
                    copies++;
                }
                cow_bit_set(view->mapped_bits, p);
                cow_bit_set(view->writable_bits, p);
                cow_bit_set(view->dirty_bits, p);
                if (trust_writable_bits) /* prepared for the kernel to write: keep it mapped */
                    cow_bit_set(view->pinned_bits, p);
            } else if (old_slots[i] != COW_NONE) {
                cow_slot_release(&batch, slots[i]);
            }
        }
        done += batch_count;
    }

    cow_mappings_add(view, cow_boundaries(view, first, first + count) - boundaries_before);
    if (copies != 0) {
        cow_add(&engine->pages_copied, copies);
        cow_add(&view->pages_copied, copies);
    }
    cow_batch_flush(&batch);
    result->copies = (uint32_t)copies;
    if (error == 0)
        *failed_call_out = COW_CALL_NONE;
    return error;
}
