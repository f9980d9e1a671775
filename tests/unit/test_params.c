/* engine/core/params: the table check, typed reads with defaults, the
 * description GET /v1/job-types publishes, and the reference walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "engine/core/params.h"

static const char *const formats[] = {"qa", "multiple_choice", NULL};
static const rf_param judge_fields[] = {
    {.name = "min_score", .type = RF_PARAM_INT, .lo = 1, .hi = 10, .def = "7"},
    {.name = "model", .type = RF_PARAM_STRING, .ref = "model"},
    {0}};
static const rf_param dataset_item = {.type = RF_PARAM_STRING, .ref = "dataset"};
static const rf_param spec[] = {
    {.name = "teacher",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "model",
     .help = "a registered model"},
    {.name = "target_pairs", .type = RF_PARAM_INT, .lo = 1, .hi = 100000, .def = "600"},
    {.name = "lr",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 10,
     .flags = RF_PARAM_LO_OPEN,
     .def = "0.0002"},
    {.name = "format", .type = RF_PARAM_ENUM, .choices = formats, .def = "qa"},
    {.name = "chat", .type = RF_PARAM_BOOL, .def = "true"},
    {.name = "judge", .type = RF_PARAM_OBJECT, .fields = judge_fields},
    {.name = "datasets", .type = RF_PARAM_ARRAY, .items = &dataset_item, .lo = 1, .hi = 4},
    {.name = "extra", .type = RF_PARAM_JSON, .flags = RF_PARAM_NULLABLE},
    {0}};

static int check(const char *text, rf_error *e)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    rf_error_clear(e);
    int rc = rf_params_check(j, spec, "", e);
    json_decref(j);
    return rc;
}

static void test_check_accepts_and_refuses(void **state)
{
    rf_error e;
    assert_int_equal(check("{\"teacher\":\"m\",\"judge\":{\"min_score\":9},\"datasets\":[\"a\"],"
                           "\"extra\":null,\"format\":\"multiple_choice\"}",
                           &e),
                     0);
    assert_int_equal(check("{}", &e), RF_EINVAL);
    assert_string_equal(e.field, "teacher");
    assert_string_equal(e.msg, "'teacher' is required: a registered model");
    assert_int_equal(check("{\"teacher\":\"m\",\"nope\":1}", &e), RF_EINVAL);
    assert_string_equal(e.field, "nope");
    assert_non_null(strstr(e.msg, "known: teacher, target_pairs, lr, format"));
    assert_int_equal(check("{\"teacher\":\"m\",\"target_pairs\":0}", &e), RF_EINVAL);
    assert_string_equal(e.msg, "'target_pairs' must be an integer in [1, 100000]");
    assert_int_equal(check("{\"teacher\":\"m\",\"target_pairs\":1.5}", &e), RF_EINVAL);
    assert_int_equal(check("{\"teacher\":\"m\",\"lr\":0}", &e), RF_EINVAL);
    assert_string_equal(e.msg, "'lr' must be a number in (0, 10]");
    assert_int_equal(check("{\"teacher\":\"m\",\"format\":\"x\"}", &e), RF_EINVAL);
    assert_string_equal(e.msg, "'format' must be one of 'qa', 'multiple_choice'");
    assert_int_equal(check("{\"teacher\":\"m\",\"judge\":{\"min_score\":11}}", &e), RF_EINVAL);
    assert_string_equal(e.field, "judge.min_score");
    assert_int_equal(check("{\"teacher\":\"m\",\"judge\":{\"x\":1}}", &e), RF_EINVAL);
    assert_string_equal(e.field, "judge.x");
    assert_int_equal(check("{\"teacher\":\"m\",\"datasets\":[\"a\",7]}", &e), RF_EINVAL);
    assert_string_equal(e.field, "datasets[1]");
    assert_int_equal(check("{\"teacher\":\"m\",\"datasets\":[]}", &e), RF_EINVAL);
    assert_string_equal(e.msg, "'datasets' must have 1 to 4 elements");
    assert_int_equal(check("{\"teacher\":\"\"}", &e), RF_EINVAL);
    assert_int_equal(check("{\"teacher\":\"m\",\"chat\":1}", &e), RF_EINVAL);
    assert_string_equal(e.msg, "'chat' must be true or false");
}

static void test_reads_with_defaults(void **state)
{
    json_t *j = json_loads("{\"teacher\":\"t\",\"lr\":0.5,\"format\":\"multiple_choice\","
                           "\"judge\":{}}",
                           0, NULL);
    assert_int_equal(rf_param_int(j, spec, "target_pairs", -1), 600);
    assert_true(rf_param_num(j, spec, "lr", -1) == 0.5);
    assert_int_equal(rf_param_enum(j, spec, "format", -1), 1);
    assert_true(rf_param_bool(j, spec, "chat", false));
    assert_string_equal(rf_param_str(j, spec, "teacher", NULL), "t");
    json_t *judge = json_object_get(j, "judge");
    assert_int_equal(rf_param_int(judge, judge_fields, "min_score", -1), 7);
    assert_null(rf_param_str(judge, judge_fields, "model", NULL));
    assert_int_equal(rf_param_int(j, spec, "no_such", 42), 42);
    json_decref(j);
    json_t *none = json_object();
    assert_string_equal(rf_param_str(none, spec, "format", NULL), "qa");
    assert_true(rf_param_num(none, spec, "lr", -1) == 0.0002);
    json_decref(none);
}

static void test_describe(void **state)
{
    json_t *d = rf_params_describe(spec);
    assert_int_equal(json_array_size(d), 8);
    json_t *tp = json_array_get(d, 1);
    assert_string_equal(json_string_value(json_object_get(tp, "type")), "integer");
    assert_int_equal(json_integer_value(json_object_get(tp, "default")), 600);
    assert_int_equal(json_integer_value(json_object_get(tp, "maximum")), 100000);
    json_t *lr = json_array_get(d, 2);
    assert_true(json_is_true(json_object_get(lr, "exclusive_minimum")));
    json_t *fmt = json_array_get(d, 3);
    assert_string_equal(json_string_value(json_object_get(fmt, "default")), "qa");
    assert_int_equal(json_array_size(json_object_get(fmt, "enum")), 2);
    json_t *judge = json_array_get(d, 5);
    assert_int_equal(json_array_size(json_object_get(judge, "fields")), 2);
    json_t *ds = json_array_get(d, 6);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ds, "items"), "ref")),
                        "dataset");
    assert_true(json_is_true(json_object_get(json_array_get(d, 0), "required")));
    json_decref(d);
}

typedef struct seen {
    char log[512];
} seen;

static int note(void *user, const char *kind, const char *field, const char *value)
{
    seen *s = user;
    size_t n = strlen(s->log);
    snprintf(s->log + n, sizeof s->log - n, "%s:%s=%s;", kind, field, value);
    return strcmp(value, "stop") ? 0 : 7;
}

static void test_refs_walk(void **state)
{
    json_t *j = json_loads("{\"teacher\":\"t1\",\"judge\":{\"model\":\"j1\"},"
                           "\"datasets\":[\"d1\",\"d2\"]}",
                           0, NULL);
    seen s = {""};
    assert_int_equal(rf_params_refs(j, spec, "", note, &s), 0);
    assert_string_equal(s.log, "model:teacher=t1;model:judge.model=j1;dataset:datasets[0]=d1;"
                               "dataset:datasets[1]=d2;");
    json_decref(j);
    j = json_loads("{\"teacher\":\"stop\",\"datasets\":[\"d1\"]}", 0, NULL);
    s.log[0] = 0;
    assert_int_equal(rf_params_refs(j, spec, "", note, &s), 7);
    assert_string_equal(s.log, "model:teacher=stop;");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_accepts_and_refuses),
        cmocka_unit_test(test_reads_with_defaults),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_refs_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
