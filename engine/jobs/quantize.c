/* The quantize job runner: see quantize.h. */
#include "engine/jobs/quantize.h"

#include "engine/model/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant/calibration.h"
#include "engine/model/llama.h"
#include "engine/model/llama_config.h"
#include "engine/quant/quantize.h"
#include "engine/tokenizer/tokenizer.h"

static int only_keys(const json_t *obj, const char *prefix, const char *const *keys, rf_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        bool ok = false;
        for (const char *const *p = keys; *p; p++)
            ok |= !strcmp(*p, k);
        if (!ok) return rf_error_field(err, RF_EINVAL, k, "unknown parameter '%s%s'", prefix, k);
    }
    return 0;
}

static int get_int(const json_t *obj, const char *key, const char *field, long long lo,
                   long long hi, long long def, long long *out, rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rf_error_field(err, RF_EINVAL, field, "'%s' must be an integer in [%lld, %lld]",
                              field, lo, hi);
    *out = json_integer_value(v);
    return 0;
}

static int get_bool(const json_t *obj, const char *key, bool def, bool *out, rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v) return 0;
    if (!json_is_boolean(v))
        return rf_error_field(err, RF_EINVAL, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

typedef struct {
    const char *model, *dataset;
    const char *adapter; /* a PEFT adapter to merge into model first, or NULL */
    bool eval_ppl;
    int eval_samples;
    int samples, seq_len; /* seq_len 0: the default, 2048 capped by the model */
    long long seed;
    rf_quantize_opts q;
} qparams;

static int parse(const json_t *p, qparams *out, rf_error *err)
{
    static const char *const keys[] = {
        "model",        "dataset", "calibration",      "bits",
        "group_size",   "sym",     "desc_act",         "static_groups",
        "damp_percent", "method",  "quantize_lm_head", "evaluate",
        "adapter",      NULL};
    static const char *const ekeys[] = {"perplexity", "samples", NULL};
    static const char *const ckeys[] = {"samples", "seq_len", "seed", NULL};
    memset(out, 0, sizeof *out);
    rf_quantize_opts_default(&out->q);
    if (!json_is_object(p))
        return rf_error_field(err, RF_EINVAL, "params", "params must be an object");
    int rc = only_keys(p, "", keys, err);
    if (rc < 0) return rc;
    out->model = json_string_value(json_object_get(p, "model"));
    if (!out->model || !*out->model)
        return rf_error_field(err, RF_EINVAL, "model", "'model' (a checkpoint folder) is required");
    json_t *ad = json_object_get(p, "adapter");
    if (ad && (!json_is_string(ad) || !*json_string_value(ad)))
        return rf_error_field(err, RF_EINVAL, "adapter", "'adapter' must be a train job's id");
    out->adapter = ad ? json_string_value(ad) : NULL;
    out->dataset = json_string_value(json_object_get(p, "dataset"));
    if (!out->dataset || !*out->dataset)
        return rf_error_field(err, RF_EINVAL, "dataset",
                              "'dataset' (a JSONL dataset or a text file) is required for "
                              "calibration");
    const json_t *cal = json_object_get(p, "calibration");
    long long v;
    if (cal) {
        if (!json_is_object(cal))
            return rf_error_field(err, RF_EINVAL, "calibration", "'calibration' must be an object");
        if ((rc = only_keys(cal, "calibration.", ckeys, err)) < 0) {
            char f[160];
            snprintf(f, sizeof f, "calibration.%s", err->field);
            snprintf(err->field, sizeof err->field, "%s", f);
            return rc;
        }
    }
    if ((rc = get_int(cal, "samples", "calibration.samples", 1, 1 << 20, 128, &v, err)) < 0)
        return rc;
    out->samples = (int)v;
    if ((rc = get_int(cal, "seq_len", "calibration.seq_len", 1, 1 << 20, 0, &v, err)) < 0)
        return rc;
    out->seq_len = (int)v;
    if ((rc = get_int(cal, "seed", "calibration.seed", 0, INT64_MAX, 0, &out->seed, err)) < 0)
        return rc;
    if ((rc = get_int(p, "bits", "bits", 4, 4, 4, &v, err)) < 0) return rc;
    out->q.gptq.bits = 4;
    if ((rc = get_int(p, "group_size", "group_size", -1, 1 << 20, 128, &v, err)) < 0) return rc;
    if (v == 0)
        return rf_error_field(err, RF_EINVAL, "group_size", "'group_size' is -1 or positive");
    out->q.gptq.group_size = (int)v;
    if ((rc = get_bool(p, "sym", true, &out->q.gptq.sym, err)) < 0 ||
        (rc = get_bool(p, "desc_act", false, &out->q.gptq.desc_act, err)) < 0 ||
        (rc = get_bool(p, "static_groups", false, &out->q.gptq.static_groups, err)) < 0 ||
        (rc = get_bool(p, "quantize_lm_head", false, &out->q.quantize_lm_head, err)) < 0)
        return rc;
    json_t *d = json_object_get(p, "damp_percent");
    if (d) {
        if (!json_is_number(d) || !(json_number_value(d) > 0 && json_number_value(d) <= 1))
            return rf_error_field(err, RF_EINVAL, "damp_percent",
                                  "'damp_percent' must be a number in (0, 1]");
        out->q.gptq.percdamp = json_number_value(d);
    }
    const json_t *ev = json_object_get(p, "evaluate");
    if (ev) {
        if (!json_is_object(ev))
            return rf_error_field(err, RF_EINVAL, "evaluate", "'evaluate' must be an object");
        if ((rc = only_keys(ev, "evaluate.", ekeys, err)) < 0) {
            char f[160];
            snprintf(f, sizeof f, "evaluate.%s", err->field);
            snprintf(err->field, sizeof err->field, "%s", f);
            return rc;
        }
        if ((rc = get_bool(ev, "perplexity", true, &out->eval_ppl, err)) < 0) {
            snprintf(err->field, sizeof err->field, "evaluate.perplexity");
            return rc;
        }
        if ((rc = get_int(ev, "samples", "evaluate.samples", 1, 1 << 16, 32, &v, err)) < 0)
            return rc;
        out->eval_samples = (int)v;
    }
    json_t *m = json_object_get(p, "method");
    if (m) {
        const char *s = json_string_value(m);
        if (!s || (strcmp(s, "gptq") && strcmp(s, "rtn")))
            return rf_error_field(err, RF_EINVAL, "method", "'method' must be \"gptq\" or \"rtn\"");
        out->q.rtn = !strcmp(s, "rtn");
    }
    return 0;
}

static int validate(const json_t *params, rf_error *err)
{
    qparams q;
    return parse(params, &q, err);
}

typedef struct {
    rf_job_ctx *ctx;
    json_t *layers;
} hook_state;

static void on_layer(void *user, const rf_quantize_layer *l, int done, int total)
{
    hook_state *h = user;
    json_t *j =
        json_pack("{s:s, s:i, s:i, s:f, s:f, s:f}", "layer", l->name, "out", l->N, "in", l->K,
                  "rel_err", l->rel_err, "seconds", l->seconds, "damp_percent", l->percdamp_used);
    if (j) {
        h->ctx->event(h->ctx, "metrics", j);
        json_array_append_new(h->layers, j);
    }
    h->ctx->progress(h->ctx, (double)done / total, l->name);
}

static void on_damp(void *user, const char *layer, double from, double to)
{
    hook_state *h = user;
    char msg[256];
    snprintf(msg, sizeof msg,
             "%s: Cholesky of the dampened Hessian failed; damp_percent raised %.4g -> %.4g", layer,
             from, to);
    json_t *j = json_pack("{s:s, s:s}", "level", "warning", "message", msg);
    if (j) h->ctx->event(h->ctx, "log", j);
    json_decref(j);
}

static bool should_stop(void *user)
{
    hook_state *h = user;
    return h->ctx->should_stop(h->ctx);
}

/* Weight bytes a loaded model keeps resident: its mapped tensors, plus the
 * f32 scales and zeros the W4A16 matmul reads (rf_gptq_weight_prepare). */
static long long resident_bytes(const char *dir)
{
    rf_llama_model m;
    if (rf_llama_load(&m, dir, NULL, NULL) < 0) return -1;
    long long b = (long long)m.weight_bytes;
    for (int l = 0; l < m.config.n_layers; l++)
        for (int i = 0; i < RF_LIN_COUNT; i++)
            if (rf_linear_is_gptq(&m.w.layers[l].lin[i]))
                b += 8LL * m.w.layers[l].lin[i].q.G * m.w.layers[l].lin[i].q.N;
    if (rf_linear_is_gptq(&m.w.lm_head)) b += 8LL * m.w.lm_head.q.G * m.w.lm_head.q.N;
    rf_llama_free(&m);
    return b;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Perplexity of the model in dir over the sequences of c (those of at
 * least two tokens): exp(−Σ log p / Σ predicted tokens). */
static int perplexity(const char *dir, const rf_calib *c, int seq_len, double *ppl, rf_error *err)
{
    rf_llama_model m;
    rf_llama_acts a = {0};
    float *scratch = NULL;
    int rc = rf_llama_load(&m, dir, NULL, err);
    if (rc < 0) return rc;
    if ((rc = rf_llama_acts_init(&a, &m.config, 1, seq_len, seq_len, err)) < 0) goto out;
    if (!(scratch = malloc(sizeof(float) * (size_t)seq_len * m.config.vocab_size))) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory for evaluation");
        goto out;
    }
    double lp_sum = 0;
    long count = 0;
    size_t off = 0;
    for (int s = 0; s < c->n; s++) {
        int len = c->lens[s];
        if (len >= 2) {
            double lp;
            if ((rc = rf_llama_score(&m, &a, c->tokens + off, len, 1, scratch, &lp, NULL, err)) < 0)
                goto out;
            lp_sum += lp;
            count += len - 1;
        }
        off += (size_t)len;
    }
    if (count == 0) {
        rc = rf_error_field(err, RF_EINVAL, "evaluate", "no evaluation sequence has two tokens");
        goto out;
    }
    *ppl = exp(-lp_sum / (double)count);
out:
    free(scratch);
    rf_llama_acts_free(&a);
    rf_llama_free(&m);
    return rc;
}

/* Perplexity before and after, on the dataset's validation split (JSONL;
 * the train split when it has none) or on other windows of a text. */
static int evaluate(const qparams *q, const rf_tokenizer *tok, const char *out, int seq_len,
                    json_t **res, rf_error *err)
{
    rf_calib ev = {0};
    const char *split = "text";
    uint64_t seed = (uint64_t)q->seed + 1;
    int rc;
    if (ends_with(q->dataset, ".jsonl")) {
        split = "validation";
        rc = rf_calib_from_jsonl_split(tok, q->dataset, split, q->eval_samples, seq_len, seed, 1,
                                       &ev, err);
        if (rc < 0) {
            split = "train";
            rc = rf_calib_from_jsonl_split(tok, q->dataset, split, q->eval_samples, seq_len, seed,
                                           1, &ev, err);
        }
    } else {
        rc = rf_calib_from_text(tok, q->dataset, q->eval_samples, seq_len, seed, &ev, err);
    }
    if (rc < 0) return rc;
    double before = 0, after = 0;
    if ((rc = perplexity(q->model, &ev, seq_len, &before, err)) < 0 ||
        (rc = perplexity(out, &ev, seq_len, &after, err)) < 0) {
        rf_calib_free(&ev);
        return rc;
    }
    *res =
        json_pack("{s:s, s:i, s:{s:f, s:f, s:f}}", "split", split, "sequences", ev.n, "perplexity",
                  "source", before, "quantized", after, "increase", after - before);
    rf_calib_free(&ev);
    return *res ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
}

/* base + PEFT adapter → a merged checkpoint folder in the base's dtype. */
static int merge_adapter(const char *base_dir, const char *adapter_dir, const char *out,
                         rf_error *err)
{
    rf_llama_model base;
    rf_lora lo;
    int rc = rf_llama_load(&base, base_dir, NULL, err);
    if (rc < 0) return rc;
    if ((rc = rf_lora_load_peft(&lo, &base.config, adapter_dir, err)) == 0) {
        rc = rf_lora_export_merged(&lo, &base, base_dir, out, err);
        rf_lora_free(&lo);
    }
    rf_llama_free(&base);
    return rc;
}

static int run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    qparams q;
    int rc = parse(params, &q, err);
    if (rc < 0) return rc;
    /* model names a model, dataset a dataset: the context says where they are. */
    char *model_dir = NULL, *data_path = NULL;
    if (!ctx->resolve)
        return rf_errorf(err, RF_EINTERNAL, "quantize: this context cannot resolve references");
    if ((rc = ctx->resolve(ctx, "model", q.model, &model_dir, err)) < 0) {
        snprintf(err->field, sizeof err->field, "model");
        return rc;
    }
    if ((rc = ctx->resolve(ctx, "dataset", q.dataset, &data_path, err)) < 0) {
        free(model_dir);
        snprintf(err->field, sizeof err->field, "dataset");
        return rc;
    }
    q.model = model_dir;
    q.dataset = data_path;
    char merged[4200];
    if (q.adapter) {
        /* The refined student is base + adapter: merge, then quantize that. */
        char *adapter_dir = NULL;
        if ((rc = ctx->resolve(ctx, "adapter", q.adapter, &adapter_dir, err)) < 0) {
            free(model_dir), free(data_path);
            snprintf(err->field, sizeof err->field, "adapter");
            return rc;
        }
        snprintf(merged, sizeof merged, "%s/merged", ctx->workdir);
        rc = merge_adapter(model_dir, adapter_dir, merged, err);
        free(adapter_dir);
        if (rc < 0) {
            free(model_dir), free(data_path);
            snprintf(err->field, sizeof err->field, "adapter");
            return rc;
        }
        q.model = merged;
    }
    rf_llama_config cfg;
    if ((rc = rf_llama_config_load(&cfg, q.model, err)) < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        free(model_dir), free(data_path);
        return rf_error_field(err, rc, "model", "%s", msg);
    }
    int seq_len = q.seq_len ? q.seq_len : (cfg.max_pos < 2048 ? cfg.max_pos : 2048);
    rf_tokenizer *tok = NULL;
    rf_calib cal = {0};
    rf_quantize_report rep = {0};
    hook_state hs = {ctx, json_array()};
    if ((rc = rf_tokenizer_load(q.model, &tok, err)) < 0) goto fail;
    rc = ends_with(q.dataset, ".jsonl")
             ? rf_calib_from_jsonl(tok, q.dataset, q.samples, seq_len, (uint64_t)q.seed, &cal, err)
             : rf_calib_from_text(tok, q.dataset, q.samples, seq_len, (uint64_t)q.seed, &cal, err);
    if (rc < 0) goto fail;
    char out[4096];
    snprintf(out, sizeof out, "%s/model", ctx->workdir);
    rf_quantize_hooks hooks = {&hs, on_layer, on_damp, should_stop};
    if ((rc = rf_quantize_model(q.model, out, &q.q, cal.tokens, cal.lens, cal.n, seq_len, &hooks,
                                &rep, err)) < 0)
        goto fail;
    size_t tokens = 0;
    for (int i = 0; i < cal.n; i++)
        tokens += (size_t)cal.lens[i];
    *result =
        json_pack("{s:s, s:I, s:I, s:f, s:f, s:I, s:I, s:{s:i, s:i, s:I}, s:O}", "method",
                  q.q.rtn ? "rtn" : "gptq", "source_bytes", (json_int_t)rep.src_bytes,
                  "quantized_bytes", (json_int_t)rep.out_bytes, "compression",
                  rep.out_bytes ? (double)rep.src_bytes / rep.out_bytes : 0.0, "seconds",
                  rep.seconds, "peak_rss_bytes", (json_int_t)rep.peak_rss_kib * 1024,
                  "calibration_bytes", (json_int_t)rep.calib_bytes, "calibration", "samples", cal.n,
                  "seq_len", seq_len, "tokens", (json_int_t)tokens, "layers", hs.layers);
    if (*result)
        json_object_set_new(*result, "resident_weight_bytes",
                            json_pack("{s:I, s:I}", "source", (json_int_t)resident_bytes(q.model),
                                      "quantized", (json_int_t)resident_bytes(out)));
    rc = *result ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
    if (rc == 0 && q.eval_ppl) {
        json_t *ev = NULL;
        ctx->progress(ctx, 1.0, "evaluating perplexity before and after");
        if ((rc = evaluate(&q, tok, out, seq_len, &ev, err)) < 0) {
            json_decref(*result);
            *result = NULL;
            goto fail;
        }
        json_object_set_new(*result, "evaluation", ev);
    }
    if (rc == 0) {
        /* The checkpoint becomes a model of its own (its files are served
         * with it), named after the job and the method. */
        char name[128], id[64];
        snprintf(name, sizeof name, "%s-%s", ctx->job_id, q.q.rtn ? "rtn" : "gptq");
        if ((rc = ctx->model(ctx, out, name, id, sizeof id)) < 0) {
            json_decref(*result);
            *result = NULL;
            rc = rf_errorf(err, rc, "the quantized checkpoint could not be registered as a model");
            goto fail;
        }
        json_object_set_new(*result, "model", json_string(id));
    }
fail:
    free(model_dir), free(data_path);
    json_decref(hs.layers);
    rf_quantize_report_free(&rep);
    rf_calib_free(&cal);
    rf_tokenizer_free(tok);
    return rc;
}

/* A model already in GPTQ W4A16 cannot be quantized again: refused when
 * the job is created (its config.json says so), not when it runs. */
static int check(const json_t *params, rf_ref_resolver resolve, void *user, rf_error *err)
{
    const char *ref = json_string_value(json_object_get(params, "model"));
    char *dir = NULL, path[4096];
    if (!ref) return 0;
    int rc = resolve(user, "model", ref, &dir, err);
    if (rc < 0) {
        snprintf(err->field, sizeof err->field, "model");
        return rc;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    free(dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    const json_t *qc = json_object_get(cfg, "quantization_config");
    const bool quantized = qc && !json_is_null(qc);
    json_decref(cfg);
    if (quantized)
        return rf_error_field(err, RF_EINVAL, "model",
                              "model '%s' is already quantized (its config.json has a "
                              "quantization_config)",
                              ref);
    return 0;
}

const rf_runner rf_quantize_runner = {
    .type = "quantize",
    .validate = validate,
    .run = run,
    .check = check,
};
