/*
 * fault_costs.c - a quick native measurement of the engine's first-write costs, for work on the fault
 * path (the numbers users see come from bench/CowEngine.Benchmarks, BenchmarkDotNet). Per page:
 * sequential and random first writes into a region whose pages a snapshot shares, with and without
 * write fault-around, and 16 isolated first writes scattered over a 1 GiB region right after a
 * snapshot. `make -C native bench`; compare with ../shared/probes/first_write_mechanisms.c run in
 * the same hour for the kernel's own COW fault.
 */
#include "../tests/harness.h"

#include <stdlib.h>
#include <time.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void shuffle(uint64_t *order, uint64_t count, uint64_t *seed)
{
    for (uint64_t i = count - 1; i > 0; i--) {
        uint64_t j = harness_random(seed) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Per-page cost of writing `count` pages of a `pages`-page region (after a snapshot) in `order`. */
static double first_writes(uint64_t pages, uint32_t fault_around, const uint64_t *order, uint64_t count,
                           uint64_t *faults_out)
{
    cow_engine_t *engine = harness_engine((uint32_t)(pages / COW_SEGMENT_PAGES) * 4 + 16, 0);
    engine->fault_around_pages = fault_around;
    cow_view_t *region = harness_view(engine, pages), *snapshot = harness_view(engine, pages);
    if (cow_region_create(region, 0) != 0 || cow_view_snapshot(region, snapshot) != 0)
        abort();
    for (uint64_t p = 0; p < pages; p += 1) /* commit the region's pages before the snapshot matters */
        (void)*(volatile uint8_t *)cow_page_address(region, p);
    uint64_t faults = engine->write_faults;
    double start = now_us();
    for (uint64_t i = 0; i < count; i++)
        *(volatile uint8_t *)cow_page_address(region, order[i]) = 1;
    double per_page = (now_us() - start) / (double)count;
    *faults_out = engine->write_faults - faults;
    cow_view_dispose(region);
    cow_view_dispose(snapshot);
    harness_view_free(region);
    harness_view_free(snapshot);
    harness_engine_free(engine);
    return per_page;
}

int main(int argc, char **argv)
{
    uint64_t pages = argc > 1 ? strtoull(argv[1], NULL, 10) : 16384, seed = 42, faults;
    uint64_t *order = calloc(pages ? pages : 1, sizeof *order);
    if (order == NULL)
        return 1;
    for (uint64_t i = 0; i < pages; i++)
        order[i] = i;
    printf("%llu pages\n", (unsigned long long)pages);
    double t = first_writes(pages, 1, order, pages, &faults);
    printf("sequential, no fault-around : %6.2f us/page (%llu faults)\n", t, (unsigned long long)faults);
    t = first_writes(pages, 32, order, pages, &faults);
    printf("sequential, fault-around 32 : %6.2f us/page (%llu faults)\n", t, (unsigned long long)faults);
    shuffle(order, pages, &seed);
    t = first_writes(pages, 32, order, pages, &faults);
    printf("random                      : %6.2f us/page (%llu faults)\n", t, (unsigned long long)faults);
    uint64_t big = 262144; /* 1 GiB */
    uint64_t scattered[16];
    for (int i = 0; i < 16; i++)
        scattered[i] = harness_random(&seed) % big;
    t = first_writes(big, 32, scattered, 16, &faults);
    printf("16 isolated on 1 GiB        : %6.2f us/page (%llu faults)\n", t, (unsigned long long)faults);
    free(order);
    return 0;
}
