/*
 * cow_registry.c - the process tables the handler starts from (the arena, the directory, the view
 * table; laid out by the managed owner), and the fork policy that hides them from a child.
 */
#include "cow_internal.h"

static cow_process_t *g_process;

cow_process_t *cow_process(void)
{
    return cow_load_acquire(&g_process);
}

void cow_registry_set(cow_process_t *process)
{
    cow_store_release(&g_process, process);
}

void cow_directory_publish(cow_view_t *view, uint32_t value)
{
    cow_process_t *process = cow_process();
    uint64_t first = (view->base - process->arena_base) >> COW_SEGMENT_SHIFT;
    for (uint64_t i = 0; i < view->segment_count; i++)
        cow_store_release(&process->directory[first + i], value);
}

/* fork() policy: a child gets a copy of our tables but SHARES the memfds with the parent, so a write
 * the child resolved would take slots the parent believes free, and a write to a page that is
 * writable in the parent would land in the parent's memory. The child therefore sees no views: the
 * handler stops recognising them and the whole arena becomes PROT_NONE, so any touch of a view in
 * the child is an ordinary access violation. (A .NET process may run only native code in a forked
 * child anyway; fork + exec, and posix_spawn, are unaffected.) */
void cow_registry_forget_in_child(void)
{
    cow_process_t *process = cow_process();
    if (process == NULL)
        return;
    cow_registry_set(NULL);
    cow_os_reserve_fixed(process->arena_base, process->arena_size);
}
