/*
 * cow_signal.c - the handlers: resolve a fault that is ours (cow_fault.c), or pass it on to the
 * handler that was installed before ours exactly as the kernel would have delivered it.
 *
 * SIGSEGV (mprotect write protection, and the first touch of a snapshot's page with either):
 *   1. Not SEGV_ACCERR (a mapping exists but denies the access), or an instruction fetch? -> chain.
 *   2. cow_fault_resolve: ours and resolved?                                              -> return,
 *      and the kernel restarts the faulting instruction. Not ours?                        -> chain.
 * SIGBUS (userfaultfd write protection; installed with the first engine that uses it):
 *   1. Not BUS_ADRERR (a signal sent with kill/tgkill, a hardware error)?                 -> chain.
 *   2. A write-protect fault in a view of a userfaultfd engine, resolved?                 -> return.
 *      Anything else (a read past the end of a truncated file mapping carries the same
 *      si_code: "ours" is decided by the address and the page table alone)               -> chain.
 * errno is saved and restored around everything. SIGSEGV runs on the alternate stack the runtime
 * gives each thread (SA_ONSTACK), so a stack overflow still reaches the runtime; SIGBUS runs on the
 * thread's own stack, because the runtime's SIGBUS handler, which it chains to, expects to (it is
 * installed without SA_ONSTACK, and from an alternate stack it reports a bus error as a stack
 * overflow: ../shared/FACTS.md).
 */
#include "cow_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ucontext.h>

#define COW_PF_WRITE       0x2  /* x86 page-fault error code: the access was a write */
#define COW_PF_INSTRUCTION 0x10 /* ... the access was an instruction fetch */

static struct sigaction g_previous;
static struct sigaction g_previous_sigbus;
static uint32_t g_install_lock;
static int g_sigbus_installed;

/* ---- chaining ---- */

static void cow_chain(const struct sigaction *previous, int signal_number, siginfo_t *info, void *context)
{
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

static void cow_on_sigsegv(int signal_number, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    ucontext_t *ucontext = context;
    greg_t error_code = ucontext->uc_mcontext.gregs[REG_ERR];
    int is_write = (error_code & COW_PF_WRITE) != 0;
    int is_fetch = (error_code & COW_PF_INSTRUCTION) != 0;
    if (info->si_code == SEGV_ACCERR && !is_fetch &&
        cow_fault_resolve((uint64_t)info->si_addr, is_write ? COW_FAULT_WRITE : COW_FAULT_READ)) {
        errno = saved_errno;
        return;
    }
    errno = saved_errno;
    cow_chain(&g_previous, signal_number, info, context);
}

static void cow_on_sigbus(int signal_number, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    if (info->si_code == BUS_ADRERR && cow_fault_resolve((uint64_t)info->si_addr, COW_FAULT_WRITE_PROTECTED)) {
        errno = saved_errno;
        return;
    }
    errno = saved_errno;
    cow_chain(&g_previous_sigbus, signal_number, info, context);
}

int cow_install_sigbus(void)
{
    if (cow_process() == NULL)
        return EINVAL; /* cow_install first: the handler starts from the process tables */
    cow_spin_lock(&g_install_lock);
    int error = 0;
    if (!g_sigbus_installed) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = cow_on_sigbus;
        action.sa_flags = SA_SIGINFO | SA_RESTART; /* no SA_ONSTACK: see the top of this file */
        sigfillset(&action.sa_mask);
        if (sigaction(SIGBUS, NULL, &g_previous_sigbus) != 0 || sigaction(SIGBUS, &action, NULL) != 0)
            error = errno;
        else
            g_sigbus_installed = 1;
    }
    cow_spin_unlock(&g_install_lock);
    return error;
}

int cow_install(cow_process_t *process)
{
    if (process == NULL || process->directory == NULL || process->views == NULL)
        return EINVAL;
    cow_spin_lock(&g_install_lock);
    int error = 0;
    cow_process_t *current = cow_process();
    if (current != NULL) {
        error = current == process ? 0 : EBUSY;
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
            cow_registry_set(process);
            if (sigaction(SIGSEGV, &action, NULL) != 0) {
                error = errno;
                cow_registry_set(NULL);
            } else {
                error = pthread_atfork(NULL, NULL, cow_registry_forget_in_child);
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
