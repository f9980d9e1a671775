/* Sampling: greedy, temperature, top-k, top-p against the distributions they
 * define, seeds reproducible, parameter errors naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>

#include "engine/generate/sampler.h"

/* probabilities 0.4, 0.3, 0.2, 0.1 */
static const float g_logits[4] = {1.3862944f, 1.0986123f, 0.6931472f, 0.0f};

static void frequencies(const rf_sampler_params *p, double *freq, int draws)
{
    rf_sampler s;
    assert_int_equal(rf_sampler_init(&s, 4, p, NULL), 0);
    int count[4] = {0};
    for (int i = 0; i < draws; i++)
        count[rf_sampler_sample(&s, g_logits)]++;
    for (int i = 0; i < 4; i++)
        freq[i] = (double)count[i] / draws;
    printf("  T=%.2f top_k=%d top_p=%.2f: %.3f %.3f %.3f %.3f\n", p->temperature, p->top_k,
           p->top_p, freq[0], freq[1], freq[2], freq[3]);
    rf_sampler_free(&s);
}

static void expect(const double *got, const double *want)
{
    /* 40000 draws: standard error <= 0.0025, allow 4 of them */
    for (int i = 0; i < 4; i++)
        assert_true(fabs(got[i] - want[i]) < 0.01);
}

static void test_distributions(void **state)
{
    double f[4];
    frequencies(&(rf_sampler_params){.temperature = 1, .top_p = 1, .seed = 1}, f, 40000);
    expect(f, (double[]){0.4, 0.3, 0.2, 0.1});
    frequencies(&(rf_sampler_params){.temperature = 1, .top_k = 2, .top_p = 1, .seed = 2}, f,
                40000);
    expect(f, (double[]){0.4 / 0.7, 0.3 / 0.7, 0, 0});
    /* 0.4 + 0.3 = 0.7 < 0.75, so the third token is needed too */
    frequencies(&(rf_sampler_params){.temperature = 1, .top_p = 0.75f, .seed = 3}, f, 40000);
    expect(f, (double[]){0.4 / 0.9, 0.3 / 0.9, 0.2 / 0.9, 0});
    /* temperature 0.5 squares the probabilities: 16:9:4:1 */
    frequencies(&(rf_sampler_params){.temperature = 0.5f, .top_p = 1, .seed = 4}, f, 40000);
    expect(f, (double[]){16 / 30.0, 9 / 30.0, 4 / 30.0, 1 / 30.0});
}

static void test_greedy_and_seed(void **state)
{
    rf_sampler a, b;
    assert_int_equal(
        rf_sampler_init(&a, 4, &(rf_sampler_params){.temperature = 0, .top_p = 1}, NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(rf_sampler_sample(&a, g_logits), 0);
    rf_sampler_free(&a);
    rf_sampler_params p = {.temperature = 1, .top_p = 1, .seed = 42};
    assert_int_equal(rf_sampler_init(&a, 4, &p, NULL), 0);
    assert_int_equal(rf_sampler_init(&b, 4, &p, NULL), 0);
    int differ_from_first = 0, first = rf_sampler_sample(&a, g_logits);
    assert_int_equal(rf_sampler_sample(&b, g_logits), first);
    for (int i = 0; i < 100; i++) {
        int x = rf_sampler_sample(&a, g_logits);
        assert_int_equal(rf_sampler_sample(&b, g_logits), x);
        differ_from_first += x != first;
    }
    assert_true(differ_from_first > 0);
    rf_sampler_free(&a);
    rf_sampler_free(&b);
}

static void test_errors_and_logprob(void **state)
{
    rf_sampler s;
    rf_error err = {0};
    assert_int_equal(
        rf_sampler_init(&s, 4, &(rf_sampler_params){.temperature = -1, .top_p = 1}, &err),
        RF_EINVAL);
    assert_string_equal(err.field, "temperature");
    assert_int_equal(
        rf_sampler_init(&s, 4, &(rf_sampler_params){.temperature = 1, .top_p = 0}, &err),
        RF_EINVAL);
    assert_string_equal(err.field, "top_p");
    assert_int_equal(rf_sampler_init(&s, 4, &(rf_sampler_params){.top_k = -2, .top_p = 1}, &err),
                     RF_EINVAL);
    assert_string_equal(err.field, "top_k");
    assert_float_equal(rf_logprob(g_logits, 4, 2), log(0.2), 1e-6);
    const float big[2] = {1000.0f, 0.0f}; /* no overflow */
    assert_float_equal(rf_logprob(big, 2, 1), -1000.0, 1e-3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_greedy_and_seed),
        cmocka_unit_test(test_errors_and_logprob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
