/*
 * test_reverse.c - reverse copy-on-write: a write to a page the view shares only with the leaf its
 * own was copied from, held by one view that has not mapped the page, gives that view the copy; the
 * writer keeps its slot (no new mapping). Everything else takes a forward copy.
 */
#include "harness.h"

#include <inttypes.h>
#include <string.h>

/* Contents live at offset 8 of each page: check_view stamps offset 0 with the page's slot number. */
#define AT(view, page) (*(volatile uint64_t *)(cow_page_address((view), (page)) + 8))

typedef struct lineage {
    cow_engine_t *engine;
    cow_view_t *region, *snapshot;
} lineage_t;

static void lineage_create(lineage_t *l, uint64_t pages)
{
    l->engine = harness_engine(64, 0);
    l->region = harness_view(l->engine, pages);
    l->snapshot = harness_view(l->engine, pages);
    CHECK(cow_region_create(l->region, 0) == 0, "cow_region_create");
    for (uint64_t p = 0; p < pages; p++)
        AT(l->region, p) = p + 1; /* contents to compare */
    CHECK(cow_view_snapshot(l->region, l->snapshot) == 0, "cow_view_snapshot");
}

static void lineage_free(lineage_t *l, cow_view_t *extra)
{
    cow_view_t *views[] = {l->region, l->snapshot, extra};
    for (int i = 0; i < 3; i++) {
        if (views[i] == NULL)
            continue;
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    CHECK(l->engine->slots_in_use == 0, "%" PRIu64 " slots left in use", l->engine->slots_in_use);
    harness_engine_free(l->engine);
}

static void test_a_first_write_gives_the_copy_to_the_untouched_snapshot(void)
{
    lineage_t l;
    lineage_create(&l, 1024);
    uint64_t before = l.engine->reverse_copies;
    for (uint64_t p = 3; p < 1024; p += 7) {
        uint32_t slot = cow_slot_of(l.region, p);
        AT(l.region, p) = 1000000 + p; /* a real fault */
        CHECK(cow_slot_of(l.region, p) == slot, "page %" PRIu64 ": the writer kept its slot", p);
        CHECK(cow_slot_of(l.snapshot, p) != slot, "page %" PRIu64 ": the snapshot took the copy", p);
    }
    CHECK(l.engine->reverse_copies - before == (1024 - 3 + 6) / 7, "every write reversed: %" PRIu64,
          l.engine->reverse_copies - before);
    /* Frozen again, the writer's pages are one mapping: its slots never moved. */
    CHECK(cow_view_freeze(l.region, 1) == 0, "freeze");
    check_view(l.region, "the region after reverse copies, frozen");
    CHECK(l.region->mappings == 1, "the region is %" PRId64 " mappings, 1 expected", l.region->mappings);
    for (uint64_t p = 0; p < 1024; p++) {
        uint64_t want = p % 7 == 3 ? 1000000 + p : p + 1;
        CHECK(AT(l.region, p) == want, "region page %" PRIu64, p);
        CHECK(AT(l.snapshot, p) == p + 1, "snapshot page %" PRIu64, p);
    }
    check_view(l.snapshot, "the snapshot after reverse copies");
    lineage_free(&l, NULL);
}

static void test_a_page_the_snapshot_has_mapped_is_copied_forward(void)
{
    lineage_t l;
    lineage_create(&l, 600);
    uint64_t page = 77;
    CHECK(AT(l.snapshot, page) == page + 1, "the snapshot reads (maps) it");
    uint32_t slot = cow_slot_of(l.region, page);
    uint64_t before = l.engine->reverse_copies;
    AT(l.region, page) = 5;
    CHECK(l.engine->reverse_copies == before, "no reverse copy for a page the other holder maps");
    CHECK(cow_slot_of(l.region, page) != slot && cow_slot_of(l.snapshot, page) == slot, "a forward copy");
    CHECK(AT(l.snapshot, page) == page + 1, "the snapshot unchanged");
    check_view(l.region, "region");
    check_view(l.snapshot, "snapshot");
    lineage_free(&l, NULL);
}

static void test_a_slot_three_leaves_hold_is_copied_forward(void)
{
    lineage_t l;
    lineage_create(&l, 600);
    cow_view_t *second = harness_view(l.engine, 600);
    CHECK(cow_view_snapshot(l.region, second) == 0, "a second snapshot: every leaf held three times");
    uint64_t page = 300;
    uint32_t slot = cow_slot_of(l.region, page);
    uint64_t before = l.engine->reverse_copies;
    AT(l.region, page) = 9;
    CHECK(l.engine->reverse_copies == before, "no reverse copy when the holders cannot all be found");
    CHECK(cow_slot_of(l.region, page) != slot, "a forward copy");
    CHECK(AT(l.snapshot, page) == page + 1, "the first snapshot unchanged");
    CHECK(AT(second, page) == page + 1, "the second snapshot unchanged");
    lineage_free(&l, second);
}

static void test_a_snapshot_per_frame_keeps_reversing_the_pages_written_each_frame(void)
{
    /* The rewind-buffer pattern: snapshot, write the same hot pages, snapshot again... Each frame the
     * newest snapshot takes the copies; every older snapshot keeps its own frame's bytes. */
    enum { Frames = 20, Pages = 600 };
    lineage_t l;
    lineage_create(&l, Pages);
    cow_view_t *frames[Frames] = {l.snapshot};
    uint64_t reversed = l.engine->reverse_copies;
    for (int frame = 1; frame < Frames; frame++) {
        for (uint64_t p = 10; p < 20; p++)
            AT(l.region, p) = (uint64_t)frame * 1000 + p;
        frames[frame] = harness_view(l.engine, Pages);
        CHECK(cow_view_snapshot(l.region, frames[frame]) == 0, "snapshot of frame %d", frame);
    }
    CHECK(l.engine->reverse_copies - reversed == (Frames - 1) * 10, "every hot-page write reversed: %" PRIu64,
          l.engine->reverse_copies - reversed);
    for (int frame = 0; frame < Frames; frame++)
        for (uint64_t p = 10; p < 20; p++) {
            uint64_t want = frame == 0 ? p + 1 : (uint64_t)frame * 1000 + p;
            CHECK(AT(frames[frame], p) == want, "frame %d page %" PRIu64, frame, p);
        }
    for (int frame = 1; frame < Frames; frame++) {
        CHECK(cow_view_dispose(frames[frame]) == 0, "dispose");
        harness_view_free(frames[frame]);
    }
    lineage_free(&l, NULL);
}

void run_reverse_tests(int *passed, int *total)
{
    *total += 4;
    *passed += RUN(test_a_first_write_gives_the_copy_to_the_untouched_snapshot);
    *passed += RUN(test_a_page_the_snapshot_has_mapped_is_copied_forward);
    *passed += RUN(test_a_slot_three_leaves_hold_is_copied_forward);
    *passed += RUN(test_a_snapshot_per_frame_keeps_reversing_the_pages_written_each_frame);
}
