/*
 * cow_signal.c - the SIGSEGV handler: find the view a write fault hit, resolve it, or pass the fault
 * on to the handler that was installed before ours exactly as the kernel would have delivered it.
 *
 * The fault path, step by step (docs/design.md explains why each step is safe):
 *   1. Not SEGV_ACCERR (a mapping exists but denies the access), or an instruction fetch? -> chain.
 *   2. Address outside the arena, or its 2 MiB directory entry empty?                   -> chain.
 *      A disposed view's range? Say so on stderr (a use after dispose)                   -> chain.
 *   3. Read-lock the view, check it is LIVE and the address within its pages.            -> else chain.
 *   4. Near the budget? Evict cold segments first (trying view locks, waiting for segment
 *      guards). Lock the segment's guard (its stripe and its neighbours'). A write: make the page
 *      private and writable. A read:
 *      map the untouched run around the page read-only (snapshots are mapped lazily).
 *   5. Unlock, restore errno, return: the kernel restarts the faulting instruction.
 * If step 4 fails the process cannot continue correctly: one line on stderr names the cause, then
 * abort().
 */
#include "cow_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ucontext.h>
#include <unistd.h>

#define COW_PF_WRITE 0x2        /* x86 page-fault error code: the access was a write */
#define COW_PF_INSTRUCTION 0x10 /* ... the access was an instruction fetch */

static cow_process_t *g_process;
static struct sigaction g_previous;
static uint32_t g_install_lock;

cow_process_t *cow_process(void)
{
    return cow_load_acquire(&g_process);
}

void cow_directory_publish(cow_view_t *view, uint32_t value)
{
    cow_process_t *process = cow_process();
    uint64_t first = (view->base - process->arena_base) >> COW_SEGMENT_SHIFT;
    for (uint64_t i = 0; i < view->segment_count; i++)
        cow_store_release(&process->directory[first + i], value);
}

/* ---- the fatal diagnostic: async-signal-safe formatting ---- */

typedef struct cow_line {
    char text[320];
    size_t length;
} cow_line_t;

static void cow_line_add(cow_line_t *line, const char *text)
{
    while (*text != '\0' && line->length < sizeof line->text - 1)
        line->text[line->length++] = *text++;
}

static void cow_line_add_number(cow_line_t *line, uint64_t value, unsigned base)
{
    char digits[24];
    int count = 0;
    do {
        digits[count++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value != 0);
    if (base == 16)
        cow_line_add(line, "0x");
    while (count > 0 && line->length < sizeof line->text - 1)
        line->text[line->length++] = digits[--count];
}

static __attribute__((noreturn)) void cow_fatal(uint64_t address, int error, int failed_call)
{
    static const char *const calls[] = {"", "mmap", "mprotect", "slot allocation"};
    cow_line_t line = {.length = 0};
    cow_line_add(&line, "CowEngine: fatal: cannot resolve a copy-on-write fault at ");
    cow_line_add_number(&line, address, 16);
    cow_line_add(&line, ": ");
    cow_line_add(&line, calls[failed_call]);
    cow_line_add(&line, " failed with ");
    const char *name = strerrorname_np(error);
    cow_line_add(&line, name != NULL ? name : "errno ");
    if (name == NULL)
        cow_line_add_number(&line, (uint64_t)error, 10);
    if (failed_call == COW_CALL_ALLOCATE)
        cow_line_add(&line, " (the engine's capacity, chunk space or leaf table is exhausted: raise "
                            "CowEngineOptions.CapacityBytes)");
    else if (error == ENOMEM)
        cow_line_add(&line, " (the process has reached vm.max_map_count mappings)");
    cow_line_add(&line, "\n");
    ssize_t ignored = write(STDERR_FILENO, line.text, line.length);
    (void)ignored;
    abort();
}

void cow_die(const char *what, int error)
{
    cow_line_t line = {.length = 0};
    cow_line_add(&line, "CowEngine: fatal: ");
    cow_line_add(&line, what);
    cow_line_add(&line, " failed with ");
    const char *name = strerrorname_np(error);
    cow_line_add(&line, name != NULL ? name : "an unknown error");
    if (error == ENOMEM)
        cow_line_add(&line, " (the process has reached vm.max_map_count mappings)");
    cow_line_add(&line, "; the engine cannot leave its views consistent\n");
    ssize_t ignored = write(STDERR_FILENO, line.text, line.length);
    (void)ignored;
    abort();
}

/* ---- chaining ---- */

static void cow_chain(int signal_number, siginfo_t *info, void *context)
{
    const struct sigaction *previous = &g_previous;
    ucontext_t *ucontext = context;

    /* Set the mask the kernel would have set for the previous handler: the interrupted mask, plus
     * its sa_mask, plus the signal itself unless SA_NODEFER. The .NET runtime's handler does not
     * return through sigreturn (it unwinds to a catch block), so this mask is the one the thread
     * keeps afterwards. */
    sigset_t mask = ucontext->uc_sigmask;
    sigorset(&mask, &mask, &previous->sa_mask);
    if ((previous->sa_flags & SA_NODEFER) == 0)
        sigaddset(&mask, signal_number);

    if ((previous->sa_flags & SA_SIGINFO) != 0 && previous->sa_sigaction != NULL) {
        pthread_sigmask(SIG_SETMASK, &mask, NULL);
        previous->sa_sigaction(signal_number, info, context);
    } else if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
        pthread_sigmask(SIG_SETMASK, &mask, NULL);
        previous->sa_handler(signal_number);
    } else {
        /* Default action (ignoring a fault is not possible): restore it and return, so the
         * instruction faults again and the kernel terminates the process with SIGSEGV. */
        struct sigaction default_action;
        memset(&default_action, 0, sizeof default_action);
        default_action.sa_handler = SIG_DFL;
        sigaction(signal_number, &default_action, NULL);
    }
}

/* ---- the handler ---- */

/* Maps a page of a collapsed segment again: writable (it was private and writable, or it is the
 * page a write fault resolves) or read-only. Caller holds the view's lock and the segment's guard. */
static void cow_remap_page(cow_view_t *view, uint64_t page, int class)
{
    cow_resolve_result_t result = {COW_CALL_NONE, 0};
    int error = class == COW_CLASS_WRITE ? cow_resolve_segment_range(view, page, 1, 0, &result)
                                         : cow_map_for_read(view, page);
    if (error != 0)
        cow_fatal(cow_page_address(view, page), error,
                  class == COW_CLASS_WRITE ? result.failed_call : COW_CALL_MMAP);
}

/* Over budget after a fault: unmap cold segments of the engine (eviction only tries locks), sparing
 * the one just mapped. If that is not enough - the faulting segment itself holds the mappings, as
 * when a single 2 MiB hot spot is written all over - collapse that segment too and map the faulting
 * page again before returning, so the retried instruction finds it. The caller holds the view's
 * read lock. */
static void cow_stay_within_budget(cow_view_t *view, uint64_t page, int is_write, int64_t budget)
{
    cow_engine_t *engine = view->engine;
    uint32_t segment = (uint32_t)(page >> COW_LEAF_SHIFT);
    cow_evict_to_except(engine, budget - budget / 16, view, segment);
    if (cow_engine_mappings(engine) <= budget)
        return;
    cow_segment_guard_t guard;
    cow_segment_lock(view, segment, &guard);
    /* One instruction can touch two neighbouring pages (an unaligned store across a page
     * boundary): remember how the faulting page's neighbours were mapped and map them back the
     * same way, or the retried instruction would fault on the other half, forever. */
    uint64_t first = (uint64_t)segment << COW_LEAF_SHIFT;
    int previous_class = page > first ? cow_page_class(view, page - 1) : COW_CLASS_UNMAPPED;
    int next_class = page + 1 < view->page_count && ((page + 1) >> COW_LEAF_SHIFT) == segment
                         ? cow_page_class(view, page + 1) : COW_CLASS_UNMAPPED;
    /* Only if collapsing the segment lowers the count: the pages mapped back may add boundaries. */
    if (cow_segment_evict(view, segment, -1)) {
        cow_remap_page(view, page, is_write ? COW_CLASS_WRITE : COW_CLASS_READ);
        if (previous_class != COW_CLASS_UNMAPPED)
            cow_remap_page(view, page - 1, previous_class);
        if (next_class != COW_CLASS_UNMAPPED)
            cow_remap_page(view, page + 1, next_class);
    }
    cow_segment_unlock(&guard);
}

/* A touch of a disposed view's range is a bug in the program (a pointer or span kept past
 * Dispose, or a view the garbage collector finalized while its memory was still in use). The
 * runtime will report it only as an access violation at some address: name the cause first. */
static void cow_report_use_after_dispose(uint64_t address, uint32_t entry)
{
    cow_line_t line = {.length = 0};
    cow_line_add(&line, "CowEngine: access to ");
    cow_line_add_number(&line, address, 16);
    cow_line_add(&line, ", in the range of view ");
    cow_line_add_number(&line, (entry & ~COW_DIRECTORY_DISPOSED) - 1, 10);
    cow_line_add(&line, ", after the view was disposed (by Dispose, or by its finalizer when it was no "
                        "longer referenced: keep views alive, e.g. GC.KeepAlive, while using their "
                        "memory); passing the fault on\n");
    ssize_t ignored = write(STDERR_FILENO, line.text, line.length);
    (void)ignored;
}

/* Returns 1 when the fault was ours and is resolved, 0 when it must be passed on. */
static int cow_try_resolve(uint64_t address, int is_write)
{
    cow_process_t *process = cow_process();
    if (process == NULL || address - process->arena_base >= process->arena_size)
        return 0;
    uint32_t entry = cow_load_acquire(&process->directory[(address - process->arena_base) >> COW_SEGMENT_SHIFT]);
    if ((entry & COW_DIRECTORY_DISPOSED) != 0) {
        cow_report_use_after_dispose(address, entry);
        return 0;
    }
    if (entry == 0 || entry > process->view_capacity)
        return 0;
    cow_view_t *view = &process->views[entry - 1];

    cow_read_lock(&view->lock);
    if (view->state != COW_VIEW_LIVE || address < view->base || address >= cow_view_end(view)) {
        /* Disposed a moment ago, before its directory entries were flagged. */
        int disposed = view->state == COW_VIEW_DISPOSED && address >= view->base &&
                       address < cow_view_end(view);
        cow_read_unlock(&view->lock);
        if (disposed)
            cow_report_use_after_dispose(address, entry | COW_DIRECTORY_DISPOSED);
        return 0;
    }
    uint64_t page = (address - view->base) >> COW_PAGE_SHIFT;
    uint32_t segment = (uint32_t)(page >> COW_LEAF_SHIFT);
    cow_engine_t *engine = view->engine;
    cow_add(&engine->faults_in_flight, 1u);
    /* Resolving can add two mappings (a page split out of the middle of a run): make room first,
     * so the budget is exceeded at most by what faults running at this very moment add. The
     * segment is noted as recently faulted first: an instruction that needs two segments (a store
     * across a 2 MiB edge) faults on each in turn, and neither fault may evict the other's. */
    int64_t budget = cow_load_relaxed(&engine->mapping_budget);
    if (budget > 0 && cow_engine_mappings(engine) + 2 > budget) {
        cow_note_fault(view, segment);
        cow_evict_to_except(engine, budget - 2 - budget / 16, view, segment);
    }
    cow_resolve_result_t result = {COW_CALL_NONE, 0};
    int error = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        cow_segment_guard_t guard;
        cow_segment_lock(view, segment, &guard);
        error = is_write ? cow_resolve_segment_range(view, page, 1, 0, &result)
                         : cow_map_for_read(view, page);
        cow_segment_unlock(&guard);
        if (error != ENOMEM)
            break;
        /* The kernel is out of mappings (the rest of the process may be using them): unmap as
         * many of ours as we can, then try once more. */
        cow_evict_to_except(engine, 0, view, segment);
    }
    if (error != 0)
        cow_fatal(address, error, is_write ? result.failed_call : COW_CALL_MMAP);
    if (is_write) {
        cow_add(&view->write_faults, 1u);
        cow_add(&engine->write_faults, 1u);
        if (result.copies != 0)
            cow_add(&engine->copy_faults, 1u);
    } else {
        cow_add(&engine->read_faults, 1u);
    }
    if (budget > 0 && cow_engine_mappings(engine) > budget) {
        cow_note_fault(view, segment);
        cow_stay_within_budget(view, page, is_write, budget);
    }
    cow_sub(&engine->faults_in_flight, 1u);
    cow_read_unlock(&view->lock);
    return 1;
}

static void cow_on_sigsegv(int signal_number, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    ucontext_t *ucontext = context;
    greg_t error_code = ucontext->uc_mcontext.gregs[REG_ERR];
    int is_write = (error_code & COW_PF_WRITE) != 0;
    int is_fetch = (error_code & COW_PF_INSTRUCTION) != 0;
    if (info->si_code == SEGV_ACCERR && !is_fetch &&
        cow_try_resolve((uint64_t)info->si_addr, is_write)) {
        errno = saved_errno;
        return;
    }
    errno = saved_errno;
    cow_chain(signal_number, info, context);
}

/* fork() policy: a child gets a copy of our tables but SHARES the memfds with the parent, so a write
 * the child resolved would take slots the parent believes free, and a write to a page that is
 * writable in the parent would land in the parent's memory. The child therefore sees no views: the
 * handler stops recognising them and the whole arena becomes PROT_NONE, so any touch of a view in
 * the child is an ordinary access violation. (A .NET process may run only native code in a forked
 * child anyway; fork + exec, and posix_spawn, are unaffected.) */
static void cow_after_fork_in_child(void)
{
    cow_process_t *process = cow_process();
    if (process == NULL)
        return;
    cow_store_release(&g_process, (cow_process_t *)NULL);
    cow_os_reserve_fixed(process->arena_base, process->arena_size);
}

int cow_install(cow_process_t *process)
{
    if (process == NULL || process->directory == NULL || process->views == NULL)
        return EINVAL;
    cow_spin_lock(&g_install_lock);
    int error = 0;
    if (g_process != NULL) {
        error = g_process == process ? 0 : EBUSY;
    } else {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = cow_on_sigsegv;
        /* SA_ONSTACK: run on the alternate stack the runtime gives each thread (a stack overflow
         * must still reach the runtime's handler). Every other signal is blocked while we hold
         * locks; SIGSEGV itself stays blocked, so a bug in here kills the process at once. */
        action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigfillset(&action.sa_mask);
        /* Read the previous disposition before ours takes effect, so a fault that arrives the
         * moment we are installed already finds where to chain to. */
        if (sigaction(SIGSEGV, NULL, &g_previous) != 0) {
            error = errno;
        } else {
            cow_store_release(&g_process, process);
            if (sigaction(SIGSEGV, &action, NULL) != 0) {
                error = errno;
                cow_store_release(&g_process, (cow_process_t *)NULL);
            } else {
                error = pthread_atfork(NULL, NULL, cow_after_fork_in_child);
            }
        }
    }
    cow_spin_unlock(&g_install_lock);
    return error;
}

int cow_handler_is_current(void)
{
    struct sigaction current;
    if (sigaction(SIGSEGV, NULL, &current) != 0)
        return 0;
    return (current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == cow_on_sigsegv;
}
