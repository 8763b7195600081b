/*
 * cow_diag.c - the lines the engine writes to stderr from inside the SIGSEGV handler: formatted by
 * hand into a stack buffer and written with one write(2), because stdio and malloc are not
 * async-signal-safe.
 */
#include "cow_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void cow_line_write(cow_line_t *line)
{
    cow_line_add(line, "\n");
    ssize_t ignored = write(STDERR_FILENO, line->text, line->length);
    (void)ignored;
}

static void cow_line_add_error(cow_line_t *line, int error)
{
    const char *name = strerrorname_np(error);
    cow_line_add(line, name != NULL ? name : "errno ");
    if (name == NULL)
        cow_line_add_number(line, (uint64_t)error, 10);
}

static const char *cow_call_name(int failed_call)
{
    static const char *const calls[] = {"a system call",      "mmap", "mprotect", "slot allocation", "UFFDIO_REGISTER",
                                        "UFFDIO_WRITEPROTECT"};
    return failed_call >= 0 && failed_call <= COW_CALL_UFFD_WRITEPROTECT ? calls[failed_call] : calls[0];
}

void cow_die_in_fault(uint64_t address, int error, int failed_call)
{
    cow_line_t line = {.length = 0};
    cow_line_add(&line, "CowEngine: fatal: cannot resolve a copy-on-write fault at ");
    cow_line_add_number(&line, address, 16);
    cow_line_add(&line, ": ");
    cow_line_add(&line, cow_call_name(failed_call));
    cow_line_add(&line, " failed with ");
    cow_line_add_error(&line, error);
    if (failed_call == COW_CALL_ALLOCATE)
        cow_line_add(&line, " (the engine's capacity, chunk space or leaf table is exhausted: raise "
                            "CowEngineOptions.CapacityBytes)");
    else if (error == ENOMEM && (failed_call == COW_CALL_MMAP || failed_call == COW_CALL_MPROTECT))
        cow_line_add(&line, " (the process has reached vm.max_map_count mappings)");
    cow_line_write(&line);
    abort();
}

void cow_die_mapping_unknown(uint64_t address, int failed_call, int error, int reset_error)
{
    cow_line_t line = {.length = 0};
    cow_line_add(&line, "CowEngine: fatal: cannot restore the pages at ");
    cow_line_add_number(&line, address, 16);
    cow_line_add(&line, ": ");
    cow_line_add(&line, cow_call_name(failed_call));
    cow_line_add(&line, " failed with ");
    cow_line_add_error(&line, error);
    cow_line_add(&line, " after their mmap, then mmap(PROT_NONE) failed with ");
    cow_line_add_error(&line, reset_error);
    if (reset_error == ENOMEM)
        cow_line_add(&line, " (the process has reached vm.max_map_count mappings)");
    cow_line_add(&line, "; what they map is unknown");
    cow_line_write(&line);
    abort();
}

void cow_report_use_after_dispose(uint64_t address, uint32_t view_index)
{
    /* A bug in the program (a pointer or span kept past Dispose, or a view the garbage collector
     * finalized while its memory was still in use). The runtime will report it only as an access
     * violation at some address: name the cause first. */
    cow_line_t line = {.length = 0};
    cow_line_add(&line, "CowEngine: access to ");
    cow_line_add_number(&line, address, 16);
    cow_line_add(&line, ", in the range of view ");
    cow_line_add_number(&line, view_index, 10);
    cow_line_add(&line, ", after the view was disposed (by Dispose, or by its finalizer when it was no "
                        "longer referenced: keep views alive, e.g. GC.KeepAlive, while using their "
                        "memory); passing the fault on");
    cow_line_write(&line);
}
