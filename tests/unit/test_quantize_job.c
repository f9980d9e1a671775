/* The quantize job runner against a context on a temporary folder: field
 * errors at validation, and a run on the tiny fixture (with the byte-level
 * test tokenizer and a small JSONL dataset) that reports per-layer metrics,
 * registers the checkpoint files and returns sizes and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/jobs/quantize.h"
#include "engine/model/llama.h"

typedef struct {
    int events, metrics, models;
    double progress;
} fake;

static int f_progress(rf_job_ctx *c, double f, const char *m)
{
    ((fake *)c->self)->progress = f;
    return 0;
}
static int f_event(rf_job_ctx *c, const char *kind, const json_t *d)
{
    fake *f = c->self;
    f->events++;
    f->metrics += !strcmp(kind, "metrics");
    return 0;
}
static int f_checkpoint(rf_job_ctx *c, const json_t *s)
{
    return 0;
}
static int f_artifact(rf_job_ctx *c, const char *kind, const char *path, const char *name)
{
    fail_msg("the quantize job registers a model, not artifacts (%s)", name);
    return RF_EINTERNAL;
}
/* References are local paths here, as with `refinery run`. */
static int f_resolve(rf_job_ctx *c, const char *kind, const char *ref, char **path, rf_error *err)
{
    *path = strdup(ref);
    return 0;
}
/* The folder stays where it is, so that the test can load it. */
static int f_model(rf_job_ctx *c, const char *dir, const char *name, char *id, size_t cap)
{
    char f[4200];
    snprintf(f, sizeof f, "%s/quantize_config.json", dir);
    assert_int_equal(access(f, R_OK), 0);
    assert_string_equal(name, "job_test-gptq");
    ((fake *)c->self)->models++;
    snprintf(id, cap, "mdl_test");
    return 0;
}
static bool f_stop(rf_job_ctx *c)
{
    return false;
}

static void expect_field(const char *json, const char *field)
{
    json_t *p = json_loads(json, 0, NULL);
    assert_non_null(p);
    rf_error err = {0};
    assert_int_equal(rf_runner_validate(&rf_quantize_runner, p, &err), RF_EINVAL);
    printf("  %-70s -> [%s] %s\n", json, err.field, err.msg);
    assert_string_equal(err.field, field);
    json_decref(p);
}

static void test_validate(void **state)
{
    expect_field("{}", "model");
    expect_field("{\"model\":\"m\"}", "dataset");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"bits\":3}", "bits");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"group_size\":0}", "group_size");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"method\":\"awq\"}", "method");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"damp_percent\":2}", "damp_percent");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"sym\":1}", "sym");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"calibration\":{\"samples\":0}}",
                 "calibration.samples");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"calibration\":{\"sample\":3}}",
                 "calibration.sample");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"adapter\":5}", "adapter");
    expect_field("{\"model\":\"m\",\"dataset\":\"d\",\"evaluate\":{\"samples\":0}}",
                 "evaluate.samples");
    json_t *ok = json_loads("{\"model\":\"m\",\"dataset\":\"d\",\"calibration\":{\"samples\":8,"
                            "\"seq_len\":64,\"seed\":3},\"bits\":4,\"group_size\":-1,\"sym\":false,"
                            "\"desc_act\":true,\"damp_percent\":0.05,\"method\":\"rtn\"}",
                            0, NULL);
    rf_error err = {0};
    assert_int_equal(rf_runner_validate(&rf_quantize_runner, ok, &err), 0);
    json_decref(ok);
}

static void test_run(void **state)
{
    char dir[] = "/tmp/rf_qjob_XXXXXX", cmd[1024], ds[128], model[128], work[128];
    assert_non_null(mkdtemp(dir));
    snprintf(model, sizeof model, "%s/src", dir);
    snprintf(work, sizeof work, "%s/work", dir);
    snprintf(ds, sizeof ds, "%s/data.jsonl", dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s %s && cp tests/reference/fixtures/llama_f32_gqa/config.json "
             "tests/reference/fixtures/llama_f32_gqa/model.safetensors "
             "tests/reference/tokenizers/bytelevel/tokenizer.json "
             "tests/reference/tokenizers/bytelevel/tokenizer_config.json %s/",
             model, work, model);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(ds, "w");
    const char *rows[] = {"hello there", "low lower lowest", "new newer newest", "wide wider"};
    for (int i = 0; i < 4; i++)
        fprintf(f, "{\"prompt\":\"%s\",\"response\":\"%s %s\"}\n", rows[i], rows[(i + 1) % 4],
                rows[(i + 2) % 4]);
    fprintf(f, "{\"prompt\":\"%s\",\"response\":\"%s\",\"split\":\"validation\"}\n", rows[3],
            rows[0]);
    fclose(f);
    char params[512];
    snprintf(params, sizeof params,
             "{\"model\":\"%s\",\"dataset\":\"%s\",\"calibration\":{\"samples\":4,\"seq_len\":32},"
             "\"group_size\":32,\"desc_act\":true,\"evaluate\":{\"perplexity\":true}}",
             model, ds);
    json_t *p = json_loads(params, 0, NULL);
    fake fk = {0};
    rf_job_ctx ctx = {.self = &fk,
                      .job_id = "job_test",
                      .attempt = 1,
                      .workdir = work,
                      .progress = f_progress,
                      .event = f_event,
                      .checkpoint = f_checkpoint,
                      .artifact = f_artifact,
                      .model = f_model,
                      .resolve = f_resolve,
                      .should_stop = f_stop};
    json_t *res = NULL;
    rf_error err = {0};
    int rc = rf_quantize_runner.run(p, &ctx, &res, &err);
    if (rc) fail_msg("%s", err.msg);
    char *s = json_dumps(res, JSON_COMPACT);
    printf("  result: %.300s...\n", s);
    free(s);
    assert_int_equal(fk.metrics, 14);
    assert_int_equal(fk.models, 1);
    assert_string_equal(json_string_value(json_object_get(res, "model")), "mdl_test");
    assert_true(fk.progress == 1.0);
    assert_int_equal(json_array_size(json_object_get(res, "layers")), 14);
    assert_true(json_real_value(json_object_get(res, "compression")) > 3.0);
    json_t *ppl = json_object_get(json_object_get(res, "evaluation"), "perplexity");
    printf("  perplexity on the validation split: source %.4f, quantized %.4f\n",
           json_real_value(json_object_get(ppl, "source")),
           json_real_value(json_object_get(ppl, "quantized")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "evaluation"), "split")),
        "validation");
    assert_true(json_real_value(json_object_get(ppl, "source")) > 1.0);
    assert_true(json_real_value(json_object_get(ppl, "quantized")) > 1.0);
    json_t *rb = json_object_get(res, "resident_weight_bytes");
    printf("  resident weight bytes: source %lld, quantized %lld\n",
           json_integer_value(json_object_get(rb, "source")),
           json_integer_value(json_object_get(rb, "quantized")));
    assert_true(json_integer_value(json_object_get(rb, "quantized")) > 0);
    assert_true(json_integer_value(json_object_get(rb, "quantized")) <
                json_integer_value(json_object_get(rb, "source")));
    /* the checkpoint loads and runs, tokenizer copied */
    char out[256];
    snprintf(out, sizeof out, "%s/model", work);
    rf_llama_model m;
    assert_int_equal(rf_llama_load(&m, out, NULL, &err), 0);
    assert_int_equal(m.n_gptq, 14);
    rf_llama_free(&m);
    snprintf(cmd, sizeof cmd, "%s/model/tokenizer.json", work);
    assert_int_equal(access(cmd, R_OK), 0);
    /* too few rows for the samples asked: a final error naming the field */
    json_object_set_new(json_object_get(p, "calibration"), "samples", json_integer(5));
    assert_int_equal(rf_quantize_runner.run(p, &ctx, &res, &err), RF_EINVAL);
    assert_string_equal(err.field, "calibration.samples");
    json_decref(res);
    json_decref(p);

    /* Defaults on a small model: group_size from the model (128 and 64 do
     * not divide its MLP width 96: 32), samples every row of the train split
     * when it has fewer than 128. */
    char work2[160], q2[256];
    snprintf(work2, sizeof work2, "%s/work2", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", work2);
    assert_int_equal(system(cmd), 0);
    ctx.workdir = work2;
    snprintf(params, sizeof params,
             "{\"model\":\"%s\",\"dataset\":\"%s\",\"calibration\":{\"seq_len\":32}}", model, ds);
    p = json_loads(params, 0, NULL);
    res = NULL;
    if (rf_quantize_runner.run(p, &ctx, &res, &err)) fail_msg("%s", err.msg);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(res, "calibration"), "samples")), 4);
    snprintf(q2, sizeof q2, "%s/model/quantize_config.json", work2);
    json_t *qc = json_load_file(q2, 0, NULL);
    assert_non_null(qc);
    assert_int_equal(json_integer_value(json_object_get(qc, "group_size")), 32);
    json_decref(qc);
    json_decref(res);
    /* A group_size that does not fit: the message names the param and what would. */
    json_object_set_new(p, "group_size", json_integer(128));
    res = NULL;
    assert_int_equal(rf_quantize_runner.run(p, &ctx, &res, &err), RF_EINVAL);
    printf("  %s: %s\n", err.field, err.msg);
    assert_string_equal(err.field, "group_size");
    assert_non_null(strstr(err.msg, "'group_size' 128"));
    assert_non_null(strstr(err.msg, "32, 16, 8"));
    /* Too many samples asked: the message says the most that would do. */
    json_object_del(p, "group_size");
    json_object_set_new(json_object_get(p, "calibration"), "samples", json_integer(128));
    assert_int_equal(rf_quantize_runner.run(p, &ctx, &res, &err), RF_EINVAL);
    printf("  %s: %s\n", err.field, err.msg);
    assert_non_null(strstr(err.msg, "at most 4"));
    json_decref(p);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_validate), cmocka_unit_test(test_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
