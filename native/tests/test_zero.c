/*
 * test_zero.c - native unit tests of the zero page (docs/design.md, invariant 12): pages never written
 * are mapped onto the kernel's zero page, so reading them allocates nothing in the pool; a page on
 * the zero page has a slot that reads zero (a hole of the pool); the first write maps its slot in
 * place of the zero page without a copy; counts stay exact (the kernel's /proc/self/maps agrees).
 * Real faults throughout, resolved by the installed handler.
 *
 * Run by test_main.c.
 */
#include "harness.h"

#include <inttypes.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WORD(view, page) (*(volatile uint64_t *)(cow_page_address((view), (page)) + 24))

/* Bytes the pool really holds (the memfd's allocated blocks). */
static uint64_t pool_bytes(const cow_engine_t *engine)
{
    struct stat status;
    return fstat(engine->memfd, &status) == 0 ? (uint64_t)status.st_blocks * 512u : UINT64_MAX;
}

static int slot_is_hole(const cow_engine_t *engine, uint32_t slot)
{
    off_t offset = (off_t)slot << COW_PAGE_SHIFT;
    return lseek(engine->memfd, offset, SEEK_DATA) != offset;
}

/* Invariant 9 and the counts, for every page of the view. */
static void check_zero_pages(cow_view_t *view, const char *what)
{
    int64_t counted = cow_map_boundaries(view, 0, view->page_count - 1);
    int64_t kernel = harness_kernel_mappings(view);
    CHECK(view->mappings == counted && view->mappings == kernel,
          "%s: count %" PRId64 ", page table %" PRId64 ", kernel %" PRId64, what, view->mappings, counted, kernel);
    for (uint64_t page = 0; page < view->page_count; page++) {
        if (!cow_is_zero(view, page))
            continue;
        CHECK(!cow_is_mapped(view, page) && !cow_is_writable(view, page), "%s: page %" PRIu64 " zero and mapped", what,
              page);
        CHECK(slot_is_hole(view->engine, cow_slot_of(view, page)),
              "%s: page %" PRIu64 " on the zero page, slot %u holds data", what, page, cow_slot_of(view, page));
    }
}

static void free_views(cow_view_t **views, int count)
{
    for (int i = 0; i < count; i++) {
        if (views[i]->state == COW_VIEW_LIVE)
            CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
}

static void test_reading_a_new_region_allocates_nothing(void)
{
    for (int track = 0; track < 2; track++) {
        cow_engine_t *engine = harness_engine(16, 0);
        cow_view_t *region = harness_view(engine, 1100);
        CHECK(cow_region_create(region, track) == 0, "cow_region_create");
        CHECK(region->mappings == 1, "one zero-page mapping, counted %" PRId64, region->mappings);
        uint64_t sum = 0;
        for (uint64_t page = 0; page < region->page_count; page++)
            sum += WORD(region, page) + *(volatile uint8_t *)cow_page_address(region, page);
        CHECK(sum == 0, "the region reads zero");
        CHECK(engine->read_faults == 0 && engine->write_faults == 0, "reading it took no fault of ours");
        CHECK(pool_bytes(engine) == 0, "track %d: reading 1,100 pages allocated %" PRIu64 " bytes", track,
              pool_bytes(engine));
        check_zero_pages(region, "after reading every page");
        WORD(region, 700) = 7;
        CHECK(WORD(region, 700) == 7 && engine->copy_faults == 0, "the first write maps its slot, copying nothing");
        CHECK(pool_bytes(engine) == COW_PAGE_SIZE, "one page allocated: %" PRIu64, pool_bytes(engine));
        CHECK(cow_is_writable(region, 700) && !cow_is_zero(region, 700), "page 700 writable, off the zero page");
        check_zero_pages(region, "after one write");
        free_views(&region, 1);
        harness_engine_free(engine);
    }
}

static void test_a_snapshot_reads_the_zero_page_and_writes_copy_nothing(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 1024), *snapshot = harness_view(engine, 1024);
    CHECK(cow_region_create(region, 1) == 0, "cow_region_create");
    for (uint64_t page = 0; page < 1024; page += 100)
        WORD(region, page) = page + 1;
    CHECK(cow_view_snapshot(region, snapshot) == 0, "snapshot");
    uint64_t before = pool_bytes(engine);
    CHECK(before == 11 * COW_PAGE_SIZE, "11 written pages: %" PRIu64 " bytes", before);
    for (uint64_t page = 0; page < 1024; page++) {
        uint64_t seen = WORD(snapshot, page);
        CHECK(seen == (page % 100 == 0 ? page + 1 : 0), "snapshot page %" PRIu64 " reads %" PRIu64, page, seen);
    }
    CHECK(pool_bytes(engine) == before, "reading the snapshot allocated %" PRIu64 " bytes",
          pool_bytes(engine) - before);
    check_zero_pages(snapshot, "snapshot after reading every page");
    /* Never-written pages shared by both: a write in either copies nothing; the other keeps zero. */
    WORD(region, 5) = 55; /* on the zero page in both */
    WORD(snapshot, 6) = 66;
    CHECK(WORD(snapshot, 5) == 0 && WORD(region, 6) == 0, "each write stays in its view");
    CHECK(pool_bytes(engine) == before + 2 * COW_PAGE_SIZE, "two writes, two pages: %" PRIu64 " more bytes",
          pool_bytes(engine) - before);
    check_zero_pages(region, "region after the writes");
    check_zero_pages(snapshot, "snapshot after the writes");
    cow_view_t *views[] = {snapshot, region};
    free_views(views, 2);
    harness_engine_free(engine);
}

/* A write to a snapshot page it never touched (not mapped) whose slot is a hole: the copy is skipped
 * all the same (lseek says so), and the region's view of it stays zero and unallocated. */
static void test_a_write_to_an_untouched_hole_copies_nothing(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 512), *snapshot = harness_view(engine, 512);
    CHECK(cow_region_create(region, 1) == 0 && cow_view_snapshot(region, snapshot) == 0, "region and snapshot");
    CHECK(!cow_is_mapped(snapshot, 9) && !cow_is_zero(snapshot, 9), "snapshot page 9 untouched");
    WORD(snapshot, 9) = 99;
    CHECK(WORD(snapshot, 9) == 99 && WORD(region, 9) == 0, "the write stays in the snapshot");
    CHECK(pool_bytes(engine) == COW_PAGE_SIZE, "%" PRIu64 " bytes allocated, one page expected", pool_bytes(engine));
    check_zero_pages(region, "region");
    check_zero_pages(snapshot, "snapshot");
    cow_view_t *views[] = {snapshot, region};
    free_views(views, 2);
    harness_engine_free(engine);
}

/* Random real reads, writes, snapshots, restores, unmappings and freezes over a region and two
 * snapshots, against a model of every page's word: contents, counts and invariant 12 after each. */
static void test_random_operations_keep_the_zero_page_exact(void)
{
    enum { PAGES = 1100, VIEWS = 3 };
    static uint64_t model[VIEWS][PAGES];
    memset(model, 0, sizeof model);
    cow_engine_t *engine = harness_engine(512, 0);
    cow_view_t *views[VIEWS];
    for (int i = 0; i < VIEWS; i++)
        views[i] = harness_view(engine, PAGES);
    CHECK(cow_region_create(views[0], 0) == 0, "region");
    for (int i = 1; i < VIEWS; i++)
        CHECK(cow_view_snapshot(views[0], views[i]) == 0, "snapshot");
    uint64_t seed = 0xC0FFEEull, value = 1;
    int failures_before = harness_failures;
    for (int step = 0; step < 4000 && harness_failures == failures_before; step++) {
        int v = (int)(harness_random(&seed) % VIEWS);
        cow_view_t *view = views[v];
        uint64_t page = harness_random(&seed) % PAGES;
        const char *operation;
        switch (harness_random(&seed) % 10) {
        case 0:
        case 1:
        case 2:
            operation = "read";
            CHECK(WORD(view, page) == model[v][page],
                  "step %d: view %d page %" PRIu64 " reads %" PRIu64 ", model %" PRIu64, step, v, page,
                  WORD(view, page), model[v][page]);
            break;
        case 3:
        case 4:
        case 5:
            operation = "write";
            WORD(view, page) = model[v][page] = value++;
            break;
        case 6: { /* a new snapshot of this view replaces another view */
            operation = "snapshot";
            int w = (v + 1 + (int)(harness_random(&seed) % (VIEWS - 1))) % VIEWS;
            CHECK(cow_view_dispose(views[w]) == 0, "dispose");
            harness_view_free(views[w]);
            views[w] = harness_view(engine, PAGES);
            CHECK(cow_view_snapshot(view, views[w]) == 0, "snapshot");
            memcpy(model[w], model[v], sizeof model[v]);
            break;
        }
        case 7: {
            operation = "restore";
            int w = (v + 1 + (int)(harness_random(&seed) % (VIEWS - 1))) % VIEWS;
            CHECK(cow_view_restore(view, views[w]) == 0, "restore");
            memcpy(model[v], model[w], sizeof model[w]);
            break;
        }
        case 8: {
            operation = "unmap";
            uint64_t end = page + 1 + harness_random(&seed) % 64;
            end = end < cow_segment_end(view, cow_segment_of(page)) ? end : cow_segment_end(view, cow_segment_of(page));
            CHECK(cow_map_unmap(view, page, end, 1, NULL) == 0, "unmap");
            break;
        }
        default:
            operation = "freeze";
            CHECK(cow_view_freeze(view, 1) == 0, "freeze");
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "step %d (%s of view %d)", step, operation, v);
        check_zero_pages(view, what);
    }
    uint64_t written = 0;
    for (int v = 0; v < VIEWS; v++)
        for (uint64_t page = 0; page < PAGES; page++) {
            CHECK(WORD(views[v], page) == model[v][page], "end: view %d page %" PRIu64, v, page);
            written += model[v][page] != 0;
        }
    for (int v = 0; v < VIEWS; v++)
        check_zero_pages(views[v], "after reading everything");
    /* Reading every page of every view allocated nothing more than the written ones (at most one per
     * view and page written, fewer where views share), once freed slots are punched. */
    CHECK(cow_engine_reclaim(engine, NULL) == 0, "reclaim");
    CHECK(pool_bytes(engine) <= written * COW_PAGE_SIZE, "%" PRIu64 " bytes held for %" PRIu64 " written pages",
          pool_bytes(engine), written);
    free_views(views, VIEWS);
    CHECK(engine->mappings == 0 && engine->slots_in_use == 0, "everything given back");
    harness_engine_free(engine);
}

/* Scattered first writes into a region without write tracking: once a segment is cut into
 * COW_FILL_BOUNDARIES (16) mappings, the next fault makes the segment's never-written pages writable
 * at once - few faults, few mappings. A tracked region keeps every unwritten page on the zero page. */
static void test_scattered_first_writes_fill_a_fragmented_segment(void)
{
    for (int track = 0; track < 2; track++) {
        cow_engine_t *engine = harness_engine(16, 0);
        cow_view_t *region = harness_view(engine, 2 * COW_SEGMENT_PAGES);
        CHECK(cow_region_create(region, track) == 0, "region");
        uint64_t seed = 5;
        static uint8_t written[2 * COW_SEGMENT_PAGES];
        memset(written, 0, sizeof written);
        for (int i = 0; i < 300; i++) {
            uint64_t page = (harness_random(&seed) % COW_SEGMENT_PAGES) * 2 % (2 * COW_SEGMENT_PAGES); /* even pages */
            WORD(region, page) = page + 1;
            written[page] = 1;
        }
        uint64_t zero = 0, distinct = 0;
        for (uint64_t page = 0; page < region->page_count; page++) {
            CHECK(WORD(region, page) == (written[page] ? page + 1 : 0), "track %d: page %" PRIu64, track, page);
            zero += (uint64_t)cow_is_zero(region, page);
            distinct += written[page];
        }
        check_zero_pages(region, track ? "tracked region" : "region");
        if (track) {
            CHECK(engine->write_faults == distinct, "tracked: one fault per page written (%" PRIu64 " for %" PRIu64 ")",
                  engine->write_faults, distinct);
            CHECK(zero + distinct == region->page_count, "tracked: every unwritten page on the zero page");
        } else {
            CHECK(engine->write_faults < 2 * 12, "%" PRIu64 " faults for %" PRIu64 " pages written",
                  engine->write_faults, distinct);
            CHECK(region->mappings <= 2 * (16 + 3), "%" PRId64 " mappings", region->mappings);
        }
        free_views(&region, 1);
        harness_engine_free(engine);
    }
}

/* lseek failing every time, in the API and in the handler: nothing is taken for a hole - untouched
 * pages are mapped onto their slots and copies are real - so the bytes stay right (reading only
 * allocates). */
static void test_a_failing_lseek_costs_memory_never_bytes(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 600), *snapshot = harness_view(engine, 600),
               *second = harness_view(engine, 600);
    CHECK(cow_region_create(region, 1) == 0, "region");
    for (uint64_t page = 0; page < 600; page += 7)
        WORD(region, page) = page + 1;
    CHECK(cow_view_snapshot(region, snapshot) == 0, "snapshot");
    CHECK(cow_test_inject_configure(COW_INJECT_SEEK_DATA, COW_INJECT_ANYWHERE, 0, 1000000, EIO, 0) == 0, "arm");
    for (uint64_t page = 0; page < 600; page++)
        CHECK(WORD(snapshot, page) == (page % 7 == 0 ? page + 1 : 0), "snapshot page %" PRIu64, page);
    CHECK(cow_bits_find(snapshot->zero_bits, 0, 600, 1) == 600, "not knowing, nothing goes onto the zero page");
    for (uint64_t page = 1; page < 600; page += 5)
        WORD(snapshot, page) = 1000 + page; /* copies of never-written slots, read through the pool */
    CHECK(cow_view_snapshot(snapshot, second) == 0, "a snapshot of the snapshot");
    CHECK(cow_view_restore(region, second) == 0, "restore the region to it");
    uint64_t injected = cow_test_inject_count(COW_INJECT_SEEK_DATA, COW_INJECT_IN_API) +
                        cow_test_inject_count(COW_INJECT_SEEK_DATA, COW_INJECT_IN_FAULT);
    cow_test_inject_reset();
    CHECK(injected > 0, "lseek was refused %" PRIu64 " times", injected);
    for (uint64_t page = 0; page < 600; page++) {
        uint64_t expected = page % 5 == 1 ? 1000 + page : page % 7 == 0 ? page + 1 : 0;
        CHECK(WORD(region, page) == expected && WORD(second, page) == expected, "page %" PRIu64 " after the restore",
              page);
    }
    /* (The region's never-written pages are still on the zero page, but their slots, shared with the
     * snapshot that read them through its mapping, now hold memory: zeros.) */
    cow_view_t *views[] = {second, snapshot, region};
    for (int i = 0; i < 3; i++)
        CHECK(views[i]->mappings == cow_map_boundaries(views[i], 0, 599) &&
                  views[i]->mappings == harness_kernel_mappings(views[i]),
              "view %d: counts", i);
    free_views(views, 3);
    harness_engine_free(engine);
}

void run_zero_tests(int *passed, int *total)
{
    *passed += RUN(test_reading_a_new_region_allocates_nothing);
    *passed += RUN(test_a_snapshot_reads_the_zero_page_and_writes_copy_nothing);
    *passed += RUN(test_a_write_to_an_untouched_hole_copies_nothing);
    *passed += RUN(test_random_operations_keep_the_zero_page_exact);
    *passed += RUN(test_scattered_first_writes_fill_a_fragmented_segment);
    *passed += RUN(test_a_failing_lseek_costs_memory_never_bytes);
    *total += 6;
}
