/*
 * cow_resolve.c - making pages private and writable, and mapping a snapshot's untouched pages. One
 * routine serves both the fault handler (one page) and cow_view_prepare_write (many pages), so both
 * follow the same protocol.
 *
 * A page of a view is PRIVATE when the view's leaf for its segment has refcount 1 and the page's
 * slot has refcount 1: no other view can see that slot. Only private pages are ever mapped
 * writable. Making page p of segment g writable:
 *   1. If the leaf is shared, give the view its own copy of the leaf (512 slot numbers; every slot
 *      gains a reference, so all of them are now shared at slot level).
 *   2. If the slot is shared, someone gets a copy of its 4 KiB (through the pool window):
 *      REVERSE copy-on-write, when every other holder of the slot is a leaf of this view's lineage
 *      (the leaf its leaf was copied from, that leaf's origin, ...: the last snapshots, typically),
 *      each held by one view alone that has not mapped the page: those leaves take one copy, and
 *      this view keeps its slot, made writable in place - no new mapping, no refault, and its
 *      slots stay file-contiguous. Otherwise FORWARD: the copy
 *      goes into the slot at position p % 512 of this view's write chunk (file-contiguous with its
 *      neighbours), mapped read-write over the page, and the old slot is dropped.
 *      A private slot is made writable in place.
 *   Neighbouring pages whose slots are contiguous take one system call together (cow_map.c).
 * The caller holds the view's lock (shared) and the segment's guard (cow_segment_lock), so no other
 * thread resolves pages of this segment (or its neighbours) of this view, and no snapshot of this
 * view runs, meanwhile. A reverse copy also holds its partners' locks (shared) and guards, TAKEN
 * WITH TRYLOCK only (never waiting while holding our own), so two views giving each other copies
 * cannot deadlock: one of them falls back to a forward copy.
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

/* Pages resolved with one round of copies and system calls (the handler's largest stack item). */
#define COW_RESOLVE_BATCH 64u

static int cow_unshare_leaf(cow_view_t *view, uint32_t segment, cow_release_batch_t *batch)
{
    cow_engine_t *engine = view->engine;
    uint32_t shared = view->leaves[segment];
    if (cow_load_acquire(&engine->leaf_refcounts[shared]) == 1)
        return 0;
    uint32_t own;
    int error = cow_leaf_allocate(engine, view, shared, &own);
    if (error != 0)
        return error;
    const uint32_t *from = cow_leaf_entries(engine, shared);
    uint32_t *to = cow_leaf_entries(engine, own);
    for (uint32_t i = 0; i < COW_LEAF_ENTRIES; i++) {
        to[i] = from[i];
        if (from[i] != COW_NONE)
            cow_add(&engine->slot_refcounts[from[i]], 1u);
    }
    cow_store_release(&view->leaves[segment], own);
    cow_leaf_unhold(engine, shared, view);
    cow_leaf_release(batch, shared);
    return 0;
}

/* ---- reverse copies ---- */

/* Most other holders a reverse copy repoints: the views along the writer's leaf lineage (its origin
 * leaf, that leaf's origin, ...) - in a rewind buffer, the last few snapshots that still hold the
 * page's slot. A slot with more holders gets a forward copy. */
#define COW_PARTNERS_MAX 8u

/* The other side of reverse copies in one segment: views that each alone hold a leaf of the
 * writer's lineage, nearest first, each with its read lock and segment guard held. */
typedef struct cow_partners {
    uint32_t segment; /* the one segment whose leaves these are */
    uint32_t count;
    int ended; /* the lineage cannot be followed further (no origin, or a lock was busy) */
    struct {
        cow_view_t *view;
        uint32_t leaf;
        uint32_t *entries;
        cow_segment_guard_t guard;
    } at[COW_PARTNERS_MAX];
} cow_partners_t;

/* Locks one more partner: the view that alone holds the origin of the last leaf of the lineage (of
 * `view`'s own leaf, at first), if there is one and its locks are free. Returns whether it did. */
static int cow_partners_extend(cow_view_t *view, const cow_segment_guard_t *held, cow_partners_t *partners)
{
    uint32_t segment = partners->segment;
    if (partners->ended || partners->count == COW_PARTNERS_MAX)
        return 0;
    partners->ended = 1; /* unless this call locks one */
    cow_engine_t *engine = view->engine;
    cow_process_t *process = cow_process();
    uint32_t last = partners->count == 0 ? view->leaves[segment] : partners->at[partners->count - 1].leaf;
    uint32_t origin = cow_load_relaxed(&engine->leaf_origins[last]);
    if (process == NULL || origin == COW_NONE || cow_load_acquire(&engine->leaf_refcounts[origin]) != 1)
        return 0;
    uint32_t mark = cow_leaf_other_holder(engine, origin, view);
    if (mark == 0 || mark > process->view_capacity)
        return 0;
    cow_view_t *other = &process->views[mark - 1];
    for (uint32_t k = 0; k < partners->count; k++)
        if (partners->at[k].view == other)
            return 0; /* a view holds one leaf per segment: a lineage that comes back is stale */
    if (other == view || cow_load_relaxed(&other->engine) != engine || !cow_read_trylock(&other->lock))
        return 0;
    /* The hint named it; the locks make it true: with its read lock held nothing can add a holder to
     * its leaves (that takes its write lock), so refcount 1 and its leaf being the origin mean it
     * alone holds the origin, and with its guard held nothing else touches that leaf's entries.
     * Stripes it shares with our guard or an earlier partner's are ours already. */
    const cow_segment_guard_t *ours[COW_PARTNERS_MAX + 1] = {held};
    for (uint32_t k = 0; k < partners->count; k++)
        ours[k + 1] = &partners->at[k].guard;
    cow_segment_guard_t *guard = &partners->at[partners->count].guard;
    if (other->state == COW_VIEW_LIVE && segment < other->segment_count &&
        cow_load_acquire(&other->leaves[segment]) == origin &&
        cow_segment_trylock_beside(other, segment, ours, partners->count + 1, guard)) {
        if (cow_load_acquire(&engine->leaf_refcounts[origin]) == 1) {
            partners->at[partners->count].view = other;
            partners->at[partners->count].leaf = origin;
            partners->at[partners->count].entries = cow_leaf_entries(engine, origin);
            partners->count++;
            partners->ended = 0;
            return 1;
        }
        cow_segment_unlock(guard);
    }
    cow_read_unlock(&other->lock);
    return 0;
}

static void cow_partners_unlock(cow_partners_t *partners)
{
    for (uint32_t k = partners->count; k > 0; k--) {
        cow_segment_unlock(&partners->at[k - 1].guard);
        cow_read_unlock(&partners->at[k - 1].view->lock);
    }
    partners->count = 0;
}

/* Whether `slot`, the slot of `view`'s page `page`, reads zero, known without reading it (reading a
 * hole through the pool window would allocate it): the page is on the zero page here, or it is not
 * mapped here and the pool has a hole there. Then a copy needs no memcpy: a fresh slot reads zero
 * already (cow_alloc.c). */
static int cow_slot_reads_zero(cow_view_t *view, uint64_t page, uint32_t slot)
{
    if (cow_is_zero(view, page))
        return 1;
    if (cow_is_mapped(view, page))
        return 0;
    uint64_t offset = (uint64_t)slot << COW_PAGE_SHIFT, data;
    return cow_os_seek(view->engine->memfd, offset, 1, &data) == 0 && data != offset;
}

/* Gives the fresh slot `fresh` the bytes of `slot` (page `page` of `view`): nothing to copy when they
 * are known to be zero (`zero`, or cow_slot_reads_zero), since a fresh slot reads zero already. */
static void cow_copy_into_fresh(cow_view_t *view, uint64_t page, uint32_t slot, uint32_t fresh, int zero)
{
    if (zero || cow_slot_reads_zero(view, page, slot))
        return;
    uint8_t *pool = view->engine->pool;
    memcpy(pool + ((uint64_t)fresh << COW_PAGE_SHIFT), pool + ((uint64_t)slot << COW_PAGE_SHIFT), COW_PAGE_SIZE);
}

/* Gives the other holders of page `page`'s slot one copy, if every one of them is a partner (found
 * along the lineage, locking more partners as needed) and none has mapped the page: afterwards the
 * slot is ours alone. 1 if it did, 0 if a forward copy is needed, -errno if no slot was left for the
 * copy. */
static int cow_try_reverse_copy(cow_view_t *view, uint64_t page, uint32_t slot, const cow_segment_guard_t *held,
                                cow_partners_t *partners, cow_release_batch_t *batch)
{
    uint32_t index = (uint32_t)(page & (COW_SEGMENT_PAGES - 1));
    cow_engine_t *engine = view->engine;
    uint32_t references = cow_load_acquire(&engine->slot_refcounts[slot]);
    if (references < 2 || references - 1 > COW_PARTNERS_MAX)
        return 0;
    /* A slot's refcount counts the leaves that hold it (invariant 4). Once references - 1 partners
     * are found holding it, and the count still reads `references`, those are all of its holders;
     * and since each is locked (and ours is ours), none can be copied: nobody can add one. */
    uint32_t holders[COW_PARTNERS_MAX], found = 0;
    int zero = 0;
    for (uint32_t k = 0; found < references - 1; k++) {
        if (k == partners->count && !cow_partners_extend(view, held, partners))
            return 0;
        if (cow_load_relaxed(&partners->at[k].entries[index]) != slot)
            continue;
        if (cow_is_mapped(partners->at[k].view, page))
            return 0;                                    /* its mapping shows the slot: it must stay where it is */
        zero |= cow_is_zero(partners->at[k].view, page); /* then the slot reads zero (invariant 12) */
        holders[found++] = k;
    }
    if (cow_load_acquire(&engine->slot_refcounts[slot]) != references)
        return 0; /* a holder outside the lineage came or went meanwhile */
    uint32_t fresh;
    int error = cow_copy_slot_take(partners->at[holders[0]].view, page, batch, &fresh);
    if (error != 0)
        return -error;
    cow_copy_into_fresh(view, page, slot, fresh, zero);
    cow_add(&engine->slot_refcounts[fresh], found - 1); /* one reference per holder */
    for (uint32_t h = 0; h < found; h++) {
        cow_store_release(&partners->at[holders[h]].entries[index], fresh);
        cow_slot_release(batch, slot); /* down to 1: the slot is ours alone */
    }
    cow_add(&partners->at[holders[0]].view->pages_copied, 1u);
    cow_add(&engine->reverse_copies, 1u);
    return 1;
}

/* One batch of at most COW_RESOLVE_BATCH pages from `page`, stopping at `end` or at a page a
 * preparation keeps as it is. Gives every shared page a copy: to the partner (reverse; counted in
 * *copies_out), or into a fresh slot of ours. Fills `slots` (the slot each page is to map) and
 * `old_slots` (the slot a forward copy replaces, or COW_NONE). Returns the pages gathered;
 * *error_out is set if a copy could not get a slot (the pages before it are gathered). */
static uint32_t cow_gather_batch(cow_view_t *view, uint64_t page, uint64_t end, cow_resolve_purpose_t purpose,
                                 const cow_segment_guard_t *held, cow_partners_t *partners, cow_release_batch_t *batch,
                                 uint32_t *slots, uint32_t *old_slots, uint32_t *copies_out, int *error_out)
{
    cow_engine_t *engine = view->engine;
    uint32_t *entries = cow_leaf_entries(engine, view->leaves[cow_segment_of(page)]);
    uint32_t count = 0;
    while (count < COW_RESOLVE_BATCH && page + count < end &&
           !(purpose == COW_RESOLVE_PREPARE && cow_is_writable(view, page + count))) {
        uint64_t p = page + count;
        uint32_t slot = entries[p & (COW_SEGMENT_PAGES - 1)];
        old_slots[count] = COW_NONE;
        slots[count] = slot;
        int reversed = cow_load_acquire(&engine->slot_refcounts[slot]) == 1
                           ? 0
                           : cow_try_reverse_copy(view, p, slot, held, partners, batch);
        if (reversed < 0) {
            *error_out = -reversed;
            break;
        }
        if (reversed == 0 && cow_load_acquire(&engine->slot_refcounts[slot]) != 1) {
            uint32_t fresh;
            int error = cow_copy_slot_take(view, p, batch, &fresh);
            if (error != 0) {
                *error_out = error;
                break;
            }
            cow_copy_into_fresh(view, p, slot, fresh, 0);
            old_slots[count] = slot;
            slots[count] = fresh;
        }
        *copies_out += (uint32_t)reversed;
        count++;
    }
    return count;
}

/* After mapping a batch: the pages that were mapped keep their copies (the old slots go); the
 * copies of the others go back. Returns the pages copied. */
static uint32_t cow_commit_batch(cow_view_t *view, uint64_t page, uint32_t count, uint64_t mapped,
                                 cow_resolve_purpose_t purpose, cow_release_batch_t *batch, const uint32_t *slots,
                                 const uint32_t *old_slots)
{
    uint32_t copies = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (i < mapped) {
            if (old_slots[i] != COW_NONE) {
                cow_slot_release(batch, old_slots[i]);
                copies++;
            }
            cow_bit_set(view->dirty_bits, page + i);
            cow_mark_changed(view, page + i);
            if (purpose == COW_RESOLVE_PREPARE) /* prepared for the kernel to write: keep it mapped */
                cow_bit_set(view->pinned_bits, page + i);
        } else if (old_slots[i] != COW_NONE) {
            cow_slot_release(batch, slots[i]);
        }
    }
    return copies;
}

int cow_resolve_write(cow_view_t *view, uint64_t first, uint32_t count, cow_resolve_purpose_t purpose,
                      const cow_segment_guard_t *held, cow_resolve_result_t *result)
{
    cow_engine_t *engine = view->engine;
    cow_release_batch_t batch;
    cow_batch_begin(&batch, engine);
    result->failed_call = COW_CALL_ALLOCATE;
    result->copies = 0;
    int error = cow_unshare_leaf(view, cow_segment_of(first), &batch);
    cow_partners_t partners = {.segment = cow_segment_of(first), .count = 0, .ended = 0}; /* locked as needed */

    uint32_t slots[COW_RESOLVE_BATCH], old_slots[COW_RESOLVE_BATCH];
    uint64_t end = first + count, copies = 0, forward = 0;
    for (uint64_t page = first; page < end && error == 0;) {
        /* A preparation keeps pages that are already writable (a fault must still resolve a page
         * whose bit is set with a system call: the fault says the kernel disagrees). */
        if (purpose == COW_RESOLVE_PREPARE && cow_is_writable(view, page)) {
            cow_bit_set(view->pinned_bits, page);
            page++;
            continue;
        }
        uint32_t reversed = 0;
        uint32_t gathered =
            cow_gather_batch(view, page, end, purpose, held, &partners, &batch, slots, old_slots, &reversed, &error);
        copies += reversed;
        uint64_t mapped = 0;
        if (gathered != 0) {
            int map_error =
                cow_map_pages(view, page, page + gathered, COW_CLASS_WRITE, slots, 1, &mapped, &result->failed_call);
            if (error == 0)
                error = map_error;
            else
                result->failed_call = COW_CALL_ALLOCATE;
        }
        uint32_t committed = cow_commit_batch(view, page, gathered, mapped, purpose, &batch, slots, old_slots);
        copies += committed;
        forward += committed;
        page += gathered;
    }

    cow_partners_unlock(&partners);
    cow_add(&view->modifications, 1u);
    if (copies != 0) /* a view counts the copies made for it: forward ones here, reverse ones the partner */
        cow_add(&engine->pages_copied, copies);
    if (forward != 0)
        cow_add(&view->pages_copied, forward);
    cow_batch_flush(&batch);
    result->copies = (uint32_t)copies;
    if (error == 0)
        result->failed_call = COW_CALL_NONE;
    return error;
}

/* Maps `page` and as much of the untouched run [first, end) around it (file-contiguous slots) as is
 * of the same kind: slots never written (holes of the pool) onto the zero page, so that reading them
 * allocates nothing (shared memory allocates a page on a read fault); slots that hold data read-only
 * onto themselves. lseek(SEEK_DATA) from the page tells the kind and where a hole ends (and, from
 * `first`, whether the hole starts there); mincore over the pool window, where data in memory ends.
 * If lseek fails, the whole run is mapped onto its slots - correct, it only allocates. */
/* Pages of data a read fault maps at most beyond the faulting one (one mincore call). */
#define COW_UNTOUCHED_LOOK 64u

static int cow_map_untouched(cow_view_t *view, uint64_t first, uint64_t page, uint64_t end, int *failed_call_out)
{
    cow_engine_t *engine = view->engine;
    uint64_t run = (uint64_t)cow_slot_of(view, first) << COW_PAGE_SHIFT; /* the offset of `first` */
    uint64_t at = run + ((page - first) << COW_PAGE_SHIFT), data, other, done;
    if (cow_os_seek(engine->memfd, at, 1, &data) != 0)
        return cow_map_pages(view, first, end, COW_CLASS_READ, NULL, 0, &done, failed_call_out);
    if (data != at) { /* a hole up to `data` */
        uint64_t stop = (data - at) >> COW_PAGE_SHIFT < end - page ? page + ((data - at) >> COW_PAGE_SHIFT) : end;
        uint64_t start = page > first && cow_os_seek(engine->memfd, run, 1, &other) == 0 && other >= at ? first : page;
        return cow_map_zero(view, start, stop, failed_call_out);
    }
    /* Data: the run of it in memory - looked at COW_UNTOUCHED_LOOK pages at a time, mincore costing
     * ~30 ns a page here - from `first` if that reaches `page` (a reader going backwards takes one
     * fault per window too), else from `page` (at least the page itself: swapped out, it is data). */
    uint64_t resident = 0, start = page;
    if (page - first < COW_UNTOUCHED_LOOK) {
        uint64_t look = end - first < COW_UNTOUCHED_LOOK ? end - first : COW_UNTOUCHED_LOOK;
        (void)cow_os_resident_run(engine->pool + run, look, &resident);
        start = first + resident > page ? first : page;
    }
    if (start == page) {
        uint64_t look = end - page < COW_UNTOUCHED_LOOK ? end - page : COW_UNTOUCHED_LOOK;
        (void)cow_os_resident_run(engine->pool + at, look, &resident);
        resident = resident != 0 ? resident : 1;
    }
    return cow_map_pages(view, start, start + resident, COW_CLASS_READ, NULL, 0, &done, failed_call_out);
}

int cow_resolve_read(cow_view_t *view, uint64_t page, int *failed_call_out)
{
    if (cow_is_readable(view, page))
        return cow_map_refresh(view, page, failed_call_out);
    /* First touch: map the whole run of untouched pages with contiguous slots around it, so a
     * sequential reader takes one fault per run, not one per page. */
    uint32_t segment = cow_segment_of(page);
    uint64_t segment_first = cow_segment_first(segment), segment_end = cow_segment_end(view, segment);
    uint64_t first = page, end = page + 1;
    while (first > segment_first && !cow_is_readable(view, first - 1) &&
           cow_slot_of(view, first - 1) + 1 == cow_slot_of(view, first))
        first--;
    while (end < segment_end && !cow_is_readable(view, end) && cow_slot_of(view, end) == cow_slot_of(view, end - 1) + 1)
        end++;
    return cow_map_untouched(view, first, page, end, failed_call_out);
}
