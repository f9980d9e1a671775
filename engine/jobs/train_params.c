#include "engine/jobs/train_params.h"

#include "engine/model/llama_config.h"

#include <math.h>
#include <string.h>

static int only(const json_t *obj, const char *path, const char *const *keys, rf_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        bool ok = false;
        for (const char *const *p = keys; *p; p++)
            ok |= !strcmp(*p, k);
        if (!ok) {
            char f[128];
            snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", k);
            return rf_error_field(err, RF_EINVAL, f, "unknown parameter '%s'", f);
        }
    }
    return 0;
}

/* A number in [lo, hi] (open at lo when lo_open) into *out, or keep the default. */
static int num(const json_t *obj, const char *path, const char *key, double lo, double hi,
               bool lo_open, double *out, rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char f[128];
    snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", key);
    double d = json_number_value(v);
    if (!json_is_number(v) || !isfinite(d) || d < lo || (lo_open && d == lo) || d > hi)
        return rf_error_field(err, RF_EINVAL, f, "'%s' must be a number in %c%g, %g]", f,
                              lo_open ? '(' : '[', lo, hi);
    *out = d;
    return 0;
}

static int integer(const json_t *obj, const char *path, const char *key, long long lo, long long hi,
                   int *out, rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char f[128];
    snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rf_error_field(err, RF_EINVAL, f, "'%s' must be an integer in [%lld, %lld]", f, lo,
                              hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* One of names (NULL-terminated) into *out as its index. */
static int choice(const json_t *obj, const char *path, const char *key, const char *const *names,
                  int *out, rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char f[128];
    snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", key);
    for (int i = 0; json_is_string(v) && names[i]; i++)
        if (!strcmp(json_string_value(v), names[i])) return *out = i, 0;
    char list[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", i ? ", " : "",
                 names[i]);
    return rf_error_field(err, RF_EINVAL, f, "'%s' must be one of %s", f, list);
}

static int string(const json_t *obj, const char *key, bool required, const char **out,
                  rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return required ? rf_error_field(err, RF_EINVAL, key, "'%s' is required", key) : 0;
    if (!json_is_string(v) || !*json_string_value(v))
        return rf_error_field(err, RF_EINVAL, key, "'%s' must be a non-empty string", key);
    *out = json_string_value(v);
    return 0;
}

static int object(const json_t *params, const char *key, const json_t **out, rf_error *err)
{
    static const json_t *empty;
    if (!empty) empty = json_object();
    json_t *v = json_object_get(params, key);
    if (v && !json_is_object(v))
        return rf_error_field(err, RF_EINVAL, key, "'%s' must be an object", key);
    *out = v ? v : empty;
    return 0;
}

static int parse_lora(const json_t *o, rf_lora_config *l, rf_error *err)
{
    static const char *const keys[] = {"r",          "alpha",          "dropout",
                                       "use_rslora", "target_modules", NULL};
    double alpha = l->alpha, drop = l->dropout;
    int rc;
    if ((rc = only(o, "lora", keys, err)) < 0 ||
        (rc = integer(o, "lora", "r", 1, 4096, &l->r, err)) < 0 ||
        (rc = num(o, "lora", "alpha", 0, 1e6, true, &alpha, err)) < 0 ||
        (rc = num(o, "lora", "dropout", 0, 0.999, false, &drop, err)) < 0)
        return rc;
    l->alpha = (float)alpha, l->dropout = (float)drop;
    json_t *rs = json_object_get(o, "use_rslora");
    if (rs && !json_is_boolean(rs))
        return rf_error_field(err, RF_EINVAL, "lora.use_rslora", "must be true or false");
    l->rslora = json_is_true(rs);
    json_t *tm = json_object_get(o, "target_modules");
    if (!tm || (json_is_string(tm) && !strcmp(json_string_value(tm), "all-linear"))) return 0;
    if (!json_is_array(tm) || json_array_size(tm) == 0)
        return rf_error_field(err, RF_EINVAL, "lora.target_modules",
                              "must be \"all-linear\" or a non-empty array of module names");
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

static int parse_optim(const json_t *o, const json_t *sch, rf_optim_config *c, rf_error *err)
{
    static const char *const keys[] = {"name",     "lr",    "weight_decay", "betas", "eps",
                                       "momentum", "scale", "adamw_lr",     NULL};
    static const char *const names[] = {"adamw", "muon", NULL};
    static const char *const scales[] = {"original", "match_rms_adamw", NULL};
    static const char *const skeys[] = {"warmup_steps", "decay", "min_lr_ratio", NULL};
    static const char *const decays[] = {"cosine", "linear", "constant", NULL};
    int rc, kind = RF_OPT_MUON, scale = RF_MUON_MATCH_RMS_ADAMW, decay = RF_SCHED_COSINE;
    if ((rc = only(o, "optimizer", keys, err)) < 0 ||
        (rc = choice(o, "optimizer", "name", names, &kind, err)) < 0 ||
        (rc = choice(o, "optimizer", "scale", scales, &scale, err)) < 0)
        return rc;
    c->kind = kind, c->muon_scale = scale;
    /* match_rms_adamw makes AdamW's learning rates carry over (FORMATS.md "Muon") */
    double lr = 2e-4, wd = 0, eps = c->eps, mom = c->momentum, alr = 0, mlr = 0;
    if ((rc = num(o, "optimizer", "lr", 0, 10, true, &lr, err)) < 0 ||
        (rc = num(o, "optimizer", "weight_decay", 0, 10, false, &wd, err)) < 0 ||
        (rc = num(o, "optimizer", "eps", 0, 1, true, &eps, err)) < 0 ||
        (rc = num(o, "optimizer", "momentum", 0, 0.9999, false, &mom, err)) < 0 ||
        (rc = num(o, "optimizer", "adamw_lr", 0, 10, true, &alr, err)) < 0)
        return rc;
    json_t *b = json_object_get(o, "betas");
    if (b) {
        double b1 = json_number_value(json_array_get(b, 0)),
               b2 = json_number_value(json_array_get(b, 1));
        if (!json_is_array(b) || json_array_size(b) != 2 || !(b1 >= 0 && b1 < 1) ||
            !(b2 >= 0 && b2 < 1))
            return rf_error_field(err, RF_EINVAL, "optimizer.betas",
                                  "'optimizer.betas' must be [beta1, beta2], each in [0, 1)");
        c->beta1 = (float)b1, c->beta2 = (float)b2;
    }
    c->lr = (float)lr, c->weight_decay = (float)wd, c->eps = (float)eps;
    c->momentum = (float)mom, c->adamw_lr = (float)alr;
    if ((rc = only(sch, "schedule", skeys, err)) < 0 ||
        (rc = integer(sch, "schedule", "warmup_steps", 0, 10000000, &c->warmup_steps, err)) < 0 ||
        (rc = choice(sch, "schedule", "decay", decays, &decay, err)) < 0 ||
        (rc = num(sch, "schedule", "min_lr_ratio", 0, 1, false, &mlr, err)) < 0)
        return rc;
    c->sched = decay, c->min_lr_ratio = (float)mlr;
    return 0;
}

int rf_train_params_parse(const json_t *p, rf_train_job_params *out, rf_error *err)
{
    static const char *const keys[] = {
        "student", "teacher",   "teacher_cache", "dataset",   "method",     "config",
        "lora",    "loss",      "optimizer",     "schedule",  "clip_norm",  "grad_accum",
        "epochs",  "max_steps", "batch",         "seq_len",   "eval_every", "checkpoint_every",
        "seed",    "export",    "chat_template", "tokenizer", NULL};
    static const char *const methods[] = {"lora", "full", NULL};
    memset(out, 0, sizeof *out);
    if (!json_is_object(p)) return rf_error_field(err, RF_EINVAL, "", "params must be an object");
    int rc, method = 0;
    if ((rc = only(p, "", keys, err)) < 0) return rc;
    out->config = json_object_get(p, "config");
    if ((rc = string(p, "student", !out->config, &out->student, err)) < 0 ||
        (rc = string(p, "tokenizer", false, &out->tokenizer, err)) < 0 ||
        (rc = string(p, "teacher", false, &out->teacher, err)) < 0 ||
        (rc = string(p, "teacher_cache", false, &out->teacher_cache, err)) < 0 ||
        (rc = string(p, "dataset", true, &out->dataset, err)) < 0 ||
        (rc = string(p, "chat_template", false, &out->chat_template, err)) < 0 ||
        (rc = choice(p, "", "method", methods, &method, err)) < 0)
        return rc;
    out->full = method == 1;
    if (out->teacher && out->teacher_cache)
        return rf_error_field(err, RF_EINVAL, "teacher_cache",
                              "give either 'teacher' or 'teacher_cache', not both");
    if (out->config) {
        /* from scratch: a config (checked as config.json is) and a tokenizer, no student */
        rf_llama_config lc;
        if (!json_is_object(out->config))
            return rf_error_field(err, RF_EINVAL, "config",
                                  "'config' must be a config.json object");
        if (out->student)
            return rf_error_field(err, RF_EINVAL, "student",
                                  "give either 'student' or 'config', not both");
        if (!out->full)
            return rf_error_field(err, RF_EINVAL, "method",
                                  "training from a 'config' needs method 'full'");
        if (!out->tokenizer)
            return rf_error_field(err, RF_EINVAL, "tokenizer",
                                  "'tokenizer' (a folder with tokenizer.json) is required with "
                                  "'config'");
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
    const json_t *lo, *ls, *op, *sc;
    if ((rc = object(p, "lora", &lo, err)) < 0 || (rc = object(p, "loss", &ls, err)) < 0 ||
        (rc = object(p, "optimizer", &op, err)) < 0 || (rc = object(p, "schedule", &sc, err)) < 0)
        return rc;
    if (out->full && json_object_size(lo))
        return rf_error_field(err, RF_EINVAL, "lora", "'lora' does not apply to method 'full'");
    out->lora = (rf_lora_config){.r = 16, .alpha = 32, .dropout = 0.05f, .targets = RF_LORA_ALL};
    if ((rc = parse_lora(lo, &out->lora, err)) < 0) return rc;
    static const char *const lkeys[] = {"alpha", "temperature", "topk_mode", NULL};
    static const char *const modes[] = {"ignore", "bucket", NULL};
    const bool kd = out->teacher || out->teacher_cache;
    double alpha = kd ? 0.5 : 0.0, temp = 2.0;
    int mode = RF_TOPK_IGNORE;
    if ((rc = only(ls, "loss", lkeys, err)) < 0 ||
        (rc = num(ls, "loss", "alpha", 0, 1, false, &alpha, err)) < 0 ||
        (rc = num(ls, "loss", "temperature", 0, 100, true, &temp, err)) < 0 ||
        (rc = choice(ls, "loss", "topk_mode", modes, &mode, err)) < 0)
        return rc;
    if (alpha > 0 && !kd)
        return rf_error_field(
            err, RF_EINVAL, "loss.alpha",
            "'loss.alpha' > 0 needs a 'teacher' or 'teacher_cache' to distil from");
    out->loss = (rf_loss_config){
        .alpha = (float)alpha, .temperature = (float)temp, .topk_mode = (rf_topk_mode)mode};
    rf_optim_config_default(&out->optim);
    if ((rc = parse_optim(op, sc, &out->optim, err)) < 0) return rc;
    double clip = 1.0;
    if ((rc = num(p, "", "clip_norm", 0, 1e6, false, &clip, err)) < 0) return rc;
    out->optim.clip_norm = (float)clip;
    out->grad_accum = 1, out->epochs = 1, out->batch = 4, out->seq_len = 512;
    out->checkpoint_every = 50;
    int seed = 0;
    if ((rc = integer(p, "", "grad_accum", 1, 4096, &out->grad_accum, err)) < 0 ||
        (rc = integer(p, "", "epochs", 1, 1000, &out->epochs, err)) < 0 ||
        (rc = integer(p, "", "max_steps", 1, 100000000, &out->max_steps, err)) < 0 ||
        (rc = integer(p, "", "batch", 1, 4096, &out->batch, err)) < 0 ||
        (rc = integer(p, "", "seq_len", 2, 131072, &out->seq_len, err)) < 0 ||
        (rc = integer(p, "", "eval_every", 0, 100000000, &out->eval_every, err)) < 0 ||
        (rc = integer(p, "", "checkpoint_every", 0, 100000000, &out->checkpoint_every, err)) < 0 ||
        (rc = integer(p, "", "seed", 0, 2147483647, &seed, err)) < 0)
        return rc;
    out->seed = (uint64_t)seed;
    out->lora.seed = out->seed;
    json_t *ex = json_object_get(p, "export");
    out->export_adapter = !out->full && !ex;
    out->export_merged = out->full && !ex;
    if (ex) {
        if (!json_is_array(ex))
            return rf_error_field(err, RF_EINVAL, "export", "'export' must be an array");
        size_t i;
        json_t *v;
        json_array_foreach(ex, i, v)
        {
            const char *s = json_string_value(v);
            char f[32];
            snprintf(f, sizeof f, "export[%zu]", i);
            if (s && !strcmp(s, "adapter") && !out->full)
                out->export_adapter = true;
            else if (s && !strcmp(s, "merged"))
                out->export_merged = true;
            else
                return rf_error_field(err, RF_EINVAL, f, "'%s' must be 'merged'%s", f,
                                      out->full ? " (method 'full' has no adapter)"
                                                : " or 'adapter'");
        }
    }
    return 0;
}
