#include "engine/jobs/train_params.h"

#include "engine/model/llama_config.h"

#include <math.h>
#include <string.h>

/* The table: what POST checks, GET /v1/job-types publishes and the parse
 * below reads. Rules between fields (student or config, alpha only with a
 * teacher, …) stay in rf_train_params_parse. */
static const char *const methods[] = {"lora", "full", NULL};
static const char *const optim_names[] = {"adamw", "muon", NULL};
static const char *const muon_scales[] = {"original", "match_rms_adamw", NULL};
static const char *const decays[] = {"cosine", "linear", "constant", NULL};
static const char *const topk_modes[] = {"ignore", "bucket", NULL};
static const char *const exports[] = {"adapter", "merged", NULL};
static const rf_param export_item = {.type = RF_PARAM_ENUM, .choices = exports};
static const rf_param beta_item = {
    .type = RF_PARAM_NUMBER, .lo = 0, .hi = 1, .flags = RF_PARAM_HI_OPEN};

static const rf_param lora_fields[] = {
    {.name = "r", .type = RF_PARAM_INT, .lo = 1, .hi = 4096, .def = "16", .help = "LoRA rank"},
    {.name = "alpha",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 1e6,
     .flags = RF_PARAM_LO_OPEN,
     .def = "32",
     .help = "lora_alpha: the update is scaled by alpha/r (alpha/sqrt(r) with use_rslora)"},
    {.name = "dropout",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 0.999,
     .def = "0.05",
     .help = "dropout on the adapter's input"},
    {.name = "use_rslora", .type = RF_PARAM_BOOL, .def = "false", .help = "rank-stabilised scale"},
    {.name = "target_modules",
     .type = RF_PARAM_JSON,
     .def = "\"all-linear\"",
     .help = "\"all-linear\" or an array of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
             "down_proj"},
    {0}};

static const rf_param loss_fields[] = {
    {.name = "alpha",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 1,
     .help = "weight of the distillation term: L = alpha*T^2*KL + (1-alpha)*CE (default 0.5 "
             "with a teacher or teacher_cache, else 0)"},
    {.name = "temperature",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 100,
     .flags = RF_PARAM_LO_OPEN,
     .def = "2",
     .help = "distillation temperature T"},
    {.name = "topk_mode",
     .type = RF_PARAM_ENUM,
     .choices = topk_modes,
     .def = "ignore",
     .help = "with a teacher_cache: the mass outside the cached top-k is ignored or one bucket"},
    {0}};

static const rf_param optim_fields[] = {
    {.name = "name", .type = RF_PARAM_ENUM, .choices = optim_names, .def = "muon"},
    {.name = "lr",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 10,
     .flags = RF_PARAM_LO_OPEN,
     .def = "0.0002",
     .help = "peak learning rate"},
    {.name = "weight_decay", .type = RF_PARAM_NUMBER, .lo = 0, .hi = 10, .def = "0"},
    {.name = "betas",
     .type = RF_PARAM_ARRAY,
     .items = &beta_item,
     .lo = 2,
     .hi = 2,
     .def = "[0.9, 0.999]",
     .help = "AdamW's [beta1, beta2], each in [0, 1)"},
    {.name = "eps",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 1,
     .flags = RF_PARAM_LO_OPEN,
     .def = "1e-08"},
    {.name = "momentum",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 0.9999,
     .def = "0.95",
     .help = "Muon's Nesterov momentum"},
    {.name = "scale",
     .type = RF_PARAM_ENUM,
     .choices = muon_scales,
     .def = "match_rms_adamw",
     .help = "Muon's update scale; match_rms_adamw lets AdamW learning rates carry over"},
    {.name = "adamw_lr",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 10,
     .flags = RF_PARAM_LO_OPEN,
     .help = "learning rate of the AdamW that Muon uses for non-matrix parameters (default: lr)"},
    {0}};

static const rf_param schedule_fields[] = {
    {.name = "warmup_steps", .type = RF_PARAM_INT, .lo = 0, .hi = 10000000, .def = "0"},
    {.name = "decay", .type = RF_PARAM_ENUM, .choices = decays, .def = "cosine"},
    {.name = "min_lr_ratio",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 1,
     .def = "0",
     .help = "the learning rate at the end, as a fraction of lr"},
    {0}};

const rf_param rf_train_params[] = {
    {.name = "student",
     .type = RF_PARAM_STRING,
     .ref = "model",
     .help = "the model to fine-tune: a registered model's id or name (required unless config)"},
    {.name = "teacher",
     .type = RF_PARAM_STRING,
     .ref = "model",
     .help = "a model with the student's tokenizer to distil from (id or name)"},
    {.name = "teacher_cache",
     .type = RF_PARAM_STRING,
     .ref = "teacher_cache",
     .help = "the artifact id of a teacher-cache job's file, instead of a teacher"},
    {.name = "dataset",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED | RF_PARAM_ANSWERS,
     .ref = "dataset",
     .help = "a dataset id or name whose train rows have responses (prompt/response or "
             "messages ending with the assistant's turn)"},
    {.name = "method",
     .type = RF_PARAM_ENUM,
     .choices = methods,
     .def = "lora",
     .help = "lora trains an adapter; full trains every weight"},
    {.name = "config",
     .type = RF_PARAM_OBJECT,
     .help = "a config.json object to train from random weights (method full, with tokenizer)"},
    {.name = "lora", .type = RF_PARAM_OBJECT, .fields = lora_fields},
    {.name = "loss", .type = RF_PARAM_OBJECT, .fields = loss_fields},
    {.name = "optimizer", .type = RF_PARAM_OBJECT, .fields = optim_fields},
    {.name = "schedule", .type = RF_PARAM_OBJECT, .fields = schedule_fields},
    {.name = "clip_norm",
     .type = RF_PARAM_NUMBER,
     .lo = 0,
     .hi = 1e6,
     .def = "1",
     .help = "clip the gradient's global norm (0: off)"},
    {.name = "grad_accum", .type = RF_PARAM_INT, .lo = 1, .hi = 4096, .def = "1"},
    {.name = "epochs", .type = RF_PARAM_INT, .lo = 1, .hi = 1000, .def = "1"},
    {.name = "max_steps",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 100000000,
     .help = "stop after this many optimiser steps (default: epochs over the data)"},
    {.name = "batch", .type = RF_PARAM_INT, .lo = 1, .hi = 4096, .def = "4"},
    {.name = "seq_len",
     .type = RF_PARAM_INT,
     .lo = 2,
     .hi = 131072,
     .def = "512",
     .help = "tokens per example (prompt and answer through the chat template), capped by the "
             "model's max_position_embeddings"},
    {.name = "eval_every",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 100000000,
     .def = "0",
     .help = "validation loss every this many steps (0: at the end only)"},
    {.name = "checkpoint_every", .type = RF_PARAM_INT, .lo = 0, .hi = 100000000, .def = "50"},
    {.name = "seed", .type = RF_PARAM_INT, .lo = 0, .hi = 2147483647, .def = "0"},
    {.name = "export",
     .type = RF_PARAM_ARRAY,
     .items = &export_item,
     .help = "what to keep: \"adapter\" (PEFT files, as artifacts) and/or \"merged\" (a model); "
             "default [\"adapter\"] for lora, [\"merged\"] for full"},
    {.name = "chat_template",
     .type = RF_PARAM_STRING,
     .help = "chat family (llama3, llama3.1, llama2, chatml, mistral); default: detected from "
             "the tokenizer"},
    {.name = "tokenizer",
     .type = RF_PARAM_STRING,
     .ref = "model",
     .help = "with config: a model whose tokenizer files the new model takes"},
    {0}};

static const json_t *sub(const json_t *p, const char *key)
{
    static const json_t *empty;
    if (!empty) empty = json_object();
    const json_t *v = json_object_get(p, key);
    return json_is_object(v) ? v : empty;
}

static int parse_targets(const json_t *tm, rf_lora_config *l, rf_error *err)
{
    if (!tm || (json_is_string(tm) && !strcmp(json_string_value(tm), "all-linear"))) return 0;
    if (!json_is_array(tm) || json_array_size(tm) == 0)
        return rf_error_field(err, RF_EINVAL, "lora.target_modules",
                              "'lora.target_modules' must be \"all-linear\" or a non-empty array "
                              "of module names");
    l->targets = 0;
    size_t i;
    json_t *v;
    json_array_foreach(tm, i, v)
    {
        int t = json_is_string(v) ? rf_lora_target_parse(json_string_value(v)) : -1;
        if (t < 0) {
            char f[64];
            snprintf(f, sizeof f, "lora.target_modules[%zu]", i);
            return rf_error_field(err, RF_EINVAL, f,
                                  "'%s' must be one of q_proj, k_proj, v_proj, o_proj, gate_proj, "
                                  "up_proj, down_proj",
                                  f);
        }
        l->targets |= 1u << t;
    }
    return 0;
}

static void parse_optim(const json_t *o, const json_t *sch, rf_optim_config *c)
{
    rf_optim_config_default(c);
    c->kind = rf_param_enum(o, optim_fields, "name", 1) == 0 ? RF_OPT_ADAMW : RF_OPT_MUON;
    c->muon_scale = rf_param_enum(o, optim_fields, "scale", 1) == 0 ? RF_MUON_ORIGINAL
                                                                    : RF_MUON_MATCH_RMS_ADAMW;
    c->lr = (float)rf_param_num(o, optim_fields, "lr", 2e-4);
    c->weight_decay = (float)rf_param_num(o, optim_fields, "weight_decay", 0);
    c->eps = (float)rf_param_num(o, optim_fields, "eps", 1e-8);
    c->momentum = (float)rf_param_num(o, optim_fields, "momentum", 0.95);
    c->adamw_lr = (float)rf_param_num(o, optim_fields, "adamw_lr", 0);
    const json_t *b = json_object_get(o, "betas");
    if (json_is_array(b)) {
        c->beta1 = (float)json_number_value(json_array_get(b, 0));
        c->beta2 = (float)json_number_value(json_array_get(b, 1));
    }
    static const rf_sched_kind kinds[] = {RF_SCHED_COSINE, RF_SCHED_LINEAR, RF_SCHED_CONSTANT};
    c->warmup_steps = (int)rf_param_int(sch, schedule_fields, "warmup_steps", 0);
    c->sched = kinds[rf_param_enum(sch, schedule_fields, "decay", 0)];
    c->min_lr_ratio = (float)rf_param_num(sch, schedule_fields, "min_lr_ratio", 0);
}

int rf_train_params_parse(const json_t *p, rf_train_job_params *out, rf_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = rf_params_check(p, rf_train_params, "", err);
    if (rc < 0) return rc;
    const rf_param *T = rf_train_params;
    out->student = rf_param_str(p, T, "student", NULL);
    out->teacher = rf_param_str(p, T, "teacher", NULL);
    out->teacher_cache = rf_param_str(p, T, "teacher_cache", NULL);
    out->dataset = rf_param_str(p, T, "dataset", NULL);
    out->chat_template = rf_param_str(p, T, "chat_template", NULL);
    out->tokenizer = rf_param_str(p, T, "tokenizer", NULL);
    out->config = json_object_get(p, "config");
    out->full = rf_param_enum(p, T, "method", 0) == 1;
    if (!out->student && !out->config)
        return rf_error_field(err, RF_EINVAL, "student",
                              "'student' is required: the model to fine-tune, a registered "
                              "model's id or name (or give 'config' to train from random weights)");
    if (out->teacher && out->teacher_cache)
        return rf_error_field(err, RF_EINVAL, "teacher_cache",
                              "give either 'teacher' or 'teacher_cache', not both");
    if (out->config) {
        /* from scratch: a config (checked as config.json is) and a tokenizer, no student */
        rf_llama_config lc;
        if (out->student)
            return rf_error_field(err, RF_EINVAL, "student",
                                  "give either 'student' or 'config', not both");
        if (!out->full)
            return rf_error_field(err, RF_EINVAL, "method",
                                  "training from a 'config' needs method 'full'");
        if (!out->tokenizer)
            return rf_error_field(err, RF_EINVAL, "tokenizer",
                                  "'tokenizer' (a model whose tokenizer files to take) is "
                                  "required with 'config'");
        if ((rc = rf_llama_config_parse(&lc, out->config, err)) < 0) {
            char f[sizeof err->field];
            snprintf(f, sizeof f, "config%s%s", *err->field ? "." : "", err->field);
            snprintf(err->field, sizeof err->field, "%s", f);
            return rc;
        }
    } else if (out->tokenizer) {
        return rf_error_field(err, RF_EINVAL, "tokenizer",
                              "'tokenizer' applies only with 'config' (a student has its own)");
    }
    const json_t *lo = sub(p, "lora"), *ls = sub(p, "loss");
    if (out->full && json_object_size(lo))
        return rf_error_field(err, RF_EINVAL, "lora", "'lora' does not apply to method 'full'");
    out->lora = (rf_lora_config){.r = (int)rf_param_int(lo, lora_fields, "r", 16),
                                 .alpha = (float)rf_param_num(lo, lora_fields, "alpha", 32),
                                 .dropout = (float)rf_param_num(lo, lora_fields, "dropout", 0.05),
                                 .rslora = rf_param_bool(lo, lora_fields, "use_rslora", false),
                                 .targets = RF_LORA_ALL};
    if ((rc = parse_targets(json_object_get(lo, "target_modules"), &out->lora, err)) < 0) return rc;
    const bool kd = out->teacher || out->teacher_cache;
    const double alpha = rf_param_num(ls, loss_fields, "alpha", kd ? 0.5 : 0.0);
    if (alpha > 0 && !kd)
        return rf_error_field(
            err, RF_EINVAL, "loss.alpha",
            "'loss.alpha' > 0 needs a 'teacher' or 'teacher_cache' to distil from");
    out->loss = (rf_loss_config){
        .alpha = (float)alpha,
        .temperature = (float)rf_param_num(ls, loss_fields, "temperature", 2.0),
        .topk_mode =
            rf_param_enum(ls, loss_fields, "topk_mode", 0) == 1 ? RF_TOPK_BUCKET : RF_TOPK_IGNORE};
    parse_optim(sub(p, "optimizer"), sub(p, "schedule"), &out->optim);
    out->optim.clip_norm = (float)rf_param_num(p, T, "clip_norm", 1.0);
    out->grad_accum = (int)rf_param_int(p, T, "grad_accum", 1);
    out->epochs = (int)rf_param_int(p, T, "epochs", 1);
    out->max_steps = (int)rf_param_int(p, T, "max_steps", 0);
    out->batch = (int)rf_param_int(p, T, "batch", 4);
    out->seq_len = (int)rf_param_int(p, T, "seq_len", 512);
    out->eval_every = (int)rf_param_int(p, T, "eval_every", 0);
    out->checkpoint_every = (int)rf_param_int(p, T, "checkpoint_every", 50);
    out->seed = (uint64_t)rf_param_int(p, T, "seed", 0);
    out->lora.seed = out->seed;
    json_t *ex = json_object_get(p, "export");
    out->export_adapter = !out->full && !ex;
    out->export_merged = out->full && !ex;
    size_t i;
    json_t *v;
    json_array_foreach(ex, i, v)
    {
        if (!strcmp(json_string_value(v), "merged")) {
            out->export_merged = true;
        } else if (out->full) {
            char f[32];
            snprintf(f, sizeof f, "export[%zu]", i);
            return rf_error_field(err, RF_EINVAL, f,
                                  "'%s': method 'full' has no adapter; export 'merged'", f);
        } else {
            out->export_adapter = true;
        }
    }
    return 0;
}
