/*
 * cow_resolve.c - making pages private and writable, and mapping a snapshot's untouched pages. One
 * routine serves both the fault handler (one page) and cow_view_prepare_write (many pages), so both
 * follow the same protocol.
 *
 * A page of a view is PRIVATE when the view's leaf for its segment has refcount 1 and the page's
 * slot has refcount 1: no other view can see that slot. Only private pages are ever mapped
 * writable. Making page p of segment g writable:
 *   1. If the leaf is shared, give the view its own copy of the leaf (512 slot numbers; every slot
 *      gains a reference, so all of them are now shared at slot level).
 *   2. If the slot is shared, copy its 4 KiB through the pool window into the slot at position
 *      p % 512 of the view's write chunk (file-contiguous with its neighbours), map that slot
 *      read-write over the page, and drop the old slot. Otherwise make the page writable in place.
 *   Neighbouring pages whose new slots are contiguous take one system call together (cow_map.c).
 * The caller holds the view's lock (shared) and the segment's guard (cow_segment_lock), so no other
 * thread resolves pages of this segment (or its neighbours) of this view, and no snapshot of this
 * view runs, meanwhile.
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

/* Pages resolved with one round of copies and system calls (the handler's largest stack item). */
#define COW_RESOLVE_BATCH 64u

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
    for (uint32_t i = 0; i < COW_LEAF_ENTRIES; i++) {
        to[i] = from[i];
        if (from[i] != COW_NONE)
            cow_add(&engine->slot_refcounts[from[i]], 1u);
    }
    cow_store_release(&view->leaves[segment], own);
    cow_leaf_release(batch, shared);
    return 0;
}

/* One batch of at most COW_RESOLVE_BATCH pages from `page`, stopping at `end` or at a page a
 * preparation keeps as it is. Copies every shared page into a fresh slot. Fills `slots` (the slot
 * each page is to map) and `old_slots` (the slot a copy replaces, or COW_NONE). Returns the pages
 * gathered; *error_out is set if a copy could not get a slot (the pages before it are gathered). */
static uint32_t cow_gather_batch(cow_view_t *view, uint64_t page, uint64_t end, cow_resolve_purpose_t purpose,
                                 cow_release_batch_t *batch, uint32_t *slots, uint32_t *old_slots, int *error_out)
{
    cow_engine_t *engine = view->engine;
    uint32_t *entries = cow_leaf_entries(engine, view->leaves[cow_segment_of(page)]);
    uint32_t count = 0;
    while (count < COW_RESOLVE_BATCH && page + count < end &&
           !(purpose == COW_RESOLVE_PREPARE && cow_is_writable(view, page + count))) {
        uint64_t p = page + count;
        uint32_t slot = entries[p & (COW_SEGMENT_PAGES - 1)];
        old_slots[count] = COW_NONE;
        slots[count] = slot;
        if (cow_load_acquire(&engine->slot_refcounts[slot]) != 1) {
            uint32_t fresh;
            int error = cow_copy_slot_take(view, p, batch, &fresh);
            if (error != 0) {
                *error_out = error;
                break;
            }
            memcpy(engine->pool + ((uint64_t)fresh << COW_PAGE_SHIFT),
                   engine->pool + ((uint64_t)slot << COW_PAGE_SHIFT), COW_PAGE_SIZE);
            old_slots[count] = slot;
            slots[count] = fresh;
        }
        count++;
    }
    return count;
}

/* After mapping a batch: the pages that were mapped keep their copies (the old slots go); the
 * copies of the others go back. Returns the pages copied. */
static uint32_t cow_commit_batch(cow_view_t *view, uint64_t page, uint32_t count, uint64_t mapped,
                                 cow_resolve_purpose_t purpose, cow_release_batch_t *batch, const uint32_t *slots,
                                 const uint32_t *old_slots)
{
    uint32_t copies = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (i < mapped) {
            if (old_slots[i] != COW_NONE) {
                cow_slot_release(batch, old_slots[i]);
                copies++;
            }
            cow_bit_set(view->dirty_bits, page + i);
            if (purpose == COW_RESOLVE_PREPARE) /* prepared for the kernel to write: keep it mapped */
                cow_bit_set(view->pinned_bits, page + i);
        } else if (old_slots[i] != COW_NONE) {
            cow_slot_release(batch, slots[i]);
        }
    }
    return copies;
}

int cow_resolve_write(cow_view_t *view, uint64_t first, uint32_t count, cow_resolve_purpose_t purpose,
                      cow_resolve_result_t *result)
{
    cow_engine_t *engine = view->engine;
    cow_release_batch_t batch;
    cow_batch_begin(&batch, engine);
    result->failed_call = COW_CALL_ALLOCATE;
    result->copies = 0;
    int error = cow_unshare_leaf(view, cow_segment_of(first), &batch);

    uint32_t slots[COW_RESOLVE_BATCH], old_slots[COW_RESOLVE_BATCH];
    uint64_t end = first + count, copies = 0;
    for (uint64_t page = first; page < end && error == 0;) {
        /* A preparation keeps pages that are already writable (a fault must still resolve a page
         * whose bit is set with a system call: the fault says the kernel disagrees). */
        if (purpose == COW_RESOLVE_PREPARE && cow_is_writable(view, page)) {
            cow_bit_set(view->pinned_bits, page);
            page++;
            continue;
        }
        uint32_t gathered = cow_gather_batch(view, page, end, purpose, &batch, slots, old_slots, &error);
        uint64_t mapped = 0;
        if (gathered != 0) {
            int map_error =
                cow_map_pages(view, page, page + gathered, COW_CLASS_WRITE, slots, 1, &mapped, &result->failed_call);
            if (error == 0)
                error = map_error;
            else
                result->failed_call = COW_CALL_ALLOCATE;
        }
        copies += cow_commit_batch(view, page, gathered, mapped, purpose, &batch, slots, old_slots);
        page += gathered;
    }

    if (copies != 0) {
        cow_add(&engine->pages_copied, copies);
        cow_add(&view->pages_copied, copies);
    }
    cow_batch_flush(&batch);
    result->copies = (uint32_t)copies;
    if (error == 0)
        result->failed_call = COW_CALL_NONE;
    return error;
}

int cow_resolve_read(cow_view_t *view, uint64_t page)
{
    if (cow_is_mapped(view, page))
        return cow_map_refresh(view, page);
    /* First touch: map the whole run of untouched pages with contiguous slots around it, so a
     * sequential reader takes one fault per run, not one per page. */
    uint32_t segment = cow_segment_of(page);
    uint64_t segment_first = cow_segment_first(segment), segment_end = cow_segment_end(view, segment);
    uint64_t first = page, end = page + 1;
    while (first > segment_first && !cow_is_mapped(view, first - 1) &&
           cow_slot_of(view, first - 1) + 1 == cow_slot_of(view, first))
        first--;
    while (end < segment_end && !cow_is_mapped(view, end) && cow_slot_of(view, end) == cow_slot_of(view, end - 1) + 1)
        end++;
    uint64_t done;
    int failed_call;
    return cow_map_pages(view, first, end, COW_CLASS_READ, NULL, 0, &done, &failed_call);
}
