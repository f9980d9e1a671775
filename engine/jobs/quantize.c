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

static const char *const methods[] = {"gptq", "rtn", NULL};

static const rf_param calib_fields[] = {
    {.name = "samples",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 1 << 20,
     .help = "calibration sequences (default 128, as the paper; fewer when the dataset's train "
             "split has fewer rows: then every row)"},
    {.name = "seq_len",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 1 << 20,
     .help = "tokens per calibration sequence (default 2048, capped by the model's "
             "max_position_embeddings)"},
    {.name = "seed", .type = RF_PARAM_INT, .lo = 0, .hi = 9007199254740991.0, .def = "0"},
    {0}};

static const rf_param eval_fields[] = {
    {.name = "perplexity",
     .type = RF_PARAM_BOOL,
     .def = "true",
     .help = "perplexity before and after, on the validation split (the train split without one)"},
    {.name = "samples", .type = RF_PARAM_INT, .lo = 1, .hi = 1 << 16, .def = "32"},
    {0}};

static const rf_param spec[] = {
    {.name = "model",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "model",
     .help = "the model to quantize: a registered model's id or name"},
    {.name = "dataset",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "dataset",
     .help = "calibration data: a dataset id or name (rows through the model's chat template)"},
    {.name = "adapter",
     .type = RF_PARAM_STRING,
     .ref = "adapter",
     .help = "a train job's id: its LoRA adapter is merged into model before quantizing"},
    {.name = "calibration", .type = RF_PARAM_OBJECT, .fields = calib_fields},
    {.name = "bits", .type = RF_PARAM_INT, .lo = 4, .hi = 4, .def = "4"},
    {.name = "group_size",
     .type = RF_PARAM_INT,
     .lo = -1,
     .hi = 1 << 20,
     .help = "input channels per scale, or -1 for one group per channel (default 128, or the "
             "largest of 64 and 32 that divides every linear layer's input size, else -1)"},
    {.name = "sym", .type = RF_PARAM_BOOL, .def = "true"},
    {.name = "desc_act",
     .type = RF_PARAM_BOOL,
     .def = "false",
     .help = "act-order: quantize columns by descending Hessian diagonal"},
    {.name = "static_groups", .type = RF_PARAM_BOOL, .def = "false"},
    {.name = "damp_percent",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 1,
     .flags = RF_PARAM_LO_OPEN,
     .def = "0.01"},
    {.name = "method",
     .type = RF_PARAM_ENUM,
     .choices = methods,
     .def = "gptq",
     .help = "gptq, or rtn (round to nearest, no calibration error feedback)"},
    {.name = "quantize_lm_head", .type = RF_PARAM_BOOL, .def = "false"},
    {.name = "evaluate",
     .type = RF_PARAM_OBJECT,
     .fields = eval_fields,
     .help = "measure perplexity before and after (off when absent)"},
    {0}};

typedef struct {
    const char *model, *dataset;
    const char *adapter; /* a PEFT adapter to merge into model first, or NULL */
    bool eval_ppl;
    int eval_samples;
    int samples;      /* 0: the default, 128 or every row of a smaller train split */
    int seq_len;      /* 0: the default, 2048 capped by the model */
    bool group_given; /* group_size 0 below until the model says */
    long long seed;
    rf_quantize_opts q;
} qparams;

static int parse(const json_t *p, qparams *out, rf_error *err)
{
    memset(out, 0, sizeof *out);
    rf_quantize_opts_default(&out->q);
    int rc = rf_params_check(p, spec, "", err);
    if (rc < 0) return rc;
    out->model = rf_param_str(p, spec, "model", NULL);
    out->dataset = rf_param_str(p, spec, "dataset", NULL);
    out->adapter = rf_param_str(p, spec, "adapter", NULL);
    const json_t *cal = json_object_get(p, "calibration");
    out->samples = (int)rf_param_int(cal, calib_fields, "samples", 0);
    out->seq_len = (int)rf_param_int(cal, calib_fields, "seq_len", 0);
    out->seed = rf_param_int(cal, calib_fields, "seed", 0);
    out->q.gptq.bits = (int)rf_param_int(p, spec, "bits", 4);
    const long long g = rf_param_int(p, spec, "group_size", 0);
    out->group_given = json_object_get(p, "group_size") != NULL;
    if (out->group_given && g == 0)
        return rf_error_field(err, RF_EINVAL, "group_size",
                              "'group_size' must be positive, or -1 for one group per channel");
    out->q.gptq.group_size = (int)g;
    out->q.gptq.sym = rf_param_bool(p, spec, "sym", true);
    out->q.gptq.desc_act = rf_param_bool(p, spec, "desc_act", false);
    out->q.gptq.static_groups = rf_param_bool(p, spec, "static_groups", false);
    out->q.quantize_lm_head = rf_param_bool(p, spec, "quantize_lm_head", false);
    out->q.gptq.percdamp = rf_param_num(p, spec, "damp_percent", 0.01);
    out->q.rtn = rf_param_enum(p, spec, "method", 0) == 1;
    const json_t *ev = json_object_get(p, "evaluate");
    if (ev) {
        out->eval_ppl = rf_param_bool(ev, eval_fields, "perplexity", true);
        out->eval_samples = (int)rf_param_int(ev, eval_fields, "samples", 32);
    }
    return 0;
}

/* The rule the table cannot say: group_size 0 has no meaning. */
static int validate(const json_t *p, rf_error *err)
{
    qparams q;
    return parse(p, &q, err);
}

/* The input sizes of a block's linear layers: q/k/v/gate/up read dim,
 * o reads the attention width, down the MLP width. */
static void input_sizes(const rf_llama_config *c, int K[3])
{
    K[0] = c->dim, K[1] = c->n_heads * c->head_dim, K[2] = c->hidden_dim;
}

static bool divides_all(int g, const int K[3])
{
    return g > 0 && K[0] % g == 0 && K[1] % g == 0 && K[2] % g == 0;
}

/* group_size from the model when the user gave none (128, else the largest
 * of 64 and 32 that divides every input size, which vLLM's kernels take,
 * else one group per channel); a given one that does not fit is refused
 * with the sizes that would. */
static int pick_group(qparams *q, const rf_llama_config *c, rf_error *err)
{
    int K[3];
    input_sizes(c, K);
    if (!q->group_given) {
        static const int choices[] = {128, 64, 32};
        q->q.gptq.group_size = -1;
        for (int i = 0; i < 3; i++)
            if (divides_all(choices[i], K)) {
                q->q.gptq.group_size = choices[i];
                break;
            }
        return 0;
    }
    const int g = q->q.gptq.group_size;
    if (g == -1 || divides_all(g, K)) return 0;
    char fits[128] = "";
    size_t n = 0;
    for (int d = 256; d >= 8 && n < sizeof fits - 16; d /= 2)
        if (divides_all(d, K)) n += (size_t)snprintf(fits + n, sizeof fits - n, "%d, ", d);
    return rf_error_field(err, RF_EINVAL, "group_size",
                          "'group_size' %d does not divide the input sizes of this model's "
                          "linear layers (%d, %d, %d); give one that divides all of them (%s"
                          "or -1 for one group per channel), or leave it out to let the model "
                          "decide",
                          g, K[0], K[1], K[2], fits);
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
    long long b = (long long)rf_llama_resident_bytes(&m);
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
    const char *model_ref = q.model;
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
        free(model_dir), free(data_path);
        rf_error_wrap(err, "model '%s'", model_ref);
        snprintf(err->field, sizeof err->field, "model");
        return rc;
    }
    if ((rc = pick_group(&q, &cfg, err)) < 0) {
        free(model_dir), free(data_path);
        return rc;
    }
    int seq_len = q.seq_len ? q.seq_len : (cfg.max_pos < 2048 ? cfg.max_pos : 2048);
    /* samples: 128 by default (the paper's), or every row of a smaller split */
    const int samples = q.samples ? q.samples : 128;
    rf_tokenizer *tok = NULL;
    rf_calib cal = {0};
    rf_quantize_report rep = {0};
    hook_state hs = {ctx, json_array()};
    if ((rc = rf_tokenizer_load(q.model, &tok, err)) < 0) {
        rf_error_wrap(err, "model '%s'", model_ref);
        goto fail;
    }
    rc = ends_with(q.dataset, ".jsonl")
             ? rf_calib_from_jsonl_split(tok, q.dataset, "train", samples, seq_len,
                                         (uint64_t)q.seed, q.samples == 0, &cal, err)
             : rf_calib_from_text(tok, q.dataset, samples, seq_len, (uint64_t)q.seed, &cal, err);
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
    if (quantized) {
        json_decref(cfg);
        return rf_error_field(err, RF_EINVAL, "model",
                              "model '%s' is already quantized (its config.json has a "
                              "quantization_config)",
                              ref);
    }
    /* a group_size given that the model's layer sizes do not take */
    qparams q;
    rf_llama_config lc;
    rf_error perr = {0};
    rc = 0;
    if (cfg && parse(params, &q, &perr) == 0 && q.group_given &&
        rf_llama_config_parse(&lc, cfg, &perr) == 0)
        rc = pick_group(&q, &lc, err);
    json_decref(cfg);
    return rc;
}

const rf_runner rf_quantize_runner = {
    .type = "quantize",
    .validate = validate,
    .run = run,
    .description = "GPTQ (or round-to-nearest) W4A16 quantization of a model, optionally with a "
                   "train job's LoRA adapter merged in first, calibrated on a dataset; the "
                   "checkpoint, in the GPTQ layout vLLM and transformers load, becomes a model. "
                   "Reports sizes, per-layer errors and, when asked, perplexity before and after.",
    .params = spec,
    .check = check};
