#include "engine/jobs/hpo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hpo/space.h"
#include "engine/hpo/study.h"
#include "engine/jobs/hpo_plot.h"
#include "engine/jobs/train.h"
#include "engine/jobs/train_params.h"

/* The objective: a figure of the train job's held-out evaluation (its
 * "eval" events and result.eval: loss, kl, ce, token_accuracy). */
static const char *const metrics[] = {"validation_ce", "validation_kl", "validation_loss",
                                      "validation_token_accuracy", NULL};
static const char *const eval_keys[] = {"ce", "kl", "loss", "token_accuracy"};
static const char *const directions[] = {"minimize", "maximize", NULL};
static const char *const samplers[] = {"gp", "tpe", "random", NULL};
static const char *const pruners[] = {"median", "none", NULL};

static const rf_param objective_fields[] = {
    {.name = "metric",
     .type = RF_PARAM_ENUM,
     .choices = metrics,
     .def = "validation_ce",
     .help = "the train job's held-out figure to optimise (its dataset needs validation rows): "
             "cross-entropy of the answers (the default: comparable whatever loss.alpha and "
             "loss.temperature a trial uses), KL to the teacher, the training loss itself, or "
             "token accuracy"},
    {.name = "direction",
     .type = RF_PARAM_ENUM,
     .choices = directions,
     .help = "default: maximize for validation_token_accuracy, minimize otherwise"},
    {0}};

static const rf_param sampler_fields[] = {
    {.name = "name",
     .type = RF_PARAM_ENUM,
     .choices = samplers,
     .def = "gp",
     .help = "gp (Gaussian process, log EI), tpe (Optuna's), or random"},
    {.name = "n_startup",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 1000,
     .help = "quasi-random trials before the model is used (default: the sampler's)"},
    {.name = "seed", .type = RF_PARAM_INT, .lo = 0, .hi = 2147483647, .help = "default: seed"},
    {0}};

static const rf_param pruner_fields[] = {
    {.name = "name",
     .type = RF_PARAM_ENUM,
     .choices = pruners,
     .help = "median (Optuna's MedianPruner) or none; default median when train.eval_every is "
             "set, none otherwise"},
    {.name = "n_startup_trials",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 1000,
     .def = "5",
     .help = "completed trials before any is pruned"},
    {.name = "warmup_steps",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 1e9,
     .def = "0",
     .help = "no trial is pruned before this step"},
    {0}};

static const rf_param params[] = {
    {.name = "train",
     .type = RF_PARAM_OBJECT,
     .flags = RF_PARAM_REQUIRED,
     .fields = rf_train_params, /* the train job's own table: its references resolve at POST */
     .help = "the params of a train job (see the train type); each trial changes the space's "
             "paths in it"},
    {.name = "space",
     .type = RF_PARAM_JSON,
     .flags = RF_PARAM_REQUIRED,
     .help = "{\"optimizer.lr\": {\"type\": \"log_float\", \"low\": 1e-4, \"high\": 1e-1}, …}: "
             "keys are paths into train (optimizer.lr, lora.r, loss.alpha, loss.temperature, …); "
             "types float, log_float, int (step), log_int, categorical (choices)"},
    {.name = "objective", .type = RF_PARAM_OBJECT, .fields = objective_fields},
    {.name = "n_trials",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 1000,
     .def = "16",
     .help = "trials in all"},
    {.name = "parallel",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 64,
     .def = "2",
     .help = "trials (train jobs) running at once, on any worker"},
    {.name = "sampler", .type = RF_PARAM_OBJECT, .fields = sampler_fields},
    {.name = "pruner", .type = RF_PARAM_OBJECT, .fields = pruner_fields},
    {.name = "seed",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 2147483647,
     .def = "0",
     .help = "the sampler's seed: the same seed and results give the same trials"},
    {0}};

typedef struct hpo_opts {
    const json_t *train, *space;
    int metric; /* index into metrics */
    bool maximize;
    int n_trials, parallel;
    const char *sampler;
    long long n_startup; /* -1: the sampler's default */
    long long seed;
    bool prune;
    int prune_startup, prune_warmup;
} hpo_opts;

static const json_t *sub(const json_t *p, const char *key)
{
    const json_t *v = json_object_get(p, key);
    return json_is_object(v) ? v : NULL;
}

static int options(const json_t *p, hpo_opts *o, rf_error *err)
{
    memset(o, 0, sizeof *o);
    o->train = json_object_get(p, "train");
    o->space = json_object_get(p, "space");
    const json_t *obj = sub(p, "objective"), *smp = sub(p, "sampler"), *prn = sub(p, "pruner");
    o->metric = rf_param_enum(obj, objective_fields, "metric", 0);
    const char *dir = rf_param_str(obj, objective_fields, "direction", NULL);
    o->maximize =
        dir ? !strcmp(dir, "maximize") : !strcmp(metrics[o->metric], "validation_token_accuracy");
    o->n_trials = (int)rf_param_int(p, params, "n_trials", 16);
    o->parallel = (int)rf_param_int(p, params, "parallel", 2);
    o->seed = rf_param_int(p, params, "seed", 0);
    o->sampler = rf_param_str(smp, sampler_fields, "name", "gp");
    o->n_startup = rf_param_int(smp, sampler_fields, "n_startup", -1);
    o->seed = rf_param_int(smp, sampler_fields, "seed", o->seed);
    const json_t *ee = json_object_get(o->train, "eval_every");
    bool evals = json_is_integer(ee) && json_integer_value(ee) > 0;
    const char *pn = rf_param_str(prn, pruner_fields, "name", evals ? "median" : "none");
    o->prune = !strcmp(pn, "median");
    o->prune_startup = (int)rf_param_int(prn, pruner_fields, "n_startup_trials", 5);
    o->prune_warmup = (int)rf_param_int(prn, pruner_fields, "warmup_steps", 0);
    if (o->prune && !evals)
        return rf_error_field(err, RF_EINVAL, "train.eval_every",
                              "the median pruner compares the trials' held-out figures during "
                              "training: set train.eval_every (steps between evaluations), or "
                              "pruner.name 'none'");
    return 0;
}

/* ---- the space's paths into the train params ----------------------------- */

static bool path_ok(const char *path)
{
    int segs = 1;
    size_t n = strlen(path);
    if (n == 0 || n > 100 || path[0] == '.' || path[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char ch = path[i];
        if (ch == '.') {
            if (path[i + 1] == '.') return false;
            segs++;
        } else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
            return false;
        }
    }
    return segs <= 4;
}

/* obj[path] = v (stolen), making the objects on the way. */
static int set_path(json_t *obj, const char *path, json_t *v)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *seg = buf, *dot;
    while ((dot = strchr(seg, '.'))) {
        *dot = '\0';
        json_t *next = json_object_get(obj, seg);
        if (!next) {
            next = json_object();
            json_object_set_new(obj, seg, next);
        }
        if (!json_is_object(next)) {
            json_decref(v);
            return RF_EINVAL;
        }
        obj = next;
        seg = dot + 1;
    }
    return json_object_set_new(obj, seg, v) ? RF_ENOMEM : 0;
}

/* The train params of a point: a copy of train with the point's values at
 * their paths. */
static json_t *train_at(const json_t *train, const json_t *point, rf_error *err)
{
    json_t *t = json_deep_copy(train);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)point, k, v)
    {
        if (set_path(t, k, json_incref(v))) {
            json_decref(t);
            rf_error_field(err, RF_EINVAL, "space",
                           "'%s' crosses a train param that is not an object", k);
            return NULL;
        }
    }
    return t;
}

/* The values a dimension takes at its corners: low and top, or every choice. */
static int corners(const rf_hp_dim *d, double *out, int cap)
{
    if (d->kind == RF_HP_CATEGORICAL) {
        int n = d->n_choices < cap ? d->n_choices : cap;
        for (int i = 0; i < n; i++)
            out[i] = i;
        return n;
    }
    out[0] = d->low;
    out[1] = rf_hp_dim_top(d);
    return out[1] == out[0] ? 1 : 2;
}

/* The train runner's own check at the space's corners: every combination
 * when there are few, otherwise each dimension's corners with the others at
 * their first. A failure names the space key at fault, or the train param. */
static int check_corners(const json_t *train, const rf_hp_space *s, rf_error *err)
{
    enum { CAP = 16, MAX_COMBOS = 256 };
    double vals[RF_HP_MAX_DIMS][CAP], x[RF_HP_MAX_DIMS];
    int cnt[RF_HP_MAX_DIMS], idx[RF_HP_MAX_DIMS] = {0};
    double combos = 1;
    for (int i = 0; i < s->n; i++) {
        cnt[i] = corners(&s->dims[i], vals[i], CAP);
        combos *= cnt[i];
    }
    const bool all = combos <= MAX_COMBOS;
    const rf_runner *train_runner = rf_train_runner();
    int rc = 0;
    for (long k = 0;; k++) {
        if (all) {
            /* odometer over every combination */
            if (k > 0) {
                int i = 0;
                while (i < s->n && ++idx[i] == cnt[i])
                    idx[i++] = 0;
                if (i == s->n) break;
            }
        } else {
            /* one dimension at a time: k walks (dim, value) pairs */
            memset(idx, 0, sizeof idx);
            long left = k;
            int i = 0;
            while (i < s->n && left >= cnt[i])
                left -= cnt[i++];
            if (i == s->n) break;
            idx[i] = (int)left;
        }
        for (int i = 0; i < s->n; i++)
            x[i] = vals[i][idx[i]];
        json_t *point = rf_hp_point_json(s, x), *t = point ? train_at(train, point, err) : NULL;
        if (!t) {
            json_decref(point);
            return point ? RF_EINVAL : rf_errorf(err, RF_ENOMEM, "out of memory");
        }
        rf_error terr;
        rf_error_clear(&terr);
        rc = rf_runner_validate(train_runner, t, &terr);
        json_decref(t);
        if (rc) {
            char *at = json_dumps(point, JSON_COMPACT | JSON_REAL_PRECISION(6));
            const char *key = NULL;
            for (int i = 0; i < s->n && !key; i++)
                if (!strcmp(s->dims[i].name, terr.field)) key = s->dims[i].name;
            if (key)
                rf_error_field(err, RF_EINVAL, "", "at the space's corner %s: %s", at ? at : "",
                               terr.msg);
            else
                rf_error_field(err, RF_EINVAL, "", "train, at the space's corner %s: %s",
                               at ? at : "", terr.msg);
            snprintf(err->field, sizeof err->field, "%s%s", key ? "space." : "train.",
                     key ? key : terr.field);
            free(at);
            json_decref(point);
            return rc;
        }
        json_decref(point);
    }
    return 0;
}

static int validate(const json_t *p, rf_error *err)
{
    hpo_opts o;
    int rc = options(p, &o, err);
    if (rc) return rc;
    if (!json_is_object(o.space))
        return rf_error_field(err, RF_EINVAL, "space",
                              "'space' must be an object of dimensions keyed by train paths");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o.space, k, v)
    {
        char f[160];
        snprintf(f, sizeof f, "space.%s", k);
        if (!path_ok(k))
            return rf_error_field(err, RF_EINVAL, f,
                                  "'%s' must be a path into the train params, such as "
                                  "optimizer.lr or lora.r",
                                  k);
        for (const rf_param *r = rf_train_params; r->name; r++)
            if (r->ref && !strcmp(k, r->name))
                return rf_error_field(err, RF_EINVAL, f,
                                      "'%s' names a registered object; it cannot be searched", k);
    }
    rf_hp_space s;
    if ((rc = rf_hp_space_parse(o.space, &s, err))) {
        char f[sizeof err->field];
        snprintf(f, sizeof f, "space%s%s", err->field[0] ? "." : "", err->field);
        snprintf(err->field, sizeof err->field, "%s", f);
        return rc;
    }
    rf_hp_sampler_kind kind;
    rc = rf_hp_sampler_parse(o.sampler, &kind, err);
    if (!rc) rc = check_corners(o.train, &s, err);
    rf_hp_space_free(&s);
    return rc;
}

/* What the train runner checks on the objects train names (a GPTQ student
 * trained in full, teacher and student vocabularies), at the space's lower
 * corner: a 422 at POST rather than every trial failing. */
static int check(const json_t *p, rf_ref_resolver resolve, void *user, rf_error *err)
{
    const rf_runner *tr = rf_train_runner();
    if (!tr->check) return 0;
    rf_hp_space s;
    rf_error perr;
    if (rf_hp_space_parse(json_object_get(p, "space"), &s, &perr)) return 0; /* validate says */
    double x[RF_HP_MAX_DIMS];
    for (int i = 0; i < s.n; i++) {
        double c[16] = {0};
        corners(&s.dims[i], c, 16);
        x[i] = c[0];
    }
    json_t *point = rf_hp_point_json(&s, x);
    json_t *t = point ? train_at(json_object_get(p, "train"), point, err) : NULL;
    rf_hp_space_free(&s);
    json_decref(point);
    if (!t) return rf_errorf(err, RF_ENOMEM, "out of memory");
    int rc = tr->check(t, resolve, user, err);
    json_decref(t);
    if (rc < 0) {
        char f[sizeof err->field];
        snprintf(f, sizeof f, "train%s%s", err->field[0] ? "." : "", err->field);
        snprintf(err->field, sizeof err->field, "%s", f);
    }
    return rc;
}

/* ---- running ------------------------------------------------------------- */

typedef struct hpo_run {
    hpo_opts o;
    rf_job_ctx *ctx;
    const char *study; /* id, in study_doc */
    json_t *study_doc;
    rf_error *err;
} hpo_run;

static int op(hpo_run *h, const char *name, json_t *args, json_t **out)
{
    json_t *res = NULL;
    int rc = h->ctx->study(h->ctx, name, args, &res, h->err);
    json_decref(args);
    if (out)
        *out = res;
    else
        json_decref(res);
    return rc;
}

static int ensure_study(hpo_run *h)
{
    char name[200], result_path[64];
    snprintf(name, sizeof name, "hpo %s", h->ctx->job_id);
    /* The train job's held-out figure at its end: its trial's value, told
     * by the worker that ran it (service/study_link.h) or, failing that, by
     * the next run of this job. */
    snprintf(result_path, sizeof result_path, "eval.%s", eval_keys[h->o.metric]);
    json_t *args = json_pack(
        "{s:s,s:s,s:s,s:O,s:{s:s,s:o,s:I},s:{s:s,s:i,s:i},s:i,s:{s:s,s:s,s:s,s:s}}", "key",
        h->ctx->job_id, "name", name, "direction", h->o.maximize ? "maximize" : "minimize", "space",
        h->o.space, "sampler", "name", h->o.sampler, "n_startup",
        h->o.n_startup < 0 ? json_null() : json_integer(h->o.n_startup), "seed",
        (json_int_t)h->o.seed, "pruner", "name", h->o.prune ? "median" : "none", "n_startup_trials",
        h->o.prune_startup, "warmup_steps", h->o.prune_warmup, "max_trials", h->o.n_trials,
        "job_report", "event", "eval", "field", eval_keys[h->o.metric], "step", "step", "result",
        result_path);
    if (!args) return rf_errorf(h->err, RF_ENOMEM, "out of memory");
    int rc = op(h, "create", args, &h->study_doc);
    if (rc) return rc;
    h->study = json_string_value(json_object_get(h->study_doc, "id"));
    return h->study ? 0 : rf_errorf(h->err, RF_EINTERNAL, "the study has no id");
}

static json_t *child_of(const json_t *kids, const char *key)
{
    size_t i;
    json_t *k;
    json_array_foreach(kids, i, k)
    {
        if (!strcmp(json_string_value(json_object_get(k, "key")), key)) return k;
    }
    return NULL;
}

/* The child job of a trial (its key is "trial-<number>"), or NULL. */
static json_t *trial_child(const json_t *kids, int number)
{
    char key[32];
    snprintf(key, sizeof key, "trial-%d", number);
    return child_of(kids, key);
}

static bool open_status(const char *s)
{
    return !strcmp(s, "queued") || !strcmp(s, "running") || !strcmp(s, "waiting");
}

static int submit(hpo_run *h, int number, const json_t *point, const json_t *trial)
{
    char key[32], num[16], id[64];
    snprintf(key, sizeof key, "trial-%d", number);
    snprintf(num, sizeof num, "%d", number);
    json_t *t = train_at(h->o.train, point, h->err);
    if (!t) return RF_EINVAL;
    json_t *md = json_pack("{s:s,s:s}", "study_id", h->study, "trial", num);
    bool created = false;
    int rc = h->ctx->submit_child(h->ctx, key, "train", t, md, id, sizeof id, &created, h->err);
    json_decref(t);
    json_decref(md);
    if (rc) return rc;
    if (!trial || !json_is_string(json_object_get(trial, "job_id")))
        rc =
            op(h, "attach",
               json_pack("{s:s,s:i,s:s}", "study", h->study, "number", number, "job_id", id), NULL);
    return rc;
}

/* A "trial" event for every trial seen finished for the first time (told
 * here, or by the worker that ran it); seen lives in the checkpoint. */
static int trial_events(hpo_run *h, const json_t *trials, json_t *seen, bool *changed)
{
    size_t i, k;
    json_t *t, *s;
    json_array_foreach(trials, i, t)
    {
        const char *state = json_string_value(json_object_get(t, "state"));
        json_t *num = json_object_get(t, "number");
        bool known = false;
        json_array_foreach(seen, k, s) known |= json_equal(s, num);
        if (known || !strcmp(state, "running")) continue;
        json_t *d = json_pack("{s:O,s:s,s:O,s:O,s:O}", "number", num, "state", state, "value",
                              json_object_get(t, "value"), "params", json_object_get(t, "params"),
                              "job_id", json_object_get(t, "job_id"));
        h->ctx->event(h->ctx, "trial", d);
        json_decref(d);
        json_array_append(seen, num);
        *changed = true;
    }
    return 0;
}

/* A running trial whose child has ended: tell the study what it gave. */
static int settle(hpo_run *h, int number, const json_t *kid, bool *no_eval)
{
    const char *status = json_string_value(json_object_get(kid, "status"));
    const char *jid = json_string_value(json_object_get(kid, "id"));
    const json_t *value = NULL;
    const char *state = "fail";
    if (!strcmp(status, "succeeded")) {
        const json_t *ev = json_object_get(json_object_get(kid, "result"), "eval");
        value = json_object_get(ev, eval_keys[h->o.metric]);
        if (json_is_number(value) && isfinite(json_number_value(value)))
            state = "complete";
        else
            value = NULL, *no_eval = !ev;
    }
    json_t *args = json_pack("{s:s,s:i,s:s,s:s}", "study", h->study, "number", number, "state",
                             state, "job_id", jid);
    if (value) json_object_set(args, "value", (json_t *)value);
    int rc = op(h, "tell", args, NULL);
    return rc == RF_ECONFLICT ? 0 : rc; /* told meanwhile by the worker that ran it */
}

static int result(hpo_run *h, const json_t *trials, const json_t *kids, json_t **out);

static int hpo_run_fn(const json_t *p, rf_job_ctx *ctx, json_t **out, rf_error *err)
{
    hpo_run h = {.ctx = ctx, .err = err};
    int rc = rf_params_check(p, params, "", err);
    if (rc || (rc = validate(p, err)) || (rc = options(p, &h.o, err))) return rc;
    if (!ctx->study || !ctx->submit_child || !ctx->children)
        return rf_errorf(err, RF_EUNSUPPORTED, "hpo: this context cannot run child jobs");
    if ((rc = ensure_study(&h))) goto out;
    json_t *trials = NULL, *kids = NULL,
           *seen = json_deep_copy(json_object_get(ctx->resume, "seen"));
    bool changed = !ctx->resume || !json_object_get(ctx->resume, "study");
    if (!json_is_array(seen)) json_decref(seen), seen = json_array();
    if (ctx->should_stop(ctx)) {
        rc = rf_errorf(err, RF_ECANCELED, "hpo: stopped");
        goto done;
    }
    if ((rc = op(&h, "trials", json_pack("{s:s}", "study", h.study), &trials)) ||
        (rc = ctx->children(ctx, &kids, err)))
        goto done;
    int active = 0, n = (int)json_array_size(trials), finished = 0;
    bool no_eval = false;
    size_t i;
    json_t *t;
    json_array_foreach(trials, i, t)
    {
        int number = (int)json_integer_value(json_object_get(t, "number"));
        const json_t *kid = trial_child(kids, number);
        const char *state = json_string_value(json_object_get(t, "state"));
        const char *status = kid ? json_string_value(json_object_get(kid, "status")) : NULL;
        if (kid && open_status(status)) {
            active++; /* running, or pruned and still stopping */
        } else if (!strcmp(state, "running")) {
            /* no child yet (killed between ask and submit), or it has ended */
            if (!kid) {
                if ((rc = submit(&h, number, json_object_get(t, "params"), t))) goto done;
                active++;
            } else {
                if ((rc = settle(&h, number, kid, &no_eval))) goto done;
                finished++;
            }
        } else {
            finished++;
        }
    }
    json_decref(trials);
    trials = NULL;
    if ((rc = op(&h, "trials", json_pack("{s:s}", "study", h.study), &trials)) ||
        (rc = trial_events(&h, trials, seen, &changed)))
        goto done;
    if (changed) {
        json_t *st = json_pack("{s:s,s:O}", "study", h.study, "seen", seen);
        rc = ctx->checkpoint(ctx, st);
        json_decref(st);
        if (rc) goto done;
    }
    if (no_eval) {
        rc = rf_error_field(err, RF_EINVAL, "objective.metric",
                            "the trials' train jobs report no held-out figures: the dataset needs "
                            "rows with split 'validation' for the objective %s",
                            metrics[h.o.metric]);
        goto done;
    }
    while (active < h.o.parallel && n < h.o.n_trials) {
        json_t *tr = NULL;
        rc = op(&h, "ask", json_pack("{s:s}", "study", h.study), &tr);
        if (rc == RF_ECONFLICT) { /* the study holds n_trials already */
            rc = 0;
            break;
        }
        if (rc) goto done;
        int number = (int)json_integer_value(json_object_get(tr, "number"));
        rc = submit(&h, number, json_object_get(tr, "params"), NULL);
        json_decref(tr);
        if (rc) goto done;
        active++, n++;
    }
    ctx->progress(ctx, (double)finished / h.o.n_trials, NULL);
    if (active > 0) {
        rc = RF_EWAIT;
        goto done;
    }
    /* Every trial is told: the end. */
    json_decref(trials);
    json_decref(kids);
    trials = kids = NULL;
    if ((rc = op(&h, "trials", json_pack("{s:s}", "study", h.study), &trials)) ||
        (rc = ctx->children(ctx, &kids, err)))
        goto done;
    rc = result(&h, trials, kids, out);
done:
    json_decref(trials);
    json_decref(kids);
    json_decref(seen);
out:
    json_decref(h.study_doc);
    return rc;
}

/* ---- the result ---------------------------------------------------------- */

static int result(hpo_run *h, const json_t *trials, const json_t *kids, json_t **out)
{
    json_t *list = json_array(), *best = json_null();
    int counts[3] = {0}; /* complete, pruned, failed */
    const char *first_error = NULL;
    rf_study_def d = {0};
    /* The study's definition, out of the study object. */
    static const char *const def_keys[] = {"name",   "direction",  "space",      "sampler",
                                           "pruner", "max_trials", "job_report", NULL};
    json_t *def = json_object();
    for (const char *const *k = def_keys; *k; k++)
        if (json_object_get(h->study_doc, *k))
            json_object_set(def, *k, json_object_get(h->study_doc, *k));
    int rc = rf_study_def_parse(def, 0, &d, h->err);
    json_decref(def);
    if (rc) goto fail;
    size_t i;
    json_t *t;
    json_array_foreach(trials, i, t)
    {
        int number = (int)json_integer_value(json_object_get(t, "number"));
        const json_t *kid = trial_child(kids, number);
        const char *state = json_string_value(json_object_get(t, "state"));
        counts[0] += !strcmp(state, "complete");
        counts[1] += !strcmp(state, "pruned");
        counts[2] += !strcmp(state, "failed");
        json_t *st = json_object_get(kid, "started_at"), *ft = json_object_get(kid, "finished_at");
        json_t *o = json_pack("{s:i,s:s,s:O,s:O,s:O?,s:O?}", "number", number, "state", state,
                              "params", json_object_get(t, "params"), "value",
                              json_object_get(t, "value"), "job_id", json_object_get(kid, "id"),
                              "intermediate", json_object_get(t, "intermediate"));
        json_object_set_new(o, "seconds",
                            json_is_number(st) && json_is_number(ft)
                                ? json_real(json_number_value(ft) - json_number_value(st))
                                : json_null());
        const char *e = json_string_value(json_object_get(kid, "error"));
        if (!strcmp(state, "failed") && e) {
            json_object_set_new(o, "error", json_string(e));
            if (!first_error) first_error = e;
        }
        json_array_append_new(list, o);
    }
    int b = rf_study_best(&d, trials);
    if (b < 0) {
        rc = rf_errorf(h->err, RF_EINVAL, "hpo: no trial completed (%d pruned, %d failed)%s%s",
                       counts[1], counts[2], first_error ? "; the first failure: " : "",
                       first_error ? first_error : "");
        goto fail;
    }
    const json_t *bt = json_array_get(trials, (size_t)b);
    const json_t *kid = trial_child(kids, (int)json_integer_value(json_object_get(bt, "number"))),
                 *res = json_object_get(kid, "result");
    json_t *tp = train_at(h->o.train, json_object_get(bt, "params"), h->err);
    best =
        json_pack("{s:O,s:O,s:O,s:O?,s:O?,s:O?,s:o?}", "number", json_object_get(bt, "number"),
                  "value", json_object_get(bt, "value"), "params", json_object_get(bt, "params"),
                  "job_id", json_object_get(kid, "id"), "adapter", json_object_get(res, "adapter"),
                  "merged_model", json_object_get(res, "merged_model"), "train", tp);
    /* The plot: objective by trial and each parameter's effect. */
    char path[4096];
    snprintf(path, sizeof path, "%s/hpo.svg", h->ctx->workdir);
    if ((rc = rf_hpo_plot_svg(path, list, &d.space, metrics[h->o.metric], d.maximize, h->err)) ||
        (rc = h->ctx->artifact(h->ctx, "plot", path, "hpo.svg")) < 0)
        goto fail;
    *out = json_pack("{s:s,s:{s:s,s:s},s:i,s:i,s:i,s:i,s:O,s:O,s:s}", "study_id", h->study,
                     "objective", "metric", metrics[h->o.metric], "direction",
                     d.maximize ? "maximize" : "minimize", "n_trials", (int)json_array_size(trials),
                     "complete", counts[0], "pruned", counts[1], "failed", counts[2], "best", best,
                     "trials", list, "plot", "hpo.svg");
    rc = *out ? 0 : rf_errorf(h->err, RF_ENOMEM, "out of memory");
fail:
    rf_study_def_free(&d);
    json_decref(list);
    json_decref(best);
    return rc;
}

const rf_runner rf_hpo_runner = {
    .type = "hpo",
    .validate = validate,
    .run = hpo_run_fn,
    .check = check,
    .description = "Bayesian optimisation of a train job's hyper-parameters: a study (GET "
                   "/v1/studies) whose trials are child train jobs on any worker, up to "
                   "`parallel` at once, the parent waiting without a worker in between; a median "
                   "pruner stops trials that fall behind; the result is the best params, value, "
                   "train job and adapter, every trial, and an SVG plot.",
    .params = params};
