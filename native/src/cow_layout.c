/*
 * cow_layout.c - the layout contract with the managed mirror of these structs.
 *
 * The offsets are fixed here by static_assert, and published through cow_layout_entry() so that a
 * C# test can compare them with Marshal.OffsetOf on the managed structs: a field added on one side
 * only fails the build (here) or the tests (there), never the fault path at run time.
 */
#include "cow_internal.h"

#include <stddef.h>

#define COW_EXPECT(type, field, offset) \
    _Static_assert(offsetof(type, field) == (offset), #type "." #field " moved")

COW_EXPECT(cow_engine_t, pool, 0);
COW_EXPECT(cow_engine_t, slot_refcounts, 8);
COW_EXPECT(cow_engine_t, chunk_live, 16);
COW_EXPECT(cow_engine_t, chunk_free, 24);
COW_EXPECT(cow_engine_t, leaf_refcounts, 32);
COW_EXPECT(cow_engine_t, leaf_entries, 40);
COW_EXPECT(cow_engine_t, leaf_free, 48);
COW_EXPECT(cow_engine_t, slot_limit, 56);
COW_EXPECT(cow_engine_t, chunk_capacity, 64);
COW_EXPECT(cow_engine_t, leaf_capacity, 68);
COW_EXPECT(cow_engine_t, memfd, 72);
COW_EXPECT(cow_engine_t, alloc_lock, 80);
COW_EXPECT(cow_engine_t, chunk_free_count, 84);
COW_EXPECT(cow_engine_t, chunk_bump, 88);
COW_EXPECT(cow_engine_t, leaf_free_count, 92);
COW_EXPECT(cow_engine_t, leaf_bump, 96);
COW_EXPECT(cow_engine_t, slots_in_use, 104);
COW_EXPECT(cow_engine_t, chunks_in_use, 112);
COW_EXPECT(cow_engine_t, leaves_in_use, 120);
COW_EXPECT(cow_engine_t, mappings, 128);
COW_EXPECT(cow_engine_t, write_faults, 136);
COW_EXPECT(cow_engine_t, copy_faults, 144);
COW_EXPECT(cow_engine_t, pages_copied, 152);
COW_EXPECT(cow_engine_t, snapshots, 160);
COW_EXPECT(cow_engine_t, read_faults, 168);
COW_EXPECT(cow_engine_t, evictions, 176);
COW_EXPECT(cow_engine_t, live_views, 184);
COW_EXPECT(cow_engine_t, mapping_budget, 192);
COW_EXPECT(cow_engine_t, evict_view, 200);
COW_EXPECT(cow_engine_t, evict_segment, 204);
COW_EXPECT(cow_engine_t, live_list, 208);
COW_EXPECT(cow_engine_t, live_count, 216);
COW_EXPECT(cow_engine_t, faults_in_flight, 220);
COW_EXPECT(cow_engine_t, reclaim_ring, 224);
COW_EXPECT(cow_engine_t, reclaim_capacity, 232);
COW_EXPECT(cow_engine_t, reclaim_head, 236);
COW_EXPECT(cow_engine_t, reclaim_tail, 240);
COW_EXPECT(cow_engine_t, reclaim_lock, 244);
COW_EXPECT(cow_engine_t, reclaim_owner, 248);
COW_EXPECT(cow_engine_t, recent_faults, 256);
COW_EXPECT(cow_engine_t, recent_next, 320);
COW_EXPECT(cow_engine_t, stripes, 328);
_Static_assert(sizeof(cow_engine_t) == 328 + 4 * COW_STRIPE_COUNT, "cow_engine_t size");

COW_EXPECT(cow_view_t, base, 0);
COW_EXPECT(cow_view_t, page_count, 8);
COW_EXPECT(cow_view_t, engine, 16);
COW_EXPECT(cow_view_t, leaves, 24);
COW_EXPECT(cow_view_t, write_chunks, 32);
COW_EXPECT(cow_view_t, mapped_bits, 40);
COW_EXPECT(cow_view_t, writable_bits, 48);
COW_EXPECT(cow_view_t, dirty_bits, 56);
COW_EXPECT(cow_view_t, pinned_bits, 64);
COW_EXPECT(cow_view_t, segment_count, 72);
COW_EXPECT(cow_view_t, index, 76);
COW_EXPECT(cow_view_t, lock, 80);
COW_EXPECT(cow_view_t, state, 84);
COW_EXPECT(cow_view_t, mappings, 88);
COW_EXPECT(cow_view_t, write_faults, 96);
COW_EXPECT(cow_view_t, pages_copied, 104);
COW_EXPECT(cow_view_t, live_position, 112);
_Static_assert(sizeof(cow_view_t) == 120, "cow_view_t size");

COW_EXPECT(cow_process_t, arena_base, 0);
COW_EXPECT(cow_process_t, arena_size, 8);
COW_EXPECT(cow_process_t, directory, 16);
COW_EXPECT(cow_process_t, views, 24);
COW_EXPECT(cow_process_t, view_capacity, 32);
COW_EXPECT(cow_process_t, view_high_water, 36);
_Static_assert(sizeof(cow_process_t) == 40, "cow_process_t size");

COW_EXPECT(cow_view_stats_t, private_pages, 0);
COW_EXPECT(cow_view_stats_t, shared_pages, 8);
COW_EXPECT(cow_view_stats_t, writable_pages, 16);
COW_EXPECT(cow_view_stats_t, mapped_pages, 24);
COW_EXPECT(cow_view_stats_t, mappings, 32);
COW_EXPECT(cow_view_stats_t, write_faults, 40);
COW_EXPECT(cow_view_stats_t, pages_copied, 48);
_Static_assert(sizeof(cow_view_stats_t) == 56, "cow_view_stats_t size");

typedef struct cow_layout_row {
    const char *struct_name;
    const char *field_name;
    uint32_t offset;
    uint32_t size;
} cow_layout_row_t;

#define COW_ROW(type, field) {#type, #field, offsetof(type, field), sizeof(((type *)0)->field)}
#define COW_SIZE(type) {#type, "", 0, sizeof(type)}

static const cow_layout_row_t cow_layout_rows[] = {
    COW_SIZE(cow_engine_t),
    COW_ROW(cow_engine_t, pool), COW_ROW(cow_engine_t, slot_refcounts), COW_ROW(cow_engine_t, chunk_live),
    COW_ROW(cow_engine_t, chunk_free), COW_ROW(cow_engine_t, leaf_refcounts),
    COW_ROW(cow_engine_t, leaf_entries), COW_ROW(cow_engine_t, leaf_free), COW_ROW(cow_engine_t, slot_limit),
    COW_ROW(cow_engine_t, chunk_capacity), COW_ROW(cow_engine_t, leaf_capacity), COW_ROW(cow_engine_t, memfd),
    COW_ROW(cow_engine_t, alloc_lock), COW_ROW(cow_engine_t, chunk_free_count),
    COW_ROW(cow_engine_t, chunk_bump), COW_ROW(cow_engine_t, leaf_free_count), COW_ROW(cow_engine_t, leaf_bump),
    COW_ROW(cow_engine_t, slots_in_use), COW_ROW(cow_engine_t, chunks_in_use),
    COW_ROW(cow_engine_t, leaves_in_use), COW_ROW(cow_engine_t, mappings), COW_ROW(cow_engine_t, write_faults),
    COW_ROW(cow_engine_t, copy_faults), COW_ROW(cow_engine_t, pages_copied), COW_ROW(cow_engine_t, snapshots),
    COW_ROW(cow_engine_t, read_faults), COW_ROW(cow_engine_t, evictions), COW_ROW(cow_engine_t, live_views),
    COW_ROW(cow_engine_t, mapping_budget), COW_ROW(cow_engine_t, evict_view),
    COW_ROW(cow_engine_t, evict_segment), COW_ROW(cow_engine_t, live_list), COW_ROW(cow_engine_t, live_count),
    COW_ROW(cow_engine_t, faults_in_flight),
    COW_ROW(cow_engine_t, reclaim_ring),
    COW_ROW(cow_engine_t, reclaim_capacity), COW_ROW(cow_engine_t, reclaim_head),
    COW_ROW(cow_engine_t, reclaim_tail), COW_ROW(cow_engine_t, reclaim_lock),
    COW_ROW(cow_engine_t, reclaim_owner), COW_ROW(cow_engine_t, recent_faults),
    COW_ROW(cow_engine_t, recent_next), COW_ROW(cow_engine_t, stripes),
    COW_SIZE(cow_view_t),
    COW_ROW(cow_view_t, base), COW_ROW(cow_view_t, page_count), COW_ROW(cow_view_t, engine),
    COW_ROW(cow_view_t, leaves), COW_ROW(cow_view_t, write_chunks), COW_ROW(cow_view_t, mapped_bits), COW_ROW(cow_view_t, writable_bits),
    COW_ROW(cow_view_t, dirty_bits), COW_ROW(cow_view_t, pinned_bits),
    COW_ROW(cow_view_t, segment_count), COW_ROW(cow_view_t, index), COW_ROW(cow_view_t, lock),
    COW_ROW(cow_view_t, state), COW_ROW(cow_view_t, mappings), COW_ROW(cow_view_t, write_faults),
    COW_ROW(cow_view_t, pages_copied), COW_ROW(cow_view_t, live_position),
    COW_SIZE(cow_process_t),
    COW_ROW(cow_process_t, arena_base), COW_ROW(cow_process_t, arena_size), COW_ROW(cow_process_t, directory),
    COW_ROW(cow_process_t, views), COW_ROW(cow_process_t, view_capacity), COW_ROW(cow_process_t, view_high_water),
    COW_SIZE(cow_view_stats_t),
    COW_ROW(cow_view_stats_t, private_pages), COW_ROW(cow_view_stats_t, shared_pages),
    COW_ROW(cow_view_stats_t, writable_pages), COW_ROW(cow_view_stats_t, mapped_pages),
    COW_ROW(cow_view_stats_t, mappings),
    COW_ROW(cow_view_stats_t, write_faults), COW_ROW(cow_view_stats_t, pages_copied),
};

int cow_layout_entry(uint32_t i, const char **struct_name, const char **field_name, uint32_t *offset,
                     uint32_t *size)
{
    if (i >= sizeof cow_layout_rows / sizeof cow_layout_rows[0])
        return 0;
    *struct_name = cow_layout_rows[i].struct_name;
    *field_name = cow_layout_rows[i].field_name;
    *offset = cow_layout_rows[i].offset;
    *size = cow_layout_rows[i].size;
    return 1;
}
