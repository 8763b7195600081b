/*
 * cow_inject.c - failure injection for tests (native/include/cow_test_inject.h): which calls of
 * cow_os.c are to fail, with which errno, and how many did.
 *
 * cow_os.c asks cow_inject(kind) before each system call. While nothing is configured (or the tests
 * suspended injection) that is one relaxed load of cow_inject_active and a branch predicted not
 * taken, so the production library carries it at no measurable cost: a system call costs
 * microseconds, the check a fraction of a nanosecond. When armed, the check is still lock-free and
 * allocation-free (atomics only), because the fault handler makes the same calls.
 *
 * A call's context - inside the fault handler or not - is known by thread: while armed, the handler
 * records its thread id in a small table for the length of the fault (a signal handler cannot use
 * thread-local storage of a library loaded with dlopen without risking malloc).
 */
#include "cow_inject.h"

#include <errno.h>
#include <unistd.h>

#define COW_INJECT_MILLION 1000000u

/* Threads that can be inside the fault handler at once and still be told apart (a thread beyond
 * that counts as outside it: it is only ever a test's setting that decides). */
#define COW_INJECT_FAULT_THREADS 256u

typedef struct cow_inject_site {
    uint32_t contexts; /* COW_INJECT_IN_* bits armed; 0: disarmed */
    int32_t error;
    uint32_t rate; /* per million */
    uint32_t reserved;
    uint64_t nth;     /* the matching call (1-based) that fails, before which none does; 0: none */
    uint64_t seed;    /* of the rate's draws */
    uint64_t matched; /* calls made in an armed context since the kind was configured: their numbers */
    uint64_t calls[2];
    uint64_t injected[2];
} cow_inject_site_t;

static cow_inject_site_t g_sites[COW_INJECT_KINDS];
static uint32_t g_armed_kinds; /* a bit per kind with contexts != 0 */
static uint32_t g_suspended;
static uint32_t g_fault_thread_count;
static int32_t g_fault_threads[COW_INJECT_FAULT_THREADS];

uint32_t cow_inject_active;

static const char *const g_kind_names[COW_INJECT_KINDS] = {
    "memfd_create", "ftruncate",   "close",     "reserve",       "allocate_table",    "release",
    "map_pool",     "fstat",       "map_slots", "protect",       "reserve_fixed",     "punch",
    "mincore",      "userfaultfd", "uffd_api",  "uffd_register", "uffd_writeprotect", "map_zero",
    "seek_data",
};

static void cow_inject_update_active(void)
{
    uint32_t active = cow_load_acquire(&g_armed_kinds) != 0 && cow_load_acquire(&g_suspended) == 0;
    cow_store_release(&cow_inject_active, active);
}

/* splitmix64: a well-mixed 64-bit value per (seed, call number), so a rate needs no shared state. */
static uint64_t cow_inject_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ---- which calls are made inside the fault handler ---- */

uint32_t cow_inject_fault_enter_slow(void)
{
    int32_t tid = (int32_t)gettid();
    for (uint32_t i = 0; i < COW_INJECT_FAULT_THREADS; i++) {
        int32_t expected = 0;
        if (__atomic_compare_exchange_n(&g_fault_threads[i], &expected, tid, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            cow_add(&g_fault_thread_count, 1u);
            return i + 1;
        }
    }
    return 0;
}

void cow_inject_fault_leave_slow(uint32_t entry)
{
    cow_store_release(&g_fault_threads[entry - 1], 0);
    cow_sub(&g_fault_thread_count, 1u);
}

static int cow_inject_on_fault_thread(void)
{
    if (cow_load_acquire(&g_fault_thread_count) == 0)
        return 0;
    int32_t tid = (int32_t)gettid();
    for (uint32_t i = 0; i < COW_INJECT_FAULT_THREADS; i++)
        if (cow_load_acquire(&g_fault_threads[i]) == tid)
            return 1;
    return 0;
}

/* ---- the check ---- */

int cow_inject_check(uint32_t kind)
{
    if (kind >= COW_INJECT_KINDS || cow_load_acquire(&g_suspended) != 0)
        return 0;
    cow_inject_site_t *site = &g_sites[kind];
    uint32_t contexts = cow_load_acquire(&site->contexts);
    if (contexts == 0)
        return 0;
    int in_fault = cow_inject_on_fault_thread();
    if ((contexts & (in_fault ? COW_INJECT_IN_FAULT : COW_INJECT_IN_API)) == 0)
        return 0;
    uint64_t number = __atomic_add_fetch(&site->matched, 1u, __ATOMIC_RELAXED);
    __atomic_add_fetch(&site->calls[in_fault], 1u, __ATOMIC_RELAXED);
    uint64_t nth = cow_load_relaxed(&site->nth);
    if (number < nth)
        return 0;
    int fail = number == nth;
    uint32_t rate = cow_load_relaxed(&site->rate);
    if (!fail && rate != 0)
        fail = rate >= COW_INJECT_MILLION ||
               cow_inject_mix(cow_load_relaxed(&site->seed) ^ (number * 0xD1B54A32D192ED03ull)) % COW_INJECT_MILLION <
                   rate;
    if (!fail)
        return 0;
    __atomic_add_fetch(&site->injected[in_fault], 1u, __ATOMIC_RELAXED);
    return cow_load_relaxed(&site->error);
}

/* ---- the test API ---- */

int cow_test_inject_configure(uint32_t kind, uint32_t contexts, uint64_t nth, uint32_t rate_per_million, int32_t error,
                              uint64_t seed)
{
    if (kind >= COW_INJECT_KINDS || (contexts & ~(uint32_t)COW_INJECT_ANYWHERE) != 0 ||
        rate_per_million > COW_INJECT_MILLION || (contexts != 0 && error <= 0))
        return EINVAL;
    cow_inject_site_t *site = &g_sites[kind];
    /* Disarmed while it changes, so a concurrent check sees the old setting or the new one. */
    cow_store_release(&site->contexts, 0u);
    cow_store_relaxed(&site->error, error);
    cow_store_relaxed(&site->rate, rate_per_million);
    cow_store_relaxed(&site->nth, nth);
    cow_store_relaxed(&site->seed, seed);
    cow_store_relaxed(&site->matched, 0u);
    for (int i = 0; i < 2; i++) {
        cow_store_relaxed(&site->calls[i], 0u);
        cow_store_relaxed(&site->injected[i], 0u);
    }
    cow_store_release(&site->contexts, contexts);
    if (contexts != 0)
        __atomic_fetch_or(&g_armed_kinds, 1u << kind, __ATOMIC_ACQ_REL);
    else
        __atomic_fetch_and(&g_armed_kinds, ~(1u << kind), __ATOMIC_ACQ_REL);
    cow_inject_update_active();
    return 0;
}

void cow_test_inject_reset(void)
{
    for (uint32_t kind = 0; kind < COW_INJECT_KINDS; kind++)
        cow_test_inject_configure(kind, 0, 0, 0, 0, 0);
}

void cow_test_inject_suspend(int32_t suspended)
{
    cow_store_release(&g_suspended, suspended != 0 ? 1u : 0u);
    cow_inject_update_active();
}

static int cow_inject_context_index(uint32_t context)
{
    return context == COW_INJECT_IN_API ? 0 : context == COW_INJECT_IN_FAULT ? 1 : -1;
}

uint64_t cow_test_inject_count(uint32_t kind, uint32_t context)
{
    int index = cow_inject_context_index(context);
    return kind < COW_INJECT_KINDS && index >= 0 ? cow_load_relaxed(&g_sites[kind].injected[index]) : 0;
}

uint64_t cow_test_inject_calls(uint32_t kind, uint32_t context)
{
    int index = cow_inject_context_index(context);
    return kind < COW_INJECT_KINDS && index >= 0 ? cow_load_relaxed(&g_sites[kind].calls[index]) : 0;
}

const char *cow_test_inject_kind_name(uint32_t kind)
{
    return kind < COW_INJECT_KINDS ? g_kind_names[kind] : NULL;
}
