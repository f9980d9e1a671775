#include "engine/jobs/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jobs/dataset.h"
#include "engine/jobs/evaluate.h"
#include "engine/jobs/hpo.h"
#include "engine/jobs/pipeline_plan.h"
#include "engine/jobs/pipeline_result.h"
#include "engine/jobs/quantize.h"
#include "engine/jobs/train.h"

/* ---- checks at POST ---- */

/* One stage's params through its own runner's checks (the table, validate
 * and, with a resolver, check), its errors named as the pipeline's fields. */
static int check_stage(const char *stage, const rf_runner *r, json_t *params,
                       rf_ref_resolver resolve, void *user, rf_error *err)
{
    int rc = params ? rf_runner_validate(r, params, err)
                    : rf_errorf(err, RF_ENOMEM, "pipeline: out of memory");
    if (rc == 0 && resolve && r->check) rc = r->check(params, resolve, user, err);
    json_decref(params);
    if (rc < 0) {
        char msg[sizeof err->msg], field[sizeof err->field];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rf_pipeline_map_field(stage, err);
        snprintf(field, sizeof field, "%s", err->field);
        rf_error_field(err, rc, field, "%s stage: %s", stage, msg);
    }
    return rc;
}

/* Every stage's params, with a placeholder for the dataset the first stage
 * will make. */
static int check_all(const json_t *p, rf_ref_resolver resolve, void *user, rf_error *err)
{
    rf_pipeline_opts o;
    int rc = rf_pipeline_opts_parse(p, &o, err);
    if (rc < 0) return rc;
    const char *ds = o.dataset ? o.dataset : "ds_the_dataset_stage_makes";
    if (o.task && (rc = check_stage("dataset", &rf_dataset_runner,
                                    rf_pipeline_dataset_params(&o, "job"), NULL, NULL, err)) < 0)
        return rc;
    json_t *base = rf_pipeline_base_train(&o, ds);
    if (o.hpo && (rc = check_stage("hpo", &rf_hpo_runner, rf_pipeline_hpo_params(&o, ds), resolve,
                                   user, err)) < 0)
        goto out;
    if ((rc = check_stage("train-muon", rf_train_runner(),
                          base ? rf_pipeline_final_train(base, "muon") : NULL, resolve, user,
                          err)) < 0)
        goto out;
    rc = check_stage("quantize", &rf_quantize_runner, rf_pipeline_quantize_params(&o, ds, NULL),
                     resolve, user, err);
out:
    json_decref(base);
    return rc;
}

static int validate(const json_t *p, rf_error *err)
{
    return check_all(p, NULL, NULL, err);
}

static int check(const json_t *p, rf_ref_resolver resolve, void *user, rf_error *err)
{
    return check_all(p, resolve, user, err);
}

/* ---- the run: submit what is ready, wait for the rest ---- */

typedef struct pl {
    rf_job_ctx *ctx;
    rf_pipeline_opts o;
    json_t *kids;
    int expected, done, submitted;
    char running[512]; /* the stages running now, for the progress line */
    bool chat;         /* evaluations through the chat template */
    rf_error *err;
} pl;

static const json_t *kid(const pl *s, const char *key)
{
    size_t i;
    json_t *k;
    json_array_foreach(s->kids, i, k)
    {
        const char *kk = json_string_value(json_object_get(k, "key"));
        if (kk && !strcmp(kk, key)) return k;
    }
    return NULL;
}

static const json_t *kid_result(const pl *s, const char *key)
{
    const json_t *k = kid(s, key);
    const char *st = k ? json_string_value(json_object_get(k, "status")) : NULL;
    return st && !strcmp(st, "succeeded") ? json_object_get(k, "result") : NULL;
}

static const char *result_str(const pl *s, const char *key, const char *field)
{
    return json_string_value(json_object_get(kid_result(s, key), field));
}

/* A stage of the plan: counted, submitted once what it needs exists
 * (params non-NULL; stolen), its end counted. */
static int stage(pl *s, const char *key, const char *type, json_t *params)
{
    s->expected++;
    const json_t *k = kid(s, key);
    if (k) {
        json_decref(params);
        const char *st = json_string_value(json_object_get(k, "status"));
        if (st && !strcmp(st, "succeeded")) {
            s->done++;
        } else if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
            const char *e = json_string_value(json_object_get(k, "error"));
            return rf_errorf(s->err, RF_EINVAL, "stage %s (%s) %s: %s", key,
                             json_string_value(json_object_get(k, "id")), st,
                             e ? e : "no error recorded");
        } else {
            size_t n = strlen(s->running);
            snprintf(s->running + n, sizeof s->running - n, "%s%s", n ? ", " : "", key);
        }
        return 0;
    }
    if (!params) return 0; /* what it needs does not exist yet */
    char id[64];
    bool created = false;
    int rc = s->ctx->submit_child(s->ctx, key, type, params, NULL, id, sizeof id, &created, s->err);
    json_decref(params);
    if (rc < 0) {
        char msg[sizeof s->err->msg], field[sizeof s->err->field];
        snprintf(msg, sizeof msg, "%s", s->err->msg);
        rf_pipeline_map_field(key, s->err);
        snprintf(field, sizeof field, "%s", s->err->field);
        return rf_error_field(s->err, rc, field, "stage %s could not be submitted: %s", key, msg);
    }
    s->submitted++;
    json_t *ev = json_pack("{s:s,s:s,s:s}", "stage", key, "job", id, "status", "submitted");
    s->ctx->event(s->ctx, "stage", ev);
    json_decref(ev);
    return 0;
}

/* The split of the task's dataset every variant is scored on: test, else
 * validation (with a note), never the rows it trained on. */
static int task_split(pl *s, const char *ds, const char **split)
{
    char *path = NULL;
    int rc = s->ctx->resolve(s->ctx, "dataset", ds, &path, s->err);
    if (rc < 0) return rc;
    long n[3] = {0};
    rc = rf_pipeline_split_rows(path, n, s->err);
    free(path);
    if (rc < 0) return rc;
    if (n[2]) return *split = "test", 0;
    if (n[1]) return *split = "validation", 0;
    return rf_error_field(s->err, RF_EINVAL, "dataset",
                          "dataset %s has no test or validation rows to evaluate on (every row is "
                          "in the train split): give rows with \"split\": \"test\"",
                          ds);
}

/* evaluate.chat, or whether the student's tokenizer_config.json has a
 * chat template (it was trained through it). */
static int eval_chat(pl *s)
{
    const json_t *c = json_object_get(json_object_get(s->o.p, "evaluate"), "chat");
    if (json_is_boolean(c)) return s->chat = json_is_true(c), 0;
    char *dir = NULL, path[4096];
    int rc = s->ctx->resolve(s->ctx, "model", s->o.student, &dir, s->err);
    if (rc < 0) return rc;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    free(dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    const json_t *t = json_object_get(cfg, "chat_template");
    s->chat = json_is_string(t) || (json_is_array(t) && json_array_size(t));
    json_decref(cfg);
    return 0;
}

/* The model each variant is, once it exists. */
static const char *variant_model(const pl *s, int v)
{
    switch (v) {
    case RF_PV_BASE:
        return s->o.student;
    case RF_PV_TEACHER:
        return s->o.teacher;
    case RF_PV_BASE_GPTQ:
        return result_str(s, "quantize-base", "model");
    case RF_PV_MUON:
        return result_str(s, "train-muon", "merged_model");
    case RF_PV_MUON_GPTQ:
        return result_str(s, "quantize-muon", "model");
    case RF_PV_ADAMW:
        return result_str(s, "train-adamw", "merged_model");
    case RF_PV_ADAMW_GPTQ:
        return result_str(s, "quantize-adamw", "model");
    }
    return NULL;
}

static int pass(pl *s, const char **ds_out, const char **split_out)
{
    rf_pipeline_opts *o = &s->o;
    int rc;
    s->expected = s->done = s->submitted = 0;
    s->running[0] = '\0';
    const char *ds = o->dataset;
    if (o->task) {
        if ((rc = stage(s, "dataset", "dataset", rf_pipeline_dataset_params(o, s->ctx->job_id))) <
            0)
            return rc;
        ds = result_str(s, "dataset", "dataset");
    }
    /* the rest is counted even before it can start, so progress means something */
    const int n_eval = 1 + (int)json_array_size(o->eval_datasets);
    int later = o->hpo + 1 + o->adamw + 1 + o->adamw + o->gptq_only;
    for (int v = 0; v < RF_PV_COUNT; v++)
        later += rf_pipeline_variant_on(o, v) ? n_eval : 0;
    if (!ds) {
        s->expected += later;
        return 0;
    }
    *ds_out = ds;
    const char *split = *split_out;
    if (!split && (rc = task_split(s, ds, &split)) < 0) return rc;
    *split_out = split;
    const json_t *best = NULL;
    if (o->hpo) {
        if ((rc = stage(s, "hpo", "hpo", rf_pipeline_hpo_params(o, ds))) < 0) return rc;
        best = json_object_get(json_object_get(kid_result(s, "hpo"), "best"), "train");
    }
    json_t *base = o->hpo ? NULL : rf_pipeline_base_train(o, ds);
    const json_t *train = o->hpo ? best : base;
    rc = stage(s, "train-muon", "train", train ? rf_pipeline_final_train(train, "muon") : NULL);
    if (rc == 0 && o->adamw)
        rc = stage(s, "train-adamw", "train",
                   train ? rf_pipeline_final_train(train, "adamw") : NULL);
    json_decref(base);
    if (rc < 0) return rc;
    if (o->gptq_only &&
        (rc = stage(s, "quantize-base", "quantize", rf_pipeline_quantize_params(o, ds, NULL))) < 0)
        return rc;
    const json_t *tm = kid(s, "train-muon"), *ta = kid(s, "train-adamw");
    if ((rc = stage(
             s, "quantize-muon", "quantize",
             kid_result(s, "train-muon")
                 ? rf_pipeline_quantize_params(o, ds, json_string_value(json_object_get(tm, "id")))
                 : NULL)) < 0)
        return rc;
    if (o->adamw && (rc = stage(s, "quantize-adamw", "quantize",
                                kid_result(s, "train-adamw")
                                    ? rf_pipeline_quantize_params(
                                          o, ds, json_string_value(json_object_get(ta, "id")))
                                    : NULL)) < 0)
        return rc;
    for (int v = 0; v < RF_PV_COUNT; v++) {
        if (!rf_pipeline_variant_on(o, v)) continue;
        const char *model = variant_model(s, v);
        for (int i = 0; i < n_eval; i++) {
            char key[64];
            snprintf(key, sizeof key, "eval-%s-%d", rf_pipeline_variant_key(v), i);
            const char *d = i ? json_string_value(json_array_get(o->eval_datasets, i - 1)) : ds;
            json_t *ep = model
                             ? rf_pipeline_eval_params(model, d, i ? "all" : split, i == 0, s->chat)
                             : NULL;
            if ((rc = stage(s, key, "evaluate", ep)) < 0) return rc;
        }
    }
    return 0;
}

/* Stage events for children that ended since the last run (the set of
 * those already told is kept in the checkpoint). */
static void tell_ends(pl *s, json_t *told)
{
    size_t i;
    json_t *k;
    bool any = false;
    json_array_foreach(s->kids, i, k)
    {
        const char *key = json_string_value(json_object_get(k, "key"));
        const char *st = json_string_value(json_object_get(k, "status"));
        if (!key || !st || json_object_get(told, key)) continue;
        if (strcmp(st, "succeeded") && strcmp(st, "failed") && strcmp(st, "cancelled")) continue;
        json_t *ev =
            json_pack("{s:s,s:O,s:s}", "stage", key, "job", json_object_get(k, "id"), "status", st);
        json_t *sum = rf_pipeline_stage_summary(key, json_object_get(k, "result"));
        if (sum) json_object_set_new(ev, "summary", sum);
        s->ctx->event(s->ctx, "stage", ev);
        json_decref(ev);
        json_object_set_new(told, key, json_true());
        any = true;
    }
    if (any) {
        json_t *st = json_pack("{s:O}", "told", told);
        s->ctx->checkpoint(s->ctx, st);
        json_decref(st);
    }
}

static int run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    if (!ctx->submit_child || !ctx->children)
        return rf_errorf(err, RF_EUNSUPPORTED, "pipeline: this context cannot run child jobs");
    pl s = {.ctx = ctx, .err = err};
    int rc = rf_params_check(params, rf_pipeline_params, "", err);
    if (rc == 0) rc = rf_pipeline_opts_parse(params, &s.o, err);
    if (rc < 0) return rc;
    if ((rc = eval_chat(&s)) < 0) return rc;
    const json_t *t0 = ctx->resume ? json_object_get(ctx->resume, "told") : NULL;
    json_t *told = json_is_object(t0) ? json_deep_copy(t0) : json_object();
    const char *ds = NULL, *split = NULL;
    /* Passes until one submits nothing: under the service a submitted child
     * is queued, so one pass more; `refinery run` runs it inline, so the
     * next pass can use what it made. */
    do {
        if (ctx->should_stop(ctx)) {
            rc = rf_errorf(err, RF_ECANCELED, "pipeline: stopped");
            break;
        }
        json_decref(s.kids);
        s.kids = NULL;
        if ((rc = ctx->children(ctx, &s.kids, err)) < 0) break;
        tell_ends(&s, told);
        rc = pass(&s, &ds, &split);
    } while (rc == 0 && s.submitted);
    if (rc == 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%d of %d stages done%s%s", s.done, s.expected,
                 s.running[0] ? "; running: " : "", s.running);
        ctx->progress(ctx, s.expected ? (double)s.done / s.expected : 0, msg);
        if (s.done < s.expected)
            rc = RF_EWAIT;
        else
            rc = rf_pipeline_result(&s.o, s.kids, ds, split, ctx, result, err);
    }
    json_decref(told);
    json_decref(s.kids);
    return rc;
}

const rf_runner rf_pipeline_runner = {
    .type = "pipeline",
    .validate = validate,
    .run = run,
    .check = check,
    .description = "The whole refinement in one job: Self-Instruct data for a task from a data "
                   "teacher (or a given dataset) → Bayesian search of the training "
                   "hyper-parameters → LoRA with distillation from the knowledge teacher, Muon "
                   "(and AdamW to compare) → GPTQ W4A16 of each, and of the untouched student → "
                   "every variant evaluated. Each stage is a child job; the result is the "
                   "paper's table for the task, also as an HTML report (GET "
                   "/v1/jobs/{id}/report), and the final 4-bit model is registered.",
    .params = rf_pipeline_params};
