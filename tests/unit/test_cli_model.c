/* `refinery forward`: the logits file it writes against the reference
 * fixture, and its usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/core/safetensors.h"
#include "cli/model.h"

#define FIX "tests/reference/fixtures/qwen2_f16_bias"

static void test_forward_writes_reference_logits(void **state)
{
    rf_st_file exp, got;
    rf_error err = {0};
    assert_int_equal(rf_st_open(&exp, FIX "/expected.safetensors", &err), 0);
    rf_tensor ids, ref;
    rf_st_view(&exp, rf_st_find(&exp, "input_ids"), &ids);
    rf_st_view(&exp, rf_st_find(&exp, "logits"), &ref);
    char idstr[512] = "";
    for (int i = 0; i < ids.shape[0]; i++)
        snprintf(idstr + strlen(idstr), sizeof idstr - strlen(idstr), "%s%d", i ? "," : "",
                 ((int32_t *)ids.data)[i]);
    const char *base = getenv("REFINERY_TEST_TMP");
    char out[512];
    snprintf(out, sizeof out, "%s/cli-forward-%d.safetensors", base && *base ? base : "/tmp",
             (int)getpid());
    char *argv[] = {"forward", "--model", FIX, "--ids", idstr, "--out", out};
    assert_int_equal(rf_cmd_forward(7, argv), 0);
    assert_int_equal(rf_st_open(&got, out, &err), 0);
    const rf_st_entry *e = rf_st_find(&got, "logits");
    assert_non_null(e);
    assert_int_equal(e->dtype, RF_DTYPE_F32);
    assert_int_equal(e->ndim, 2);
    assert_int_equal(e->shape[0], ref.shape[0]);
    assert_int_equal(e->shape[1], ref.shape[1]);
    rf_tensor t;
    rf_st_view(&got, e, &t);
    double md = 0, mr = 0;
    for (int64_t i = 0; i < rf_tensor_numel(&t); i++) {
        md = fmax(md, fabs(((float *)t.data)[i] - ((float *)ref.data)[i]));
        mr = fmax(mr, fabs(((float *)ref.data)[i]));
    }
    printf("forward CLI logits rel err %.3g\n", md / mr);
    assert_true(md / mr <= 1e-4);
    rf_st_close(&got);
    rf_st_close(&exp);
    unlink(out);
}

static void test_forward_usage_errors(void **state)
{
    const char *base = getenv("REFINERY_TEST_TMP");
    char out[512];
    snprintf(out, sizeof out, "%s/cli-unused-%d.safetensors", base && *base ? base : "/tmp",
             (int)getpid());
    char *missing[] = {"forward", "--model", FIX};
    assert_int_equal(rf_cmd_forward(3, missing), 2);
    char *bad_ids[] = {"forward", "--model", FIX, "--ids", "1,x,3", "--out", out};
    assert_int_equal(rf_cmd_forward(7, bad_ids), 2);
    char *out_of_vocab[] = {"forward", "--model", FIX, "--ids", "1,99999", "--out", out};
    assert_int_equal(rf_cmd_forward(7, out_of_vocab), 1);
    char *no_model[] = {"forward", "--model", "/nonexistent", "--ids", "1", "--out", out};
    assert_int_equal(rf_cmd_forward(7, no_model), 1);
    assert_int_equal(access(out, F_OK), -1); /* a failed run writes nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_writes_reference_logits),
        cmocka_unit_test(test_forward_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
