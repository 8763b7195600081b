/*
 * test_fault_around.c - write fault-around: a sequential pass over shared pages takes one signal per
 * window of pages, the window doubling up to the engine's fault_around_pages; strided and random
 * passes resolve one page per fault; a track_writes region resolves one page per fault always.
 */
#include "harness.h"

#include <inttypes.h>

enum { Pages = 2048, Limit = 32 };

typedef struct pass {
    uint64_t faults, writable;
} pass_t;

/* Region + snapshot; writes every `stride`-th page (in order) of the region; returns the faults it
 * took and the pages left writable. */
static pass_t write_pass(uint32_t fault_around, int track_writes, uint64_t stride)
{
    cow_engine_t *engine = harness_engine(16, 0);
    engine->fault_around_pages = fault_around;
    cow_view_t *region = harness_view(engine, Pages), *snapshot = harness_view(engine, Pages);
    CHECK(cow_region_create(region, track_writes) == 0, "cow_region_create");
    CHECK(cow_view_snapshot(region, snapshot) == 0, "cow_view_snapshot");
    uint64_t before = engine->write_faults;
    for (uint64_t p = 0; p < Pages; p += stride)
        *(volatile uint64_t *)(cow_page_address(region, p) + 16) = p;
    pass_t result = {engine->write_faults - before, 0};
    for (uint64_t p = 0; p < Pages; p++)
        result.writable += (uint64_t)cow_is_writable(region, p);
    for (uint64_t p = 0; p < Pages; p++) {
        uint64_t want = p % stride == 0 ? p : 0;
        CHECK(*(volatile uint64_t *)(cow_page_address(region, p) + 16) == want, "region page %" PRIu64, p);
        CHECK(*(volatile uint64_t *)(cow_page_address(snapshot, p) + 16) == 0, "snapshot page %" PRIu64, p);
    }
    check_view(region, "region after the pass");
    cow_view_t *views[] = {region, snapshot};
    for (int i = 0; i < 2; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    harness_engine_free(engine);
    return result;
}

static void test_a_sequential_pass_takes_a_fault_per_window(void)
{
    pass_t off = write_pass(1, 0, 1), on = write_pass(Limit, 0, 1);
    CHECK(off.faults == Pages, "without fault-around, one fault per page: %" PRIu64, off.faults);
    /* Per 512-page segment: windows 1, 1, 2, 4, 8, 16 (32 pages), then 32s: 6 + 480 / 32 = 21. */
    uint64_t per_segment = 6 + (512 - 32 + Limit - 1) / Limit;
    CHECK(on.faults == per_segment * (Pages / 512), "with fault-around: %" PRIu64 " faults, expected %" PRIu64,
          on.faults, per_segment * (Pages / 512));
    CHECK(on.writable == Pages, "every page written: %" PRIu64 " writable", on.writable);
}

static void test_a_strided_pass_resolves_one_page_per_fault(void)
{
    pass_t strided = write_pass(Limit, 0, 2);
    CHECK(strided.faults == Pages / 2, "every second page: %" PRIu64 " faults", strided.faults);
    CHECK(strided.writable == Pages / 2, "no page resolved ahead: %" PRIu64 " writable", strided.writable);
}

static void test_a_region_that_tracks_writes_resolves_exactly_the_written_pages(void)
{
    pass_t exact = write_pass(Limit, 1, 1);
    CHECK(exact.faults == Pages, "track_writes: one fault per page, %" PRIu64, exact.faults);
}

static void test_pages_resolved_ahead_of_a_run_are_bounded_by_the_window(void)
{
    /* Write pages 0..99 of one segment: the run stops inside a window, which resolved ahead. */
    cow_engine_t *engine = harness_engine(16, 0);
    engine->fault_around_pages = Limit;
    cow_view_t *region = harness_view(engine, 512), *snapshot = harness_view(engine, 512);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    CHECK(cow_view_snapshot(region, snapshot) == 0, "cow_view_snapshot");
    for (uint64_t p = 0; p < 100; p++)
        *(volatile uint8_t *)cow_page_address(region, p) = 1;
    uint64_t writable = 0;
    for (uint64_t p = 0; p < 512; p++)
        writable += (uint64_t)cow_is_writable(region, p);
    CHECK(writable >= 100 && writable < 100 + Limit, "%" PRIu64 " pages writable after writing 100", writable);
    cow_view_t *views[] = {region, snapshot};
    for (int i = 0; i < 2; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    harness_engine_free(engine);
}

void run_fault_around_tests(int *passed, int *total)
{
    *total += 4;
    *passed += RUN(test_a_sequential_pass_takes_a_fault_per_window);
    *passed += RUN(test_a_strided_pass_resolves_one_page_per_fault);
    *passed += RUN(test_a_region_that_tracks_writes_resolves_exactly_the_written_pages);
    *passed += RUN(test_pages_resolved_ahead_of_a_run_are_bounded_by_the_window);
}
