/*
 * harness.c - see harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int harness_failures;
int harness_checks;
uint32_t harness_protection = COW_PROTECT_MPROTECT;

#define HARNESS_ARENA_SIZE    (64ull << 30) /* 64 GiB of address space: views of a few segments each */
#define HARNESS_VIEW_CAPACITY 256u

static cow_process_t g_harness_process;
static uint64_t g_next_view_offset;

int harness_run(const char *name, void (*test)(void))
{
    int before = harness_failures;
    test();
    int passed = harness_failures == before;
    printf("%s %s (%s)\n", passed ? "PASS" : "FAIL", name,
           harness_protection == COW_PROTECT_USERFAULTFD ? "userfaultfd" : "mprotect");
    fflush(stdout);
    return passed;
}

static void *harness_zeroed(uint64_t bytes)
{
    void *memory = NULL;
    if (cow_os_allocate_table(bytes, &memory) != 0) {
        fprintf(stderr, "harness: cannot allocate %" PRIu64 " bytes of tables\n", bytes);
        exit(2);
    }
    return memory;
}

cow_process_t *harness_process(void)
{
    cow_process_t *process = &g_harness_process;
    if (process->views != NULL)
        return process;
    void *arena = NULL;
    if (cow_os_reserve(HARNESS_ARENA_SIZE, COW_SEGMENT_SIZE, &arena) != 0) {
        fprintf(stderr, "harness: cannot reserve the arena\n");
        exit(2);
    }
    process->arena_base = (uint64_t)arena;
    process->arena_size = HARNESS_ARENA_SIZE;
    process->directory = harness_zeroed((HARNESS_ARENA_SIZE >> COW_SEGMENT_SHIFT) * sizeof(uint32_t));
    process->views = harness_zeroed(HARNESS_VIEW_CAPACITY * sizeof(cow_view_t));
    process->view_capacity = HARNESS_VIEW_CAPACITY;
    for (uint32_t i = 0; i < HARNESS_VIEW_CAPACITY; i++)
        process->views[i].index = i;
    if (cow_install(process) != 0) {
        fprintf(stderr, "harness: cow_install failed\n");
        exit(2);
    }
    return process;
}

cow_engine_t *harness_engine(uint32_t chunks, int64_t mapping_budget)
{
    harness_process();
    cow_engine_t *engine = harness_zeroed(sizeof(cow_engine_t));
    uint64_t slots = (uint64_t)chunks * COW_CHUNK_SLOTS, leaves = (uint64_t)chunks * 2 + 64;
    uint64_t pool_bytes = slots << COW_PAGE_SHIFT;
    int32_t fd = -1;
    void *pool = NULL;
    if (cow_os_memfd_create("cowengine-native-test", pool_bytes, &fd) != 0 ||
        cow_os_map_pool(fd, pool_bytes, &pool) != 0) {
        fprintf(stderr, "harness: cannot create the pool\n");
        exit(2);
    }
    engine->pool = pool;
    engine->memfd = fd;
    engine->slot_refcounts = harness_zeroed(slots * sizeof(uint32_t));
    engine->chunk_live = harness_zeroed(chunks * sizeof(uint32_t));
    engine->chunk_free = harness_zeroed(chunks * sizeof(uint32_t));
    engine->leaf_refcounts = harness_zeroed(leaves * sizeof(uint32_t));
    engine->leaf_entries = harness_zeroed(leaves * COW_LEAF_ENTRIES * sizeof(uint32_t));
    engine->leaf_free = harness_zeroed(leaves * sizeof(uint32_t));
    engine->leaf_origins = harness_zeroed(leaves * sizeof(uint32_t));
    engine->leaf_holders = harness_zeroed(leaves * 2 * sizeof(uint32_t));
    engine->live_list = harness_zeroed(HARNESS_VIEW_CAPACITY * sizeof(uint32_t));
    engine->chunk_capacity = chunks;
    engine->leaf_capacity = (uint32_t)leaves;
    engine->slot_limit = slots;
    engine->mapping_budget = mapping_budget;
    engine->write_protection = harness_protection;
    if (harness_protection == COW_PROTECT_USERFAULTFD &&
        (cow_os_userfaultfd_open(&engine->uffd) != 0 || cow_install_sigbus() != 0)) {
        fprintf(stderr, "harness: no userfaultfd\n");
        exit(2);
    }
    if (cow_engine_init(engine) != 0) {
        fprintf(stderr, "harness: cow_engine_init failed\n");
        exit(2);
    }
    return engine;
}

void harness_engine_free(cow_engine_t *engine)
{
    uint64_t slots = (uint64_t)engine->chunk_capacity * COW_CHUNK_SLOTS;
    uint64_t leaves = engine->leaf_capacity;
    cow_os_release(engine->pool, slots << COW_PAGE_SHIFT);
    cow_os_close(engine->memfd);
    if (engine->write_protection == COW_PROTECT_USERFAULTFD)
        cow_os_close(engine->uffd);
    cow_os_release(engine->slot_refcounts, slots * sizeof(uint32_t));
    cow_os_release(engine->chunk_live, engine->chunk_capacity * sizeof(uint32_t));
    cow_os_release(engine->chunk_free, engine->chunk_capacity * sizeof(uint32_t));
    cow_os_release(engine->leaf_refcounts, leaves * sizeof(uint32_t));
    cow_os_release(engine->leaf_entries, leaves * COW_LEAF_ENTRIES * sizeof(uint32_t));
    cow_os_release(engine->leaf_free, leaves * sizeof(uint32_t));
    cow_os_release(engine->leaf_origins, leaves * sizeof(uint32_t));
    cow_os_release(engine->leaf_holders, leaves * 2 * sizeof(uint32_t));
    cow_os_release(engine->live_list, HARNESS_VIEW_CAPACITY * sizeof(uint32_t));
    cow_os_release(engine, sizeof(cow_engine_t));
}

cow_view_t *harness_view(cow_engine_t *engine, uint64_t page_count)
{
    cow_process_t *process = harness_process();
    cow_view_t *view = NULL;
    for (uint32_t i = 0; i < process->view_capacity && view == NULL; i++)
        if (process->views[i].state != COW_VIEW_LIVE && process->views[i].leaves == NULL)
            view = &process->views[i];
    if (view == NULL) {
        fprintf(stderr, "harness: the view table is full\n");
        exit(2);
    }
    uint32_t segments = (uint32_t)((page_count + COW_SEGMENT_PAGES - 1) / COW_SEGMENT_PAGES);
    uint64_t words = (page_count + 63) / 64;
    view->state = COW_VIEW_FREE;
    view->base = process->arena_base + g_next_view_offset;
    /* Fresh address space for every view, and one free segment after it (the "gap"). */
    g_next_view_offset += ((uint64_t)segments + 1) << COW_SEGMENT_SHIFT;
    view->page_count = page_count;
    view->segment_count = segments;
    view->engine = engine;
    view->leaves = calloc(segments, sizeof(uint32_t));
    view->write_chunks = calloc(segments, sizeof(uint32_t));
    view->fault_streaks = calloc(segments, sizeof(uint32_t));
    view->changed_bits = calloc(words, sizeof(uint64_t));
    view->changed_segments = calloc((segments + 63) / 64, sizeof(uint64_t));
    view->writable_segments = calloc((segments + 63) / 64, sizeof(uint64_t));
    view->mapped_bits = calloc(words, sizeof(uint64_t));
    view->writable_bits = calloc(words, sizeof(uint64_t));
    view->dirty_bits = calloc(words, sizeof(uint64_t));
    view->pinned_bits = calloc(words, sizeof(uint64_t));
    view->zero_bits = calloc(words, sizeof(uint64_t));
    view->mappings = 0;
    return view;
}

void harness_view_free(cow_view_t *view)
{
    free(view->leaves);
    free(view->write_chunks);
    free(view->fault_streaks);
    free(view->changed_bits);
    free(view->changed_segments);
    free(view->writable_segments);
    free(view->mapped_bits);
    free(view->writable_bits);
    free(view->dirty_bits);
    free(view->pinned_bits);
    free(view->zero_bits);
    view->leaves = NULL;
    view->state = COW_VIEW_FREE;
}

int64_t harness_kernel_mappings(const cow_view_t *view)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL)
        return -1;
    uint64_t first = view->base, end = cow_view_end(view);
    int64_t count = 0;
    char line[512];
    while (fgets(line, sizeof line, maps) != NULL) {
        unsigned long long start = 0, stop = 0;
        if (sscanf(line, "%llx-%llx", &start, &stop) == 2 && start < end && stop > first)
            count++;
    }
    fclose(maps);
    return count;
}

uint64_t harness_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
