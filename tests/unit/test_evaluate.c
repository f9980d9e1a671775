/* Multiple-choice log-likelihoods against rf_llama_score on each
 * context+choice sequence run from scratch; acc / acc_norm picks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/eval/evaluate.h"
#include "engine/eval/latency.h"

#define FIX "tests/reference/fixtures/llama_f32_gqa"

static void test_choices_match_full_scoring(void **state)
{
    rf_llama_model m;
    rf_llama_acts a, b;
    rf_error err = {0};
    assert_int_equal(rf_llama_load(&m, FIX, NULL, &err), 0);
    /* max_tokens 4: the 9-token choice runs in several chunks */
    assert_int_equal(rf_llama_acts_init(&a, &m.config, 1, 64, 4, &err), 0);
    assert_int_equal(rf_llama_acts_init(&b, &m.config, 1, 64, 32, &err), 0);
    const int ctx[6] = {17, 230, 5, 99, 140, 3};
    const int c0[1] = {42}, c1[3] = {7, 8, 9}, c2[9] = {200, 1, 2, 3, 4, 5, 6, 7, 250};
    const int *choices[3] = {c0, c1, c2}, lens[3] = {1, 3, 9};
    double ll[3];
    bool greedy[3];
    assert_int_equal(rf_eval_choices(&m, &a, ctx, 6, choices, lens, 3, ll, greedy, &err), 0);
    float *scratch = malloc(sizeof(float) * 32 * m.config.vocab_size);
    for (int c = 0; c < 3; c++) {
        int seq[16];
        memcpy(seq, ctx, sizeof ctx);
        memcpy(seq + 6, choices[c], sizeof(int) * lens[c]);
        double want;
        bool g;
        assert_int_equal(rf_llama_score(&m, &b, seq, 6 + lens[c], 6, scratch, &want, &g, &err), 0);
        printf("choice %d: loglik %.6f (scored from scratch %.6f)\n", c, ll[c], want);
        assert_true(fabs(ll[c] - want) < 1e-4 * fmax(1, fabs(want)));
        assert_int_equal(greedy[c], g);
    }
    int pred, pred_norm;
    rf_eval_pick((double[]){-3.0, -4.0, -5.0}, (int[]){1, 10, 20}, 3, &pred, &pred_norm);
    assert_int_equal(pred, 0);
    assert_int_equal(pred_norm, 2); /* -0.25 per character beats -3 and -0.4 */
    const int *none[1] = {c0};
    const int zero_len[1] = {0};
    assert_int_equal(rf_eval_choices(&m, &a, ctx, 6, none, zero_len, 1, ll, NULL, &err), RF_EINVAL);
    free(scratch);
    rf_llama_acts_free(&a);
    rf_llama_acts_free(&b);
    rf_llama_free(&m);
}

/* Latency: the decode loop really runs new_tokens forward calls (the KV
 * cache reaches prompt + new positions), the figures are consistent with each
 * other, and a request past the model's positions is refused. */
static void test_latency(void **state)
{
    rf_llama_model m;
    rf_error err;
    assert_int_equal(rf_llama_load(&m, FIX, NULL, &err), 0);
    const int prompt[] = {1, 5, 9};
    rf_latency l;
    assert_int_equal(rf_eval_latency(&m, prompt, 3, 16, 8, 3, &l, &err), 0);
    assert_int_equal(l.prompt_tokens, 16);
    assert_int_equal(l.new_tokens, 8);
    assert_true(l.decode_tokens_per_s > 0 && l.prefill_tokens_per_s > 0);
    assert_true(fabs(l.ms_per_token * l.decode_tokens_per_s - 1000.0) < 1e-6);
    assert_true(l.first_token_ms > 0);
    assert_int_equal(rf_eval_latency(&m, prompt, 3, m.config.max_pos, 8, 1, &l, &err), RF_EINVAL);
    assert_non_null(strstr(err.msg, "positions"));
    assert_int_equal(rf_eval_latency(&m, prompt, 3, 4, 1, 1, &l, &err), RF_EINVAL);
    rf_llama_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choices_match_full_scoring),
        cmocka_unit_test(test_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
