/*
 * test_reverse.c - reverse copy-on-write: a write to a page the view shares only with leaves of its
 * lineage (the leaf its own was copied from, that one's origin, ...), each held by one view that has
 * not mapped the page, gives those views one copy; the writer keeps its slot (no new mapping).
 * Everything else takes a forward copy.
 */
#include "harness.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
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

/* Disposes and frees `count` views. */
static void views_free(cow_view_t **views, int count)
{
    for (int i = 0; i < count; i++) {
        CHECK(cow_view_dispose(views[i]) == 0, "dispose");
        harness_view_free(views[i]);
    }
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
    views_free(frames + 1, Frames - 1);
    lineage_free(&l, NULL);
}

/* Frames of a rewind buffer where each page is written every third frame: its slot is then held by
 * the last two or three snapshots, each alone holding its leaf, all along the writer's lineage. The
 * write gives them all one copy (one slot they share), and the writer keeps its slot. */
static void test_the_snapshots_along_the_lineage_share_one_reverse_copy(void)
{
    enum { Frames = 30, Pages = 600 };
    lineage_t l;
    lineage_create(&l, Pages);
    cow_view_t *frames[Frames] = {l.snapshot};
    uint64_t reversed = l.engine->reverse_copies, writes = 0;
    for (int frame = 1; frame < Frames; frame++) {
        uint64_t group = (uint64_t)frame % 3;
        for (uint64_t p = 10 + 10 * group; p < 20 + 10 * group; p++) {
            uint32_t slot = cow_slot_of(l.region, p);
            AT(l.region, p) = (uint64_t)frame * 1000 + p;
            CHECK(cow_slot_of(l.region, p) == slot, "frame %d page %" PRIu64 ": the writer kept its slot", frame, p);
            writes++;
        }
        frames[frame] = harness_view(l.engine, Pages);
        CHECK(cow_view_snapshot(l.region, frames[frame]) == 0, "snapshot of frame %d", frame);
    }
    CHECK(l.engine->reverse_copies - reversed == writes, "%" PRIu64 " of %" PRIu64 " writes reversed",
          l.engine->reverse_copies - reversed, writes);
    CHECK(l.region->mappings == 1, "the region is %" PRId64 " mappings: no slot moved", l.region->mappings);
    check_view(l.region, "the region after the frames");
    for (int frame = 0; frame < Frames; frame++) {
        for (uint64_t p = 10; p < 40; p++) {
            /* The frame that last wrote p's group, at or before `frame`. */
            int last = frame;
            while (last > 0 && (uint64_t)last % 3 != (p - 10) / 10)
                last--;
            uint64_t want = last == 0 ? p + 1 : (uint64_t)last * 1000 + p;
            CHECK(AT(frames[frame], p) == want, "frame %d page %" PRIu64 ": %" PRIu64 ", want %" PRIu64, frame, p,
                  AT(frames[frame], p), want);
        }
        check_view(frames[frame], "a frame");
    }
    views_free(frames + 1, Frames - 1);
    lineage_free(&l, NULL);
}

/* A slot more snapshots hold than a reverse copy repoints (COW_PARTNERS_MAX), or one that a holder
 * along the lineage has mapped, is copied forward. */
static void test_too_many_holders_or_a_mapped_one_means_a_forward_copy(void)
{
    enum { Frames = 12, Pages = 600 };
    lineage_t l;
    lineage_create(&l, Pages);
    cow_view_t *frames[Frames] = {l.snapshot};
    for (int frame = 1; frame < Frames; frame++) {
        AT(l.region, 5) = (uint64_t)frame; /* every snapshot gets a leaf of its own */
        frames[frame] = harness_view(l.engine, Pages);
        CHECK(cow_view_snapshot(l.region, frames[frame]) == 0, "snapshot of frame %d", frame);
    }
    /* Page 100's slot: held by the 12 snapshots' leaves. */
    uint32_t slot = cow_slot_of(l.region, 100);
    uint64_t reversed = l.engine->reverse_copies;
    AT(l.region, 100) = 7;
    CHECK(l.engine->reverse_copies == reversed && cow_slot_of(l.region, 100) != slot,
          "12 other holders: a forward copy");
    /* Page 200: held by the last three snapshots only (written before them), the middle one maps it. */
    AT(l.region, 200) = 1;
    cow_view_t *more[3];
    for (int i = 0; i < 3; i++) {
        AT(l.region, 5) = 100 + (uint64_t)i;
        more[i] = harness_view(l.engine, Pages);
        CHECK(cow_view_snapshot(l.region, more[i]) == 0, "snapshot %d", i);
    }
    CHECK(AT(more[1], 200) == 1, "the middle snapshot reads (maps) page 200");
    slot = cow_slot_of(l.region, 200);
    reversed = l.engine->reverse_copies;
    AT(l.region, 200) = 2;
    CHECK(l.engine->reverse_copies == reversed && cow_slot_of(l.region, 200) != slot,
          "a holder maps the page: a forward copy");
    for (int i = 0; i < 3; i++)
        CHECK(AT(more[i], 200) == 1 && cow_slot_of(more[i], 200) == slot, "snapshot %d keeps the old slot", i);
    for (int frame = 0; frame < Frames; frame++)
        CHECK(AT(frames[frame], 100) == 101 && AT(frames[frame], 5) == (frame == 0 ? 6 : (uint64_t)frame),
              "frame %d unchanged", frame);
    CHECK(AT(l.region, 100) == 7 && AT(l.region, 200) == 2, "the region's writes");
    views_free(more, 3);
    views_free(frames + 1, Frames - 1);
    lineage_free(&l, NULL);
}

/* Writer threads against a snapshot per frame, the last few kept: the snapshots along the lineage
 * take reverse copies while the writers run (their locks taken with trylock, several at a time),
 * and every snapshot still holds exactly a cut: each page between what its writer had published
 * before the snapshot and one more than it had published after. Snapshots are read only when they
 * are disposed, so that none maps a page before then (a mapped holder means a forward copy). */
enum { ThreadedPages = 64, ThreadedWriters = 2, ThreadedKept = 6, ThreadedFrames = 3000 };

typedef struct frame_writer {
    cow_view_t *region;
    uint64_t first;
    uint64_t *published; /* per page: the last value its store completed */
    volatile int *stop;
} frame_writer_t;

static void *frame_writer_run(void *argument)
{
    frame_writer_t *w = argument;
    for (uint64_t i = 0; !*w->stop; i++) {
        uint64_t page = w->first + i % (ThreadedPages / ThreadedWriters);
        uint64_t value = __atomic_load_n(&w->published[page], __ATOMIC_RELAXED) + 1;
        AT(w->region, page) = value;
        __atomic_store_n(&w->published[page], value, __ATOMIC_RELEASE);
        for (int spin = 0; spin < 8; spin++)
            sched_yield(); /* a few pages a frame, so a slot stays with several snapshots */
    }
    return NULL;
}

typedef struct kept_frame {
    cow_view_t *view;
    uint64_t before[ThreadedPages], after[ThreadedPages];
} kept_frame_t;

static void check_and_free_frame(kept_frame_t *f, int frame)
{
    for (uint64_t p = 0; p < ThreadedPages; p++) {
        uint64_t seen = AT(f->view, p);
        CHECK(f->before[p] <= seen && seen <= f->after[p] + 1,
              "frame %d page %" PRIu64 ": %" PRIu64 ", not within the cut [%" PRIu64 ", %" PRIu64 " + 1]", frame, p,
              seen, f->before[p], f->after[p]);
    }
    check_view(f->view, "a frame");
    CHECK(cow_view_dispose(f->view) == 0, "dispose");
    harness_view_free(f->view);
    f->view = NULL;
}

static void test_reverse_copies_along_the_lineage_while_threads_write(void)
{
    lineage_t l;
    lineage_create(&l, ThreadedPages);
    static uint64_t published[ThreadedPages];
    for (uint64_t p = 0; p < ThreadedPages; p++)
        published[p] = p + 1; /* what lineage_create wrote */
    volatile int stop = 0;
    frame_writer_t writers[ThreadedWriters];
    pthread_t threads[ThreadedWriters];
    for (int w = 0; w < ThreadedWriters; w++) {
        writers[w] = (frame_writer_t){l.region, (uint64_t)w * (ThreadedPages / ThreadedWriters), published, &stop};
        CHECK(pthread_create(&threads[w], NULL, frame_writer_run, &writers[w]) == 0, "pthread_create");
    }
    static kept_frame_t kept[ThreadedKept];
    uint64_t reversed = l.engine->reverse_copies;
    int failures_before = harness_failures;
    for (int frame = 0; frame < ThreadedFrames && harness_failures == failures_before; frame++) {
        kept_frame_t *f = &kept[frame % ThreadedKept];
        if (f->view != NULL)
            check_and_free_frame(f, frame - ThreadedKept);
        f->view = harness_view(l.engine, ThreadedPages);
        for (uint64_t p = 0; p < ThreadedPages; p++)
            f->before[p] = __atomic_load_n(&published[p], __ATOMIC_ACQUIRE);
        CHECK(cow_view_snapshot(l.region, f->view) == 0, "snapshot of frame %d", frame);
        for (uint64_t p = 0; p < ThreadedPages; p++)
            f->after[p] = __atomic_load_n(&published[p], __ATOMIC_ACQUIRE);
    }
    stop = 1;
    for (int w = 0; w < ThreadedWriters; w++)
        pthread_join(threads[w], NULL);
    for (int k = 0; k < ThreadedKept; k++)
        if (kept[k].view != NULL)
            check_and_free_frame(&kept[k], -1);
    for (uint64_t p = 0; p < ThreadedPages; p++)
        CHECK(AT(l.region, p) == published[p], "page %" PRIu64 ": no write lost", p);
    CHECK(l.engine->reverse_copies - reversed > ThreadedFrames / 10, "%" PRIu64 " reverse copies in %d frames",
          l.engine->reverse_copies - reversed, ThreadedFrames);
    lineage_free(&l, NULL);
}

void run_reverse_tests(int *passed, int *total)
{
    *total += 7;
    *passed += RUN(test_a_first_write_gives_the_copy_to_the_untouched_snapshot);
    *passed += RUN(test_a_page_the_snapshot_has_mapped_is_copied_forward);
    *passed += RUN(test_a_slot_three_leaves_hold_is_copied_forward);
    *passed += RUN(test_a_snapshot_per_frame_keeps_reversing_the_pages_written_each_frame);
    *passed += RUN(test_the_snapshots_along_the_lineage_share_one_reverse_copy);
    *passed += RUN(test_too_many_holders_or_a_mapped_one_means_a_forward_copy);
    *passed += RUN(test_reverse_copies_along_the_lineage_while_threads_write);
}
