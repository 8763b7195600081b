/*
 * harness.h - the managed owner's part, done in C, for the shim's native unit tests: one process
 * table (arena, directory, view table) and engines with their tables, laid out as
 * src/CowEngine/Internal/ProcessTables.cs and EngineHandle.cs lay them out. Plus a tiny test
 * runner: CHECK records a failure and goes on; each test is a function run by RUN.
 */
#ifndef COW_TEST_HARNESS_H
#define COW_TEST_HARNESS_H

#include "../src/cow_inject.h"
#include "../src/cow_internal.h"

#include <stdint.h>
#include <stdio.h>

extern int harness_failures;
extern int harness_checks;

#define CHECK(condition, ...)                                                             \
    do {                                                                                  \
        harness_checks++;                                                                 \
        if (!(condition)) {                                                               \
            harness_failures++;                                                           \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #condition); \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* Runs `test`, then prints one line: its name and whether it passed. Returns 1 if it passed. */
int harness_run(const char *name, void (*test)(void));
#define RUN(test) harness_run(#test, test)

/* The process tables (installed with cow_install on first use) and the arena they describe. */
cow_process_t *harness_process(void);

/* The write protection engines get (COW_PROTECT_*): the tests run once with each that works here. */
extern uint32_t harness_protection;

/* An engine of `chunks` chunks (2 MiB of pool each) with a mapping budget (0: none), write-protected
 * the harness_protection way. */
cow_engine_t *harness_engine(uint32_t chunks, int64_t mapping_budget);
void harness_engine_free(cow_engine_t *engine);

/* A FREE view of `page_count` pages at a fresh place in the arena, its arrays zeroed. */
cow_view_t *harness_view(cow_engine_t *engine, uint64_t page_count);
/* Frees a DISPOSED (or never used) view's arrays. */
void harness_view_free(cow_view_t *view);

/* Kernel mappings (lines of /proc/self/maps) that overlap the view's range. */
int64_t harness_kernel_mappings(const cow_view_t *view);

/* Writes each page's slot number into the first 4 bytes of that slot through the pool window, so that a mapped page shows
 * which slot it really maps (a private copy starts as the bytes of the slot it copied). */
void stamp_slots(cow_engine_t *engine, cow_view_t *view);
/* The invariants of cow_map.c for `view`: its count equals its page table's boundaries and the
 * kernel's mappings, writable implies mapped, every mapped page shows its slot. `what` names the
 * step for a failure message. */
void check_view(cow_view_t *view, const char *what);

/* Each test file's tests: adds to the counts. */
void run_map_tests(int *passed, int *total);
void run_reverse_tests(int *passed, int *total);
void run_fault_around_tests(int *passed, int *total);
void run_restore_tests(int *passed, int *total);
void run_group_tests(int *passed, int *total);
void run_inject_tests(int *passed, int *total);
void run_zero_tests(int *passed, int *total);

/* A small deterministic generator (xorshift64*), so a failing sequence can be replayed. */
uint64_t harness_random(uint64_t *state);

#endif
