/* rf_generate on the llama_f32_gqa fixture: greedy sequences equal the
 * reference continuation, seeded sampling is reproducible and independent of
 * the batch it runs in, stop tokens and the callback end a sequence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "engine/generate/generate.h"

#define FIX "tests/reference/fixtures/llama_f32_gqa"

typedef struct fixture {
    rf_llama_model m;
    rf_llama_acts a;
    rf_st_file exp;
    const int32_t *ids, *greedy;
    int T, n_greedy;
} fixture;

static int setup(void **state)
{
    static fixture f;
    rf_error err = {0};
    if (rf_llama_load(&f.m, FIX, NULL, &err) < 0 ||
        rf_llama_acts_init(&f.a, &f.m.config, 4, 64, 16, &err) < 0 ||
        rf_st_open(&f.exp, FIX "/expected.safetensors", &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    rf_tensor t;
    rf_st_view(&f.exp, rf_st_find(&f.exp, "input_ids"), &t);
    f.ids = t.data;
    f.T = (int)t.shape[0];
    rf_st_view(&f.exp, rf_st_find(&f.exp, "greedy"), &t);
    f.greedy = t.data;
    f.n_greedy = (int)t.shape[0];
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rf_llama_acts_free(&f->a);
    rf_llama_free(&f->m);
    rf_st_close(&f->exp);
    return 0;
}

/* Run n sequences with samplers of the given temperature and seeds. */
static int run(fixture *f, int n, float temp, const uint64_t *seeds, const rf_gen_params *p,
               rf_gen_token_fn cb, void *ctx, int out[][32], int *lens, int *finish)
{
    rf_sampler s[8];
    int *outs[8];
    rf_error err = {0};
    for (int i = 0; i < n; i++) {
        rf_sampler_params sp = {.temperature = temp, .top_p = 1, .seed = seeds ? seeds[i] : 0};
        assert_int_equal(rf_sampler_init(&s[i], f->m.config.vocab_size, &sp, NULL), 0);
        outs[i] = out[i];
    }
    int rc = rf_generate(&f->m, &f->a, f->ids, f->T, n, s, p, cb, ctx, outs, lens, finish, &err);
    if (rc) printf("  -> %d [%s] %s\n", rc, err.field, err.msg);
    for (int i = 0; i < n; i++)
        rf_sampler_free(&s[i]);
    return rc;
}

static void test_greedy_batch(void **state)
{
    fixture *f = *state;
    int out[8][32], lens[8], finish[8];
    rf_gen_params p = {.max_tokens = f->n_greedy};
    assert_int_equal(run(f, 3, 0, NULL, &p, NULL, NULL, out, lens, finish), 0);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(lens[s], f->n_greedy);
        assert_int_equal(finish[s], RF_FINISH_LENGTH);
        for (int i = 0; i < f->n_greedy; i++)
            assert_int_equal(out[s][i], f->greedy[i]);
    }
}

static void test_sampling_reproducible(void **state)
{
    fixture *f = *state;
    int out[8][32], lens[8], finish[8], solo[4][32];
    rf_gen_params p = {.max_tokens = 12};
    const uint64_t seeds[3] = {5, 6, 5};
    assert_int_equal(run(f, 3, 1.0f, seeds, &p, NULL, NULL, out, lens, finish), 0);
    assert_memory_equal(out[0], out[2], sizeof(int) * 12); /* same seed, same tokens */
    assert_true(memcmp(out[0], out[1], sizeof(int) * 12) != 0);
    /* seed 6 alone gives what it gave as the batch's second sequence */
    assert_int_equal(run(f, 1, 1.0f, seeds + 1, &p, NULL, NULL, solo, lens, finish), 0);
    assert_memory_equal(solo[0], out[1], sizeof(int) * 12);
}

static bool stop_after_five(void *ctx, int seq, int token, const float *logits)
{
    int *count = ctx;
    return ++count[seq] < 5;
}

static void test_stops(void **state)
{
    fixture *f = *state;
    int out[8][32], lens[8], finish[8];
    /* a stop token: the greedy continuation's fourth token */
    int stop = f->greedy[3];
    rf_gen_params p = {.max_tokens = 16, .stop_ids = &stop, .n_stop = 1};
    assert_int_equal(run(f, 1, 0, NULL, &p, NULL, NULL, out, lens, finish), 0);
    int first = 0;
    while (f->greedy[first] != stop)
        first++;
    assert_int_equal(lens[0], first);
    assert_int_equal(finish[0], RF_FINISH_STOP);
    /* the callback ends sequence 0 after 5 tokens; the others run on */
    int count[2] = {0, -100};
    rf_gen_params q = {.max_tokens = 10};
    assert_int_equal(run(f, 2, 0, NULL, &q, stop_after_five, count, out, lens, finish), 0);
    assert_int_equal(lens[0], 5);
    assert_int_equal(finish[0], RF_FINISH_STOP);
    assert_int_equal(lens[1], 10);
    assert_int_equal(finish[1], RF_FINISH_LENGTH);
    /* too many sequences, too many tokens */
    assert_int_equal(run(f, 5, 0, NULL, &q, NULL, NULL, out, lens, finish), RF_EINVAL);
    rf_gen_params big = {.max_tokens = 60};
    assert_int_equal(run(f, 1, 0, NULL, &big, NULL, NULL, out, lens, finish), RF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_batch),
        cmocka_unit_test(test_sampling_reproducible),
        cmocka_unit_test(test_stops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
