/*
 * test_restore.c - RestoreTo: copy-back into the view's own pages, sharing for the rest, the cost
 * following the changed pages when the source is the view's base; checked against a model (one
 * byte array per view) through random writes, snapshots, restores and disposals.
 */
#include "harness.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum { Pages = 1100, MaxViews = 6 };

/* Each page's contents as the model sees them: one 64-bit word at offset 16 (check_view stamps
 * offset 0). */
#define WORD(view, page) (*(volatile uint64_t *)(cow_page_address((view), (page)) + 16))

typedef struct model_view {
    cow_view_t *view;
    uint64_t words[Pages];
} model_view_t;

static void check_contents(const model_view_t *m, const char *what)
{
    for (uint64_t p = 0; p < Pages; p++) {
        uint64_t seen = WORD(m->view, p);
        CHECK(seen == m->words[p], "%s: page %" PRIu64 " holds %" PRIu64 ", the model says %" PRIu64, what, p, seen,
              m->words[p]);
        if (seen != m->words[p])
            return;
    }
}

static void test_a_restore_loop_copies_back_and_keeps_the_views_slots(void)
{
    cow_engine_t *engine = harness_engine(64, 0);
    cow_view_t *region = harness_view(engine, Pages), *snapshot = harness_view(engine, Pages);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    for (uint64_t p = 0; p < Pages; p++)
        WORD(region, p) = p;
    CHECK(cow_view_snapshot(region, snapshot) == 0, "cow_view_snapshot");
    uint64_t seed = 5, slots_after_first = 0;
    for (int round = 0; round < 400; round++) {
        for (int k = 0; k < 4; k++)
            WORD(region, harness_random(&seed) % Pages) = 1000000 + (uint64_t)round;
        CHECK(cow_view_restore(region, snapshot) == 0, "restore, round %d", round);
        if (round == 0)
            slots_after_first = engine->slots_in_use;
        if (round % 50 == 0) {
            for (uint64_t p = 0; p < Pages; p++)
                CHECK(WORD(region, p) == p, "round %d page %" PRIu64 ": %" PRIu64, round, p, WORD(region, p));
            check_view(region, "region in the restore loop");
        }
    }
    /* The region keeps a private copy of each page it ever wrote (at most one per page), no more. */
    CHECK(engine->slots_in_use <= 2 * Pages, "%" PRIu64 " slots for two views of %d pages", engine->slots_in_use,
          Pages);
    CHECK(engine->slots_in_use >= slots_after_first, "slots");
    CHECK(engine->pages_restored_by_copy > 0, "restores copied back");
    CHECK(cow_view_freeze(region, 1) == 0, "freeze");
    CHECK(region->mappings == 1, "the region never moved a page: %" PRId64 " mappings", region->mappings);
    cow_view_t *views[] = {region, snapshot};
    for (int i = 0; i < 2; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    CHECK(engine->slots_in_use == 0, "after dispose: %" PRIu64 " slots", engine->slots_in_use);
    harness_engine_free(engine);
}

/* One random step of the model test. */
static void random_step(cow_engine_t *engine, model_view_t *views, int *count, uint64_t *seed, int step)
{
    int a = (int)(harness_random(seed) % (uint64_t)*count);
    uint64_t choice = harness_random(seed) % 10;
    if (choice < 5) { /* writes */
        for (int k = 0; k < 1 + (int)(harness_random(seed) % 20); k++) {
            uint64_t page = harness_random(seed) % Pages;
            uint64_t value = ((uint64_t)step << 20) | (uint64_t)k;
            WORD(views[a].view, page) = value;
            views[a].words[page] = value;
        }
    } else if (choice < 7 && *count < MaxViews) { /* snapshot */
        model_view_t *target = &views[(*count)++];
        target->view = harness_view(engine, Pages);
        CHECK(cow_view_snapshot(views[a].view, target->view) == 0, "snapshot");
        memcpy(target->words, views[a].words, sizeof target->words);
    } else if (choice < 9 && *count > 1) { /* restore to another view */
        int b = (int)(harness_random(seed) % (uint64_t)*count);
        CHECK(cow_view_restore(views[a].view, views[b].view) == 0, "restore");
        memcpy(views[a].words, views[b].words, sizeof views[a].words);
    } else if (*count > 1) { /* dispose */
        CHECK(cow_view_dispose(views[a].view) == 0, "dispose");
        harness_view_free(views[a].view);
        views[a] = views[--*count];
    }
}

static void test_random_writes_snapshots_restores_and_disposals_agree_with_the_model(void)
{
    static model_view_t views[MaxViews];
    /* Chunk space to spare: copies of page i go to slot i of some chunk, so random operations can
     * leave many chunks holding a few live slots each (address space in a sparse file, not memory). */
    cow_engine_t *engine = harness_engine(8192, 0);
    int count = 1;
    views[0].view = harness_view(engine, Pages);
    CHECK(cow_region_create(views[0].view, 0) == 0, "cow_region_create");
    memset(views[0].words, 0, sizeof views[0].words);
    uint64_t seed = 99;
    int failures_before = harness_failures;
    for (int step = 0; step < 4000 && harness_failures == failures_before; step++) {
        random_step(engine, views, &count, &seed, step);
        if (step % 97 == 0 || step > 3900)
            for (int i = 0; i < count; i++) {
                char what[64];
                snprintf(what, sizeof what, "step %d, view %d of %d", step, i, count);
                check_contents(&views[i], what);
                check_view(views[i].view, what);
            }
    }
    for (int i = 0; i < count; i++) {
        CHECK(cow_view_dispose(views[i].view) == 0, "dispose");
        harness_view_free(views[i].view);
    }
    CHECK(engine->slots_in_use == 0, "after dispose: %" PRIu64 " slots", engine->slots_in_use);
    CHECK(engine->mappings == 0, "after dispose: %" PRId64 " mappings", engine->mappings);
    harness_engine_free(engine);
}

/* A restore that cannot copy back shares the source's leaf: the pages whose slots the two views
 * share stay mapped (no refault after the restore), those whose slots differ are unmapped; with
 * more than COW_RESTORE_UNMAP_RUNS runs of those, the whole segment is unmapped in one call. */
static void test_a_shared_segment_keeps_mapped_the_pages_both_views_hold(void)
{
    cow_engine_t *engine = harness_engine(64, 0);
    cow_view_t *region = harness_view(engine, Pages), *older = harness_view(engine, Pages),
               *newer = harness_view(engine, Pages), *third = harness_view(engine, Pages),
               *fourth = harness_view(engine, Pages);
    CHECK(cow_region_create(region, 0) == 0, "cow_region_create");
    for (uint64_t p = 0; p < Pages; p++)
        WORD(region, p) = p;
    CHECK(cow_view_snapshot(region, older) == 0, "snapshot");
    for (uint64_t p = 10; p <= 30; p += 10)
        WORD(region, p) = 1000 + p;
    CHECK(cow_view_snapshot(region, newer) == 0, "snapshot (shares pages 10, 20, 30: no copy back)");
    WORD(region, 40) = 1040;
    CHECK(cow_view_restore(region, older) == 0, "restore to the older snapshot");
    for (uint64_t p = 0; p < Pages; p++)
        CHECK(WORD(region, p) == p, "page %" PRIu64 " holds %" PRIu64 " after the restore", p, WORD(region, p));
    /* Read back above: the checks below look at what the restore left, so redo it. */
    WORD(region, 40) = 1040;
    for (uint64_t p = 10; p <= 30; p += 10)
        WORD(region, p) = 1000 + p;
    CHECK(cow_view_snapshot(region, third) == 0, "snapshot");
    WORD(region, 50) = 1050;
    CHECK(cow_view_restore(region, older) == 0, "restore to the older snapshot again");
    CHECK(cow_is_mapped(region, 5) && cow_is_mapped(region, 11) && cow_is_mapped(region, 600),
          "pages the views share stay mapped");
    for (uint64_t p = 10; p <= 50; p += 10)
        CHECK(!cow_is_readable(region, p), "page %" PRIu64 " (another slot than the source's) is unmapped", p);
    check_view(region, "after a restore that shares a segment");
    for (uint64_t p = 0; p < Pages; p++)
        CHECK(WORD(region, p) == p, "page %" PRIu64 " holds %" PRIu64 " after the second restore", p, WORD(region, p));

    /* Many scattered differing pages: the whole segment goes. */
    for (uint64_t i = 0; i < 40; i++)
        WORD(region, 100 + 2 * i) = 5000 + i;
    CHECK(cow_view_snapshot(region, fourth) == 0, "snapshot (shares the 40 pages)");
    for (uint64_t p = 0; p < 8; p++)
        CHECK(WORD(region, p) == p, "a read of page %" PRIu64, p); /* mapped before the restore */
    CHECK(cow_view_restore(region, older) == 0, "restore over 40 runs");
    CHECK(!cow_is_readable(region, 5) && !cow_is_readable(region, 101), "the whole segment is unmapped");
    CHECK(cow_is_mapped(region, 600), "another segment is not");
    check_view(region, "after a restore that unmapped a segment");
    for (uint64_t p = 0; p < Pages; p++)
        CHECK(WORD(region, p) == p, "page %" PRIu64 " holds %" PRIu64 " after the third restore", p, WORD(region, p));
    CHECK(WORD(fourth, 100) == 5000 && WORD(fourth, 178) == 5039 && WORD(third, 50) == 50 && WORD(third, 40) == 1040,
          "the snapshots keep their bytes");
    cow_view_t *views[] = {fourth, third, newer, older, region};
    for (int i = 0; i < 5; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
    CHECK(engine->slots_in_use == 0, "after dispose: %" PRIu64 " slots", engine->slots_in_use);
    harness_engine_free(engine);
}

void run_restore_tests(int *passed, int *total)
{
    *total += 3;
    *passed += RUN(test_a_restore_loop_copies_back_and_keeps_the_views_slots);
    *passed += RUN(test_random_writes_snapshots_restores_and_disposals_agree_with_the_model);
    *passed += RUN(test_a_shared_segment_keeps_mapped_the_pages_both_views_hold);
}
