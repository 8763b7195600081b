/*
 * test_map.c - native unit tests of the mapping mechanism (cow_map.c) and of the paths that use
 * it: after every operation, a view's mapping count must equal both its page table's boundary count
 * and the number of kernel mappings /proc/self/maps shows in its range, the engine's count must be
 * the sum of its views', each mapped page must show the bytes of the slot its leaf names, and the
 * growth predicted for an unmapping must be the growth that happens.
 *
 * Run by test_main.c.
 */
#include "harness.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Writes each page's slot number into the slot. Pages on the zero page are mapped onto their slots
 * first, as they were before the zero page existed (read-write while dirty - a new region without
 * write tracking -, else read-only): their slots are about to hold data (invariant 12). The tests of
 * test_zero.c keep the zero page. */
void stamp_slots(cow_engine_t *engine, cow_view_t *view)
{
    for (uint64_t page = 0; page < view->page_count;) {
        page = cow_bits_find(view->zero_bits, page, view->page_count, 1);
        if (page == view->page_count)
            break;
        uint64_t end = page + 1, done;
        int dirty = cow_bit(view->dirty_bits, page), failed_call;
        while (end < view->page_count && cow_is_zero(view, end) && cow_bit(view->dirty_bits, end) == dirty &&
               cow_segment_of(end) == cow_segment_of(page))
            end++;
        CHECK(cow_map_unmap(view, page, end, 0, NULL) == 0, "unmap the zero page before stamping");
        CHECK(cow_map_pages(view, page, end, dirty ? COW_CLASS_WRITE : COW_CLASS_READ, NULL, 0, &done, &failed_call) ==
                  0,
              "map the slots instead");
        page = end;
    }
    for (uint64_t page = 0; page < view->page_count; page++) {
        uint32_t slot = cow_slot_of(view, page);
        memcpy(engine->pool + ((uint64_t)slot << COW_PAGE_SHIFT), &slot, sizeof slot);
    }
}

static int64_t engine_sum(cow_view_t **views, int count)
{
    int64_t sum = 0;
    for (int i = 0; i < count; i++)
        sum += views[i]->mappings;
    return sum;
}

void check_view(cow_view_t *view, const char *what)
{
    stamp_slots(view->engine, view);
    int64_t counted = cow_map_boundaries(view, 0, view->page_count - 1);
    int64_t kernel = harness_kernel_mappings(view);
    CHECK(view->mappings == counted, "%s: count %" PRId64 ", page table says %" PRId64, what, view->mappings, counted);
    CHECK(view->mappings == kernel, "%s: count %" PRId64 ", the kernel shows %" PRId64, what, view->mappings, kernel);
    for (uint64_t page = 0; page < view->page_count; page++) {
        CHECK(!cow_is_writable(view, page) || cow_is_mapped(view, page), "%s: page %" PRIu64 " writable, not mapped",
              what, page);
        uint32_t segment = cow_segment_of(page);
        CHECK(!cow_is_writable(view, page) || (view->writable_segments[segment >> 6] >> (segment & 63) & 1) != 0,
              "%s: page %" PRIu64 " writable, its segment's summary bit clear (a freeze would miss it)", what, page);
        if (!cow_is_mapped(view, page))
            continue;
        uint32_t seen, slot = cow_slot_of(view, page);
        memcpy(&seen, (const void *)cow_page_address(view, page), sizeof seen);
        CHECK(seen == slot, "%s: page %" PRIu64 " shows slot %u, its leaf says %u", what, page, seen, slot);
        if (seen != slot)
            return;
    }
}

static void test_a_new_region_is_one_mapping_per_run_of_chunks(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 1100); /* two whole segments and a partial one */
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    stamp_slots(engine, region);
    CHECK(region->mappings == 1, "one run of consecutive chunks is one mapping, counted %" PRId64, region->mappings);
    check_view(region, "new region");
    CHECK(cow_engine_mapping_count(engine) == region->mappings + 1 + 1, "views + one gap per view + the pool window");
    CHECK(cow_view_dispose(region) == 0, "cow_view_dispose");
    CHECK(engine->mappings == 0, "a disposed view leaves the engine's count: %" PRId64, engine->mappings);
    harness_view_free(region);
    harness_engine_free(engine);
}

/* A random range inside one segment of the view. */
static void random_range(cow_view_t *view, uint64_t *seed, uint64_t *first, uint64_t *end)
{
    uint32_t segment = (uint32_t)(harness_random(seed) % view->segment_count);
    uint64_t segment_first = cow_segment_first(segment), segment_end = cow_segment_end(view, segment);
    uint64_t length = 1 + harness_random(seed) % (harness_random(seed) % 4 == 0 ? segment_end - segment_first : 8);
    *first = segment_first + harness_random(seed) % (segment_end - segment_first);
    *end = *first + length < segment_end ? *first + length : segment_end;
}

/* One random operation of cow_map.c or of the resolve paths on `view`; returns its name. */
static const char *random_operation(cow_view_t *view, uint64_t *seed)
{
    uint64_t first, end, done;
    int failed_call, unmapped;
    random_range(view, seed, &first, &end);
    switch (harness_random(seed) % 6) {
    case 0: {
        int keep_pinned = (int)(harness_random(seed) % 2);
        int64_t predicted = cow_map_growth_if_unmapped(view, first, end, !keep_pinned);
        int64_t before = view->mappings;
        CHECK(cow_map_unmap(view, first, end, keep_pinned, &unmapped) == 0, "cow_map_unmap");
        CHECK(view->mappings - before == predicted,
              "unmap [%" PRIu64 ", %" PRIu64 ") keep_pinned %d: predicted %" PRId64 ", was %" PRId64, first, end,
              keep_pinned, predicted, view->mappings - before);
        return "unmap";
    }
    case 1:
        CHECK(cow_map_pages(view, first, end, COW_CLASS_READ, NULL, 0, &done, &failed_call) == 0, "map read-only");
        return "map read-only";
    case 2: {
        cow_resolve_result_t result;
        CHECK(cow_resolve_write(view, first, (uint32_t)(end - first), COW_RESOLVE_FAULT, NULL, &result) == 0,
              "resolve write");
        return "resolve write (copies shared pages)";
    }
    case 3:
        int failed_call;
        CHECK(cow_resolve_read(view, first, &failed_call) == 0, "resolve read");
        return "resolve read";
    case 4:
        for (uint64_t p = first; p < end; p++)
            cow_bit_set(view->pinned_bits, p);
        return "pin";
    default:
        CHECK(cow_map_protect_writable(view, NULL) == 0, "protect writable");
        return "protect every writable page";
    }
}

static void test_random_operations_keep_every_count_exact(void)
{
    cow_engine_t *engine = harness_engine(64, 0);
    cow_view_t *region = harness_view(engine, 1100), *snapshot = harness_view(engine, 1100);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    stamp_slots(engine, region);
    CHECK(cow_view_snapshot(region, snapshot) == 0, "cow_view_snapshot");
    cow_view_t *views[] = {region, snapshot};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int failures_before = harness_failures; /* stop at this test's first failure: the rest would repeat it */
    for (int step = 0; step < 3000 && harness_failures == failures_before; step++) {
        cow_view_t *view = views[harness_random(&seed) % 2];
        const char *operation = random_operation(view, &seed);
        char what[96];
        snprintf(what, sizeof what, "step %d (%s of the %s)", step, operation, view == region ? "region" : "snapshot");
        check_view(view, what);
        CHECK(engine->mappings == engine_sum(views, 2), "%s: engine %" PRId64 ", views %" PRId64, what,
              engine->mappings, engine_sum(views, 2));
        if (step % 500 == 499) /* a new interval now and then: pins go, pages become shared again */
            for (int i = 0; i < 2; i++)
                CHECK(cow_view_freeze(views[i], 1) == 0, "freeze");
    }
    for (int i = 0; i < 2; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    CHECK(engine->mappings == 0, "after dispose: %" PRId64, engine->mappings);
    CHECK(engine->slots_in_use == 0, "after dispose: %" PRIu64 " slots in use", engine->slots_in_use);
    harness_engine_free(engine);
}

static void test_write_faults_copy_and_keep_the_snapshot(void)
{
    cow_engine_t *engine = harness_engine(16, 0);
    cow_view_t *region = harness_view(engine, 600), *snapshot = harness_view(engine, 600);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    stamp_slots(engine, region);
    CHECK(cow_view_snapshot(region, snapshot) == 0, "cow_view_snapshot");
    uint64_t seed = 7;
    for (int i = 0; i < 200; i++) {
        uint64_t page = harness_random(&seed) % region->page_count;
        volatile uint32_t *word = (volatile uint32_t *)(cow_page_address(region, page) + 8);
        *word = (uint32_t)i + 1; /* a real fault, resolved by the installed handler */
        CHECK(*word == (uint32_t)i + 1, "the write landed");
        CHECK(cow_is_writable(region, page), "page %" PRIu64 " writable after its fault", page);
        CHECK(cow_slot_of(region, page) != cow_slot_of(snapshot, page), "page %" PRIu64 " got its own slot", page);
        uint32_t seen = *(volatile uint32_t *)(cow_page_address(snapshot, page) + 8); /* a read fault */
        CHECK(seen == 0, "the snapshot sees a later write at page %" PRIu64 ": %u", page, seen);
    }
    check_view(region, "after 200 write faults");
    check_view(snapshot, "the snapshot after 200 read faults");
    CHECK(engine->copy_faults > 0 && engine->write_faults >= engine->copy_faults, "faults counted");
    cow_view_t *views[] = {region, snapshot};
    for (int i = 0; i < 2; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    harness_engine_free(engine);
}

static void test_faults_stay_within_a_tight_budget(void)
{
    /* 32 segments, so that eviction has more to choose from than the segments the last faults
     * mapped (which it spares). */
    const int64_t budget = 64;
    cow_engine_t *engine = harness_engine(128, budget);
    cow_view_t *region = harness_view(engine, 32 * COW_SEGMENT_PAGES),
               *snapshot = harness_view(engine, 32 * COW_SEGMENT_PAGES);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    stamp_slots(engine, region);
    CHECK(cow_view_snapshot(region, snapshot) == 0, "cow_view_snapshot");
    uint64_t seed = 11;
    int64_t peak = 0;
    for (int i = 0; i < 4000; i++) {
        uint64_t page = harness_random(&seed) % region->page_count;
        *(volatile uint8_t *)(cow_page_address(region, page) + 5) = 1;
        int64_t used = cow_engine_mapping_count(engine);
        peak = used > peak ? used : peak;
    }
    CHECK(peak <= budget, "the engine used %" PRId64 " mappings, budget %" PRId64, peak, budget);
    if (harness_protection == COW_PROTECT_MPROTECT)
        CHECK(engine->evictions > 0, "a budget of %" PRId64 " must have forced evictions", budget);
    else /* userfaultfd: a reverse copy makes the writer's page writable where it is, splitting nothing */
        CHECK(engine->evictions == 0 && peak <= 8, "%" PRIu64 " evictions, peak %" PRId64 " mappings",
              engine->evictions, peak);
    check_view(region, "region under a tight budget");
    check_view(snapshot, "snapshot under a tight budget");
    cow_view_t *views[] = {region, snapshot};
    for (int i = 0; i < 2; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    harness_engine_free(engine);
}

void run_map_tests(int *passed, int *total)
{
    *total += 4;
    *passed += RUN(test_a_new_region_is_one_mapping_per_run_of_chunks);
    *passed += RUN(test_random_operations_keep_every_count_exact);
    *passed += RUN(test_write_faults_copy_and_keep_the_snapshot);
    *passed += RUN(test_faults_stay_within_a_tight_budget);
}
