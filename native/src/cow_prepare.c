/*
 * cow_prepare.c - PrepareForWrite and PrepareForRead: the kernel raises no fault for its own
 * accesses to user memory (read(2) into a write-protected page fails with EFAULT; write(2) from a
 * page not mapped yet fails the same way), so pages the kernel is to touch are made ready, and
 * pinned against eviction until the view's next freeze, before the system call.
 */
#include "cow_internal.h"

#include <errno.h>

/* Pages [first, first + count) of one segment: private, writable, pinned. Caller holds the view's
 * read lock and the segment's guard. */
static int cow_prepare_segment_for_write(cow_view_t *view, uint64_t first, uint32_t count,
                                         const cow_segment_guard_t *guard)
{
    cow_resolve_result_t result;
    return cow_resolve_write(view, first, count, COW_RESOLVE_PREPARE, guard, &result);
}

/* Pages of one segment: readable (mapped read-only where they were not mapped at all; the zero page
 * is readable), pinned. Same locking. */
static int cow_prepare_segment_for_read(cow_view_t *view, uint64_t first, uint32_t count,
                                        const cow_segment_guard_t *guard)
{
    (void)guard;
    for (uint64_t page = first; page < first + count; page++) {
        if (!cow_is_readable(view, page)) {
            int failed_call;
            int error = cow_resolve_read(view, page, &failed_call); /* maps the whole untouched run around it */
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
                            int (*prepare_segment)(cow_view_t *, uint64_t, uint32_t, const cow_segment_guard_t *))
{
    if (first_page > view->page_count || page_count > view->page_count - first_page || cow_view_lock_live(view, 0) != 0)
        return EINVAL;
    int error = 0;
    uint64_t page = first_page, end = first_page + page_count;
    while (page < end && error == 0) {
        uint32_t segment = cow_segment_of(page);
        uint64_t segment_end = cow_segment_first(segment) + COW_SEGMENT_PAGES;
        uint32_t count = (uint32_t)((end < segment_end ? end : segment_end) - page);
        cow_segment_guard_t guard;
        cow_segment_lock(view, segment, &guard);
        error = prepare_segment(view, page, count, &guard);
        cow_segment_unlock(&guard);
        page += count;
    }
    cow_read_unlock(&view->lock);
    /* Never refused: the pages must stay mapped for the kernel, so other segments make way. */
    cow_budget_holder_t nothing = {COW_HOLDING_NOTHING, NULL, 0};
    (void)cow_budget_make_room(view->engine, 0, &nothing);
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
