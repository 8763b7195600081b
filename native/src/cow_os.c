/*
 * cow_os.c - the operating-system layer: every mmap, mprotect, munmap, fallocate, mincore, memfd and
 * userfaultfd call of the shim. Each function returns 0 or the errno of the call that failed, and is
 * async-signal-safe where the fault path uses it (the map/protect/punch/userfaultfd helpers).
 *
 * Each system call is preceded by cow_inject(kind): a test can make it fail on demand
 * (native/include/cow_test_inject.h); in production that is one load of a word that stays 0.
 * Calls a signal can interrupt (fallocate, ftruncate) are made again on EINTR, a bounded number of
 * times: EINTR says nothing about the request itself.
 */
#include "cow_inject.h"
#include "cow_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Attempts of a call that failed with EINTR, and of UFFDIO_WRITEPROTECT while the kernel answers
 * EAGAIN (its mappings are changing): bounded, so a condition that does not pass becomes an error
 * instead of a hang (inside the fault handler, a hang would stop the whole runtime). */
#define COW_OS_INTERRUPTED_ATTEMPTS 8
#define COW_OS_UFFD_AGAIN_ATTEMPTS  64
/* Attempts of cow_os_reset_fixed: a clean-up after a failure, which the engine cannot do without. */
#define COW_OS_CLEANUP_ATTEMPTS 8

/* Debian 12's headers predate it (Linux 5.11): the flag that limits a userfaultfd to faults in user
 * mode, which the kernel lets an ordinary user open whatever vm.unprivileged_userfaultfd says. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static int cow_os_truncate(int fd, uint64_t size)
{
    int error = 0;
    for (int attempt = 0; attempt < COW_OS_INTERRUPTED_ATTEMPTS; attempt++) {
        error = cow_inject(COW_INJECT_FTRUNCATE);
        if (error == 0)
            error = ftruncate(fd, (off_t)size) == 0 ? 0 : errno;
        if (error != EINTR)
            break;
    }
    return error;
}

int cow_os_memfd_create(const char *name, uint64_t size, int32_t *fd_out)
{
    int error = cow_inject(COW_INJECT_MEMFD_CREATE);
    if (error != 0)
        return error;
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return errno;
    /* The file is sparse: its size only bounds the slot space, blocks are allocated on first write. */
    error = cow_os_truncate(fd, size);
    if (error != 0) {
        close(fd);
        return error;
    }
    *fd_out = fd;
    return 0;
}

int cow_os_close(int32_t fd)
{
    /* Linux releases the descriptor even when close fails (EINTR, EIO), so an injected failure
     * closes it too: only the report differs. Never retried (the number may be reused already). */
    int injected = cow_inject(COW_INJECT_CLOSE);
    int error = close(fd) == 0 ? 0 : errno;
    return injected != 0 ? injected : error;
}

int cow_os_reserve(uint64_t size, uint64_t alignment, void **address_inout)
{
    int injected = cow_inject(COW_INJECT_RESERVE);
    if (injected != 0)
        return injected;
    if (*address_inout != NULL) {
        /* Exactly there or not at all (growing the arena in place): MAP_FIXED_NOREPLACE refuses with
         * EEXIST to cover any existing mapping. A kernel before 4.17 ignores the flag and treats the
         * address as a hint; a reservation placed elsewhere is refused the same way. */
        void *wanted = *address_inout;
        void *got =
            mmap(wanted, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (got == MAP_FAILED)
            return errno;
        if (got != wanted) {
            munmap(got, size);
            return EEXIST;
        }
        return 0;
    }
    /* Over-reserve, then trim both ends, so the reservation starts on `alignment`. */
    uint64_t padded = size + alignment;
    void *raw = mmap(NULL, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return errno;
    uint64_t start = ((uint64_t)raw + alignment - 1) & ~(alignment - 1);
    uint64_t head = start - (uint64_t)raw;
    uint64_t tail = padded - head - size;
    if (head != 0)
        munmap(raw, head);
    if (tail != 0)
        munmap((void *)(start + size), tail);
    *address_inout = (void *)start;
    return 0;
}

int cow_os_allocate_table(uint64_t size, void **address_out)
{
    int injected = cow_inject(COW_INJECT_ALLOCATE_TABLE);
    if (injected != 0)
        return injected;
    void *address = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (address == MAP_FAILED)
        return errno;
    *address_out = address;
    return 0;
}

int cow_os_release(void *address, uint64_t size)
{
    int injected = cow_inject(COW_INJECT_RELEASE);
    if (injected != 0)
        return injected; /* as if munmap had failed: the memory stays mapped */
    return munmap(address, size) == 0 ? 0 : errno;
}

int cow_os_map_pool(int32_t fd, uint64_t size, void **address_out)
{
    int injected = cow_inject(COW_INJECT_MAP_POOL);
    if (injected != 0)
        return injected;
    void *address = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (address == MAP_FAILED)
        return errno;
    *address_out = address;
    return 0;
}

int cow_os_file_allocated_bytes(int32_t fd, uint64_t *bytes_out)
{
    int injected = cow_inject(COW_INJECT_FSTAT);
    if (injected != 0)
        return injected;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno;
    *bytes_out = (uint64_t)st.st_blocks * 512u;
    return 0;
}

const char *cow_os_error_name(int error)
{
    return strerrorname_np(error);
}

int cow_os_map_slots(uint64_t address, uint64_t length, int writable, int populate, int fd, uint64_t offset)
{
    int injected = cow_inject(COW_INJECT_MAP_SLOTS);
    if (injected != 0)
        return injected; /* as if the kernel had refused before touching the old mapping */
    int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    /* MAP_POPULATE fills the page table entries now, under the mmap lock this call holds anyway,
     * which saves the faulting instruction a second (kernel) fault when it is retried. */
    int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
    void *result = mmap((void *)address, length, prot, flags, fd, (off_t)offset);
    return result == MAP_FAILED ? errno : 0;
}

int cow_os_protect(uint64_t address, uint64_t length, int writable)
{
    int injected = cow_inject(COW_INJECT_PROTECT);
    if (injected != 0)
        return injected;
    int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    return mprotect((void *)address, length, prot) == 0 ? 0 : errno;
}

int cow_os_reserve_fixed(uint64_t address, uint64_t length)
{
    int injected = cow_inject(COW_INJECT_RESERVE_FIXED);
    if (injected != 0)
        return injected;
    /* Only ever over a range of our own arena, so MAP_FIXED cannot clobber someone else's memory. */
    void *result =
        mmap((void *)address, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return result == MAP_FAILED ? errno : 0;
}

int cow_os_map_zero(uint64_t address, uint64_t length)
{
    int injected = cow_inject(COW_INJECT_MAP_ZERO);
    if (injected != 0)
        return injected; /* as if the kernel had refused before touching the old mapping */
    /* Private anonymous and never writable: a read maps the kernel's one zero page (no memory, no
     * anon_vma), so neighbouring ranges made by separate calls merge into one mapping. Only ever over
     * a range of our own arena. */
    void *result =
        mmap((void *)address, length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return result == MAP_FAILED ? errno : 0;
}

int cow_os_seek(int fd, uint64_t offset, int data, uint64_t *found_out)
{
    int error = cow_inject(COW_INJECT_SEEK_DATA);
    if (error != 0)
        return error;
    off_t found = lseek(fd, (off_t)offset, data ? SEEK_DATA : SEEK_HOLE);
    if (found >= 0) {
        *found_out = (uint64_t)found;
        return 0;
    }
    error = errno;
    if (error != ENXIO || !data)
        return error;
    *found_out = UINT64_MAX; /* no data at or after `offset`: the rest of the file is a hole */
    return 0;
}

int cow_os_reset_fixed(uint64_t address, uint64_t length)
{
    int error = 0;
    for (int attempt = 0; attempt < COW_OS_CLEANUP_ATTEMPTS; attempt++) {
        error = cow_os_reserve_fixed(address, length);
        if (error == 0)
            break;
        sched_yield(); /* another thread may be giving mappings back meanwhile */
    }
    return error;
}

int cow_os_punch(int fd, uint64_t offset, uint64_t length)
{
    int error = 0;
    for (int attempt = 0; attempt < COW_OS_INTERRUPTED_ATTEMPTS; attempt++) {
        error = cow_inject(COW_INJECT_PUNCH);
        if (error == 0)
            error = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) == 0
                        ? 0
                        : errno;
        if (error != EINTR)
            break;
    }
    return error;
}

int cow_os_is_resident(const void *page, int *resident_out)
{
    uint64_t run = 0;
    int error = cow_os_resident_run((const uint8_t *)page, 1, &run);
    *resident_out = run == 1;
    return error;
}

int cow_os_resident_run(const uint8_t *first, uint64_t pages, uint64_t *run_out)
{
    /* mincore reports the page cache of a shared mapping: for the pool, whether the slot holds memory.
     * EAGAIN (the kernel is short of memory for a moment) is asked again, a bounded number of times. */
    unsigned char resident[64];
    uint64_t run = 0;
    int error = 0;
    while (run < pages && error == 0) {
        uint64_t count = pages - run < sizeof resident ? pages - run : sizeof resident;
        for (int attempt = 0; attempt < COW_OS_INTERRUPTED_ATTEMPTS; attempt++) {
            error = cow_inject(COW_INJECT_MINCORE);
            if (error == 0)
                error = mincore((void *)(first + (run << COW_PAGE_SHIFT)), count << COW_PAGE_SHIFT, resident) == 0
                            ? 0
                            : errno;
            if (error != EAGAIN && error != EINTR)
                break;
        }
        uint64_t i = 0;
        while (error == 0 && i < count && (resident[i] & 1) != 0)
            i++;
        run += i;
        if (i < count)
            break;
    }
    *run_out = run;
    return error;
}

/* ---- userfaultfd ---- */

int cow_os_userfaultfd_open(int32_t *fd_out)
{
#ifdef SYS_userfaultfd
    int injected = cow_inject(COW_INJECT_USERFAULTFD);
    if (injected != 0)
        return injected;
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0 && errno == EINVAL) /* a kernel before the flag: only a privileged caller gets one */
        fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno;
    const uint64_t wanted = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    struct uffdio_api api = {.api = UFFD_API, .features = wanted};
    int error = cow_inject(COW_INJECT_UFFD_API);
    if (error == 0)
        error = ioctl(fd, UFFDIO_API, &api) == 0 ? 0 : errno;
    if (error == 0 && ((api.features & wanted) != wanted || (api.ioctls & (1ull << _UFFDIO_REGISTER)) == 0))
        error = EOPNOTSUPP;
    if (error == EINVAL) /* a feature this kernel does not know */
        error = EOPNOTSUPP;
    if (error != 0) {
        close(fd);
        return error;
    }
    *fd_out = fd;
    return 0;
#else
    (void)fd_out;
    return ENOSYS;
#endif
}

int cow_os_uffd_register(int fd, uint64_t address, uint64_t length)
{
    int injected = cow_inject(COW_INJECT_UFFD_REGISTER);
    if (injected != 0)
        return injected;
    struct uffdio_register registration = {.range = {.start = address, .len = length}, .mode = UFFDIO_REGISTER_MODE_WP};
    return ioctl(fd, UFFDIO_REGISTER, &registration) == 0 ? 0 : errno;
}

int cow_os_uffd_protect(int fd, uint64_t address, uint64_t length, int protect)
{
    struct uffdio_writeprotect wp = {.range = {.start = address, .len = length},
                                     .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
    int error = 0;
    for (int attempt = 0; attempt < COW_OS_UFFD_AGAIN_ATTEMPTS; attempt++) {
        error = cow_inject(COW_INJECT_UFFD_WRITEPROTECT);
        if (error == 0)
            error = ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : errno;
        if (error != EAGAIN) /* the kernel asks again while the mappings change under it */
            return error;
        sched_yield();
    }
    return error;
}
