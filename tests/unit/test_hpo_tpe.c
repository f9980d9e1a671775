/* engine/hpo/tpe: the Parzen estimators against Optuna 3.1's own
 * (tests/reference/hpo_reference.py wrote the fixture), their sampling
 * against their density, and the ask: random start-up, seeded, pending
 * trials skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/hpo/tpe.h"

#define FIX "tests/reference/fixtures/hpo/parzen.json"

static void near(double got, double want, double rel, const char *what, const char *name, int i)
{
    if (!(fabs(got - want) <= rel * fmax(1, fabs(want))))
        fail_msg("%s: %s[%d] = %.17g, Optuna %.17g", name, what, i, got, want);
}

static void dim_of(json_t *dj, rf_hp_space *s)
{
    json_t *sp = json_pack("{s:O}", "x", dj);
    rf_error e;
    assert_int_equal(rf_hp_space_parse(sp, s, &e), 0);
    json_decref(sp);
}

static void test_parzen_matches_optuna(void **state)
{
    json_error_t je;
    json_t *root = json_load_file(FIX, 0, &je);
    if (!root) fail_msg("%s: %s (run tests/reference/hpo_reference.py)", FIX, je.text);
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_array_size(cases) >= 10);
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        rf_hp_space s;
        dim_of(json_object_get(c, "dim"), &s);
        json_t *obs = json_object_get(c, "obs");
        int n_obs = (int)json_array_size(obs);
        double o[64];
        for (int i = 0; i < n_obs; i++)
            o[i] = json_number_value(json_array_get(obs, (size_t)i));
        rf_parzen p;
        assert_int_equal(rf_parzen_build(&p, &s.dims[0], o, n_obs), 0);
        json_t *w = json_object_get(c, "weights");
        assert_int_equal(p.n, (int)json_array_size(w));
        for (int i = 0; i < p.n; i++)
            near(p.w[i], json_number_value(json_array_get(w, (size_t)i)), 1e-14, "weight", name, i);
        if (s.dims[0].kind == RF_HP_CATEGORICAL) {
            json_t *cw = json_object_get(c, "cat_weights");
            int k = s.dims[0].n_choices;
            for (int i = 0; i < p.n; i++)
                for (int j = 0; j < k; j++)
                    near(
                        p.cw[i * k + j],
                        json_number_value(json_array_get(json_array_get(cw, (size_t)i), (size_t)j)),
                        1e-14, "cat_weight", name, i * k + j);
        } else {
            json_t *mu = json_object_get(c, "mus"), *sg = json_object_get(c, "sigmas");
            for (int i = 0; i < p.n; i++) {
                near(p.mu[i], json_number_value(json_array_get(mu, (size_t)i)), 1e-14, "mu", name,
                     i);
                near(p.sigma[i], json_number_value(json_array_get(sg, (size_t)i)), 1e-14, "sigma",
                     name, i);
            }
        }
        json_t *pts = json_object_get(c, "points"), *lp = json_object_get(c, "log_pdf");
        for (size_t i = 0; i < json_array_size(pts); i++)
            near(rf_parzen_log_pdf(&p, json_number_value(json_array_get(pts, i))),
                 json_number_value(json_array_get(lp, i)), 1e-11, "log_pdf", name, (int)i);
        rf_parzen_free(&p);
        rf_hp_space_free(&s);
    }
    json_decref(root);
}

/* Draws follow the estimator's own mass: every value of a stepped int and of
 * a log_int as often as exp(log_pdf) says (the log_int's density at log v
 * times the width of v's share in log space), within 5 standard deviations. */
static void test_parzen_sampling(void **state)
{
    const char *dims[] = {"{\"type\": \"int\", \"low\": 4, \"high\": 64, \"step\": 4}",
                          "{\"type\": \"categorical\", \"choices\": [1, 2, 3, 4, 5]}"};
    const double obs[2][6] = {{8, 8, 24, 60, 36, 4}, {0, 2, 2, 4, 1, 2}};
    for (int t = 0; t < 2; t++) {
        json_t *dj = json_loads(dims[t], 0, NULL);
        rf_hp_space s;
        dim_of(dj, &s);
        json_decref(dj);
        rf_parzen p;
        assert_int_equal(rf_parzen_build(&p, &s.dims[0], obs[t], 6), 0);
        int count = rf_hp_dim_count(&s.dims[0]), hits[16] = {0};
        const int N = 20000;
        uint64_t rng = 99;
        for (int i = 0; i < N; i++) {
            double v = rf_parzen_sample(&p, &rng);
            int k = t == 0 ? (int)((v - 4) / 4) : (int)v;
            assert_true(k >= 0 && k < count);
            hits[k]++;
        }
        double total = 0;
        for (int k = 0; k < count; k++) {
            double v = t == 0 ? 4 + 4 * k : k;
            double pk = exp(rf_parzen_log_pdf(&p, v)), sd = sqrt(N * pk * (1 - pk));
            total += pk;
            if (fabs(hits[k] - N * pk) > 5 * sd + 1)
                fail_msg("value %g: %d draws, %.1f expected", v, hits[k], N * pk);
        }
        assert_true(fabs(total - 1) < 1e-9); /* the masses of a discrete estimator sum to 1 */
        rf_parzen_free(&p);
        rf_hp_space_free(&s);
    }
}

static const char *SPACE = "{\"lr\": {\"type\": \"log_float\", \"low\": 1e-5, \"high\": 1e-1},"
                           " \"r\": {\"type\": \"int\", \"low\": 4, \"high\": 64, \"step\": 4},"
                           " \"x\": {\"type\": \"float\", \"low\": -1, \"high\": 1},"
                           " \"opt\": {\"type\": \"categorical\", \"choices\": [\"a\", \"b\"]}}";

static double objective(const double *x)
{
    return pow(log10(x[0]) + 3, 2) + pow((x[1] - 20) / 16, 2) + x[2] * x[2] + 0.5 * x[3];
}

static void test_tpe_ask(void **state)
{
    json_t *j = json_loads(SPACE, 0, NULL);
    rf_hp_space s;
    rf_error e;
    assert_int_equal(rf_hp_space_parse(j, &s, &e), 0);
    json_decref(j);
    rf_hp_sampler_config tpe = {.kind = RF_HP_SAMPLER_TPE, .n_startup = -1, .seed = 5};
    rf_hp_sampler_config rnd = {.kind = RF_HP_SAMPLER_RANDOM, .n_startup = -1, .seed = 5};
    double xs[30][4], a[4], b[4];
    rf_hp_trial t[31];
    for (int i = 0; i < 30; i++) {
        assert_int_equal(rf_hp_ask(&s, &tpe, t, i, i, xs[i], &e), 0);
        if (i < 10) { /* start-up: the random sampler's points */
            assert_int_equal(rf_hp_ask(&s, &rnd, t, i, i, a, &e), 0);
            assert_memory_equal(a, xs[i], sizeof a);
        }
        t[i] = (rf_hp_trial){.number = i,
                             .state = RF_HP_TRIAL_COMPLETE,
                             .x = xs[i],
                             .value = objective(xs[i]),
                             .has_value = true};
    }
    /* reproducible, independent of the order of the trials */
    assert_int_equal(rf_hp_ask(&s, &tpe, t, 30, 30, a, &e), 0);
    rf_hp_trial rev[30];
    for (int i = 0; i < 30; i++)
        rev[i] = t[29 - i];
    assert_int_equal(rf_hp_ask(&s, &tpe, rev, 30, 30, b, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    /* another number: another point */
    assert_int_equal(rf_hp_ask(&s, &tpe, t, 30, 31, b, &e), 0);
    assert_true(memcmp(a, b, sizeof a) != 0);
    /* pending and failed trials are skipped: the same ask as without them */
    double px[4] = {1e-3, 20, 0, 0};
    t[30] = (rf_hp_trial){.number = 31, .state = RF_HP_TRIAL_RUNNING, .x = px};
    assert_int_equal(rf_hp_ask(&s, &tpe, t, 31, 30, b, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    t[30].state = RF_HP_TRIAL_FAILED;
    assert_int_equal(rf_hp_ask(&s, &tpe, t, 31, 30, b, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    /* a pruned trial counts as an observation: the ask changes */
    t[30] = (rf_hp_trial){
        .number = 31, .state = RF_HP_TRIAL_PRUNED, .x = px, .value = 0, .has_value = true};
    assert_int_equal(rf_hp_ask(&s, &tpe, t, 31, 30, b, &e), 0);
    assert_true(memcmp(a, b, sizeof a) != 0);
    /* inside the space */
    for (int i = 0; i < 30; i++) {
        assert_true(xs[i][0] >= 1e-5 && xs[i][0] <= 1e-1);
        assert_true(fmod(xs[i][1], 4) == 0 && xs[i][1] >= 4 && xs[i][1] <= 64);
        assert_true(xs[i][2] >= -1 && xs[i][2] <= 1);
        assert_true(xs[i][3] == 0 || xs[i][3] == 1);
    }
    rf_hp_space_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parzen_matches_optuna),
        cmocka_unit_test(test_parzen_sampling),
        cmocka_unit_test(test_tpe_ask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
