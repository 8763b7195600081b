/*
 * test_group.c - cow_views_snapshot: several views snapshotted at one consistent cut. The targets hold
 * their sources' bytes; refused calls (bad arguments, the mapping budget) leave every target FREE and
 * every source as it was; and with writer threads running, no group snapshot holds a write while it
 * lacks one that came before it.
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#define WORD(view, page) (*(volatile uint64_t *)(cow_page_address((view), (page)) + 16))

enum { Members = 3 };

static const uint64_t member_pages[Members] = {600, 16, 1030};

static void make_regions(cow_engine_t *engine, cow_view_t **regions)
{
    for (int m = 0; m < Members; m++) {
        regions[m] = harness_view(engine, member_pages[m]);
        CHECK(cow_region_create(regions[m], 0) == 0, "region %d", m);
        for (uint64_t p = 0; p < member_pages[m]; p++)
            WORD(regions[m], p) = ((uint64_t)m << 32) | p;
    }
}

static void free_views(cow_view_t **views, int count)
{
    for (int i = 0; i < count; i++) {
        if (views[i]->state == COW_VIEW_LIVE)
            CHECK(cow_view_dispose(views[i]) == 0, "dispose %d", i);
        harness_view_free(views[i]);
    }
}

static void test_a_group_snapshot_holds_every_source_and_parts_from_it(void)
{
    cow_engine_t *engine = harness_engine(256, 0);
    cow_view_t *regions[Members], *targets[Members];
    make_regions(engine, regions);
    for (int m = 0; m < Members; m++)
        targets[m] = harness_view(engine, member_pages[m]);
    uint64_t snapshots_before = engine->snapshots;
    CHECK(cow_views_snapshot(regions, targets, Members) == 0, "cow_views_snapshot");
    CHECK(engine->snapshots == snapshots_before + Members, "%" PRIu64 " snapshots counted", engine->snapshots);
    for (int m = 0; m < Members; m++) {
        CHECK(targets[m]->state == COW_VIEW_LIVE, "target %d is live", m);
        CHECK(cow_view_has_base(targets[m], regions[m]) && cow_view_has_base(regions[m], targets[m]),
              "member %d: each is the other's base", m);
        for (uint64_t p = 0; p < member_pages[m]; p++)
            WORD(regions[m], p) += 1000000;
    }
    for (int m = 0; m < Members; m++) {
        for (uint64_t p = 0; p < member_pages[m]; p++) {
            uint64_t want = ((uint64_t)m << 32) | p;
            CHECK(WORD(targets[m], p) == want, "member %d page %" PRIu64 ": %" PRIu64, m, p, WORD(targets[m], p));
            CHECK(WORD(regions[m], p) == want + 1000000, "member %d page %" PRIu64 " of the source", m, p);
        }
        check_view(regions[m], "source after the group snapshot");
        check_view(targets[m], "target after the group snapshot");
    }
    free_views(targets, Members);
    free_views(regions, Members);
    CHECK(engine->slots_in_use == 0, "after dispose: %" PRIu64 " slots", engine->slots_in_use);
    harness_engine_free(engine);
}

/* Every refusal leaves the targets FREE and the sources LIVE, unchanged and unlocked. */
static void check_refused(cow_engine_t *engine, cow_view_t **regions, cow_view_t **targets, int count, int error,
                          const char *what)
{
    CHECK(error == EINVAL, "%s: returned %d, not EINVAL", what, error);
    for (int m = 0; m < count; m++) {
        CHECK(targets[m]->state != COW_VIEW_LIVE, "%s: target %d went live", what, m);
        CHECK(regions[m]->lock == 0, "%s: source %d still locked", what, m);
    }
    CHECK(engine->snapshots == 0, "%s: %" PRIu64 " snapshots counted", what, engine->snapshots);
}

static void test_bad_arguments_are_refused_and_change_nothing(void)
{
    cow_engine_t *engine = harness_engine(256, 0), *other = harness_engine(16, 0);
    cow_view_t *regions[Members], *targets[Members];
    make_regions(engine, regions);
    for (int m = 0; m < Members; m++)
        targets[m] = harness_view(engine, member_pages[m]);

    check_refused(engine, regions, targets, Members, cow_views_snapshot(regions, targets, 0), "no views");
    check_refused(engine, regions, targets, Members, cow_views_snapshot(NULL, targets, 1), "no sources");

    cow_view_t *twice[2] = {regions[0], regions[0]}, *two_targets[2] = {targets[0], harness_view(engine, 600)};
    check_refused(engine, twice, two_targets, 2, cow_views_snapshot(twice, two_targets, 2), "a source twice");
    cow_view_t *pair[2] = {regions[0], regions[2]}, *same_target[2] = {targets[0], targets[0]};
    check_refused(engine, pair, same_target, 2, cow_views_snapshot(pair, same_target, 2), "a target twice");
    cow_view_t *mixed[2] = {regions[0], regions[1]}, *source_as_target[2] = {targets[0], regions[0]};
    check_refused(engine, mixed, targets, 2, cow_views_snapshot(mixed, source_as_target, 2), "a source as a target");

    cow_view_t *shifted[2] = {targets[1], targets[0]}; /* sizes swapped */
    check_refused(engine, mixed, targets, 2, cow_views_snapshot(mixed, shifted, 2), "sizes that differ");

    cow_view_t *foreign = harness_view(other, 16), *foreign_target = harness_view(engine, 16);
    CHECK(cow_region_create(foreign, 0) == 0, "region of another engine");
    cow_view_t *engines[2] = {regions[0], foreign}, *engine_targets[2] = {targets[0], foreign_target};
    check_refused(engine, regions, targets, 1, cow_views_snapshot(engines, engine_targets, 2), "two engines");

    CHECK(cow_region_create(targets[1], 0) == 0, "a live view as a target");
    check_refused(engine, regions, targets, 1, cow_views_snapshot(regions, targets, Members), "a live target");
    CHECK(cow_view_dispose(targets[1]) == 0, "dispose");
    harness_view_free(targets[1]);
    targets[1] = harness_view(engine, member_pages[1]);

    CHECK(cow_view_dispose(regions[2]) == 0, "dispose a source");
    check_refused(engine, regions, targets, Members, cow_views_snapshot(regions, targets, Members),
                  "a disposed source");
    for (int m = 0; m < 2; m++)
        for (uint64_t p = 0; p < member_pages[m]; p++)
            CHECK(WORD(regions[m], p) == (((uint64_t)m << 32) | p), "member %d page %" PRIu64 " changed", m, p);

    cow_view_t *leftovers[] = {two_targets[1], foreign, foreign_target};
    free_views(leftovers, 3);
    free_views(targets, Members);
    free_views(regions, Members);
    harness_engine_free(other);
    harness_engine_free(engine);
}

static void test_a_group_over_the_budget_is_refused_whole(void)
{
    /* Three regions of one mapping each: 3 + 3 gaps + the pool window = 7. One snapshot needs 2 more
     * (fits a budget of 12), three need 6 (do not), and nothing can be evicted to make room: each
     * region is one mapping mapped or not. */
    cow_engine_t *engine = harness_engine(256, 12);
    cow_view_t *regions[Members], *targets[Members];
    make_regions(engine, regions);
    uint64_t dirty_words[(1030 + 63) / 64], count = 0;
    for (int m = 0; m < Members; m++) {
        targets[m] = harness_view(engine, member_pages[m]);
        CHECK(cow_view_take_dirty(regions[m], dirty_words, &count) == 0, "take_dirty");
    }
    CHECK(cow_view_prepare_write(regions[2], 5, 1) == 0, "prepare_write"); /* pinned */
    WORD(regions[0], 7) = 77;                                              /* dirty */

    CHECK(cow_views_snapshot(regions, targets, Members) == EDQUOT, "a group over the budget");
    for (int m = 0; m < Members; m++) {
        CHECK(targets[m]->state == COW_VIEW_FREE, "target %d is still FREE", m);
        CHECK(regions[m]->lock == 0, "source %d unlocked", m);
        for (uint64_t p = 0; p < member_pages[m]; p++) {
            uint64_t want = m == 0 && p == 7 ? 77 : (((uint64_t)m << 32) | p);
            CHECK(WORD(regions[m], p) == want, "member %d page %" PRIu64 ": %" PRIu64, m, p, WORD(regions[m], p));
        }
        check_view(regions[m], "source after a refused group snapshot");
    }
    CHECK(engine->snapshots == 0 && engine->live_views == Members, "%" PRIu64 " snapshots, %" PRId64 " views",
          engine->snapshots, engine->live_views);
    CHECK(cow_is_writable(regions[2], 5), "the pinned page is writable again");
    memset(dirty_words, 0, sizeof dirty_words);
    CHECK(cow_view_take_dirty(regions[0], dirty_words, &count) == 0 && count == 1 && (dirty_words[0] >> 7 & 1),
          "the written page is still dirty: %" PRIu64 " pages", count);

    /* One member alone fits. */
    CHECK(cow_views_snapshot(&regions[1], &targets[1], 1) == 0, "a group of one");
    CHECK(WORD(targets[1], 3) == ((1ull << 32) | 3), "its contents");
    free_views(targets, Members);
    free_views(regions, Members);
    harness_engine_free(engine);
}

/* ---- the cut with writer threads ----
 * Two threads write a counter into views A and B, one A then B, the other B then A; a third keeps
 * writing every fourth page of a view M that lies between them in the group, so that M's freeze
 * takes a while. Snapshots of the members taken one after another then leave the counter writers
 * M's freeze between A's and B's: a build doing that failed this test in 8 runs of 8 (both protectors). */

enum { CutRounds = 400, Writers = 2, MiddlePages = 2048 };

typedef struct cut_writer {
    cow_view_t *first, *second; /* writes its counter in `first`, then the same value in `second` */
    uint64_t offset;            /* its counter's byte offset in both */
    volatile int *stop;
    uint64_t written;
} cut_writer_t;

static volatile uint64_t *counter(cow_view_t *view, uint64_t offset)
{
    return (volatile uint64_t *)(view->base + offset);
}

static void *cut_writer_run(void *argument)
{
    cut_writer_t *w = argument;
    uint64_t n = 0;
    while (!*w->stop) {
        n++;
        *counter(w->first, w->offset) = n;
        *counter(w->second, w->offset) = n;
    }
    w->written = n;
    return NULL;
}

static void *scatter_writer_run(void *argument)
{
    cut_writer_t *w = argument;
    for (uint64_t n = 1; !*w->stop; n++)
        for (uint64_t page = 0; page < MiddlePages && !*w->stop; page += 4)
            *counter(w->first, page << COW_PAGE_SHIFT) = n;
    return NULL;
}

static void test_group_snapshots_taken_while_threads_write_are_consistent_cuts(void)
{
    cow_engine_t *engine = harness_engine(256, 0);
    cow_view_t *a = harness_view(engine, 64), *m = harness_view(engine, MiddlePages), *b = harness_view(engine, 64);
    CHECK(cow_region_create(a, 0) == 0 && cow_region_create(m, 0) == 0 && cow_region_create(b, 0) == 0, "regions");
    volatile int stop = 0;
    /* Writer 0 writes A then B, writer 1 B then A; their counters are on different pages. */
    cut_writer_t writers[Writers + 1] = {
        {a, b, 0, &stop, 0}, {b, a, 8 * COW_PAGE_SIZE + 64, &stop, 0}, {m, m, 0, &stop, 0}};
    pthread_t threads[Writers + 1];
    for (int w = 0; w <= Writers; w++)
        CHECK(pthread_create(&threads[w], NULL, w < Writers ? cut_writer_run : scatter_writer_run, &writers[w]) == 0,
              "pthread_create");
    cow_view_t *sources[3] = {a, m, b};
    int failures_before = harness_failures;
    for (int round = 0; round < CutRounds && harness_failures == failures_before; round++) {
        cow_view_t *targets[3] = {harness_view(engine, 64), harness_view(engine, MiddlePages),
                                  harness_view(engine, 64)};
        CHECK(cow_views_snapshot(sources, targets, 3) == 0, "round %d", round);
        for (int w = 0; w < Writers; w++) {
            uint64_t first = *counter(w == 0 ? targets[0] : targets[2], writers[w].offset);
            uint64_t second = *counter(w == 0 ? targets[2] : targets[0], writers[w].offset);
            /* Written first, then second: a cut holds second <= first <= second + 1. */
            CHECK(second <= first && first <= second + 1,
                  "round %d, writer %d: the cut holds %" PRIu64 " in the view it writes first and %" PRIu64
                  " in the other",
                  round, w, first, second);
        }
        free_views(targets, 3);
    }
    stop = 1;
    for (int w = 0; w <= Writers; w++)
        pthread_join(threads[w], NULL);
    for (int w = 0; w < Writers; w++)
        CHECK(*counter(writers[w].first, writers[w].offset) == writers[w].written &&
                  *counter(writers[w].second, writers[w].offset) == writers[w].written,
              "writer %d: no write lost", w);
    cow_view_t *regions[3] = {a, m, b};
    free_views(regions, 3);
    harness_engine_free(engine);
}

void run_group_tests(int *passed, int *total)
{
    *total += 4;
    *passed += RUN(test_a_group_snapshot_holds_every_source_and_parts_from_it);
    *passed += RUN(test_bad_arguments_are_refused_and_change_nothing);
    *passed += RUN(test_a_group_over_the_budget_is_refused_whole);
    *passed += RUN(test_group_snapshots_taken_while_threads_write_are_consistent_cuts);
}
