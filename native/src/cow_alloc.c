/*
 * cow_alloc.c - chunks, slots and leaves: allocation and reference counting.
 *
 * Slot life cycle:  free (refcount 0) -> in use (refcount n >= 1) -> punching -> free.
 * When the last reference goes, the slot is marked COW_SLOT_PUNCHING, its memory is given back to
 * the kernel with fallocate(PUNCH_HOLE) - at once, or later by cow_engine_reclaim for the runs that
 * dispose and restore queue - and only then does its refcount become 0 again. A slot is
 * reused only when it reads 0, so a late hole punch can never destroy data written after reuse.
 * A chunk's live count includes its punching slots, so a chunk returns to the free list only after
 * every hole in it has been punched.
 *
 * A punch that fails (after cow_os_punch's retries of EINTR) leaves its slots PUNCHING - still in
 * use, never handed out - and their run waits in the reclaim queue for the next reclaim, which tries
 * again: a slot must read zero when a new region takes it, which only the punch makes sure of. Only
 * if the queue has no room are the slots zeroed through the pool window and freed at once (their
 * memory then stays committed until they are freed again).
 */
#include "cow_internal.h"

#include <errno.h>
#include <string.h>

#define COW_SLOT_PUNCHING 0x80000000u

void cow_batch_begin(cow_release_batch_t *batch, cow_engine_t *engine)
{
    batch->engine = engine;
    batch->punch_first = 0;
    batch->punch_count = 0;
    batch->deferred = 0;
}

void cow_batch_begin_deferred(cow_release_batch_t *batch, cow_engine_t *engine)
{
    cow_batch_begin(batch, engine);
    batch->deferred = engine->reclaim_capacity != 0;
}

static int cow_reclaim_push(cow_engine_t *engine, uint64_t first, uint64_t count);

/* Makes a run of PUNCHING slots (whose memory is gone, or zeroed) free. */
static void cow_reclaim_free(cow_engine_t *engine, uint64_t first, uint64_t count)
{
    cow_release_batch_t unused;
    cow_batch_begin(&unused, engine);
    for (uint64_t slot = first; slot < first + count; slot++) {
        cow_store_release(&engine->slot_refcounts[slot], 0u);
        cow_chunk_release(&unused, (uint32_t)(slot >> COW_CHUNK_SLOTS_SHIFT));
    }
    cow_sub(&engine->slots_in_use, count);
}

/* Punches a run of PUNCHING slots, then makes them free; if the punch fails, queues the run for the
 * next reclaim instead (see the top of this file). Returns the punch's error. */
static int cow_reclaim_run(cow_engine_t *engine, uint64_t first, uint64_t count)
{
    int error = cow_os_punch(engine->memfd, first << COW_PAGE_SHIFT, count << COW_PAGE_SHIFT);
    if (error != 0 && cow_reclaim_push(engine, first, count))
        return error;
    if (error != 0)
        memset(engine->pool + (first << COW_PAGE_SHIFT), 0, count << COW_PAGE_SHIFT);
    cow_reclaim_free(engine, first, count);
    return error;
}

static int cow_reclaim_push(cow_engine_t *engine, uint64_t first, uint64_t count)
{
    if (engine->reclaim_capacity == 0 || count > 0xFFFFFFFFu)
        return 0;
    int queued = 0;
    cow_spin_lock(&engine->reclaim_lock);
    if (engine->reclaim_tail - engine->reclaim_head < engine->reclaim_capacity) {
        engine->reclaim_ring[engine->reclaim_tail & (engine->reclaim_capacity - 1)] = (first << 32) | count;
        engine->reclaim_tail++;
        queued = 1;
    }
    cow_spin_unlock(&engine->reclaim_lock);
    return queued;
}

int cow_engine_reclaim(cow_engine_t *engine, uint64_t *reclaimed_out)
{
    uint64_t reclaimed = 0;
    int first_error = 0;
    if (engine->reclaim_capacity != 0) {
        /* One reclaimer at a time: a caller that must see everything reclaimed (statistics, a failed
         * allocation) waits for the runs another thread has taken but not yet finished. */
        cow_spin_lock(&engine->reclaim_owner);
        cow_spin_lock(&engine->reclaim_lock);
        /* The runs queued now, each once: a run whose punch fails goes back to the end of the queue,
         * for the next call, and must not be taken again by this one. */
        uint32_t pending = engine->reclaim_tail - engine->reclaim_head;
        cow_spin_unlock(&engine->reclaim_lock);
        for (uint32_t i = 0; i < pending; i++) {
            cow_spin_lock(&engine->reclaim_lock);
            uint64_t entry = engine->reclaim_ring[engine->reclaim_head & (engine->reclaim_capacity - 1)];
            engine->reclaim_head++;
            cow_spin_unlock(&engine->reclaim_lock);
            int error = cow_reclaim_run(engine, entry >> 32, entry & 0xFFFFFFFFu);
            if (error == 0)
                reclaimed += entry & 0xFFFFFFFFu;
            else if (first_error == 0)
                first_error = error;
        }
        cow_spin_unlock(&engine->reclaim_owner);
    }
    if (reclaimed_out != NULL)
        *reclaimed_out = reclaimed;
    return first_error;
}

int cow_batch_flush(cow_release_batch_t *batch)
{
    if (batch->punch_count == 0)
        return 0;
    cow_engine_t *engine = batch->engine;
    uint64_t first = batch->punch_first, count = batch->punch_count;
    batch->punch_count = 0;
    if (batch->deferred && cow_reclaim_push(engine, first, count))
        return 0;
    return cow_reclaim_run(engine, first, count);
}

void cow_slot_release(cow_release_batch_t *batch, uint32_t slot)
{
    uint32_t *refcount = &batch->engine->slot_refcounts[slot];
    uint32_t seen = cow_load_relaxed(refcount);
    for (;;) {
        uint32_t next = seen == 1 ? COW_SLOT_PUNCHING : seen - 1;
        if (__atomic_compare_exchange_n(refcount, &seen, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            break;
    }
    if (seen != 1)
        return;
    if (batch->punch_count != 0 && batch->punch_first + batch->punch_count != slot)
        cow_batch_flush(batch);
    if (batch->punch_count == 0)
        batch->punch_first = slot;
    batch->punch_count++;
}

void cow_chunk_release(cow_release_batch_t *batch, uint32_t chunk)
{
    cow_engine_t *engine = batch->engine;
    if (cow_sub(&engine->chunk_live[chunk], 1u) != 0)
        return;
    cow_spin_lock(&engine->alloc_lock);
    engine->chunk_free[engine->chunk_free_count++] = chunk;
    cow_spin_unlock(&engine->alloc_lock);
    cow_sub(&engine->chunks_in_use, 1u);
}

void cow_leaf_release(cow_release_batch_t *batch, uint32_t leaf)
{
    cow_engine_t *engine = batch->engine;
    if (cow_sub(&engine->leaf_refcounts[leaf], 1u) != 0)
        return;
    const uint32_t *entries = cow_leaf_entries(engine, leaf);
    for (uint32_t i = 0; i < COW_LEAF_ENTRIES; i++)
        if (entries[i] != COW_NONE)
            cow_slot_release(batch, entries[i]);
    cow_spin_lock(&engine->alloc_lock);
    engine->leaf_free[engine->leaf_free_count++] = leaf;
    cow_spin_unlock(&engine->alloc_lock);
    cow_sub(&engine->leaves_in_use, 1u);
}

int cow_chunks_allocate(cow_engine_t *engine, uint32_t count, uint32_t *first_out)
{
    uint32_t first;
    cow_spin_lock(&engine->alloc_lock);
    if (count == 1 && engine->chunk_free_count != 0) {
        first = engine->chunk_free[--engine->chunk_free_count];
    } else if (engine->chunk_capacity - engine->chunk_bump >= count) {
        first = engine->chunk_bump;
        engine->chunk_bump += count;
    } else {
        cow_spin_unlock(&engine->alloc_lock);
        return ENOSPC;
    }
    cow_spin_unlock(&engine->alloc_lock);
    for (uint32_t i = 0; i < count; i++)
        cow_store_release(&engine->chunk_live[first + i], 1u); /* the writer's reference */
    cow_add(&engine->chunks_in_use, count);
    *first_out = first;
    return 0;
}

int cow_leaf_allocate(cow_engine_t *engine, const cow_view_t *holder, uint32_t origin, uint32_t *leaf_out)
{
    uint32_t leaf;
    cow_spin_lock(&engine->alloc_lock);
    if (engine->leaf_free_count != 0) {
        leaf = engine->leaf_free[--engine->leaf_free_count];
    } else if (engine->leaf_bump < engine->leaf_capacity) {
        leaf = engine->leaf_bump++;
    } else {
        cow_spin_unlock(&engine->alloc_lock);
        return ENOSPC;
    }
    cow_spin_unlock(&engine->alloc_lock);
    cow_store_relaxed(&engine->leaf_origins[leaf], origin);
    cow_store_relaxed(&engine->leaf_holders[2 * (uint64_t)leaf], holder->index + 1);
    cow_store_relaxed(&engine->leaf_holders[2 * (uint64_t)leaf + 1], 0u);
    cow_store_release(&engine->leaf_refcounts[leaf], 1u);
    cow_add(&engine->leaves_in_use, 1u);
    *leaf_out = leaf;
    return 0;
}

/* ---- leaf lineage hints: racy by design (validated by whoever acts on them) ---- */

void cow_leaf_hold(cow_engine_t *engine, uint32_t leaf, const cow_view_t *holder)
{
    uint32_t *holders = &engine->leaf_holders[2 * (uint64_t)leaf], mark = holder->index + 1;
    if (cow_load_relaxed(&holders[0]) == mark || cow_load_relaxed(&holders[1]) == mark)
        return;
    /* A free place, else the second: the newest holder (a snapshot just taken) is the likeliest
     * partner of the next reverse copy. */
    cow_store_relaxed(&holders[cow_load_relaxed(&holders[0]) == 0 ? 0 : 1], mark);
}

void cow_leaf_unhold(cow_engine_t *engine, uint32_t leaf, const cow_view_t *holder)
{
    uint32_t *holders = &engine->leaf_holders[2 * (uint64_t)leaf], mark = holder->index + 1;
    for (int i = 0; i < 2; i++)
        if (cow_load_relaxed(&holders[i]) == mark)
            cow_store_relaxed(&holders[i], 0u);
}

uint32_t cow_leaf_other_holder(cow_engine_t *engine, uint32_t leaf, const cow_view_t *view)
{
    const uint32_t *holders = &engine->leaf_holders[2 * (uint64_t)leaf];
    for (int i = 0; i < 2; i++) {
        uint32_t mark = cow_load_relaxed(&holders[i]);
        if (mark != 0 && mark != view->index + 1)
            return mark;
    }
    return 0;
}

int cow_slots_reserve(cow_engine_t *engine, uint64_t count)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (cow_add(&engine->slots_in_use, count) <= engine->slot_limit)
            return 0;
        cow_sub(&engine->slots_in_use, count);
        /* Slots waiting in the reclaim queue still count: reclaim them now, then try again. */
        uint64_t reclaimed = 0;
        if (attempt == 0)
            (void)cow_engine_reclaim(engine, &reclaimed); /* a failed punch keeps its run queued */
        if (reclaimed == 0)
            break;
    }
    return ENOSPC;
}

int cow_copy_slot_take(cow_view_t *view, uint64_t page, cow_release_batch_t *batch, uint32_t *slot_out)
{
    cow_engine_t *engine = view->engine;
    uint32_t segment = cow_segment_of(page);
    uint32_t position = (uint32_t)(page & (COW_SEGMENT_PAGES - 1));
    int error = cow_slots_reserve(engine, 1);
    if (error != 0)
        return error;

    /* Position `position` of the write chunk keeps this copy file-contiguous with its neighbours'
     * copies, so the kernel can merge their mappings. If that position is still referenced (an
     * older copy of this page that a snapshot shares), start a fresh chunk for this segment. */
    uint32_t chunk = view->write_chunks[segment];
    if (chunk == COW_NONE ||
        cow_load_acquire(&engine->slot_refcounts[((uint64_t)chunk << COW_CHUNK_SLOTS_SHIFT) + position]) != 0) {
        uint32_t fresh;
        error = cow_chunks_allocate(engine, 1, &fresh);
        if (error == ENOSPC) { /* queued slots may free chunks */
            uint64_t reclaimed = 0;
            (void)cow_engine_reclaim(engine, &reclaimed);
            if (reclaimed != 0)
                error = cow_chunks_allocate(engine, 1, &fresh);
        }
        if (error != 0) {
            cow_sub(&engine->slots_in_use, 1u);
            return error;
        }
        view->write_chunks[segment] = fresh;
        if (chunk != COW_NONE)
            cow_chunk_release(batch, chunk);
        chunk = fresh;
    }
    uint32_t slot = (chunk << COW_CHUNK_SLOTS_SHIFT) + position;
    cow_store_release(&engine->slot_refcounts[slot], 1u);
    cow_add(&engine->chunk_live[chunk], 1u);
    *slot_out = slot;
    return 0;
}

int cow_engine_init(cow_engine_t *engine)
{
    if (engine->pool == NULL || engine->slot_refcounts == NULL || engine->chunk_live == NULL ||
        engine->chunk_free == NULL || engine->leaf_refcounts == NULL || engine->leaf_entries == NULL ||
        engine->leaf_free == NULL || engine->live_list == NULL || engine->leaf_origins == NULL ||
        engine->leaf_holders == NULL || engine->chunk_capacity == 0 || engine->leaf_capacity == 0 ||
        engine->chunk_capacity > (COW_NONE >> COW_CHUNK_SLOTS_SHIFT) || engine->memfd < 0)
        return EINVAL;
    if ((engine->reclaim_capacity & (engine->reclaim_capacity - 1)) != 0 ||
        (engine->reclaim_capacity != 0 && engine->reclaim_ring == NULL))
        return EINVAL;
    if (engine->write_protection > COW_PROTECT_USERFAULTFD ||
        (engine->write_protection == COW_PROTECT_USERFAULTFD && engine->uffd < 0))
        return EINVAL;
    engine->alloc_lock = 0;
    engine->chunk_free_count = 0;
    engine->chunk_bump = 0;
    engine->leaf_free_count = 0;
    engine->leaf_bump = 0;
    engine->live_count = 0;
    engine->reclaim_head = engine->reclaim_tail = engine->reclaim_lock = 0;
    return 0;
}

/* 1 if the slot is a hole of the pool (never written since it was last punched: reads zero, holds
 * no memory); 0 if it holds data, or if lseek fails (not knowing, it counts as data). */
static int cow_slot_is_hole(cow_engine_t *engine, uint32_t slot)
{
    uint64_t offset = (uint64_t)slot << COW_PAGE_SHIFT, data;
    return cow_os_seek(engine->memfd, offset, 1, &data) == 0 && data != offset;
}

static int cow_page_is_zero(const uint8_t *page)
{
    const uint64_t *words = (const uint64_t *)page;
    uint64_t any = 0;
    for (uint32_t i = 0; i < COW_PAGE_SIZE / sizeof(uint64_t); i++)
        any |= words[i];
    return any == 0;
}

int cow_slots_differ(cow_engine_t *engine, uint32_t a, uint32_t b, int *error_out)
{
    if (a == b)
        return 0;
    uint8_t *page_a = engine->pool + ((uint64_t)a << COW_PAGE_SHIFT);
    uint8_t *page_b = engine->pool + ((uint64_t)b << COW_PAGE_SHIFT);
    int resident_a = 0, resident_b = 0;
    int error = cow_os_is_resident(page_a, &resident_a);
    if (error == 0)
        error = cow_os_is_resident(page_b, &resident_b);
    if (error != 0) {
        /* Not knowing is no reason to call equal bytes different (a restore's copy-back leaves such
         * pages): compare them. */
        if (error_out != NULL && *error_out == 0)
            *error_out = error;
        return memcmp(page_a, page_b, COW_PAGE_SIZE) != 0;
    }
    if (resident_a && resident_b)
        return memcmp(page_a, page_b, COW_PAGE_SIZE) != 0;
    /* One is not in memory. A hole reads zero, known without reading it (a copy of a never-written
     * page is a hole too); anything else (swapped out) counts as differing rather than be read. */
    int hole_a = !resident_a && cow_slot_is_hole(engine, a), hole_b = !resident_b && cow_slot_is_hole(engine, b);
    if (hole_a && hole_b)
        return 0;
    if (hole_a && resident_b)
        return !cow_page_is_zero(page_b);
    if (hole_b && resident_a)
        return !cow_page_is_zero(page_a);
    return 1;
}

int cow_slot_copy_if_differs(cow_engine_t *engine, uint32_t to, uint32_t from)
{
    if (to == from)
        return 0;
    uint8_t *target = engine->pool + ((uint64_t)to << COW_PAGE_SHIFT);
    const uint8_t *source = engine->pool + ((uint64_t)from << COW_PAGE_SHIFT);
    int resident = 0;
    int error = cow_os_is_resident(source, &resident);
    /* A source not in memory may be a hole (never written): it reads zero, and is never read through
     * the window, which would allocate it (and leave a page on the zero page with a slot holding
     * memory). */
    if (error == 0 && !resident && cow_slot_is_hole(engine, from)) {
        int target_resident = 0;
        if (cow_slot_is_hole(engine, to) ||
            (cow_os_is_resident(target, &target_resident) == 0 && target_resident && cow_page_is_zero(target)))
            return 0; /* equal: zero both */
        memset(target, 0, COW_PAGE_SIZE);
        return 1;
    }
    /* Residency unknown: comparing is right, at worst it allocates `source`. */
    if ((error != 0 || resident) && memcmp(target, source, COW_PAGE_SIZE) == 0)
        return 0;
    /* Copied even when `from` is not in memory (reading it allocates it): afterwards both slots are in
     * memory with equal bytes, so a later diff can compare them instead of reporting them unread. */
    memcpy(target, source, COW_PAGE_SIZE);
    return 1;
}
