/*
 * test_inject.c - failure injection (cow_inject.c, native/include/cow_test_inject.h) and what the
 * engine does when a system call fails: the injection's own rules (nth, rate, contexts, suspension,
 * counts), a failure inside the fault handler retried, hole punches that fail and are retried
 * later, clean-ups that fail (a region that cannot unmap after a failed create, a view that cannot
 * be unmapped at dispose), a refused freeze that keeps prepared pages writable, a failed mincore
 * that must not change a diff, and the bounded retries (EINTR, UFFDIO_WRITEPROTECT's EAGAIN).
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define WORD(view, page) (*(volatile uint64_t *)(cow_page_address((view), (page)) + 16))

/* The kind a freeze and an in-place unprotect go through with this run's protector. */
static uint32_t protect_kind(void)
{
    return harness_protection == COW_PROTECT_USERFAULTFD ? COW_INJECT_UFFD_WRITEPROTECT : COW_INJECT_PROTECT;
}

static uint64_t allocated_bytes(cow_engine_t *engine)
{
    uint64_t bytes = 0;
    CHECK(cow_os_file_allocated_bytes(engine->memfd, &bytes) == 0, "fstat of the pool");
    return bytes;
}

static void test_injection_follows_nth_rate_contexts_and_suspension(void)
{
    void *scratch = NULL;
    CHECK(cow_os_allocate_table(COW_PAGE_SIZE, &scratch) == 0, "scratch page");
    uint64_t address = (uint64_t)scratch;

    CHECK(cow_test_inject_configure(COW_INJECT_KINDS, COW_INJECT_IN_API, 1, 0, ENOMEM, 0) == EINVAL, "unknown kind");
    CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, 4, 1, 0, ENOMEM, 0) == EINVAL, "unknown context bit");
    CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, COW_INJECT_IN_API, 0, 1000001, ENOMEM, 0) == EINVAL, "rate");
    CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, COW_INJECT_IN_API, 1, 0, 0, 0) == EINVAL, "no errno");
    CHECK(cow_inject_active == 0, "nothing armed after refused settings");

    /* nth alone: only that call. */
    CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, COW_INJECT_IN_API, 3, 0, EAGAIN, 0) == 0, "configure nth");
    int results[6];
    for (int i = 0; i < 6; i++)
        results[i] = cow_os_protect(address, COW_PAGE_SIZE, 1);
    CHECK(results[0] == 0 && results[1] == 0 && results[2] == EAGAIN && results[3] == 0 && results[5] == 0,
          "nth 3: %d %d %d %d %d %d", results[0], results[1], results[2], results[3], results[4], results[5]);
    CHECK(cow_test_inject_count(COW_INJECT_PROTECT, COW_INJECT_IN_API) == 1, "one injected");
    CHECK(cow_test_inject_calls(COW_INJECT_PROTECT, COW_INJECT_IN_API) == 6, "six seen");
    CHECK(cow_test_inject_count(COW_INJECT_PROTECT, COW_INJECT_IN_FAULT) == 0, "none in the fault context");

    /* nth with a rate of every call: that call and all after it. */
    CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, COW_INJECT_IN_API, 2, 1000000, EPERM, 0) == 0, "nth + all");
    CHECK(cow_os_protect(address, COW_PAGE_SIZE, 1) == 0, "before the nth");
    for (int i = 0; i < 5; i++)
        CHECK(cow_os_protect(address, COW_PAGE_SIZE, 1) == EPERM, "from the nth on, call %d", i);

    /* A rate: about that share, and the same failures for the same seed. */
    uint64_t first[32] = {0}, second[32] = {0};
    uint64_t *passes[2] = {first, second};
    for (int pass = 0; pass < 2; pass++) {
        CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, COW_INJECT_IN_API, 0, 250000, ENOMEM, 42) == 0, "rate");
        for (int i = 0; i < 2048; i++)
            if (cow_os_protect(address, COW_PAGE_SIZE, 1) != 0)
                passes[pass][i / 64] |= 1ull << (i % 64);
    }
    uint64_t failed = cow_test_inject_count(COW_INJECT_PROTECT, COW_INJECT_IN_API);
    CHECK(failed > 400 && failed < 620, "a rate of 25%% failed %" PRIu64 " of 2048 calls", failed);
    CHECK(memcmp(first, second, sizeof first) == 0, "the same seed gives the same failures");

    /* Another context only: calls here never fail and are not counted. */
    CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, COW_INJECT_IN_FAULT, 0, 1000000, ENOMEM, 0) == 0, "fault only");
    CHECK(cow_os_protect(address, COW_PAGE_SIZE, 1) == 0, "outside the handler");
    CHECK(cow_test_inject_calls(COW_INJECT_PROTECT, COW_INJECT_IN_API) == 0, "not counted");

    /* Suspended: nothing fails, nothing counts; resumed: as configured. */
    CHECK(cow_test_inject_configure(COW_INJECT_PROTECT, COW_INJECT_ANYWHERE, 0, 1000000, ENOMEM, 0) == 0, "all");
    cow_test_inject_suspend(1);
    CHECK(cow_inject_active == 0, "suspended: the fast path sees nothing armed");
    CHECK(cow_os_protect(address, COW_PAGE_SIZE, 1) == 0, "suspended");
    cow_test_inject_suspend(0);
    CHECK(cow_os_protect(address, COW_PAGE_SIZE, 1) == ENOMEM, "resumed");
    CHECK(cow_test_inject_calls(COW_INJECT_PROTECT, COW_INJECT_IN_API) == 1, "only the resumed call counted");

    /* close: the descriptor goes even when the report is a failure (Linux semantics). */
    int32_t fd = -1;
    CHECK(cow_os_memfd_create("inject-close", COW_PAGE_SIZE, &fd) == 0, "memfd");
    CHECK(cow_test_inject_configure(COW_INJECT_CLOSE, COW_INJECT_IN_API, 1, 0, EINTR, 0) == 0, "close");
    CHECK(cow_os_close(fd) == EINTR, "close reports the failure");
    CHECK(cow_os_close(fd) == EBADF, "and the descriptor is gone");

    cow_test_inject_reset();
    CHECK(cow_inject_active == 0, "reset disarms");
    CHECK(cow_test_inject_count(COW_INJECT_PROTECT, COW_INJECT_IN_API) == 0, "reset zeroes the counts");
    CHECK(strcmp(cow_test_inject_kind_name(COW_INJECT_UFFD_WRITEPROTECT), "uffd_writeprotect") == 0, "names");
    CHECK(cow_test_inject_kind_name(COW_INJECT_KINDS) == NULL, "no name past the last kind");
    cow_os_release(scratch, COW_PAGE_SIZE);
}

/* A write fault whose mapping call fails once: the handler tries again and the write lands. */
static void test_a_failure_inside_the_fault_handler_is_retried_once(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 16), *snapshot = harness_view(engine, 16);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    for (uint64_t p = 0; p < 16; p++)
        WORD(region, p) = p;
    CHECK(cow_view_snapshot(region, snapshot) == 0, "snapshot");
    CHECK(WORD(snapshot, 3) == 3, "the snapshot maps page 3 (a forward copy for the region's write)");
    static const int errors[] = {ENOMEM, EAGAIN};
    for (int i = 0; i < 2; i++) {
        uint64_t page = 3 + (uint64_t)i;
        (void)WORD(snapshot, page);
        CHECK(cow_test_inject_configure(COW_INJECT_MAP_SLOTS, COW_INJECT_IN_FAULT, 1, 0, errors[i], 0) == 0, "arm");
        WORD(region, page) = 1000 + page;
        CHECK(cow_test_inject_count(COW_INJECT_MAP_SLOTS, COW_INJECT_IN_FAULT) == 1, "the fault's mmap failed once");
        CHECK(cow_test_inject_count(COW_INJECT_MAP_SLOTS, COW_INJECT_IN_API) == 0, "nothing outside the handler");
        CHECK(WORD(region, page) == 1000 + page, "the write landed");
        CHECK(WORD(snapshot, page) == page, "the snapshot kept its bytes");
    }
    cow_test_inject_reset();
    check_view(region, "region after retried faults");
    check_view(snapshot, "snapshot after retried faults");
    CHECK(cow_view_dispose(snapshot) == 0 && cow_view_dispose(region) == 0, "dispose");
    harness_view_free(snapshot);
    harness_view_free(region);
    CHECK(engine->slots_in_use == 0, "%" PRIu64 " slots left", engine->slots_in_use);
    harness_engine_free(engine);
}

static void test_a_failed_punch_keeps_its_slots_until_a_retry_succeeds(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    uint64_t ring[16];
    engine->reclaim_ring = ring;
    engine->reclaim_capacity = 16;
    cow_view_t *region = harness_view(engine, COW_SEGMENT_PAGES);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    memset((void *)region->base, 0xAB, (size_t)COW_SEGMENT_PAGES << COW_PAGE_SHIFT);
    uint32_t old_chunk = cow_slot_of(region, 0) >> COW_CHUNK_SLOTS_SHIFT;
    CHECK(cow_view_dispose(region) == 0, "dispose (its slots are queued)");
    harness_view_free(region);
    CHECK(engine->slots_in_use == COW_SEGMENT_PAGES, "queued slots still count: %" PRIu64, engine->slots_in_use);

    CHECK(cow_test_inject_configure(COW_INJECT_PUNCH, COW_INJECT_IN_API, 0, 1000000, EIO, 0) == 0, "arm");
    uint64_t reclaimed = 99;
    CHECK(cow_engine_reclaim(engine, &reclaimed) == EIO && reclaimed == 0, "the reclaim reports the failed punch");
    CHECK(cow_engine_reclaim(engine, NULL) == EIO, "and again: the run went back to the queue");
    CHECK(engine->reclaim_tail - engine->reclaim_head == 1, "one run queued");
    CHECK(engine->slots_in_use == COW_SEGMENT_PAGES, "its slots stay in use: %" PRIu64, engine->slots_in_use);
    CHECK(allocated_bytes(engine) >= (uint64_t)COW_SEGMENT_PAGES << COW_PAGE_SHIFT, "and committed");

    /* Meanwhile a new region never gets those slots, and reads zero. */
    cow_view_t *fresh = harness_view(engine, COW_SEGMENT_PAGES);
    CHECK(cow_region_create(fresh, 0) == 0, "a new region");
    CHECK(cow_slot_of(fresh, 0) >> COW_CHUNK_SLOTS_SHIFT != old_chunk, "it does not reuse the unpunched chunk");
    int zero = 1;
    for (uint64_t p = 0; p < COW_SEGMENT_PAGES && zero; p++)
        zero = WORD(fresh, p) == 0;
    CHECK(zero, "the new region reads zero");

    cow_test_inject_reset();
    CHECK(cow_engine_reclaim(engine, &reclaimed) == 0 && reclaimed == COW_SEGMENT_PAGES, "the retry reclaims it");
    CHECK(engine->slots_in_use == COW_SEGMENT_PAGES, "only the new region's slots: %" PRIu64, engine->slots_in_use);
    CHECK(cow_view_dispose(fresh) == 0, "dispose");
    harness_view_free(fresh);
    CHECK(cow_engine_reclaim(engine, NULL) == 0 && engine->slots_in_use == 0, "empty");
    CHECK(allocated_bytes(engine) == 0, "nothing committed: %" PRIu64, allocated_bytes(engine));
    engine->reclaim_capacity = 0;
    engine->reclaim_ring = NULL;
    harness_engine_free(engine);
}

/* Without room in a queue, a failed punch zeroes the slots and frees them: a new region that gets
 * them still reads zero. And a punch interrupted once (EINTR) is simply made again. */
static void test_a_failed_punch_without_a_queue_zeroes_the_slots(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, COW_SEGMENT_PAGES);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    memset((void *)region->base, 0xCD, (size_t)COW_SEGMENT_PAGES << COW_PAGE_SHIFT);
    uint32_t old_chunk = cow_slot_of(region, 0) >> COW_CHUNK_SLOTS_SHIFT;
    CHECK(cow_test_inject_configure(COW_INJECT_PUNCH, COW_INJECT_IN_API, 0, 1000000, ENOSPC, 0) == 0, "arm");
    CHECK(cow_view_dispose(region) == 0, "dispose");
    harness_view_free(region);
    CHECK(engine->slots_in_use == 0, "the slots are free: %" PRIu64, engine->slots_in_use);
    cow_test_inject_reset();
    cow_view_t *again = harness_view(engine, COW_SEGMENT_PAGES);
    CHECK(cow_region_create(again, 0) == 0, "a new region");
    CHECK(cow_slot_of(again, 0) >> COW_CHUNK_SLOTS_SHIFT == old_chunk, "it reuses the chunk (the free list)");
    int zero = 1;
    for (uint64_t p = 0; p < COW_SEGMENT_PAGES && zero; p++)
        zero = WORD(again, p) == 0 && *(volatile uint8_t *)cow_page_address(again, p) == 0;
    CHECK(zero, "and reads zero");

    CHECK(cow_test_inject_configure(COW_INJECT_PUNCH, COW_INJECT_IN_API, 1, 0, EINTR, 0) == 0, "arm EINTR");
    memset((void *)again->base, 0xEF, COW_PAGE_SIZE);
    CHECK(cow_view_dispose(again) == 0, "dispose");
    harness_view_free(again);
    CHECK(cow_test_inject_count(COW_INJECT_PUNCH, COW_INJECT_IN_API) == 1 &&
              cow_test_inject_calls(COW_INJECT_PUNCH, COW_INJECT_IN_API) == 2,
          "the interrupted punch was made again");
    CHECK(allocated_bytes(engine) == 0, "and punched: %" PRIu64 " bytes left", allocated_bytes(engine));
    cow_test_inject_reset();
    harness_engine_free(engine);
}

/* A region whose zero-page mapping fails: nothing was mapped (the mmap refused before replacing the
 * range), so the create fails with its error and gives every slot back; the range can be used again. */
static void test_a_region_whose_mapping_fails_gives_everything_back(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 2 * COW_SEGMENT_PAGES);
    CHECK(cow_test_inject_configure(COW_INJECT_MAP_ZERO, COW_INJECT_IN_API, 1, 0, ENOMEM, 0) == 0, "arm mmap");
    CHECK(cow_region_create(region, 0) == ENOMEM, "the create fails with the mmap's error");
    CHECK(cow_test_inject_count(COW_INJECT_MAP_ZERO, COW_INJECT_IN_API) == 1, "it was injected");
    cow_test_inject_reset();
    CHECK((region->flags & COW_VIEW_RANGE_KEPT) == 0, "the range can be used again");
    CHECK(region->state != COW_VIEW_LIVE, "the view never went live");
    CHECK(engine->slots_in_use == 0, "its slots are given back: %" PRIu64 " in use", engine->slots_in_use);
    CHECK(engine->chunks_in_use == 0 && engine->leaves_in_use == 0, "and its chunks and leaves");
    CHECK(harness_kernel_mappings(region) == 1, "the range is one PROT_NONE mapping");
    CHECK(cow_region_create(region, 0) == 0, "created again");
    WORD(region, 3) = 5;
    CHECK(WORD(region, 3) == 5, "and usable");
    CHECK(cow_view_dispose(region) == 0, "dispose");
    harness_view_free(region);
    harness_engine_free(engine);
}

/* dispose cannot unmap the view: its slots are leaked, not freed while still mapped. */
static void test_a_view_that_cannot_be_unmapped_at_dispose_keeps_its_slots(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 8), *other = harness_view(engine, 8);
    CHECK(cow_region_create(region, 0) == 0 && cow_region_create(other, 0) == 0, "regions");
    WORD(region, 1) = 11;
    WORD(other, 1) = 22;
    CHECK(cow_test_inject_configure(COW_INJECT_RESERVE_FIXED, COW_INJECT_IN_API, 1, 0, ENOMEM, 0) == 0, "once");
    CHECK(cow_view_dispose(other) == 0, "one refusal is retried");
    harness_view_free(other);
    CHECK(engine->slots_in_use == 8, "%" PRIu64 " slots", engine->slots_in_use);
    CHECK(cow_test_inject_configure(COW_INJECT_RESERVE_FIXED, COW_INJECT_IN_API, 0, 1000000, ENOMEM, 0) == 0, "all");
    CHECK(cow_view_dispose(region) == ENOMEM, "dispose reports it");
    cow_test_inject_reset();
    CHECK(region->state == COW_VIEW_DISPOSED, "the view is gone for the API");
    CHECK(engine->slots_in_use == 8, "its slots are kept: %" PRIu64, engine->slots_in_use);
    CHECK(WORD(region, 1) == 11, "still mapped onto them (nothing else can get them)");
    harness_view_free(region);
    harness_engine_free(engine);
}

/* A snapshot whose freeze fails part-way is refused, and the source's prepared pages stay writable. */
static void test_a_refused_snapshot_leaves_prepared_pages_writable(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 64), *snapshot = harness_view(engine, 64);
    CHECK(cow_region_create(region, 1) == 0, "a tracked region (read-only until written)");
    static const uint64_t prepared[] = {10, 20, 40};
    for (int i = 0; i < 3; i++)
        CHECK(cow_view_prepare_write(region, prepared[i], 1) == 0, "prepare %" PRIu64, prepared[i]);
    CHECK(cow_test_inject_configure(protect_kind(), COW_INJECT_IN_API, 2, 0, ENOMEM, 0) == 0, "arm");
    CHECK(cow_view_snapshot(region, snapshot) == ENOMEM, "the snapshot is refused");
    CHECK(cow_test_inject_count(protect_kind(), COW_INJECT_IN_API) == 1, "by the second run's protection");
    cow_test_inject_reset();
    CHECK(snapshot->state != COW_VIEW_LIVE, "no snapshot");
    for (int i = 0; i < 3; i++)
        CHECK(cow_is_writable(region, prepared[i]) && cow_is_pinned(region, prepared[i]),
              "page %" PRIu64 " is writable and pinned again", prepared[i]);
    check_view(region, "after the refused snapshot");
    uint64_t faults = engine->write_faults;
    for (int i = 0; i < 3; i++)
        WORD(region, prepared[i]) = 7;
    CHECK(engine->write_faults == faults, "writing the prepared pages faults no more");
    CHECK(cow_view_dispose(region) == 0, "dispose");
    harness_view_free(region);
    harness_view_free(snapshot);
    harness_engine_free(engine);
}

/* A page that a restore copied back holds the same bytes as its source in another slot. A mincore that
 * fails must not make a diff report it: EAGAIN is asked again; another error fails the diff (its
 * answer must not depend on a failure); and a restore, which cannot fail there, compares the bytes. */
static void test_a_failed_mincore_does_not_change_a_diff_or_a_restore(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 8), *snapshot = harness_view(engine, 8),
               *second = harness_view(engine, 8);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    for (uint64_t p = 0; p < 8; p++)
        WORD(region, p) = p + 1;
    CHECK(cow_view_snapshot(region, snapshot) == 0, "snapshot");
    WORD(region, 2) = 99;
    CHECK(cow_view_restore(region, snapshot) == 0, "restore (copies page 2 back)");
    CHECK(cow_view_snapshot(snapshot, second) == 0, "a snapshot of the snapshot (no base of the region's)");
    CHECK(cow_slot_of(region, 2) != cow_slot_of(second, 2), "page 2: other slots, equal bytes");
    uint64_t bits[1] = {0}, count = 99;
    CHECK(cow_test_inject_configure(COW_INJECT_MINCORE, COW_INJECT_IN_API, 1, 0, EAGAIN, 0) == 0, "once");
    CHECK(cow_view_diff(region, second, bits, &count) == 0, "diff");
    CHECK(cow_test_inject_count(COW_INJECT_MINCORE, COW_INJECT_IN_API) == 1, "mincore failed once");
    CHECK(count == 0 && bits[0] == 0, "the diff reports %" PRIu64 " pages (bits %#" PRIx64 ")", count, bits[0]);
    CHECK(cow_test_inject_configure(COW_INJECT_MINCORE, COW_INJECT_IN_API, 0, 1000000, ENOMEM, 0) == 0, "always");
    bits[0] = 0;
    CHECK(cow_view_diff(region, second, bits, &count) == ENOMEM && count == 0, "the diff fails with mincore's error");
    CHECK(cow_test_inject_configure(COW_INJECT_MINCORE, COW_INJECT_IN_API, 0, 1000000, EAGAIN, 0) == 0, "EAGAIN");
    CHECK(cow_view_diff(region, second, bits, &count) == EAGAIN, "an EAGAIN that does not pass fails it too");
    CHECK(cow_test_inject_calls(COW_INJECT_MINCORE, COW_INJECT_IN_API) <= 16, "after a bounded number of attempts");
    /* A restore of the region to `second` shares segment 0 (the leaves differ, page 2's slot is the
     * region's own but the others are shared): page 2's bytes are equal, so it must not become dirty. */
    uint64_t dirty[1] = {0};
    CHECK(cow_view_take_dirty(region, dirty, &count) == 0, "clear the region's dirty pages");
    CHECK(cow_view_restore(region, second) == 0, "restore with mincore failing");
    CHECK(cow_view_take_dirty(region, dirty, &count) == 0, "dirty pages");
    cow_test_inject_reset();
    CHECK(count == 0, "the restore marked %" PRIu64 " pages dirty (bits %#" PRIx64 "), none changed", count, dirty[0]);
    cow_view_t *views[] = {second, snapshot, region};
    for (int i = 0; i < 3; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    harness_engine_free(engine);
}

/* UFFDIO_WRITEPROTECT answered EAGAIN is asked again, a bounded number of times; an mprotect engine
 * never makes the call. */
static void test_writeprotect_again_is_retried_and_bounded(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 8);
    CHECK(cow_region_create(region, 1) == 0, "a tracked region");
    stamp_slots(engine, region); /* mapped read-only onto its slots: preparing unprotects them in place */
    CHECK(cow_test_inject_configure(COW_INJECT_UFFD_WRITEPROTECT, COW_INJECT_IN_API, 1, 0, EAGAIN, 0) == 0, "once");
    CHECK(cow_view_prepare_write(region, 0, 1) == 0, "one EAGAIN is retried");
    if (harness_protection == COW_PROTECT_USERFAULTFD) {
        CHECK(cow_test_inject_count(COW_INJECT_UFFD_WRITEPROTECT, COW_INJECT_IN_API) == 1, "it was injected");
        CHECK(cow_test_inject_configure(COW_INJECT_UFFD_WRITEPROTECT, COW_INJECT_IN_API, 0, 1000000, EAGAIN, 0) == 0,
              "always");
        CHECK(cow_view_prepare_write(region, 1, 1) == EAGAIN, "an EAGAIN that does not pass becomes the error");
        uint64_t calls = cow_test_inject_calls(COW_INJECT_UFFD_WRITEPROTECT, COW_INJECT_IN_API);
        CHECK(calls >= 2 && calls <= 128, "after %" PRIu64 " attempts, not forever", calls);
        cow_test_inject_reset();
        CHECK(!cow_is_writable(region, 1), "page 1 stays protected");
        check_view(region, "after the refused unprotect");
    } else {
        CHECK(cow_test_inject_calls(COW_INJECT_UFFD_WRITEPROTECT, COW_INJECT_IN_API) == 0,
              "an mprotect engine makes no userfaultfd call");
    }
    cow_test_inject_reset();
    CHECK(cow_view_dispose(region) == 0, "dispose");
    harness_view_free(region);
    harness_engine_free(engine);
}

void run_inject_tests(int *passed, int *total)
{
    *total += 9;
    *passed += RUN(test_injection_follows_nth_rate_contexts_and_suspension);
    *passed += RUN(test_a_failure_inside_the_fault_handler_is_retried_once);
    *passed += RUN(test_a_failed_punch_keeps_its_slots_until_a_retry_succeeds);
    *passed += RUN(test_a_failed_punch_without_a_queue_zeroes_the_slots);
    *passed += RUN(test_a_region_whose_mapping_fails_gives_everything_back);
    *passed += RUN(test_a_view_that_cannot_be_unmapped_at_dispose_keeps_its_slots);
    *passed += RUN(test_a_refused_snapshot_leaves_prepared_pages_writable);
    *passed += RUN(test_a_failed_mincore_does_not_change_a_diff_or_a_restore);
    *passed += RUN(test_writeprotect_again_is_retried_and_bounded);
}
