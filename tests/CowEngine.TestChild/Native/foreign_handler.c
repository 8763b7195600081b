/*
 * foreign_handler.c - stands in for other native libraries' SIGSEGV handlers. Test code only: built
 * into the test child's output, never shipped.
 *   foreign_install: a crash reporter or profiler that installs its handler AFTER CowEngine's and
 *     chains to the previous one, the way such libraries usually do.
 *   catcher_install / catcher_watch: a handler installed BEFORE CowEngine's, so the engine chains to
 *     it: it absorbs faults in one watched range (mapping a private scratch page over the faulting
 *     page, so the write completes harmlessly) and chains everything else. It lets a test observe
 *     writes that hit a disposed view without the runtime ending the process.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* Calls the handler installed before, with the signal mask the kernel would have given it. */
static void chain_to(const struct sigaction *previous, int signal_number, siginfo_t *info, void *context)
{
    ucontext_t *uc = context;
    sigset_t mask = uc->uc_sigmask;
    sigorset(&mask, &mask, &previous->sa_mask);
    if ((previous->sa_flags & SA_NODEFER) == 0)
        sigaddset(&mask, signal_number);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    previous->sa_sigaction(signal_number, info, context);
}

/* Installs `handler` for SIGSEGV on the alternate stack; `block_all`: every signal blocked while it
 * runs (else none). The previous disposition goes to *previous. */
static int install(void (*handler)(int, siginfo_t *, void *), int block_all, struct sigaction *previous)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    if (block_all)
        sigfillset(&action.sa_mask);
    else
        sigemptyset(&action.sa_mask);
    return sigaction(SIGSEGV, &action, previous);
}

static struct sigaction previous;
static volatile uint64_t seen;

static void foreign_on_sigsegv(int signal_number, siginfo_t *info, void *context)
{
    __atomic_add_fetch(&seen, 1, __ATOMIC_RELAXED);
    chain_to(&previous, signal_number, info, context);
}

__attribute__((visibility("default"))) int foreign_install(void)
{
    return install(foreign_on_sigsegv, 0, &previous);
}

__attribute__((visibility("default"))) uint64_t foreign_seen(void)
{
    return __atomic_load_n(&seen, __ATOMIC_RELAXED);
}

static struct sigaction catcher_previous;
static volatile uint64_t catcher_low, catcher_high, catcher_caught, catcher_failed;

static void catcher_on_sigsegv(int signal_number, siginfo_t *info, void *context)
{
    uint64_t address = (uint64_t)info->si_addr;
    if (address >= __atomic_load_n(&catcher_low, __ATOMIC_ACQUIRE) &&
        address < __atomic_load_n(&catcher_high, __ATOMIC_ACQUIRE)) {
        void *page = (void *)(address & ~(uint64_t)4095);
        if (mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            __atomic_add_fetch(&catcher_failed, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&catcher_caught, 1, __ATOMIC_RELAXED);
        return;
    }
    chain_to(&catcher_previous, signal_number, info, context);
}

__attribute__((visibility("default"))) int catcher_install(void)
{
    return install(catcher_on_sigsegv, 1, &catcher_previous);
}

__attribute__((visibility("default"))) void catcher_watch(uint64_t low, uint64_t high)
{
    __atomic_store_n(&catcher_high, high, __ATOMIC_RELEASE);
    __atomic_store_n(&catcher_low, low, __ATOMIC_RELEASE);
}

__attribute__((visibility("default"))) uint64_t catcher_caught_count(void)
{
    return __atomic_load_n(&catcher_caught, __ATOMIC_RELAXED);
}

__attribute__((visibility("default"))) uint64_t catcher_failed_count(void)
{
    return __atomic_load_n(&catcher_failed, __ATOMIC_RELAXED);
}
