#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "engine/core/error.h"

static void test_errorf_fills_and_returns(void **state)
{
    rf_error e;
    assert_int_equal(rf_errorf(&e, RF_EINVAL, "bad %s %d", "x", 3), RF_EINVAL);
    assert_int_equal(e.code, RF_EINVAL);
    assert_string_equal(e.msg, "bad x 3");
    assert_string_equal(e.field, "");
}

static void test_field_and_wrap(void **state)
{
    rf_error e;
    rf_error_field(&e, RF_EINVAL, "params.lr", "must be positive");
    rf_error_wrap(&e, "job %s", "job_1");
    assert_string_equal(e.field, "params.lr");
    assert_string_equal(e.msg, "job job_1: must be positive");
    assert_int_equal(rf_errorf(NULL, RF_EIO, "ignored"), RF_EIO);
    assert_string_equal(rf_strerror(RF_ENOTFOUND), "not found");
}

/* A message built from the error's own text (wrapping a lower error into a
 * field error) keeps that text: it once came out empty. */
static void test_self_referencing_message(void **state)
{
    rf_error e;
    rf_errorf(&e, RF_ENOTFOUND, "no model with id or name '%s'", "nope");
    rf_error_field(&e, RF_EINVAL, "params.student", "%s", e.msg);
    assert_string_equal(e.msg, "no model with id or name 'nope'");
    assert_string_equal(e.field, "params.student");
    rf_error_field(&e, RF_EINVAL, e.field, "%s (%s)", e.msg, e.field);
    assert_string_equal(e.msg, "no model with id or name 'nope' (params.student)");
    rf_errorf(&e, RF_EINVAL, "again: %s", e.msg);
    assert_string_equal(e.msg, "again: no model with id or name 'nope' (params.student)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errorf_fills_and_returns),
        cmocka_unit_test(test_field_and_wrap),
        cmocka_unit_test(test_self_referencing_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
