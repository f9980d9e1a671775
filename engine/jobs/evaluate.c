#include "engine/jobs/evaluate.h"
#include "engine/core/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/eval/eval_dataset.h"
#include "engine/model/lm.h"

static int options(const json_t *params, rf_eval_opts *o, rf_error *err)
{
    static const char *const known[] = {"model", "dataset", "split",          "metrics",
                                        "limit", "chat",    "max_new_tokens", NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v)
    {
        bool ok = false;
        for (const char *const *n = known; *n && !ok; n++)
            ok = !strcmp(*n, k);
        if (!ok)
            return rf_error_field(err, RF_EINVAL, k,
                                  "unknown parameter '%s' (model, dataset, split, metrics, limit, "
                                  "chat, max_new_tokens)",
                                  k);
    }
    const char *model = json_string_value(json_object_get(params, "model"));
    const char *dataset = json_string_value(json_object_get(params, "dataset"));
    if (!model || !*model)
        return rf_error_field(err, RF_EINVAL, "model",
                              "'model' is required: a registered model's id or name");
    if (!dataset || !*dataset)
        return rf_error_field(err, RF_EINVAL, "dataset", "'dataset' is required: a dataset id");
    memset(o, 0, sizeof *o);
    json_t *split = json_object_get(params, "split");
    if (split && !json_is_string(split))
        return rf_error_field(err, RF_EINVAL, "split", "'split' must be a string");
    int rc = rf_eval_parse_split(json_string_value(split), &o->split, err);
    if (rc) return rc;
    json_t *metrics = json_object_get(params, "metrics");
    if (metrics) {
        if ((rc = rf_eval_metrics_json(metrics, &o->metrics, err))) return rc;
    } else {
        o->metrics = RF_METRIC_PERPLEXITY | RF_METRIC_ACCURACY;
    }
    json_t *limit = json_object_get(params, "limit");
    if (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1))
        return rf_error_field(err, RF_EINVAL, "limit", "'limit' must be a positive integer");
    o->limit = limit ? (long)json_integer_value(limit) : 0;
    json_t *chat = json_object_get(params, "chat");
    if (chat && !json_is_boolean(chat))
        return rf_error_field(err, RF_EINVAL, "chat", "'chat' must be true or false");
    o->chat = json_is_true(chat);
    json_t *mnt = json_object_get(params, "max_new_tokens");
    if (mnt &&
        (!json_is_integer(mnt) || json_integer_value(mnt) < 1 || json_integer_value(mnt) > 4096))
        return rf_error_field(err, RF_EINVAL, "max_new_tokens",
                              "'max_new_tokens' must be an integer in [1, 4096]");
    o->max_new_tokens = mnt ? (int)json_integer_value(mnt) : 64;
    return 0;
}

static int validate(const json_t *params, rf_error *err)
{
    rf_eval_opts o;
    return options(params, &o, err);
}

typedef struct progress {
    rf_job_ctx *ctx;
    double last;
} progress;

static bool on_row(void *arg, long done, long total)
{
    progress *p = arg;
    if (p->ctx->should_stop && p->ctx->should_stop(p->ctx)) return false;
    /* a progress event at most twice a second, and at the end */
    double t = rf_now_s();
    if (p->ctx->progress && (done == total || t - p->last >= 0.5)) {
        p->last = t;
        char msg[64];
        snprintf(msg, sizeof msg, "%ld of %ld rows", done, total);
        p->ctx->progress(p->ctx, (double)done / (double)total, msg);
    }
    return true;
}

/* Long evaluations survive a lost worker: the totals so far, every 30 s. */
static void on_checkpoint(void *arg, const json_t *state)
{
    progress *p = arg;
    if (p->ctx->checkpoint) p->ctx->checkpoint(p->ctx, state);
}

static int run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    rf_eval_opts o;
    int rc = options(params, &o, err);
    if (rc) return rc;
    if (!ctx->resolve)
        return rf_errorf(err, RF_EINTERNAL, "evaluate: this context cannot resolve references");
    const char *model = json_string_value(json_object_get(params, "model"));
    const char *dataset = json_string_value(json_object_get(params, "dataset"));
    char *model_dir = NULL, *data_path = NULL;
    rf_lm lm;
    bool loaded = false;
    if ((rc = ctx->resolve(ctx, "model", model, &model_dir, err)) < 0 ||
        (rc = ctx->resolve(ctx, "dataset", dataset, &data_path, err)) < 0)
        goto out;
    if ((rc = rf_lm_load(&lm, model_dir, err)) < 0) {
        rf_error_wrap(err, "evaluate: model '%s'", model);
        /* a checkpoint that does not load will not load on a retry either */
        if (rc == RF_EIO || rc == RF_EUNSUPPORTED) rc = err->code = RF_EINVAL;
        goto out;
    }
    loaded = true;
    if (ctx->event) {
        json_t *d = json_pack("{s:s,s:s,s:I}", "level", "info", "message", "model loaded",
                              "model_bytes", (json_int_t)rf_lm_bytes(&lm));
        ctx->event(ctx, "log", d);
        json_decref(d);
    }
    progress pr = {.ctx = ctx, .last = rf_now_s()};
    o.on_row = on_row;
    o.on_checkpoint = on_checkpoint;
    o.checkpoint_s = 30;
    o.resume = ctx->resume;
    o.ctx = &pr;
    json_t *m = NULL;
    if ((rc = rf_eval_dataset(&lm, data_path, &o, &m, err)) < 0) goto out;
    json_object_set_new(m, "model", json_string(model));
    json_object_set_new(m, "dataset", json_string(dataset));
    json_t *split = json_object_get(params, "split");
    json_object_set_new(m, "split", split ? json_copy(split) : json_string("all"));
    if (ctx->event) ctx->event(ctx, "metrics", m);
    *result = m;
out:
    if (loaded) rf_lm_free(&lm);
    free(model_dir);
    free(data_path);
    return rc;
}

const rf_runner_ref rf_evaluate_refs[] = {{"model", "model"}, {"dataset", "dataset"}, {NULL, NULL}};

const rf_runner rf_evaluate_runner = {"evaluate", validate, run};
