/*
 * foreign_handler.c - stands in for another native library (a crash reporter, a profiler) that
 * installs its own SIGSEGV handler AFTER CowEngine's and chains to the previous one, the way such
 * libraries usually do. Test code only: built into the test child's output, never shipped.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>

static struct sigaction previous;
static volatile uint64_t seen;

static void foreign_on_sigsegv(int signal_number, siginfo_t *info, void *context)
{
    __atomic_add_fetch(&seen, 1, __ATOMIC_RELAXED);
    ucontext_t *uc = context;
    sigset_t mask = uc->uc_sigmask;
    sigorset(&mask, &mask, &previous.sa_mask);
    if ((previous.sa_flags & SA_NODEFER) == 0)
        sigaddset(&mask, signal_number);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    previous.sa_sigaction(signal_number, info, context);
}

__attribute__((visibility("default"))) int foreign_install(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = foreign_on_sigsegv;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGSEGV, &action, &previous);
}

__attribute__((visibility("default"))) uint64_t foreign_seen(void)
{
    return __atomic_load_n(&seen, __ATOMIC_RELAXED);
}
