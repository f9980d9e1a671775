/* engine/backend/blas_core.h: a program that starts with
 * rf_blas_core_reexec runs OpenBLAS kernels at least as good as its CPU's
 * family (on a CPU newer than Debian's OpenBLAS knows, the library alone
 * would pick its SSE3 Prescott kernels), and a user's OPENBLAS_CORETYPE is
 * left as given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/backend/blas_core.h"

static void test_kernels_fit_the_cpu(void **state)
{
    /* after the restart, nothing better is left to ask for */
    const char *want = rf_blas_core_wanted();
    printf("OpenBLAS kernels: %s (OPENBLAS_CORETYPE %s)\n", rf_blas_core(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
    if (getenv("RF_TEST_USER_CORETYPE")) {
        /* started with the user's own choice: kept, not replaced */
        assert_string_equal(getenv("OPENBLAS_CORETYPE"), getenv("RF_TEST_USER_CORETYPE"));
        return;
    }
    assert_null(want);
}

static void test_user_choice_kept(void **state)
{
    if (getenv("RF_TEST_USER_CORETYPE")) skip();
    /* the same program again, with a core chosen by the user */
    char cmd[256];
    snprintf(
        cmd, sizeof cmd,
        "OPENBLAS_CORETYPE=Prescott RF_TEST_USER_CORETYPE=Prescott /proc/%d/exe >/dev/null 2>&1",
        (int)getpid());
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
    (void)argc;
    rf_blas_core_reexec(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_fit_the_cpu),
        cmocka_unit_test(test_user_choice_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
