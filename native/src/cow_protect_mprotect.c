/*
 * cow_protect_mprotect.c - write protection by mprotect (the default, and the reference: it works
 * on every kernel the engine supports). A write to a protected page raises SIGSEGV (SEGV_ACCERR).
 * Protection is part of the kernel's mapping, so making one page of a read-only run writable splits
 * that mapping in three; freezing merges them back (docs/design.md, the mapping budget).
 */
#include "cow_internal.h"

static int cow_mprotect_map(cow_view_t *view, uint64_t first, uint64_t end, int class, uint32_t slot, int populate,
                            int *failed_call_out)
{
    *failed_call_out = COW_CALL_MMAP;
    return cow_os_map_slots(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT, class == COW_CLASS_WRITE,
                            populate, view->engine->memfd, (uint64_t)slot << COW_PAGE_SHIFT);
}

static int cow_mprotect_protect(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out)
{
    *failed_call_out = COW_CALL_MPROTECT;
    return cow_os_protect(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT, 0);
}

static int cow_mprotect_unprotect(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out)
{
    *failed_call_out = COW_CALL_MPROTECT;
    return cow_os_protect(cow_page_address(view, first), (end - first) << COW_PAGE_SHIFT, 1);
}

const cow_protector_t cow_protector_mprotect = {
    .name = "mprotect",
    .protection_splits = 1,
    .map = cow_mprotect_map,
    .protect = cow_mprotect_protect,
    .unprotect = cow_mprotect_unprotect,
};
