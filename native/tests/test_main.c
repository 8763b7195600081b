/*
 * test_main.c - the native unit tests' program. Run by `make -C native check` (and by
 * `make -C native sanitize` under ASan/UBSan), which ./build.sh test runs before the .NET tests.
 * One line per test, then the totals; exit code 0 when every check passed.
 */
#include "harness.h"

#include <string.h>

static void run_all(int *passed, int *total)
{
    run_map_tests(passed, total);
    run_reverse_tests(passed, total);
    run_fault_around_tests(passed, total);
    run_restore_tests(passed, total);
    run_group_tests(passed, total);
    run_inject_tests(passed, total);
    run_zero_tests(passed, total);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--has-userfaultfd") == 0) {
        /* For ./build.sh: whether the .NET tests can run a second time with userfaultfd. */
        int32_t fd = -1;
        int error = cow_os_userfaultfd_open(&fd);
        if (error == 0)
            cow_os_close(fd);
        else
            printf("userfaultfd is not available here: %s\n", cow_os_error_name(error));
        return error == 0 ? 0 : 1;
    }
    int passed = 0, total = 0;
    harness_protection = COW_PROTECT_MPROTECT;
    run_all(&passed, &total);
    int32_t probe = -1;
    int error = cow_os_userfaultfd_open(&probe);
    if (error == 0) {
        cow_os_close(probe);
        harness_protection = COW_PROTECT_USERFAULTFD;
        run_all(&passed, &total);
    } else {
        /* Not a failure of the engine: the kernel refuses it here (the .NET tests say the same). */
        printf("SKIP every test with userfaultfd: %s\n", cow_os_error_name(error));
    }
    printf("native tests: %d passed, %d failed (%d checks)\n", passed, total - passed, harness_checks);
    return passed == total && harness_failures == 0 ? 0 : 1;
}
