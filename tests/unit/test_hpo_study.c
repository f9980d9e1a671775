/* engine/hpo/study: a study's definition (defaults, the field at fault), asks
 * over JSON trials (the same seed and tells give the same ask, whatever the
 * order the store hands them over in), the median pruner on reports, and
 * the best trial (direction, ties). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "engine/hpo/study.h"

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fail_msg("bad test JSON: %s", je.text);
    return j;
}

static const char *SPACE =
    "\"space\": {\"lr\": {\"type\": \"log_float\", \"low\": 1e-4, \"high\": 1e-1},"
    " \"r\": {\"type\": \"int\", \"low\": 2, \"high\": 8, \"step\": 2}}";

static void def_of(const char *extra, rf_study_def *d, int want, const char *field)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"name\": \"s\", %s%s%s}", SPACE, *extra ? ", " : "", extra);
    json_t *b = J(text);
    rf_error e = {0};
    int rc = rf_study_def_parse(b, 42, d, &e);
    json_decref(b);
    assert_int_equal(rc, want);
    if (field) assert_string_equal(e.field, field);
}

static void test_defaults(void **state)
{
    rf_study_def d;
    def_of("", &d, 0, NULL);
    assert_false(d.maximize);
    assert_int_equal(d.sampler.kind, RF_HP_SAMPLER_GP);
    assert_int_equal(d.sampler.seed, 42); /* the caller's default seed */
    assert_int_equal(d.sampler.n_startup, -1);
    assert_true(d.prune);
    assert_int_equal(d.prune_startup, 5);
    assert_int_equal(d.max_trials, 0);
    assert_string_equal(json_string_value(json_object_get(d.json, "direction")), "minimize");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(d.json, "sampler"), "seed")), 42);
    assert_null(json_object_get(d.json, "job_report"));
    /* the stored definition parses back to the same one */
    rf_study_def e;
    rf_error err;
    assert_int_equal(rf_study_def_parse(d.json, 7, &e, &err), 0);
    assert_true(json_equal(d.json, e.json));
    assert_int_equal(e.sampler.seed, 42);
    rf_study_def_free(&e);
    rf_study_def_free(&d);
}

static void test_bad(void **state)
{
    rf_study_def d;
    def_of("\"direction\": \"up\"", &d, RF_EINVAL, "direction");
    def_of("\"sampler\": {\"name\": \"cmaes\"}", &d, RF_EINVAL, "sampler.name");
    def_of("\"sampler\": {\"n_startup\": -2}", &d, RF_EINVAL, "sampler.n_startup");
    def_of("\"sampler\": {\"seeds\": 1}", &d, RF_EINVAL, "sampler.seeds");
    def_of("\"pruner\": {\"name\": \"hyperband\"}", &d, RF_EINVAL, "pruner.name");
    def_of("\"max_trials\": 0", &d, RF_EINVAL, "max_trials");
    def_of("\"job_report\": {\"event\": \"eval\"}", &d, RF_EINVAL, "job_report.field");
    def_of("\"colour\": 1", &d, RF_EINVAL, "colour");
    json_t *b =
        J("{\"name\": \"s\", \"space\": {\"lr\": {\"type\": \"float\", \"low\": 2, \"high\": 1}}}");
    rf_error e = {0};
    assert_int_equal(rf_study_def_parse(b, 0, &d, &e), RF_EINVAL);
    assert_memory_equal(e.field, "space.lr", 8);
    json_decref(b);
}

static void test_ask_reproducible(void **state)
{
    rf_study_def d;
    def_of("\"sampler\": {\"name\": \"random\", \"seed\": 9}", &d, 0, NULL);
    json_t *a = J("[{\"number\": 0, \"state\": \"complete\", \"params\": {\"lr\": 0.01, \"r\": 4},"
                  " \"value\": 1.5, \"intermediate\": []},"
                  " {\"number\": 1, \"state\": \"running\", \"params\": {\"lr\": 0.001, \"r\": 2},"
                  " \"value\": null, \"intermediate\": []}]");
    json_t *b = J("[{\"number\": 1, \"state\": \"running\", \"params\": {\"lr\": 0.001, \"r\": 2},"
                  " \"value\": null, \"intermediate\": []},"
                  " {\"number\": 0, \"state\": \"complete\", \"params\": {\"lr\": 0.01, \"r\": 4},"
                  " \"value\": 1.5, \"intermediate\": []}]");
    json_t *pa, *pb, *pc;
    rf_error e;
    assert_int_equal(rf_study_ask(&d, a, 2, &pa, &e), 0);
    assert_int_equal(rf_study_ask(&d, b, 2, &pb, &e), 0);
    assert_true(json_equal(pa, pb));
    assert_int_equal(rf_study_ask(&d, a, 3, &pc, &e), 0);
    assert_false(json_equal(pa, pc));
    /* inside the space, ints on their step */
    assert_int_equal(rf_study_check_point(&d, pa, &e), 0);
    json_t *bad = J("{\"lr\": 0.5, \"r\": 4}");
    assert_int_equal(rf_study_check_point(&d, bad, &e), RF_EINVAL);
    assert_string_equal(e.field, "params.lr");
    json_decref(bad);
    json_decref(pa), json_decref(pb), json_decref(pc);
    json_decref(a), json_decref(b);
    rf_study_def_free(&d);
}

static void test_prune_and_best(void **state)
{
    rf_study_def d;
    def_of("\"pruner\": {\"n_startup_trials\": 2}", &d, 0, NULL);
    /* completed trials at step 3: 1.0 and 3.0 → median 2.0 */
    const char *done = "{\"number\": 0, \"state\": \"complete\", \"params\": {}, \"value\": 1.0,"
                       " \"intermediate\": [{\"step\": 3, \"value\": 1.0}]},"
                       "{\"number\": 1, \"state\": \"complete\", \"params\": {}, \"value\": 3.0,"
                       " \"intermediate\": [{\"step\": 3, \"value\": 3.0}]}";
    char text[1024];
    snprintf(text, sizeof text,
             "[%s, {\"number\": 2, \"state\": \"running\", \"params\": {}, \"value\": null,"
             " \"intermediate\": [{\"step\": 1, \"value\": 9}, {\"step\": 3, \"value\": 2.5}]}]",
             done);
    json_t *t = J(text);
    assert_true(rf_study_should_prune(&d, t, 2)); /* best 2.5 > median 2.0 */
    json_decref(t);
    snprintf(text, sizeof text,
             "[%s, {\"number\": 2, \"state\": \"running\", \"params\": {}, \"value\": null,"
             " \"intermediate\": [{\"step\": 1, \"value\": 1.5}, {\"step\": 3, \"value\": 2.5}]}]",
             done);
    t = J(text);
    assert_false(rf_study_should_prune(&d, t, 2)); /* best so far 1.5 < 2.0 */
    /* best: the lowest complete value; maximize: the highest */
    assert_int_equal(rf_study_best(&d, t), 0);
    json_decref(t);
    rf_study_def_free(&d);
    def_of("\"direction\": \"maximize\", \"pruner\": {\"name\": \"none\"}", &d, 0, NULL);
    t = J("[{\"number\": 4, \"state\": \"complete\", \"value\": 2},"
          " {\"number\": 1, \"state\": \"complete\", \"value\": 2},"
          " {\"number\": 0, \"state\": \"pruned\", \"value\": 7},"
          " {\"number\": 2, \"state\": \"running\", \"value\": null,"
          "  \"intermediate\": [{\"step\": 1, \"value\": -100}]}]");
    assert_int_equal(rf_study_best(&d, t), 1); /* a tie goes to the lower number */
    assert_false(rf_study_should_prune(&d, t, 2));
    json_decref(t);
    t = J("[{\"number\": 0, \"state\": \"failed\", \"value\": null}]");
    assert_int_equal(rf_study_best(&d, t), -1);
    json_decref(t);
    rf_study_def_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_ask_reproducible),
        cmocka_unit_test(test_prune_and_best),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
