/* engine/hpo/sampler: the random sampler (seeded by seed and trial number,
 * independent of the order trials are passed in), sampler names, the
 * median pruner against cases worked by hand from Optuna's MedianPruner
 * (checked against optuna.pruners.MedianPruner 3.1), and the gp sampler:
 * reproducible asks, pending trials (constant liar), and better than
 * random search on Branin and Hartmann-6 in most of 20 seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "bench/hpo/functions.h"
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

/* ---- gp ---- */

static const char *BRANIN = "{\"x1\": {\"type\": \"float\", \"low\": -5, \"high\": 10},"
                            " \"x2\": {\"type\": \"float\", \"low\": 0, \"high\": 15}}";

static double run_study(const rf_hp_space *s, rf_hp_sampler_config *cfg,
                        double (*f)(const double *), int budget)
{
    double xs[32][RF_HP_MAX_DIMS], best = INFINITY;
    rf_hp_trial t[32];
    rf_error e;
    for (int i = 0; i < budget; i++) {
        assert_int_equal(rf_hp_ask(s, cfg, t, i, i, xs[i], &e), 0);
        double v = f(xs[i]);
        t[i] = (rf_hp_trial){
            .number = i, .state = RF_HP_TRIAL_COMPLETE, .x = xs[i], .value = v, .has_value = true};
        if (v < best) best = v;
    }
    return best;
}

/* The gp sampler against random search, 16 trials, 20 seeds: it must find a
 * better point in most seeds (a fixed threshold, so the test can fail). */
static void beats_random(const char *space, double (*f)(const double *), const char *name)
{
    rf_hp_space s;
    space_of(space, &s);
    int wins = 0;
    for (int seed = 0; seed < 20; seed++) {
        rf_hp_sampler_config gp = {.kind = RF_HP_SAMPLER_GP, .n_startup = -1, .seed = seed};
        rf_hp_sampler_config rnd = {.kind = RF_HP_SAMPLER_RANDOM, .n_startup = -1, .seed = seed};
        wins += run_study(&s, &gp, f, 16) < run_study(&s, &rnd, f, 16);
    }
    print_message("%s: gp beats random search in %d of 20 seeds (16 trials)\n", name, wins);
    assert_true(wins >= 14);
    rf_hp_space_free(&s);
}

static void test_gp_beats_random_branin(void **state)
{
    beats_random(BRANIN, branin, "branin");
}

static void test_gp_beats_random_hartmann6(void **state)
{
    char sp[1024];
    int n = snprintf(sp, sizeof sp, "{");
    for (int i = 0; i < 6; i++)
        n += snprintf(sp + n, sizeof sp - (size_t)n,
                      "%s\"x%d\": {\"type\": \"float\", \"low\": 0, \"high\": 1}", i ? "," : "", i);
    snprintf(sp + n, sizeof sp - (size_t)n, "}");
    beats_random(sp, hartmann6, "hartmann6");
}

static double mixed_objective(const double *x)
{
    return pow(log10(x[0]) + 3, 2) + pow((x[1] - 20) / 16, 2) + pow(x[2] - 0.7, 2) + 0.5 * x[3];
}

static void test_gp_determinism_and_pending(void **state)
{
    rf_hp_space s;
    space_of(MIXED, &s);
    rf_hp_sampler_config cfg = {.kind = RF_HP_SAMPLER_GP, .n_startup = -1, .seed = 3};
    rf_error e;
    double xs[12][4], a[4], b[4], c[4];
    rf_hp_trial t[14];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rf_hp_ask(&s, &cfg, t, i, i, xs[i], &e), 0);
        /* inside the space, on its grid */
        assert_true(xs[i][0] >= 1e-5 && xs[i][0] <= 1e-1);
        assert_true(fmod(xs[i][1], 4) == 0 && xs[i][1] >= 4 && xs[i][1] <= 64);
        assert_true(xs[i][2] >= 0 && xs[i][2] <= 1);
        assert_true(xs[i][3] == 0 || xs[i][3] == 1);
        t[i] = (rf_hp_trial){.number = i,
                             .state = RF_HP_TRIAL_COMPLETE,
                             .x = xs[i],
                             .value = mixed_objective(xs[i]),
                             .has_value = true};
    }
    /* the start-up trials are distinct Sobol points */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < i; j++)
            assert_true(xs[i][0] != xs[j][0] && xs[i][2] != xs[j][2]);
    /* same seed and tells: the same ask, whatever the order of the trials */
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 10, 10, a, &e), 0);
    rf_hp_trial rev[10];
    for (int i = 0; i < 10; i++)
        rev[i] = t[9 - i];
    assert_int_equal(rf_hp_ask(&s, &cfg, rev, 10, 10, b, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    /* another trial number: another point (other candidates and restarts) */
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 10, 11, c, &e), 0);
    assert_true(memcmp(a, c, sizeof a) != 0);
    /* a pending trial at the point asked: the next ask goes elsewhere */
    memcpy(xs[10], a, sizeof a);
    t[10] = (rf_hp_trial){.number = 10, .state = RF_HP_TRIAL_RUNNING, .x = xs[10]};
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 11, 11, b, &e), 0);
    assert_true(fabs(log10(b[0]) - log10(a[0])) + fabs(b[1] - a[1]) / 60 + fabs(b[2] - a[2]) +
                    fabs(b[3] - a[3]) >
                0.02);
    /* a failed trial is ignored; a maximised objective is another study */
    t[10].state = RF_HP_TRIAL_FAILED;
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 11, 10, b, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    cfg.maximize = true;
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 10, 10, b, &e), 0);
    assert_true(memcmp(a, b, sizeof a) != 0);
    rf_hp_space_free(&s);
}

static double unit_dist(const double *a, const double *b)
{
    double dx = (a[0] - b[0]) / 15, dy = (a[1] - b[1]) / 15;
    return sqrt(dx * dx + dy * dy);
}

/* Parallel asks: four workers ask before any tells. Each pending trial is
 * told to the model as the best value so far (constant liar), so each ask
 * differs from the pending ones, and the liar is what moves it: the same
 * ask without the pending trial lands on the first one. (Here the model is
 * sure of one corner, so the batch stays near it: the points differ by
 * about a thousandth of the range, which is the liar working as designed.) */
static void test_gp_parallel_asks_differ(void **state)
{
    rf_hp_space s;
    space_of(BRANIN, &s);
    rf_hp_sampler_config cfg = {.kind = RF_HP_SAMPLER_GP, .n_startup = -1, .seed = 9};
    rf_error e;
    double xs[12][2], alone[2];
    rf_hp_trial t[12];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(rf_hp_ask(&s, &cfg, t, i, i, xs[i], &e), 0);
        t[i] = (rf_hp_trial){.number = i,
                             .state = RF_HP_TRIAL_COMPLETE,
                             .x = xs[i],
                             .value = branin(xs[i]),
                             .has_value = true};
    }
    for (int i = 8; i < 12; i++) {
        assert_int_equal(rf_hp_ask(&s, &cfg, t, i, i, xs[i], &e), 0);
        t[i] = (rf_hp_trial){.number = i, .state = RF_HP_TRIAL_RUNNING, .x = xs[i]};
    }
    for (int i = 8; i < 12; i++)
        for (int j = 8; j < i; j++)
            if (!(unit_dist(xs[i], xs[j]) > 1e-4))
                fail_msg("asks %d and %d are %.3g apart", i, j, unit_dist(xs[i], xs[j]));
    assert_int_equal(rf_hp_ask(&s, &cfg, t, 8, 9, alone, &e), 0);
    assert_true(unit_dist(xs[9], xs[8]) > 10 * unit_dist(alone, xs[8]));
    rf_hp_space_free(&s);
}

/* Every sampler in awkward spaces, with failed, pruned and pending trials
 * among the completed ones: each ask is a valid point of the space (it goes
 * through rf_hp_point_json and back through rf_hp_point_parse unchanged). */
static void test_every_space_every_sampler(void **state)
{
    const char *spaces[] = {
        "{\"c\": {\"type\": \"categorical\", \"choices\": [\"a\", 2, false]},"
        " \"d\": {\"type\": \"categorical\", \"choices\": [1.5]}}",
        "{\"one\": {\"type\": \"int\", \"low\": 3, \"high\": 3},"
        " \"x\": {\"type\": \"float\", \"low\": -1e-3, \"high\": 1e-3}}",
        "{\"big\": {\"type\": \"int\", \"low\": -100000, \"high\": 100000, \"step\": 7},"
        " \"li\": {\"type\": \"log_int\", \"low\": 1, \"high\": 1000000}}",
        "{\"lf\": {\"type\": \"log_float\", \"low\": 1e-300, \"high\": 1e300}}",
        NULL, /* 32 floats */
    };
    char wide[4096];
    int n = snprintf(wide, sizeof wide, "{");
    for (int i = 0; i < RF_HP_MAX_DIMS; i++)
        n += snprintf(wide + n, sizeof wide - (size_t)n,
                      "%s\"x%d\": {\"type\": \"float\", \"low\": 0, \"high\": 1}", i ? "," : "", i);
    snprintf(wide + n, sizeof wide - (size_t)n, "}");
    spaces[4] = wide;
    const rf_hp_sampler_kind kinds[] = {RF_HP_SAMPLER_GP, RF_HP_SAMPLER_TPE, RF_HP_SAMPLER_RANDOM};
    for (int si = 0; si < 5; si++) {
        rf_hp_space s;
        space_of(spaces[si], &s);
        for (int k = 0; k < 3; k++) {
            rf_hp_sampler_config cfg = {
                .kind = kinds[k], .n_startup = kinds[k] == RF_HP_SAMPLER_TPE ? 3 : -1, .seed = 4};
            static double xs[14][RF_HP_MAX_DIMS];
            rf_hp_trial t[14];
            rf_error e;
            for (int i = 0; i < 14; i++) {
                assert_int_equal(rf_hp_ask(&s, &cfg, t, i, i, xs[i], &e), 0);
                json_t *j = rf_hp_point_json(&s, xs[i]);
                double back[RF_HP_MAX_DIMS];
                if (rf_hp_point_parse(&s, j, back, &e))
                    fail_msg("space %d sampler %d ask %d: %s", si, k, i, e.msg);
                assert_memory_equal(back, xs[i], sizeof *back * (size_t)s.n);
                json_decref(j);
                double v = 0;
                for (int c = 0; c < s.n; c++)
                    v += sin(3 * c + rf_hp_dim_to_unit(&s.dims[c], xs[i][c]) * 5);
                rf_hp_trial_state st = i % 5 == 3   ? RF_HP_TRIAL_FAILED
                                       : i % 5 == 4 ? RF_HP_TRIAL_PRUNED
                                       : i >= 11    ? RF_HP_TRIAL_RUNNING
                                                    : RF_HP_TRIAL_COMPLETE;
                t[i] = (rf_hp_trial){
                    .number = i, .state = st, .x = xs[i], .value = v, .has_value = i % 2};
            }
        }
        rf_hp_space_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_random_reproducible),
        cmocka_unit_test(test_ask_bad_arguments),
        cmocka_unit_test(test_median_pruner),
        cmocka_unit_test(test_every_space_every_sampler),
        cmocka_unit_test(test_gp_determinism_and_pending),
        cmocka_unit_test(test_gp_parallel_asks_differ),
        cmocka_unit_test(test_gp_beats_random_branin),
        cmocka_unit_test(test_gp_beats_random_hartmann6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
