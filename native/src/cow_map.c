/*
 * cow_map.c - what a view's pages map to. The only code that maps, write-protects, unprotects or
 * unmaps a view's pages, that points a leaf entry at a new slot once its page maps it, and that
 * changes the mapped/writable bits or the mapping counts. Each change follows one sequence: count
 * the mapping boundaries the changed pages take part in, make the system call, set the bits (and
 * entries), count again, add the difference to the view and to its engine.
 *
 * The counting rule (the kernel's merge rule, measured in ../shared/FACTS.md): a page starts a new
 * kernel mapping if it is the view's first page, if its mapping class differs from the page before
 * it, or if both are mapped onto slots and its slot does not follow the slot before it. Pages on the
 * zero page are one anonymous mapping per run, whatever their slots. A segment's edges
 * depend on the neighbouring segments' pages, which is why callers hold a segment guard (the
 * stripes of the segment and of both neighbours) or the view's write lock.
 */
#include "cow_internal.h"

#include <string.h>

#include <errno.h>

static const cow_protector_t *cow_protector_of(const cow_view_t *view)
{
    return view->engine->write_protection == COW_PROTECT_USERFAULTFD ? &cow_protector_userfaultfd
                                                                     : &cow_protector_mprotect;
}

/* ---- counting ---- */

static void cow_mappings_add(cow_view_t *view, int64_t delta)
{
    if (delta == 0)
        return;
    cow_add(&view->mappings, delta);
    cow_add(&view->engine->mappings, delta);
}

int64_t cow_engine_mapping_count(const cow_engine_t *engine)
{
    /* Its views' own mappings, one gap after each view in the arena, and the pool window. */
    return cow_load_relaxed(&engine->mappings) + cow_load_relaxed(&engine->live_views) + 1;
}

/* The class of a page as the kernel's mappings see it - read-only and read-write are different
 * mappings only where protection is part of the mapping - or, if it lies in [gone_first, gone_end) and
 * is not pinned (or `include_pinned`), the class it would have once unmapped. */
static inline int cow_class_if_unmapped(const cow_view_t *view, uint64_t page, uint64_t gone_first, uint64_t gone_end,
                                        int include_pinned, int protection_splits)
{
    if (page >= gone_first && page < gone_end && (include_pinned || !cow_is_pinned(view, page)))
        return COW_CLASS_UNMAPPED;
    int class = cow_page_class(view, page);
    return protection_splits || class == COW_CLASS_UNMAPPED || class == COW_CLASS_ZERO ? class : COW_CLASS_READ;
}

static int64_t cow_count_boundaries(cow_view_t *view, uint64_t first, uint64_t last, uint64_t gone_first,
                                    uint64_t gone_end, int include_pinned)
{
    if (last >= view->page_count)
        last = view->page_count - 1;
    int splits = cow_protector_of(view)->protection_splits;
    int64_t count = 0;
    for (uint64_t page = first; page <= last; page++) {
        if (page == 0) {
            count++;
            continue;
        }
        int previous = cow_class_if_unmapped(view, page - 1, gone_first, gone_end, include_pinned, splits);
        int current = cow_class_if_unmapped(view, page, gone_first, gone_end, include_pinned, splits);
        if (current != previous)
            count++;
        else if (current != COW_CLASS_UNMAPPED && current != COW_CLASS_ZERO &&
                 cow_slot_of(view, page) != cow_slot_of(view, page - 1) + 1)
            count++;
    }
    return count;
}

int64_t cow_map_boundaries(cow_view_t *view, uint64_t first, uint64_t last)
{
    return cow_count_boundaries(view, first, last, 0, 0, 0);
}

int64_t cow_map_growth_if_unmapped(cow_view_t *view, uint64_t first, uint64_t end, int include_pinned)
{
    if (first >= end || (cow_bits_find(view->mapped_bits, first, end, 1) == end &&
                         cow_bits_find(view->zero_bits, first, end, 1) == end))
        return 0; /* nothing mapped: nothing changes */
    return cow_count_boundaries(view, first, end, first, end, include_pinned) - cow_map_boundaries(view, first, end);
}

/* ---- mapping pages ---- */

static inline uint32_t *cow_entry_of(cow_view_t *view, uint64_t page)
{
    return &cow_leaf_entries(view->engine, view->leaves[cow_segment_of(page)])[page & (COW_SEGMENT_PAGES - 1)];
}

/* The slot page `page` is to map: its new one from `slots`, or the one it has. */
static inline uint32_t cow_target_slot(cow_view_t *view, uint64_t page, uint64_t first, const uint32_t *slots)
{
    return slots != NULL ? slots[page - first] : *cow_entry_of(view, page);
}

/* Whether a page must be mapped with mmap (a new slot, or not mapped onto its slot: unmapped, or on
 * the zero page) rather than change its protection in place. */
static inline int cow_needs_mmap(cow_view_t *view, uint64_t page, uint64_t first, const uint32_t *slots)
{
    return !cow_is_mapped(view, page) || (slots != NULL && slots[page - first] != *cow_entry_of(view, page));
}

/* After a failed mapping call (`failed_call`, which failed with `error`) the old mapping of the range may
 * be gone (mmap(MAP_FIXED) can remove it before it fails): the range is made PROT_NONE and recorded as
 * unmapped - its contents are still in the page table, mapped again on the next touch. If even that is
 * refused (again and again; at vm.max_map_count it needs a split too):
 *   - the mmap itself failed: the kernel refused before replacing anything (the map count is checked
 *     first), so the old mapping is still there, as the bits say;
 *   - a later step failed (a userfaultfd registration or protection after the mmap): the range maps
 *     the new slot, which the caller is about to free, unprotected. No later access could be trusted:
 *     the process ends, naming both failures. */
static void cow_map_forget(cow_view_t *view, uint64_t start, uint64_t end, int failed_call, int error)
{
    int64_t before = cow_map_boundaries(view, start, end);
    int reset_error = cow_os_reset_fixed(cow_page_address(view, start), (end - start) << COW_PAGE_SHIFT);
    if (reset_error != 0 && failed_call == COW_CALL_MMAP)
        return;
    if (reset_error != 0)
        cow_die_mapping_unknown(cow_page_address(view, start), failed_call, error, reset_error);
    for (uint64_t p = start; p < end; p++) {
        cow_bit_clear(view->mapped_bits, p);
        cow_bit_clear(view->writable_bits, p);
        cow_bit_clear(view->zero_bits, p);
    }
    cow_mappings_add(view, cow_map_boundaries(view, start, end) - before);
}

/* One run: pages [start, end) with file-contiguous target slots, one protector call. */
static int cow_map_run(cow_view_t *view, uint64_t start, uint64_t end, int class, uint64_t first, const uint32_t *slots,
                       int populate, int *failed_call_out)
{
    const cow_protector_t *protector = cow_protector_of(view);
    int needs_mmap = 0;
    for (uint64_t p = start; p < end && !needs_mmap; p++)
        needs_mmap = cow_needs_mmap(view, p, first, slots);
    int64_t before = cow_map_boundaries(view, start, end);
    int error;
    if (needs_mmap) {
        error = protector->map(view, start, end, class, cow_target_slot(view, start, first, slots), populate,
                               failed_call_out);
        if (error != 0)
            cow_map_forget(view, start, end, *failed_call_out, error);
    } else {
        error = class == COW_CLASS_WRITE ? protector->unprotect(view, start, end, failed_call_out)
                                         : protector->protect(view, start, end, failed_call_out);
    }
    if (error != 0)
        return error;
    for (uint64_t p = start; p < end; p++) {
        if (slots != NULL)
            cow_store_release(cow_entry_of(view, p), slots[p - first]);
        cow_bit_clear(view->zero_bits, p);
        cow_bit_set(view->mapped_bits, p);
        if (class == COW_CLASS_WRITE)
            cow_bit_set(view->writable_bits, p);
        else
            cow_bit_clear(view->writable_bits, p);
    }
    if (class == COW_CLASS_WRITE)
        cow_mark_writable_segments(view, start, end);
    cow_mappings_add(view, cow_map_boundaries(view, start, end) - before);
    *failed_call_out = COW_CALL_NONE;
    return 0;
}

int cow_map_pages(cow_view_t *view, uint64_t first, uint64_t end, int class, const uint32_t *slots, int populate,
                  uint64_t *done_out, int *failed_call_out)
{
    *done_out = 0;
    *failed_call_out = COW_CALL_NONE;
    for (uint64_t start = first; start < end;) {
        uint64_t run_end = start + 1;
        uint32_t slot = cow_target_slot(view, start, first, slots);
        while (run_end < end && cow_target_slot(view, run_end, first, slots) == slot + (run_end - start))
            run_end++;
        int error = cow_map_run(view, start, run_end, class, first, slots, populate, failed_call_out);
        if (error != 0)
            return error;
        *done_out = run_end - first;
        start = run_end;
    }
    return 0;
}

int cow_map_zero(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out)
{
    int64_t before = cow_map_boundaries(view, first, end);
    *failed_call_out = COW_CALL_MMAP;
    int error = cow_os_map_zero(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT);
    if (error != 0) {
        cow_map_forget(view, first, end, COW_CALL_MMAP, error);
        return error;
    }
    for (uint64_t p = first; p < end; p++) {
        cow_bit_clear(view->mapped_bits, p);
        cow_bit_clear(view->writable_bits, p);
        cow_bit_set(view->zero_bits, p);
    }
    cow_mappings_add(view, cow_map_boundaries(view, first, end) - before);
    *failed_call_out = COW_CALL_NONE;
    return 0;
}

int cow_map_refresh(cow_view_t *view, uint64_t page, int *failed_call_out)
{
    *failed_call_out = COW_CALL_NONE;
    int class = cow_page_class(view, page);
    if (class == COW_CLASS_UNMAPPED)
        return 0;
    if (class == COW_CLASS_ZERO)
        return cow_map_zero(view, page, page + 1, failed_call_out);
    int64_t before = cow_map_boundaries(view, page, page + 1);
    int error = cow_protector_of(view)->map(view, page, page + 1, class, cow_slot_of(view, page), 0, failed_call_out);
    if (error != 0) {
        cow_map_forget(view, page, page + 1, *failed_call_out, error);
        return error;
    }
    cow_mappings_add(view, cow_map_boundaries(view, page, page + 1) - before);
    return 0;
}

/* ---- protecting and unmapping ---- */

/* The first writable page at or after `page`, looking only in segments whose summary bit is set. */
static uint64_t cow_next_writable(const cow_view_t *view, uint64_t page)
{
    while (page < view->page_count) {
        uint32_t segment = cow_segment_of(page);
        uint64_t word = cow_load_relaxed(&view->writable_segments[segment >> 6]) >> (segment & 63);
        if (word == 0) { /* none of this word's remaining segments: on to the next word */
            page = cow_segment_first(((segment >> 6) + 1) << 6);
            continue;
        }
        segment += (uint32_t)__builtin_ctzll(word);
        if (cow_segment_first(segment) > page)
            page = cow_segment_first(segment);
        if (page >= view->page_count)
            break;
        uint64_t end = cow_segment_end(view, segment);
        uint64_t found = cow_bits_find(view->writable_bits, page, end, 1);
        if (found < end)
            return found;
        page = end;
    }
    return view->page_count;
}

int cow_map_protect_writable(cow_view_t *view, uint64_t *pages_out)
{
    const cow_protector_t *protector = cow_protector_of(view);
    uint64_t page = 0, protected_pages = 0;
    int error = 0;
    for (;;) {
        uint64_t first = cow_next_writable(view, page);
        if (first == view->page_count)
            break;
        uint64_t end = cow_bits_find(view->writable_bits, first, view->page_count, 0);
        int64_t before = cow_map_boundaries(view, first, end);
        int failed_call;
        error = protector->protect(view, first, end, &failed_call);
        if (error != 0)
            break;
        for (uint64_t p = first; p < end; p++)
            cow_bit_clear(view->writable_bits, p);
        cow_mappings_add(view, cow_map_boundaries(view, first, end) - before);
        protected_pages += end - first;
        page = end;
    }
    if (error == 0) /* no writable page is left: the summary starts empty (a freeze holds the write lock) */
        memset(view->writable_segments, 0, ((view->segment_count + 63u) / 64u) * sizeof(uint64_t));
    if (pages_out != NULL)
        *pages_out = protected_pages;
    return error;
}

int cow_map_unmap(cow_view_t *view, uint64_t first, uint64_t end, int keep_pinned, int *unmapped_out)
{
    int unmapped = 0, error = 0;
    int64_t before = cow_map_boundaries(view, first, end);
    for (uint64_t page = first; page < end;) {
        if (keep_pinned && cow_is_pinned(view, page)) {
            page++;
            continue;
        }
        uint64_t run_end = keep_pinned ? cow_bits_find(view->pinned_bits, page, end, 1) : end;
        if (cow_bits_find(view->mapped_bits, page, run_end, 1) < run_end ||
            cow_bits_find(view->zero_bits, page, run_end, 1) < run_end) {
            error = cow_os_reserve_fixed(cow_page_address(view, page), (run_end - page) << COW_PAGE_SHIFT);
            if (error != 0)
                break; /* the runs unmapped so far are accounted for below; the rest stay mapped */
            for (uint64_t p = page; p < run_end; p++) {
                cow_bit_clear(view->mapped_bits, p);
                cow_bit_clear(view->writable_bits, p);
                cow_bit_clear(view->zero_bits, p);
            }
            unmapped = 1;
        }
        page = run_end;
    }
    cow_mappings_add(view, cow_map_boundaries(view, first, end) - before);
    if (unmapped_out != NULL)
        *unmapped_out = unmapped;
    return error;
}

int cow_map_release_view(cow_view_t *view)
{
    /* A view none of whose pages is mapped is one PROT_NONE mapping already (invariant 2): no call. */
    if (cow_bits_find(view->mapped_bits, 0, view->page_count, 1) < view->page_count ||
        cow_bits_find(view->zero_bits, 0, view->page_count, 1) < view->page_count) {
        int error = cow_os_reset_fixed(view->base, view->page_count << COW_PAGE_SHIFT);
        if (error != 0)
            return error;
    }
    cow_add(&view->engine->mappings, -cow_load_relaxed(&view->mappings));
    cow_store_relaxed(&view->mappings, 0);
    return 0;
}

void cow_map_count_new_view(cow_view_t *view)
{
    /* A view's range starts as one PROT_NONE mapping (its bits are all clear). */
    cow_store_relaxed(&view->mappings, 1);
    cow_add(&view->engine->mappings, 1);
}
