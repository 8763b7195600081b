/*
 * cow_protect_uffd.c - write protection by userfaultfd (UFFDIO_WRITEPROTECT), chosen per engine
 * (CowEngineOptions.WriteProtection). A write to a protected page raises SIGBUS in the writing thread
 * (UFFD_FEATURE_SIGBUS: no handler thread); cow_signal.c resolves it. Protection is kept per page
 * table entry, so protecting and unprotecting split no mapping and take the process's mmap lock only
 * for reading (two writer threads fault in parallel); never-touched pages of shared memory are
 * protected too (the kernel leaves a marker in their page table entry).
 *
 * Every mapping of a view's pages is read-write in the kernel's eyes and registered with the
 * engine's userfaultfd for write-protect faults. A mapping made by mmap(MAP_FIXED) starts
 * unregistered, so it is registered right after; one that must start read-only is mapped read-only,
 * registered, write-protected, and only then made read-write - at no moment may a write reach a
 * shared slot unseen (another thread of the view can touch the page the instant it is mapped).
 */
#include "cow_internal.h"

static uint64_t cow_bytes(uint64_t first, uint64_t end)
{
    return (end - first) << COW_PAGE_SHIFT;
}

static int cow_uffd_map(cow_view_t *view, uint64_t first, uint64_t end, int class, uint32_t slot, int populate,
                        int *failed_call_out)
{
    int fd = view->engine->uffd;
    uint64_t address = cow_page_address(view, first), length = cow_bytes(first, end);
    *failed_call_out = COW_CALL_MMAP;
    int error = cow_os_map_slots(address, length, class == COW_CLASS_WRITE, populate, view->engine->memfd,
                                 (uint64_t)slot << COW_PAGE_SHIFT);
    if (error == 0) {
        *failed_call_out = COW_CALL_UFFD_REGISTER;
        error = cow_os_uffd_register(fd, address, length);
    }
    if (error == 0 && class != COW_CLASS_WRITE) {
        *failed_call_out = COW_CALL_UFFD_WRITEPROTECT;
        error = cow_os_uffd_protect(fd, address, length, 1);
        if (error == 0) {
            *failed_call_out = COW_CALL_MPROTECT;
            error = cow_os_protect(address, length, 1); /* protected now: the mapping may be read-write */
        }
    }
    if (error != 0 && *failed_call_out != COW_CALL_MMAP)
        cow_os_reset_fixed(address, length); /* never leave it mapped half-prepared */
    return error;
}

static int cow_uffd_protect(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out)
{
    *failed_call_out = COW_CALL_UFFD_WRITEPROTECT;
    return cow_os_uffd_protect(view->engine->uffd, cow_page_address(view, first), cow_bytes(first, end), 1);
}

static int cow_uffd_unprotect(cow_view_t *view, uint64_t first, uint64_t end, int *failed_call_out)
{
    *failed_call_out = COW_CALL_UFFD_WRITEPROTECT;
    return cow_os_uffd_protect(view->engine->uffd, cow_page_address(view, first), cow_bytes(first, end), 0);
}

const cow_protector_t cow_protector_userfaultfd = {
    .name = "userfaultfd",
    .protection_splits = 0,
    .map = cow_uffd_map,
    .protect = cow_uffd_protect,
    .unprotect = cow_uffd_unprotect,
};
