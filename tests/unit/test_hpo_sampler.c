/* engine/hpo/sampler: the random sampler (seeded by seed and trial number,
 * independent of the order trials are passed in), sampler names, and the
 * median pruner against cases worked by hand from Optuna's MedianPruner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "engine/hpo/sampler.h"

static void space_of(const char *text, rf_hp_space *s)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    rf_error e;
    assert_int_equal(rf_hp_space_parse(j, s, &e), 0);
    json_decref(j);
}

static const char *MIXED = "{\"lr\": {\"type\": \"log_float\", \"low\": 1e-5, \"high\": 1e-1},"
                           " \"r\": {\"type\": \"int\", \"low\": 4, \"high\": 64, \"step\": 4},"
                           " \"alpha\": {\"type\": \"float\", \"low\": 0, \"high\": 1},"
                           " \"opt\": {\"type\": \"categorical\", \"choices\": [\"a\", \"b\"]}}";

static void test_names(void **state)
{
    rf_hp_sampler_kind k;
    rf_error e;
    assert_int_equal(rf_hp_sampler_parse(NULL, &k, &e), 0);
    assert_int_equal(k, RF_HP_SAMPLER_GP);
    assert_int_equal(rf_hp_sampler_parse("tpe", &k, &e), 0);
    assert_int_equal(k, RF_HP_SAMPLER_TPE);
    assert_int_equal(rf_hp_sampler_parse("random", &k, &e), 0);
    assert_int_equal(k, RF_HP_SAMPLER_RANDOM);
    assert_int_equal(rf_hp_sampler_parse("cmaes", &k, &e), RF_EINVAL);
    assert_string_equal(e.field, "sampler.name");
}

static void test_random_reproducible(void **state)
{
    rf_hp_space s;
    space_of(MIXED, &s);
    rf_hp_sampler_config cfg = {.kind = RF_HP_SAMPLER_RANDOM, .n_startup = -1, .seed = 7};
    rf_error e;
    double a[4], b[4], c[4];
    assert_int_equal(rf_hp_ask(&s, &cfg, NULL, 0, 3, a, &e), 0);
    /* the same number with other trials present: the same point */
    double x0[4] = {1e-3, 8, 0.5, 0};
    rf_hp_trial t[2] = {{.number = 0, .state = RF_HP_TRIAL_COMPLETE, .x = x0, .value = 1},
                        {.number = 1, .state = RF_HP_TRIAL_RUNNING, .x = x0}};
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 2, 3, b, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    /* another number or another seed: another point */
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 2, 4, c, &e), 0);
    assert_true(c[0] != a[0] && c[2] != a[2]);
    cfg.seed = 8;
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 2, 3, c, &e), 0);
    assert_true(c[0] != a[0] && c[2] != a[2]);

    /* uniform in the cube: each int value and each choice about equally often,
     * log_float uniform in log10 */
    cfg.seed = 1;
    int r_hits[16] = {0}, opt_hits[2] = {0}, lr_dec[4] = {0};
    const int N = 3200;
    for (int i = 0; i < N; i++) {
        assert_int_equal(rf_hp_ask(&s, &cfg, NULL, 0, i, a, &e), 0);
        r_hits[(int)a[1] / 4 - 1]++;
        opt_hits[(int)a[3]]++;
        lr_dec[(int)floor(log10(a[0]) + 5)]++;
        assert_true(a[2] >= 0 && a[2] <= 1);
    }
    for (int i = 0; i < 16; i++) /* 200 expected, sd ≈ 13.7: 5 sd */
        assert_true(r_hits[i] > 130 && r_hits[i] < 270);
    assert_true(abs(opt_hits[0] - opt_hits[1]) < 300);
    for (int i = 0; i < 4; i++) /* 800 expected, sd ≈ 24.5 */
        assert_true(lr_dec[i] > 680 && lr_dec[i] < 920);
    rf_hp_space_free(&s);
}

static void test_ask_bad_arguments(void **state)
{
    rf_hp_space s;
    space_of(MIXED, &s);
    rf_hp_sampler_config cfg = {.kind = RF_HP_SAMPLER_RANDOM, .n_startup = -1};
    rf_error e;
    double x[4];
    assert_int_equal(rf_hp_ask(&s, &cfg, NULL, 0, -1, x, &e), RF_EINTERNAL);
    rf_hp_trial t = {.number = 0, .state = RF_HP_TRIAL_COMPLETE, .x = NULL, .value = 1};
    assert_int_equal(rf_hp_ask(&s, &cfg, &t, 1, 1, x, &e), RF_EINTERNAL);
    rf_hp_space_free(&s);
}

/* Completed trials' reports at steps 0, 1, 2 (minimising). */
static const int STEPS[] = {0, 1, 2};
static const double V0[] = {5, 4, 3}, V1[] = {6, 5, 4}, V2[] = {7, 6, 5}, V3[] = {8, 7, 6},
                    LOW[] = {0, 0, 0};

static void test_median_pruner(void **state)
{
    rf_hp_reports h[5] = {
        {3, STEPS, V0, true}, {3, STEPS, V1, true},
        {3, STEPS, V2, true}, {3, STEPS, LOW, false}, /* running: not counted */
        {3, STEPS, V3, true},
    };
    double worse[] = {5.5, 5.2}, better[] = {5.5, 4.9}, nans[] = {NAN, NAN};
    rf_hp_reports self = {2, STEPS, worse, false};
    /* three completed trials at step 1: 4, 5, 6 → median 5; best so far 5.2 */
    assert_true(rf_hp_median_should_prune(&self, h, 4, 0, 0, false));
    assert_true(rf_hp_median_should_prune(&self, h, 4, 3, 0, false));
    assert_false(rf_hp_median_should_prune(&self, h, 4, 4, 0, false)); /* n_startup */
    assert_false(rf_hp_median_should_prune(&self, h, 4, 0, 2, false)); /* warm-up */
    assert_true(rf_hp_median_should_prune(&self, h, 4, 0, 1, false));
    /* four completed: 4, 5, 6, 7 → median 5.5 */
    assert_false(rf_hp_median_should_prune(&self, h, 5, 0, 0, false));
    self.values = better;
    assert_false(rf_hp_median_should_prune(&self, h, 4, 0, 0, false));
    /* maximising: best is the largest value, 5.5 against 5 */
    assert_false(rf_hp_median_should_prune(&self, h, 4, 0, 0, true));
    double low[] = {4.0, 4.5};
    self.values = low;
    assert_true(rf_hp_median_should_prune(&self, h, 4, 0, 0, true));
    /* a step no completed trial reported: nothing to compare with */
    int late[] = {0, 7};
    self.steps = late;
    assert_false(rf_hp_median_should_prune(&self, h, 4, 0, 0, true));
    /* nothing reported, no completed trials, every report NaN */
    self.steps = STEPS;
    self.n = 0;
    assert_false(rf_hp_median_should_prune(&self, h, 4, 0, 0, false));
    self.n = 2;
    assert_false(rf_hp_median_should_prune(&self, h + 3, 1, 0, 0, false));
    self.values = nans;
    assert_true(rf_hp_median_should_prune(&self, h, 4, 0, 0, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_random_reproducible),
        cmocka_unit_test(test_ask_bad_arguments),
        cmocka_unit_test(test_median_pruner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
