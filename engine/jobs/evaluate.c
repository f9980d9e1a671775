#include "engine/jobs/evaluate.h"
#include "engine/core/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/eval/eval_dataset.h"
#include "engine/model/lm.h"

static const char *const splits[] = {"all", "train", "validation", "test", NULL};
static const char *const activations[] = {"bf16", "f32", NULL};
static const char *const metric_names[] = {"perplexity", "accuracy", "exact_match", "latency",
                                           NULL};
static const rf_param metric_item = {.type = RF_PARAM_ENUM, .choices = metric_names};

static const rf_param params[] = {
    {.name = "model",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "model",
     .help = "a registered model's id or name"},
    {.name = "dataset",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "dataset",
     .help = "a dataset id"},
    {.name = "split",
     .type = RF_PARAM_ENUM,
     .choices = splits,
     .def = "all",
     .help = "which rows of the dataset to score"},
    {.name = "metrics",
     .type = RF_PARAM_ARRAY,
     .items = &metric_item,
     .lo = 1,
     .hi = 4,
     .def = "[\"perplexity\", \"accuracy\"]",
     .help = "perplexity of the responses, multiple-choice accuracy (acc and acc_norm, as "
             "lm-evaluation-harness), exact match of a greedy generation, latency (batch-1 "
             "prefill and decode tokens/s and ms per token on this machine)"},
    {.name = "limit",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 1e12,
     .help = "score at most this many rows (default: every row)"},
    {.name = "chat",
     .type = RF_PARAM_BOOL,
     .def = "false",
     .help = "format prompt/response rows with the model's chat template"},
    {.name = "max_new_tokens",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 4096,
     .def = "64",
     .help = "generation length for exact_match"},
    {.name = "activations",
     .type = RF_PARAM_ENUM,
     .choices = activations,
     .def = "bf16",
     .help = "activations of the BF16 and 4-bit matmuls: bf16 (what W4A16 means and a bf16 "
             "linear computes in PyTorch; the AVX-512 BF16 kernels where the CPU has them) or "
             "f32 (every activation f32, exact against an f32 reference, slower). F32 and F16 "
             "weights compute in f32 either way"},
    {0}};

/* params has passed the table check. */
static int options(const json_t *p, rf_eval_opts *o, rf_error *err)
{
    memset(o, 0, sizeof *o);
    const char *split = rf_param_str(p, params, "split", "all");
    int rc = rf_eval_parse_split(split, &o->split, err);
    if (rc) return rc;
    json_t *metrics = json_object_get(p, "metrics");
    json_t *def = metrics ? NULL : json_loads(rf_param_find(params, "metrics")->def, 0, NULL);
    rc = rf_eval_metrics_json(metrics ? metrics : def, &o->metrics, err);
    json_decref(def);
    if (rc) return rc;
    o->limit = (long)rf_param_int(p, params, "limit", 0);
    o->chat = rf_param_bool(p, params, "chat", false);
    o->max_new_tokens = (int)rf_param_int(p, params, "max_new_tokens", 64);
    return 0;
}

static int validate(const json_t *p, rf_error *err)
{
    rf_eval_opts o;
    return options(p, &o, err);
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

static int run(const json_t *p, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    rf_eval_opts o;
    int rc = rf_params_check(p, params, "", err);
    if (rc < 0 || (rc = options(p, &o, err)) < 0) return rc;
    if (rc) return rc;
    if (!ctx->resolve)
        return rf_errorf(err, RF_EINTERNAL, "evaluate: this context cannot resolve references");
    const char *model = rf_param_str(p, params, "model", NULL);
    const char *dataset = rf_param_str(p, params, "dataset", NULL);
    char *model_dir = NULL, *data_path = NULL;
    rf_lm lm;
    bool loaded = false;
    if ((rc = ctx->resolve(ctx, "model", model, &model_dir, err)) < 0 ||
        (rc = ctx->resolve(ctx, "dataset", dataset, &data_path, err)) < 0)
        goto out;
    rf_activations act;
    if ((rc = rf_activations_parse(rf_param_str(p, params, "activations", "bf16"), &act, err)) < 0)
        goto out;
    if ((rc = rf_lm_load(&lm, model_dir, act, err)) < 0) {
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
    json_object_set_new(m, "resident_bytes",
                        json_integer((json_int_t)rf_llama_resident_bytes(&lm.model)));
    json_object_set_new(m, "model", json_string(model));
    json_object_set_new(m, "dataset", json_string(dataset));
    json_object_set_new(m, "split", json_string(rf_param_str(p, params, "split", "all")));
    json_object_set_new(m, "activations", json_string(rf_activations_name(act)));
    if (ctx->event) ctx->event(ctx, "metrics", m);
    *result = m;
out:
    if (loaded) rf_lm_free(&lm);
    free(model_dir);
    free(data_path);
    return rc;
}

const rf_runner rf_evaluate_runner = {
    .type = "evaluate",
    .validate = validate,
    .run = run,
    .description = "A model's metrics on a dataset: perplexity of the responses, multiple-choice "
                   "accuracy by log-likelihood (acc, acc_norm), exact match of a greedy "
                   "generation. Long evaluations checkpoint their running totals.",
    .params = params};
