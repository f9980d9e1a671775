#include "engine/jobs/train.h"
#include "engine/core/util.h"

#include <dirent.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/jobs/teacher_cache.h"
#include "engine/jobs/train_data.h"
#include "engine/jobs/train_params.h"
#include "engine/model/llama_init.h"
#include "engine/train/train.h"
#include "engine/train/train_state.h"

#define CKPT_NAME "train_state.safetensors"

/* The order of epoch e: a Fisher–Yates shuffle seeded by (seed, e), so a
 * resumed run recomputes it from the cursor alone. */
static void epoch_order(int *order, int n, uint64_t seed, int64_t epoch)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    uint64_t s = rf_mix64(seed ^ rf_mix64((uint64_t)epoch + 1));
    for (int i = n - 1; i > 0; i--) {
        s = rf_mix64(s);
        int j = (int)(s % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

static int validate(const json_t *params, rf_error *err)
{
    rf_train_job_params p;
    return rf_train_params_parse(params, &p, err);
}

/* Keep the message, name the parameter it came from. */
static int in_field(rf_error *err, int rc, const char *field)
{
    if (err) snprintf(err->field, sizeof err->field, "%s", field);
    return rc;
}

/* The config of the model ref names, through resolve; a failure names field. */
static int ref_config(rf_ref_resolver resolve, void *user, const char *ref, const char *field,
                      rf_llama_config *c, rf_error *err)
{
    char *dir = NULL, path[4096];
    int rc = resolve(user, "model", ref, &dir, err);
    if (rc < 0) return in_field(err, rc, field);
    snprintf(path, sizeof path, "%s/config.json", dir);
    free(dir);
    json_t *root = json_load_file(path, 0, NULL);
    if (!root)
        return rf_error_field(err, RF_EINVAL, field, "model '%s' has no readable config.json", ref);
    rf_error perr = {0};
    rc = rf_llama_config_parse(c, root, &perr);
    json_decref(root);
    if (rc < 0) return rf_error_field(err, rc, field, "model '%s': %s", ref, perr.msg);
    return 0;
}

/* The chat template the job would render its data with, compiled now so a
 * template that does not parse (or a name that is no template) is a 422 on
 * chat_template at POST. None at all is fine: plain prompt + response. */
static int check_template(rf_ref_resolver resolve, void *user, const char *student,
                          const char *spec, rf_error *err)
{
    char *dir = NULL, path[4096];
    int rc = resolve(user, "model", student, &dir, err);
    if (rc < 0) return in_field(err, rc, "student");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    free(dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    const json_t *t = cfg ? json_object_get(cfg, "chat_template") : NULL;
    rf_chat_template *ct = NULL;
    rc = !spec && !json_is_string(t) && !json_is_array(t)
             ? 0
             : rf_chat_template_from_config(cfg, spec, &ct, err);
    rf_chat_template_free(ct);
    json_decref(cfg);
    return rc < 0 ? in_field(err, rc == RF_EUNSUPPORTED ? rc : RF_EINVAL, "chat_template") : 0;
}

/* What a train job cannot do with the models it names, read from their
 * config.json once the references resolve: refused when the job is
 * created (a 422 naming the param), not when it runs. A GPTQ W4A16 student
 * trains LoRA adapters over its frozen 4-bit base (as PEFT does on GPTQ
 * models), so method full and a merged export are refused for it; a GPTQ
 * teacher is fine. */
static int check(const json_t *params, rf_ref_resolver resolve, void *user, rf_error *err)
{
    rf_train_job_params p;
    rf_llama_config sc, tc;
    int rc = rf_train_params_parse(params, &p, err);
    if (rc < 0) return rc;
    const bool have_student = p.student && !p.config;
    if (have_student) {
        if ((rc = ref_config(resolve, user, p.student, "student", &sc, err)) < 0) return rc;
        if (sc.gptq && p.full)
            return rf_error_field(err, RF_EUNSUPPORTED, "method",
                                  "student '%s' is a GPTQ 4-bit model: its weights cannot take "
                                  "full-parameter gradients; use method 'lora' (adapters over "
                                  "the frozen 4-bit base)",
                                  p.student);
        if (sc.gptq && p.export_merged)
            return rf_error_field(err, RF_EUNSUPPORTED, "export",
                                  "student '%s' is a GPTQ 4-bit model: a merged checkpoint "
                                  "cannot hold W + s·B·A in 4-bit codes; export 'adapter' (PEFT "
                                  "loads it over the GPTQ base)",
                                  p.student);
        if ((rc = check_template(resolve, user, p.student, p.chat_template, err)) < 0) return rc;
    }
    if (p.teacher) {
        if ((rc = ref_config(resolve, user, p.teacher, "teacher", &tc, err)) < 0) return rc;
        if (have_student && tc.vocab_size != sc.vocab_size)
            return rf_error_field(err, RF_EINVAL, "teacher",
                                  "teacher vocabulary %d, student %d: logits cannot be compared",
                                  tc.vocab_size, sc.vocab_size);
    }
    return 0;
}

/* Same tokenizer: same vocabulary size and the same ids for a probe text
 * that exercises words, spaces, digits, punctuation and non-ASCII bytes. */
static int same_tokenizer(const rf_tokenizer *a, const rf_tokenizer *b, rf_error *err)
{
    static const char probe[] = "The teacher and student share 1 tokenizer: ok? Ça va, 2024!";
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    rf_error ea = {0}, eb = {0};
    int ra = rf_tokenizer_encode(a, probe, sizeof probe - 1, 0, &ia, &na, &ea);
    int rb = rf_tokenizer_encode(b, probe, sizeof probe - 1, 0, &ib, &nb, &eb);
    /* a small vocabulary may not cover the probe: then both must fail alike */
    bool same = ra == rb &&
                (ra ? !strcmp(ea.msg, eb.msg) : na == nb && !memcmp(ia, ib, na * sizeof *ia)) &&
                rf_tokenizer_vocab_size(a) == rf_tokenizer_vocab_size(b);
    if (ra) free(ia), ia = NULL;
    if (rb) free(ib), ib = NULL;
    free(ia), free(ib);
    if (!same)
        return rf_error_field(err, RF_EINVAL, "teacher",
                              "the teacher's tokenizer differs from the student's (vocabulary %d "
                              "vs %d, or a different encoding); distillation needs the same one",
                              rf_tokenizer_vocab_size(b), rf_tokenizer_vocab_size(a));
    return 0;
}

typedef struct run {
    rf_train_job_params p;
    rf_llama_model student, teacher;
    bool has_teacher;
    rf_tokenizer *tok, *ttok;
    rf_chat_template *chat;
    rf_train_data train, val;
    rf_lora lora;
    bool has_lora;
    rf_trainer st, tt;
    rf_optim opt;
    rf_train_cursor cur;
    int *order, *idx, *ids, *targets;
    int pad;
    char init_dir[4096]; /* from scratch: the random checkpoint made here */
    rf_teacher_cache cache;
    bool has_cache;
    int *tk_ids; /* [B·T, k] the batch's rows of the cache */
    float *tk_logp;
    char *resolved[5];       /* paths the context gave for the params' references */
    const char *student_ref; /* the student as the params name it */
    /* The loss curve so far ({"steps", "loss"} and eval {"steps", "loss",
     * "kl", "ce"}), kept in the checkpoint so a resumed run's curve is whole:
     * the result's `history`, what the pipeline's report plots. */
    json_t *history;
} run;

/* The history's arrays, made on first use. */
static json_t *hist_array(json_t *h, const char *group, const char *name)
{
    json_t *g = group ? json_object_get(h, group) : h;
    if (group && !g) json_object_set_new(h, group, g = json_object());
    json_t *a = json_object_get(g, name);
    if (!a) json_object_set_new(g, name, a = json_array());
    return a;
}

/* At most ~256 points of each curve in the result: every k-th, the last kept. */
static json_t *thin(const json_t *a, size_t keep_every)
{
    json_t *o = json_array();
    size_t n = json_array_size(a);
    for (size_t i = 0; i < n; i++)
        if (i % keep_every == 0 || i + 1 == n) json_array_append(o, json_array_get(a, i));
    return o;
}

static json_t *history_result(const json_t *h)
{
    json_t *out = json_object();
    const json_t *steps = json_object_get(h, "steps");
    size_t k = json_array_size(steps) / 256 + 1;
    json_object_set_new(out, "steps", thin(steps, k));
    json_object_set_new(out, "loss", thin(json_object_get(h, "loss"), k));
    const json_t *ev = json_object_get(h, "eval");
    if (ev) {
        json_t *e = json_object();
        const char *keys[] = {"steps", "loss", "kl", "ce"};
        size_t ke = json_array_size(json_object_get(ev, "steps")) / 256 + 1;
        for (int i = 0; i < 4; i++)
            json_object_set_new(e, keys[i], thin(json_object_get(ev, keys[i]), ke));
        json_object_set_new(out, "eval", e);
    }
    return out;
}

/* The params name registered objects (a model by id or name, a dataset or a
 * teacher cache by id); the context says where each one lives. */
static int resolve_refs(run *r, rf_job_ctx *ctx, rf_error *err)
{
    struct {
        const char **slot;
        const char *kind, *field;
    } refs[5] = {{&r->p.student, "model", "student"},
                 {&r->p.teacher, "model", "teacher"},
                 {&r->p.dataset, "dataset", "dataset"},
                 {&r->p.teacher_cache, "teacher_cache", "teacher_cache"},
                 {&r->p.tokenizer, "model", "tokenizer"}};
    r->student_ref = r->p.student;
    for (int i = 0; i < 5; i++) {
        if (!*refs[i].slot) continue;
        if (!ctx->resolve)
            return rf_errorf(err, RF_EINTERNAL, "train: this context cannot resolve references");
        int rc = ctx->resolve(ctx, refs[i].kind, *refs[i].slot, &r->resolved[i], err);
        if (rc < 0) return in_field(err, rc, refs[i].field);
        *refs[i].slot = r->resolved[i];
    }
    return 0;
}

static void run_free(run *r)
{
    json_decref(r->history);
    for (int i = 0; i < 5; i++)
        free(r->resolved[i]);
    free(r->order), free(r->idx), free(r->ids), free(r->targets);
    free(r->tk_ids), free(r->tk_logp);
    if (r->has_cache) rf_teacher_cache_close(&r->cache);
    rf_optim_free(&r->opt);
    rf_chat_template_free(r->chat);
    rf_trainer_free(&r->st);
    rf_trainer_free(&r->tt);
    if (r->has_lora) rf_lora_free(&r->lora);
    rf_train_data_free(&r->train);
    rf_train_data_free(&r->val);
    if (r->tok) rf_tokenizer_free(r->tok);
    if (r->ttok) rf_tokenizer_free(r->ttok);
    rf_llama_free(&r->student);
    if (r->has_teacher) rf_llama_free(&r->teacher);
}

static int setup(run *r, rf_job_ctx *ctx, rf_error *err)
{
    rf_train_job_params *p = &r->p;
    int rc;
    if (p->config) {
        /* From scratch: tokenizer files, then config.json and random weights
         * (the same seed gives the same start on every attempt). */
        snprintf(r->init_dir, sizeof r->init_dir, "%s/init", ctx->workdir);
        if ((rc = rf_copy_model_files(p->tokenizer, r->init_dir, err)) < 0 ||
            (rc = rf_llama_init_random(r->init_dir, p->config, p->seed, err)) < 0)
            return rc;
        p->student = r->init_dir;
    }
    if ((rc = rf_llama_load(&r->student, p->student, NULL, err)) < 0 ||
        (rc = rf_tokenizer_load(p->student, &r->tok, err)) < 0)
        return in_field(err, rc, "student");
    if (!p->chat_template && !rf_chat_template_present(r->tok)) {
        /* a base model: plain prompt + response text, as TRL trains it */
        json_t *ev = json_pack("{s:s,s:s}", "level", "info", "message",
                               "the student's tokenizer has no chat template: training on plain "
                               "prompt + response text (the loss on the response and EOS)");
        ctx->event(ctx, "log", ev);
        json_decref(ev);
    } else if ((rc = rf_chat_template_load(r->tok, p->chat_template, &r->chat, err)) < 0) {
        return in_field(err, rc == RF_EUNSUPPORTED ? rc : RF_EINVAL, "chat_template");
    }
    if (p->teacher) {
        if ((rc = rf_llama_load(&r->teacher, p->teacher, NULL, err)) < 0 ||
            (rc = rf_tokenizer_load(p->teacher, &r->ttok, err)) < 0)
            return in_field(err, rc, "teacher");
        r->has_teacher = true;
        if ((rc = same_tokenizer(r->tok, r->ttok, err)) < 0) return rc;
        if (r->teacher.config.vocab_size != r->student.config.vocab_size)
            return rf_error_field(err, RF_EINVAL, "teacher",
                                  "teacher vocabulary %d, student %d: logits cannot be compared",
                                  r->teacher.config.vocab_size, r->student.config.vocab_size);
    }
    const int T = p->seq_len < r->student.config.max_pos ? p->seq_len : r->student.config.max_pos;
    if ((rc = rf_train_data_load(p->dataset, r->tok, r->chat, T, &r->train, &r->val, err)) < 0)
        return rc;
    rf_train_data_report(&r->train, ctx);
    if (p->teacher_cache) {
        if ((rc = rf_teacher_cache_open(&r->cache, p->teacher_cache, err)) < 0)
            return in_field(err, rc, "teacher_cache");
        r->has_cache = true;
        if ((rc = rf_teacher_cache_check(&r->cache, &r->train, T, r->student.config.vocab_size,
                                         err)) < 0)
            return rc;
        const size_t n = (size_t)p->batch * T * r->cache.k;
        r->tk_ids = malloc(sizeof(int) * n);
        r->tk_logp = malloc(sizeof(float) * n);
        if (!r->tk_ids || !r->tk_logp) return rf_errorf(err, RF_ENOMEM, "train: out of memory");
    }
    if (r->student.n_gptq && p->full)
        return rf_error_field(err, RF_EUNSUPPORTED, "method",
                              "the student is a GPTQ 4-bit model: its weights cannot take "
                              "full-parameter gradients; use method 'lora'");
    if (r->student.n_gptq && p->export_merged)
        return rf_error_field(err, RF_EUNSUPPORTED, "export",
                              "the student is a GPTQ 4-bit model: a merged checkpoint cannot "
                              "hold W + s·B·A in 4-bit codes; export 'adapter'");
    if (!p->full) {
        if ((rc = rf_lora_init(&r->lora, &r->student.config, &p->lora, err)) < 0) return rc;
        r->has_lora = true;
    }
    const int B = p->batch;
    if ((rc = rf_trainer_init(&r->st, &r->student, p->full ? RF_TRAIN_FULL : RF_TRAIN_LORA,
                              p->full ? NULL : &r->lora, B, T, 0, err)) < 0 ||
        (r->has_teacher &&
         (rc = rf_trainer_init(&r->tt, &r->teacher, RF_TRAIN_FROZEN, NULL, B, T, 0, err)) < 0))
        return rc;
    rf_optim_config oc = p->optim;
    const long per_epoch = (r->train.n + (long)B * p->grad_accum - 1) / ((long)B * p->grad_accum);
    oc.total_steps = (int)(per_epoch * p->epochs);
    if (p->max_steps && p->max_steps < oc.total_steps) oc.total_steps = p->max_steps;
    if ((rc = rf_optim_init(&r->opt, &oc, err)) < 0 ||
        (rc = rf_trainer_add_params(&r->st, &r->opt, err)) < 0 ||
        (rc = rf_optim_ready(&r->opt, err)) < 0)
        return rc;
    r->order = malloc(sizeof(int) * (size_t)r->train.n);
    r->idx = malloc(sizeof(int) * (size_t)B);
    r->ids = malloc(sizeof(int) * (size_t)B * T);
    r->targets = malloc(sizeof(int) * (size_t)B * T);
    if (!r->order || !r->idx || !r->ids || !r->targets)
        return rf_errorf(err, RF_ENOMEM, "train: out of memory");
    int32_t eos = rf_tokenizer_eos_id(r->tok);
    r->pad = eos >= 0 && eos < r->student.config.vocab_size ? eos : 0;
    r->cur.rng = p->seed;
    return 0;
}

/* Held-out loss, KL, CE and token accuracy over the validation split. */
static int evaluate(run *r, json_t **out, rf_error *err)
{
    const int B = r->p.batch;
    double loss = 0, ce = 0, kl = 0, correct = 0;
    long n = 0;
    int rc;
    for (int i0 = 0; i0 < r->val.n; i0 += B) {
        for (int b = 0; b < B; b++)
            r->idx[b] = i0 + b < r->val.n ? i0 + b : -1;
        rf_train_data_batch(&r->val, r->idx, B, r->st.a.T, r->pad, r->ids, r->targets);
        rf_train_stats s;
        if ((rc = rf_train_forward(&r->st, r->ids, err)) < 0 ||
            (r->has_teacher && (rc = rf_train_forward(&r->tt, r->ids, err)) < 0) ||
            (rc = rf_train_loss(&r->st, r->has_teacher ? &r->tt : NULL, NULL, r->targets,
                                &r->p.loss, 1, false, &s, err)) < 0)
            return rc;
        loss += s.loss * s.n_tokens, ce += s.ce * s.n_tokens, kl += s.kl * s.n_tokens;
        correct += s.correct, n += s.n_tokens;
    }
    if (n == 0) return *out = NULL, 0;
    *out = json_pack("{s:f,s:f,s:f,s:f,s:I}", "loss", loss / n, "ce", ce / n, "kl", kl / n,
                     "token_accuracy", correct / n, "tokens", (json_int_t)n);
    return 0;
}

static int save_checkpoint(run *r, rf_job_ctx *ctx, rf_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/" CKPT_NAME, ctx->workdir);
    int rc = rf_train_state_save(path, &r->st, &r->opt, &r->cur, err);
    if (rc < 0) return rc;
    json_t *state = json_pack("{s:I,s:s,s:O}", "step", (json_int_t)r->opt.step, "state", CKPT_NAME,
                              "history", r->history);
    rc = ctx->checkpoint(ctx, state);
    json_decref(state);
    return rc < 0 ? rf_errorf(err, rc, "train: recording the checkpoint failed") : 0;
}

/* One optimiser step of grad_accum micro-batches; stats of the last. */
static int step(run *r, rf_train_stats *agg, rf_error *err)
{
    const int B = r->p.batch, A = r->p.grad_accum;
    memset(agg, 0, sizeof *agg);
    for (int m = 0; m < A; m++) {
        for (int b = 0; b < B; b++) {
            if (r->cur.index >= r->train.n) {
                r->cur.index = 0;
                r->cur.epoch++;
                epoch_order(r->order, r->train.n, r->p.seed, r->cur.epoch);
            }
            r->idx[b] = r->order[r->cur.index++];
        }
        rf_train_data_batch(&r->train, r->idx, B, r->st.a.T, r->pad, r->ids, r->targets);
        rf_topk tk = {0};
        if (r->has_cache) {
            rf_teacher_cache_batch(&r->cache, r->idx, B, r->st.a.T, r->tk_ids, r->tk_logp);
            tk = (rf_topk){.k = r->cache.k, .ids = r->tk_ids, .logp = r->tk_logp};
        }
        rf_train_stats s;
        int rc;
        if ((rc = rf_train_forward(&r->st, r->ids, err)) < 0 ||
            (r->has_teacher && (rc = rf_train_forward(&r->tt, r->ids, err)) < 0) ||
            (rc = rf_train_loss(&r->st, r->has_teacher ? &r->tt : NULL, r->has_cache ? &tk : NULL,
                                r->targets, &r->p.loss, 1.0f / A, true, &s, err)) < 0 ||
            (rc = rf_train_backward(&r->st, err)) < 0)
            return rc;
        agg->loss += s.loss / A, agg->ce += s.ce / A, agg->kl += s.kl / A;
        agg->n_tokens += s.n_tokens;
        r->cur.tokens += (int64_t)B * r->st.a.T;
    }
    return 0;
}

/* Register every file of a folder the job wrote as an artifact of one kind. */
static int register_folder(rf_job_ctx *ctx, const char *kind, const char *dir, json_t *names,
                           rf_error *err)
{
    DIR *d = opendir(dir);
    if (!d) return rf_errorf(err, RF_EIO, "cannot read the exported %s folder", kind);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if ((rc = ctx->artifact(ctx, kind, path, e->d_name)) < 0)
            rf_errorf(err, rc, "could not register %s as an artifact", e->d_name);
        else
            json_array_append_new(names, json_string(e->d_name));
    }
    closedir(d);
    return rc;
}

static int export(run *r, rf_job_ctx *ctx, json_t *result, rf_error *err)
{
    char path[4096];
    int rc;
    if (r->p.export_adapter) {
        /* adapter_config.json and adapter_model.safetensors: what PEFT loads. */
        snprintf(path, sizeof path, "%s/adapter", ctx->workdir);
        /* base_model_name_or_path: the student as the job named it (an id or
         * a name here, a path under `refinery run`), never a server path */
        const char *base = r->student_ref ? r->student_ref : "";
        if ((rc = rf_lora_save_peft(&r->lora, path, base, err)) < 0) return rc;
        json_t *names = json_array();
        json_object_set_new(result, "adapter", names);
        if ((rc = register_folder(ctx, "adapter", path, names, err)) < 0) return rc;
    }
    if (r->p.export_merged) {
        snprintf(path, sizeof path, "%s/merged", ctx->workdir);
        const rf_dtype dt = r->student.w.layers[0].lin[RF_LIN_Q].w.dtype;
        rc = r->p.full ? rf_trainer_save_full(&r->st, r->p.student, path, dt, err)
                       : rf_lora_export_merged(&r->lora, &r->student, r->p.student, path, err);
        if (rc < 0) return rc;
        /* The merged checkpoint becomes a model of its own, named after the job. */
        char name[128], id[64];
        snprintf(name, sizeof name, "%s-merged", ctx->job_id);
        if ((rc = ctx->model(ctx, path, name, id, sizeof id)) < 0)
            return rf_errorf(err, rc, "the merged checkpoint could not be registered as a model");
        json_object_set_new(result, "merged_model", json_string(id));
    }
    return 0;
}

static int train_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    int rc = rf_train_params_parse(params, &r.p, err);
    if (rc == 0) rc = resolve_refs(&r, ctx, err);
    if (rc == 0) rc = setup(&r, ctx, err);
    if (rc < 0) goto out;
    epoch_order(r.order, r.train.n, r.p.seed, 0);
    const json_t *st = ctx->resume ? json_object_get(ctx->resume, "state") : NULL;
    const json_t *hist = ctx->resume ? json_object_get(ctx->resume, "history") : NULL;
    r.history = json_is_object(hist) && st ? json_deep_copy(hist) : json_object();
    if (st && json_is_string(st)) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", ctx->workdir, json_string_value(st));
        if ((rc = rf_train_state_load(path, &r.st, &r.opt, &r.cur, err)) < 0) goto out;
        epoch_order(r.order, r.train.n, r.p.seed, r.cur.epoch);
        json_t *ev = json_pack("{s:s,s:I}", "message", "resumed from checkpoint", "step",
                               (json_int_t)r.opt.step);
        ctx->event(ctx, "log", ev);
        json_decref(ev);
    }
    const long total = r.opt.cfg.total_steps;
    rf_train_stats s = {0};
    json_t *last_eval = NULL;
    while (r.opt.step < total) {
        if (ctx->should_stop(ctx)) {
            if ((rc = save_checkpoint(&r, ctx, err)) == 0)
                rc = rf_errorf(err, RF_ECANCELED, "stopped after step %ld of %ld", r.opt.step,
                               total);
            break;
        }
        const double t0 = rf_now_s();
        const float lr = rf_optim_lr(&r.opt.cfg, r.opt.step);
        double norm;
        if ((rc = step(&r, &s, err)) < 0) break;
        rf_optim_step(&r.opt, &norm);
        const double dt = rf_now_s() - t0;
        json_t *m = json_pack(
            "{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:I}", "step", (json_int_t)r.opt.step, "loss", s.loss,
            "ce", s.ce, "kl", s.kl, "lr", (double)lr, "grad_norm", norm, "tokens_per_s",
            (double)r.p.batch * r.st.a.T * r.p.grad_accum / dt, "epoch", (json_int_t)r.cur.epoch);
        ctx->event(ctx, "metrics", m);
        json_decref(m);
        json_array_append_new(hist_array(r.history, NULL, "steps"), json_integer(r.opt.step));
        json_array_append_new(hist_array(r.history, NULL, "loss"), json_real(s.loss));
        ctx->progress(ctx, (double)r.opt.step / total, NULL);
        if (r.p.eval_every && r.opt.step % r.p.eval_every == 0 && r.val.n) {
            json_decref(last_eval);
            if ((rc = evaluate(&r, &last_eval, err)) < 0) break;
            if (last_eval) {
                json_object_set_new(last_eval, "step", json_integer(r.opt.step));
                ctx->event(ctx, "eval", last_eval);
                json_array_append_new(hist_array(r.history, "eval", "steps"),
                                      json_integer(r.opt.step));
                const char *keys[] = {"loss", "kl", "ce"};
                for (int i = 0; i < 3; i++)
                    json_array_append(hist_array(r.history, "eval", keys[i]),
                                      json_object_get(last_eval, keys[i]));
            }
        }
        if (r.p.checkpoint_every && r.opt.step % r.p.checkpoint_every == 0 && r.opt.step < total &&
            (rc = save_checkpoint(&r, ctx, err)) < 0)
            break;
    }
    if (rc == 0) {
        *result = json_pack("{s:I,s:I,s:f,s:f,s:f,s:i,s:i}", "steps", (json_int_t)r.opt.step,
                            "tokens", (json_int_t)r.cur.tokens, "loss", s.loss, "ce", s.ce, "kl",
                            s.kl, "train_examples", r.train.n, "validation_examples", r.val.n);
        if (r.val.n && !last_eval) rc = evaluate(&r, &last_eval, err);
        if (rc == 0 && last_eval) json_object_set(*result, "eval", last_eval);
        if (rc == 0) json_object_set_new(*result, "history", history_result(r.history));
        if (rc == 0) rc = export(&r, ctx, *result, err);
        if (rc < 0) json_decref(*result), *result = NULL;
    }
    json_decref(last_eval);
out:
    run_free(&r);
    return rc;
}

static const rf_runner g_train = {
    .type = "train",
    .validate = validate,
    .run = train_run,
    .check = check,
    .description = "LoRA (or full-parameter) fine-tuning of a student on a dataset's responses, "
                   "with knowledge distillation from a teacher model or a teacher cache, "
                   "optimised with Muon or AdamW; the adapter is kept as PEFT artifacts, a "
                   "merged checkpoint as a model. Checkpoints let a rescued job resume.",
    .params = rf_train_params};

const rf_runner *rf_train_runner(void)
{
    return &g_train;
}
