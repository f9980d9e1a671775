/* engine/hpo/space: parsing and its errors (the field at fault), points to
 * and from JSON, and the unit cube the samplers work in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "engine/hpo/space.h"

static const char *SPACE = "{\"lr\": {\"type\": \"log_float\", \"low\": 1e-5, \"high\": 1e-1},"
                           " \"r\": {\"type\": \"int\", \"low\": 4, \"high\": 64, \"step\": 4},"
                           " \"alpha\": {\"type\": \"float\", \"low\": 0, \"high\": 1},"
                           " \"layers\": {\"type\": \"log_int\", \"low\": 1, \"high\": 32},"
                           " \"opt\": {\"type\": \"categorical\", \"choices\": [\"muon\", "
                           "\"adamw\", 3, true]}}";

static int parse(const char *text, rf_hp_space *s, rf_error *e)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    rf_error_clear(e);
    int rc = rf_hp_space_parse(j, s, e);
    json_decref(j);
    return rc;
}

static void test_parse_good(void **state)
{
    rf_hp_space s;
    rf_error e;
    assert_int_equal(parse(SPACE, &s, &e), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.dims[0].name, "lr");
    assert_int_equal(s.dims[0].kind, RF_HP_LOG_FLOAT);
    assert_true(s.dims[0].low == 1e-5 && s.dims[0].high == 1e-1);
    assert_string_equal(s.dims[1].name, "r");
    assert_int_equal(s.dims[1].kind, RF_HP_INT);
    assert_true(s.dims[1].step == 4);
    assert_int_equal(rf_hp_dim_count(&s.dims[1]), 16);
    assert_int_equal(s.dims[2].kind, RF_HP_FLOAT);
    assert_int_equal(s.dims[3].kind, RF_HP_LOG_INT);
    assert_true(s.dims[3].step == 1);
    assert_int_equal(s.dims[4].kind, RF_HP_CATEGORICAL);
    assert_int_equal(s.dims[4].n_choices, 4);
    assert_int_equal(rf_hp_dim_count(&s.dims[4]), 4);

    /* back to JSON and parsed again: the same space */
    json_t *j = rf_hp_space_json(&s);
    assert_non_null(j);
    rf_hp_space s2;
    assert_int_equal(rf_hp_space_parse(j, &s2, &e), 0);
    assert_int_equal(s2.n, s.n);
    for (int i = 0; i < s.n; i++) {
        assert_string_equal(s2.dims[i].name, s.dims[i].name);
        assert_int_equal(s2.dims[i].kind, s.dims[i].kind);
        assert_true(s2.dims[i].low == s.dims[i].low && s2.dims[i].high == s.dims[i].high);
        assert_true(s2.dims[i].step == s.dims[i].step);
        assert_int_equal(s2.dims[i].n_choices, s.dims[i].n_choices);
    }
    json_decref(j);
    rf_hp_space_free(&s2);
    rf_hp_space_free(&s);

    /* a step that does not divide the range: the top value is the last on the grid */
    assert_int_equal(
        parse("{\"r\": {\"type\": \"int\", \"low\": 1, \"high\": 10, \"step\": 4}}", &s, &e), 0);
    assert_true(rf_hp_dim_top(&s.dims[0]) == 9);
    assert_int_equal(rf_hp_dim_count(&s.dims[0]), 3);
    rf_hp_space_free(&s);
    /* an int range may hold one value */
    assert_int_equal(parse("{\"r\": {\"type\": \"int\", \"low\": 3, \"high\": 3}}", &s, &e), 0);
    rf_hp_space_free(&s);
}

static void expect_error(const char *text, const char *field, const char *msg_part)
{
    rf_hp_space s;
    rf_error e;
    assert_int_equal(parse(text, &s, &e), RF_EINVAL);
    assert_string_equal(e.field, field);
    if (!strstr(e.msg, msg_part)) fail_msg("message '%s' lacks '%s'", e.msg, msg_part);
    assert_int_equal(s.n, 0);
    assert_null(s.dims);
}

static void test_parse_errors(void **state)
{
    expect_error("[]", "", "non-empty object");
    expect_error("{}", "", "non-empty object");
    expect_error("{\"lr\": 3}", "lr", "must be an object");
    expect_error("{\"lr\": {\"low\": 1}}", "lr.type", "must be one of 'float'");
    expect_error("{\"lr\": {\"type\": \"lognormal\"}}", "lr.type", "must be one of");
    expect_error("{\"lr\": {\"type\": \"float\", \"high\": 1}}", "lr.low", "'lr.low' is required");
    expect_error("{\"lr\": {\"type\": \"float\", \"low\": 0}}", "lr.high", "is required");
    expect_error("{\"lr\": {\"type\": \"float\", \"low\": \"0\", \"high\": 1}}", "lr.low",
                 "must be a number");
    expect_error("{\"lr\": {\"type\": \"float\", \"low\": 1, \"high\": 1}}", "lr.high",
                 "must be above 'low'");
    expect_error("{\"lr\": {\"type\": \"float\", \"low\": 0, \"high\": 1, \"hgih\": 2}}", "lr.hgih",
                 "known: type, low, high");
    expect_error("{\"lr\": {\"type\": \"log_float\", \"low\": 0, \"high\": 1}}", "lr.low",
                 "above 0 for a log_float");
    expect_error("{\"lr\": {\"type\": \"log_float\", \"low\": -1, \"high\": 1}}", "lr.low",
                 "above 0");
    expect_error("{\"ok\": {\"type\": \"float\", \"low\": 0, \"high\": 1},"
                 " \"r\": {\"type\": \"int\", \"low\": 1.5, \"high\": 8}}",
                 "r.low", "must be an integer");
    expect_error("{\"r\": {\"type\": \"int\", \"low\": 8, \"high\": 4}}", "r.high",
                 "must be at least 'low'");
    expect_error("{\"r\": {\"type\": \"int\", \"low\": 1, \"high\": 8, \"step\": 0}}", "r.step",
                 "positive integer");
    expect_error("{\"r\": {\"type\": \"int\", \"low\": 1, \"high\": 8, \"step\": 0.5}}", "r.step",
                 "must be an integer");
    expect_error("{\"r\": {\"type\": \"log_int\", \"low\": 0, \"high\": 8}}", "r.low",
                 "at least 1 for a log_int");
    expect_error("{\"r\": {\"type\": \"log_int\", \"low\": 1, \"high\": 8, \"step\": 2}}", "r.step",
                 "known: type, low, high");
    expect_error("{\"r\": {\"type\": \"int\", \"low\": 1, \"high\": 1e300}}", "r.high",
                 "out of range");
    expect_error("{\"o\": {\"type\": \"categorical\"}}", "o.choices", "non-empty array");
    expect_error("{\"o\": {\"type\": \"categorical\", \"choices\": []}}", "o.choices",
                 "non-empty array");
    expect_error("{\"o\": {\"type\": \"categorical\", \"choices\": [\"a\", {}]}}", "o.choices[1]",
                 "a string, a number or a boolean");
    expect_error("{\"o\": {\"type\": \"categorical\", \"choices\": [\"a\", \"b\", \"a\"]}}",
                 "o.choices[2]", "repeats choice 0");
    expect_error("{\"o\": {\"type\": \"categorical\", \"choices\": [1], \"low\": 0}}", "o.low",
                 "known: type, choices");
    expect_error("{\"\": {\"type\": \"float\", \"low\": 0, \"high\": 1}}", "", "name");

    /* more dimensions than the samplers' Sobol tables hold */
    char big[4096];
    int n = snprintf(big, sizeof big, "{");
    for (int i = 0; i <= RF_HP_MAX_DIMS; i++)
        n += snprintf(big + n, sizeof big - (size_t)n,
                      "%s\"x%d\": {\"type\": \"float\", \"low\": 0, \"high\": 1}", i ? "," : "", i);
    snprintf(big + n, sizeof big - (size_t)n, "}");
    expect_error(big, "", "at most 32 dimensions");
}

static void test_points(void **state)
{
    rf_hp_space s;
    rf_error e;
    assert_int_equal(parse(SPACE, &s, &e), 0);
    double x[5] = {1e-3, 16, 0.25, 5, 1};
    json_t *j = rf_hp_point_json(&s, x);
    assert_non_null(j);
    assert_true(json_is_real(json_object_get(j, "lr")));
    assert_true(json_is_integer(json_object_get(j, "r")));
    assert_int_equal(json_integer_value(json_object_get(j, "r")), 16);
    assert_int_equal(json_integer_value(json_object_get(j, "layers")), 5);
    assert_string_equal(json_string_value(json_object_get(j, "opt")), "adamw");
    double back[5];
    assert_int_equal(rf_hp_point_parse(&s, j, back, &e), 0);
    assert_memory_equal(back, x, sizeof x);
    json_decref(j);

    struct {
        const char *text, *field, *msg;
    } bad[] = {
        {"{\"lr\": 1e-3, \"r\": 16, \"alpha\": 0.5, \"layers\": 2}", "opt", "'opt' is required"},
        {"{\"lr\": 1, \"r\": 16, \"alpha\": 0.5, \"layers\": 2, \"opt\": 3}", "lr", "must be in"},
        {"{\"lr\": 1e-3, \"r\": 18, \"alpha\": 0.5, \"layers\": 2, \"opt\": 3}", "r",
         "must be 4 plus a multiple of 4"},
        {"{\"lr\": 1e-3, \"r\": 68, \"alpha\": 0.5, \"layers\": 2, \"opt\": 3}", "r", "must be in"},
        {"{\"lr\": 1e-3, \"r\": 16.5, \"alpha\": 0.5, \"layers\": 2, \"opt\": 3}", "r",
         "must be an integer"},
        {"{\"lr\": 1e-3, \"r\": 16, \"alpha\": \"x\", \"layers\": 2, \"opt\": 3}", "alpha",
         "must be a number"},
        {"{\"lr\": 1e-3, \"r\": 16, \"alpha\": 0.5, \"layers\": 2, \"opt\": \"sgd\"}", "opt",
         "one of its 4 choices"},
        {"{\"lr\": 1e-3, \"r\": 16, \"alpha\": 0.5, \"layers\": 2, \"opt\": 3, \"x\": 1}", "x",
         "not a dimension"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *p = json_loads(bad[i].text, 0, NULL);
        assert_non_null(p);
        rf_error_clear(&e);
        assert_int_equal(rf_hp_point_parse(&s, p, back, &e), RF_EINVAL);
        assert_string_equal(e.field, bad[i].field);
        if (!strstr(e.msg, bad[i].msg)) fail_msg("message '%s' lacks '%s'", e.msg, bad[i].msg);
        json_decref(p);
    }
    /* a numeric choice told as 3.0 is the choice 3; a boolean stays a boolean */
    json_t *p =
        json_loads("{\"lr\": 1e-3, \"r\": 4, \"alpha\": 0, \"layers\": 32, \"opt\": 3.0}", 0, NULL);
    assert_int_equal(rf_hp_point_parse(&s, p, back, &e), 0);
    assert_true(back[4] == 2);
    json_decref(p);
    p = json_loads("{\"lr\": 1e-3, \"r\": 4, \"alpha\": 0, \"layers\": 32, \"opt\": true}", 0,
                   NULL);
    assert_int_equal(rf_hp_point_parse(&s, p, back, &e), 0);
    assert_true(back[4] == 3);
    json_decref(p);
    rf_hp_space_free(&s);
}

static void test_unit_cube(void **state)
{
    rf_hp_space s;
    rf_error e;
    assert_int_equal(parse(SPACE, &s, &e), 0);
    double u[5], x[5];
    /* log scale: the geometric middle of [1e-5, 1e-1] is the middle of the cube */
    double mid[5] = {1e-3, 32, 0.5, 4, 2};
    rf_hp_to_unit(&s, mid, u);
    assert_true(fabs(u[0] - 0.5) < 1e-12);
    /* r: 16 values padded by 2 each side: 32 sits in [30, 34] of [2, 66] */
    assert_true(fabs(u[1] - 30.0 / 64.0) < 1e-12);
    assert_true(fabs(u[2] - 0.5) < 1e-12);
    /* layers: log_int over [log 0.5, log 32.5] */
    assert_true(fabs(u[3] - (log(4) - log(0.5)) / (log(32.5) - log(0.5))) < 1e-12);
    /* categorical: the centre of choice 2's share */
    assert_true(fabs(u[4] - 2.5 / 4) < 1e-12);
    rf_hp_from_unit(&s, u, x);
    for (int i = 0; i < 5; i++)
        assert_true(fabs(x[i] - mid[i]) <= 1e-12 * fabs(mid[i]));

    /* every int value owns an equal share of the cube; the edges stay inside */
    int hits[16] = {0};
    for (int k = 0; k <= 6400; k++) {
        double uu[5] = {k / 6400.0, k / 6400.0, k / 6400.0, k / 6400.0, k / 6400.0};
        rf_hp_from_unit(&s, uu, x);
        assert_true(x[0] >= 1e-5 && x[0] <= 1e-1);
        assert_true(x[1] >= 4 && x[1] <= 64 && fmod(x[1], 4) == 0);
        assert_true(x[2] >= 0 && x[2] <= 1);
        assert_true(x[3] >= 1 && x[3] <= 32 && x[3] == floor(x[3]));
        assert_true(x[4] >= 0 && x[4] <= 3 && x[4] == floor(x[4]));
        if (k < 6400) hits[(int)x[1] / 4 - 1]++;
    }
    for (int i = 0; i < 16; i++)
        assert_int_equal(hits[i], 400);
    /* out of the cube: clamped */
    double out[5] = {-1, 2, -0.5, 7, 1.5};
    rf_hp_from_unit(&s, out, x);
    assert_true(x[0] == 1e-5 && x[1] == 64 && x[2] == 0 && x[3] == 32 && x[4] == 3);
    rf_hp_space_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_points),
        cmocka_unit_test(test_unit_cube),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
