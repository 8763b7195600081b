/*
 * cow_layout.c - the layout contract with the managed mirror of these structs.
 *
 * One list, COW_LAYOUT, names every field with the offset it must have. It expands twice: into
 * static_asserts (a field moved here fails the build) and into the table cow_layout_entry() publishes,
 * which a C# test compares with Marshal.OffsetOf on the managed structs (a field added on one side
 * only fails the tests there), never the fault path at run time.
 */
#include "cow_internal.h"

#include <stddef.h>

/* COW_LAYOUT(SIZE, FIELD): SIZE(type, bytes) once per struct, then FIELD(type, field, offset). */
#define COW_LAYOUT(SIZE, FIELD)                                             \
    SIZE(cow_engine_t, 328 + 4 * COW_STRIPE_COUNT + 40)                     \
    FIELD(cow_engine_t, pool, 0)                                            \
    FIELD(cow_engine_t, slot_refcounts, 8)                                  \
    FIELD(cow_engine_t, chunk_live, 16)                                     \
    FIELD(cow_engine_t, chunk_free, 24)                                     \
    FIELD(cow_engine_t, leaf_refcounts, 32)                                 \
    FIELD(cow_engine_t, leaf_entries, 40)                                   \
    FIELD(cow_engine_t, leaf_free, 48)                                      \
    FIELD(cow_engine_t, slot_limit, 56)                                     \
    FIELD(cow_engine_t, chunk_capacity, 64)                                 \
    FIELD(cow_engine_t, leaf_capacity, 68)                                  \
    FIELD(cow_engine_t, memfd, 72)                                          \
    FIELD(cow_engine_t, fault_around_pages, 76)                             \
    FIELD(cow_engine_t, alloc_lock, 80)                                     \
    FIELD(cow_engine_t, chunk_free_count, 84)                               \
    FIELD(cow_engine_t, chunk_bump, 88)                                     \
    FIELD(cow_engine_t, leaf_free_count, 92)                                \
    FIELD(cow_engine_t, leaf_bump, 96)                                      \
    FIELD(cow_engine_t, write_protection, 100)                              \
    FIELD(cow_engine_t, slots_in_use, 104)                                  \
    FIELD(cow_engine_t, chunks_in_use, 112)                                 \
    FIELD(cow_engine_t, leaves_in_use, 120)                                 \
    FIELD(cow_engine_t, mappings, 128)                                      \
    FIELD(cow_engine_t, write_faults, 136)                                  \
    FIELD(cow_engine_t, copy_faults, 144)                                   \
    FIELD(cow_engine_t, pages_copied, 152)                                  \
    FIELD(cow_engine_t, snapshots, 160)                                     \
    FIELD(cow_engine_t, read_faults, 168)                                   \
    FIELD(cow_engine_t, evictions, 176)                                     \
    FIELD(cow_engine_t, live_views, 184)                                    \
    FIELD(cow_engine_t, mapping_budget, 192)                                \
    FIELD(cow_engine_t, evict_view, 200)                                    \
    FIELD(cow_engine_t, evict_segment, 204)                                 \
    FIELD(cow_engine_t, live_list, 208)                                     \
    FIELD(cow_engine_t, live_count, 216)                                    \
    FIELD(cow_engine_t, faults_in_flight, 220)                              \
    FIELD(cow_engine_t, reclaim_ring, 224)                                  \
    FIELD(cow_engine_t, reclaim_capacity, 232)                              \
    FIELD(cow_engine_t, reclaim_head, 236)                                  \
    FIELD(cow_engine_t, reclaim_tail, 240)                                  \
    FIELD(cow_engine_t, reclaim_lock, 244)                                  \
    FIELD(cow_engine_t, reclaim_owner, 248)                                 \
    FIELD(cow_engine_t, recent_faults, 256)                                 \
    FIELD(cow_engine_t, recent_next, 320)                                   \
    FIELD(cow_engine_t, stripes, 328)                                       \
    FIELD(cow_engine_t, leaf_origins, 328 + 4 * COW_STRIPE_COUNT)           \
    FIELD(cow_engine_t, leaf_holders, 336 + 4 * COW_STRIPE_COUNT)           \
    FIELD(cow_engine_t, reverse_copies, 344 + 4 * COW_STRIPE_COUNT)         \
    FIELD(cow_engine_t, pages_restored_by_copy, 352 + 4 * COW_STRIPE_COUNT) \
    FIELD(cow_engine_t, uffd, 360 + 4 * COW_STRIPE_COUNT)                   \
    SIZE(cow_view_t, 192)                                                   \
    FIELD(cow_view_t, base, 0)                                              \
    FIELD(cow_view_t, page_count, 8)                                        \
    FIELD(cow_view_t, engine, 16)                                           \
    FIELD(cow_view_t, leaves, 24)                                           \
    FIELD(cow_view_t, write_chunks, 32)                                     \
    FIELD(cow_view_t, mapped_bits, 40)                                      \
    FIELD(cow_view_t, writable_bits, 48)                                    \
    FIELD(cow_view_t, dirty_bits, 56)                                       \
    FIELD(cow_view_t, pinned_bits, 64)                                      \
    FIELD(cow_view_t, segment_count, 72)                                    \
    FIELD(cow_view_t, index, 76)                                            \
    FIELD(cow_view_t, lock, 80)                                             \
    FIELD(cow_view_t, state, 84)                                            \
    FIELD(cow_view_t, mappings, 88)                                         \
    FIELD(cow_view_t, write_faults, 96)                                     \
    FIELD(cow_view_t, pages_copied, 104)                                    \
    FIELD(cow_view_t, live_position, 112)                                   \
    FIELD(cow_view_t, flags, 116)                                           \
    FIELD(cow_view_t, fault_streaks, 120)                                   \
    FIELD(cow_view_t, changed_bits, 128)                                    \
    FIELD(cow_view_t, changed_segments, 136)                                \
    FIELD(cow_view_t, modifications, 144)                                   \
    FIELD(cow_view_t, base_modifications, 152)                              \
    FIELD(cow_view_t, base_view, 160)                                       \
    FIELD(cow_view_t, base_incarnation, 164)                                \
    FIELD(cow_view_t, incarnation, 168)                                     \
    FIELD(cow_view_t, writable_segments, 176)                               \
    FIELD(cow_view_t, zero_bits, 184)                                       \
    SIZE(cow_process_t, 40)                                                 \
    FIELD(cow_process_t, arena_base, 0)                                     \
    FIELD(cow_process_t, arena_size, 8)                                     \
    FIELD(cow_process_t, directory, 16)                                     \
    FIELD(cow_process_t, views, 24)                                         \
    FIELD(cow_process_t, view_capacity, 32)                                 \
    FIELD(cow_process_t, view_high_water, 36)                               \
    SIZE(cow_view_stats_t, 64)                                              \
    FIELD(cow_view_stats_t, private_pages, 0)                               \
    FIELD(cow_view_stats_t, shared_pages, 8)                                \
    FIELD(cow_view_stats_t, writable_pages, 16)                             \
    FIELD(cow_view_stats_t, mapped_pages, 24)                               \
    FIELD(cow_view_stats_t, mappings, 32)                                   \
    FIELD(cow_view_stats_t, write_faults, 40)                               \
    FIELD(cow_view_stats_t, pages_copied, 48)                               \
    FIELD(cow_view_stats_t, zero_pages, 56)

#define COW_ASSERT_SIZE(type, bytes) _Static_assert(sizeof(type) == (bytes), #type " size changed");
#define COW_ASSERT_FIELD(type, field, offset) \
    _Static_assert(offsetof(type, field) == (offset), #type "." #field " moved");
COW_LAYOUT(COW_ASSERT_SIZE, COW_ASSERT_FIELD)

typedef struct cow_layout_row {
    const char *struct_name;
    const char *field_name;
    uint32_t offset;
    uint32_t size;
} cow_layout_row_t;

#define COW_ROW_SIZE(type, bytes)          {#type, "", 0, sizeof(type)},
#define COW_ROW_FIELD(type, field, offset) {#type, #field, offsetof(type, field), sizeof(((type *)0)->field)},

static const cow_layout_row_t cow_layout_rows[] = {COW_LAYOUT(COW_ROW_SIZE, COW_ROW_FIELD)};

int cow_layout_entry(uint32_t i, const char **struct_name, const char **field_name, uint32_t *offset, uint32_t *size)
{
    if (i >= sizeof cow_layout_rows / sizeof cow_layout_rows[0])
        return 0;
    *struct_name = cow_layout_rows[i].struct_name;
    *field_name = cow_layout_rows[i].field_name;
    *offset = cow_layout_rows[i].offset;
    *size = cow_layout_rows[i].size;
    return 1;
}
