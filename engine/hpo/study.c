#include "engine/hpo/study.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_MAX 9007199254740991.0 /* 2^53 − 1: exact in every JSON reader */

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
            char f[160], list[160] = "";
            snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", k);
            for (const char *const *p = keys; *p; p++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         p == keys ? "" : ", ", *p);
            return rf_error_field(err, RF_EINVAL, f, "unknown field '%s' (expected %s)", f, list);
        }
    }
    return 0;
}

/* An optional integer in [lo, hi]; *out keeps its default when absent or null. */
static int int_field(const json_t *obj, const char *path, const char *key, double lo, double hi,
                     double *out, rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    char f[160];
    snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", key);
    if (!json_is_integer(v) || (double)json_integer_value(v) < lo ||
        (double)json_integer_value(v) > hi)
        return rf_error_field(err, RF_EINVAL, f, "'%s' must be an integer in [%.0f, %.0f]", f, lo,
                              hi);
    *out = (double)json_integer_value(v);
    return 0;
}

static int object_field(const json_t *body, const char *key, const json_t **out, rf_error *err)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v))
        return rf_error_field(err, RF_EINVAL, key, "'%s' must be an object", key);
    *out = v;
    return 0;
}

static int string_field(const json_t *obj, const char *path, const char *key, bool required,
                        size_t max, const char **out, rf_error *err)
{
    json_t *v = json_object_get(obj, key);
    char f[160];
    snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", key);
    if (!v || json_is_null(v))
        return required ? rf_error_field(err, RF_EINVAL, f, "'%s' is required", f) : 0;
    if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > max)
        return rf_error_field(err, RF_EINVAL, f, "'%s' must be a string of 1 to %zu characters", f,
                              max);
    *out = json_string_value(v);
    return 0;
}

static int parse_sampler(const json_t *o, uint64_t default_seed, rf_study_def *d, json_t *out,
                         rf_error *err)
{
    static const char *const keys[] = {"name", "n_startup", "seed", NULL};
    const char *name = "gp";
    double n_startup = -1, seed = (double)(default_seed & (uint64_t)SEED_MAX);
    int rc;
    if (o && ((rc = only(o, "sampler", keys, err)) ||
              (rc = string_field(o, "sampler", "name", false, 16, &name, err)) ||
              (rc = int_field(o, "sampler", "n_startup", 0, 1000, &n_startup, err)) ||
              (rc = int_field(o, "sampler", "seed", 0, SEED_MAX, &seed, err))))
        return rc;
    if ((rc = rf_hp_sampler_parse(name, &d->sampler.kind, err))) return rc;
    d->sampler.n_startup = (int)n_startup;
    d->sampler.seed = (uint64_t)seed;
    json_object_set_new(out, "sampler",
                        json_pack("{s:s,s:o,s:I}", "name", name, "n_startup",
                                  n_startup < 0 ? json_null() : json_integer((json_int_t)n_startup),
                                  "seed", (json_int_t)seed));
    return 0;
}

static int parse_pruner(const json_t *o, rf_study_def *d, json_t *out, rf_error *err)
{
    static const char *const keys[] = {"name", "n_startup_trials", "warmup_steps", NULL};
    const char *name = "median";
    double startup = 5, warmup = 0;
    int rc;
    if (o && ((rc = only(o, "pruner", keys, err)) ||
              (rc = string_field(o, "pruner", "name", false, 16, &name, err)) ||
              (rc = int_field(o, "pruner", "n_startup_trials", 0, 100000, &startup, err)) ||
              (rc = int_field(o, "pruner", "warmup_steps", 0, 1e9, &warmup, err))))
        return rc;
    if (strcmp(name, "median") && strcmp(name, "none"))
        return rf_error_field(err, RF_EINVAL, "pruner.name",
                              "'pruner.name' must be 'median' or 'none'");
    d->prune = !strcmp(name, "median");
    d->prune_startup = (int)startup;
    d->prune_warmup = (int)warmup;
    json_object_set_new(out, "pruner",
                        json_pack("{s:s,s:i,s:i}", "name", name, "n_startup_trials", (int)startup,
                                  "warmup_steps", (int)warmup));
    return 0;
}

static int parse_job_report(const json_t *o, json_t *out, rf_error *err)
{
    static const char *const keys[] = {"event", "field", "step", "result", NULL};
    const char *event = NULL, *field = NULL, *step = "step", *result = NULL;
    int rc;
    if ((rc = only(o, "job_report", keys, err)) ||
        (rc = string_field(o, "job_report", "event", true, 64, &event, err)) ||
        (rc = string_field(o, "job_report", "field", true, 64, &field, err)) ||
        (rc = string_field(o, "job_report", "step", false, 64, &step, err)) ||
        (rc = string_field(o, "job_report", "result", false, 64, &result, err)))
        return rc;
    json_t *r = json_pack("{s:s,s:s,s:s}", "event", event, "field", field, "step", step);
    if (result) json_object_set_new(r, "result", json_string(result));
    json_object_set_new(out, "job_report", r);
    return 0;
}

const json_t *rf_study_json_path(const json_t *obj, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg && obj; seg = strtok_r(NULL, ".", &save))
        obj = json_object_get(obj, seg);
    return obj;
}

int rf_study_def_parse(const json_t *body, uint64_t default_seed, rf_study_def *d, rf_error *err)
{
    static const char *const keys[] = {"name",   "direction",  "space",      "sampler",
                                       "pruner", "max_trials", "job_report", NULL};
    memset(d, 0, sizeof *d);
    if (!json_is_object(body))
        return rf_error_field(err, RF_EINVAL, "", "a study must be a JSON object");
    const char *name = NULL, *direction = "minimize";
    const json_t *sampler, *pruner, *report;
    double max_trials = 0;
    int rc;
    if ((rc = only(body, "", keys, err)) ||
        (rc = string_field(body, "", "name", true, 200, &name, err)) ||
        (rc = string_field(body, "", "direction", false, 16, &direction, err)) ||
        (rc = object_field(body, "sampler", &sampler, err)) ||
        (rc = object_field(body, "pruner", &pruner, err)) ||
        (rc = object_field(body, "job_report", &report, err)) ||
        (rc = int_field(body, "", "max_trials", 1, 1000000, &max_trials, err)))
        return rc;
    if (strcmp(direction, "minimize") && strcmp(direction, "maximize"))
        return rf_error_field(err, RF_EINVAL, "direction",
                              "'direction' must be 'minimize' or 'maximize'");
    d->maximize = !strcmp(direction, "maximize");
    d->max_trials = (int)max_trials;
    json_t *space = json_object_get(body, "space");
    if (!space) return rf_error_field(err, RF_EINVAL, "space", "'space' is required");
    if ((rc = rf_hp_space_parse(space, &d->space, err))) {
        if (err) {
            char f[sizeof err->field];
            snprintf(f, sizeof f, "space%s%s", err->field[0] ? "." : "", err->field);
            snprintf(err->field, sizeof err->field, "%s", f);
        }
        return rc;
    }
    d->sampler.maximize = d->maximize;
    d->json = json_pack("{s:s,s:s,s:o}", "name", name, "direction", direction, "space",
                        rf_hp_space_json(&d->space));
    if (!d->json) {
        rf_study_def_free(d);
        return rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    if ((rc = parse_sampler(sampler, default_seed, d, d->json, err)) ||
        (rc = parse_pruner(pruner, d, d->json, err)) ||
        (report && (rc = parse_job_report(report, d->json, err)))) {
        rf_study_def_free(d);
        return rc;
    }
    json_object_set_new(d->json, "max_trials",
                        max_trials > 0 ? json_integer((json_int_t)max_trials) : json_null());
    return 0;
}

void rf_study_def_free(rf_study_def *d)
{
    rf_hp_space_free(&d->space);
    json_decref(d->json);
    memset(d, 0, sizeof *d);
}

int rf_study_check_value(const json_t *v, const char *field, rf_error *err)
{
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return rf_error_field(err, RF_EINVAL, field, "'%s' must be a finite number", field);
    return 0;
}

int rf_study_check_point(const rf_study_def *d, const json_t *params, rf_error *err)
{
    double x[RF_HP_MAX_DIMS];
    int rc = rf_hp_point_parse(&d->space, params, x, err);
    if (rc && err) {
        char f[sizeof err->field];
        snprintf(f, sizeof f, "params%s%s", err->field[0] ? "." : "", err->field);
        snprintf(err->field, sizeof err->field, "%s", f);
    }
    return rc;
}

static rf_hp_trial_state state_of(const char *s)
{
    if (s && !strcmp(s, "complete")) return RF_HP_TRIAL_COMPLETE;
    if (s && !strcmp(s, "pruned")) return RF_HP_TRIAL_PRUNED;
    if (s && !strcmp(s, "failed")) return RF_HP_TRIAL_FAILED;
    return RF_HP_TRIAL_RUNNING;
}

int rf_study_ask(const rf_study_def *d, const json_t *trials, int number, json_t **params,
                 rf_error *err)
{
    const int dims = d->space.n;
    size_t n = json_array_size(trials);
    rf_hp_trial *t = calloc(n ? n : 1, sizeof *t);
    double *xs = calloc((n ? n : 1) * (size_t)dims, sizeof *xs);
    double x[RF_HP_MAX_DIMS];
    int m = 0, rc = 0;
    *params = NULL;
    if (!t || !xs) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *tr = json_array_get(trials, i);
        rf_hp_trial *o = &t[m];
        o->number = (int)json_integer_value(json_object_get(tr, "number"));
        if (o->number == number) continue;
        o->state = state_of(json_string_value(json_object_get(tr, "state")));
        rf_error perr;
        if (rf_hp_point_parse(&d->space, json_object_get(tr, "params"), xs + (size_t)m * dims,
                              &perr))
            continue; /* not a point of this space: nothing to learn from */
        o->x = xs + (size_t)m * dims;
        json_t *v = json_object_get(tr, "value");
        o->has_value = json_is_number(v) && isfinite(json_number_value(v));
        o->value = o->has_value ? json_number_value(v) : 0;
        if (o->state == RF_HP_TRIAL_COMPLETE && !o->has_value) o->state = RF_HP_TRIAL_FAILED;
        m++;
    }
    if ((rc = rf_hp_ask(&d->space, &d->sampler, t, m, number, x, err))) goto out;
    *params = rf_hp_point_json(&d->space, x);
    if (!*params) rc = rf_errorf(err, RF_ENOMEM, "out of memory");
out:
    free(t);
    free(xs);
    return rc;
}

/* One trial's reports as arrays (steps ascending; the store sorts them). */
static int reports_of(const json_t *tr, int *steps, double *values, int cap)
{
    const json_t *im = json_object_get(tr, "intermediate");
    int n = 0;
    for (size_t i = 0; i < json_array_size(im) && n < cap; i++) {
        const json_t *r = json_array_get(im, i);
        json_t *s = json_object_get(r, "step"), *v = json_object_get(r, "value");
        if (!json_is_integer(s) || !json_is_number(v)) continue;
        steps[n] = (int)json_integer_value(s);
        values[n] = json_number_value(v);
        n++;
    }
    return n;
}

bool rf_study_should_prune(const rf_study_def *d, const json_t *trials, int number)
{
    if (!d->prune) return false;
    size_t n = json_array_size(trials), total = 0;
    for (size_t i = 0; i < n; i++)
        total += json_array_size(json_object_get(json_array_get(trials, i), "intermediate"));
    int *steps = malloc(sizeof *steps * (total ? total : 1));
    double *values = malloc(sizeof *values * (total ? total : 1));
    rf_hp_reports *hist = calloc(n ? n : 1, sizeof *hist), self = {0};
    bool found = false, prune = false;
    if (!steps || !values || !hist) goto out;
    size_t used = 0;
    int h = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *tr = json_array_get(trials, i);
        int k = reports_of(tr, steps + used, values + used, (int)(total - used));
        rf_hp_reports r = {.n = k, .steps = steps + used, .values = values + used};
        used += (size_t)k;
        if (json_integer_value(json_object_get(tr, "number")) == number) {
            self = r;
            found = true;
        } else {
            r.complete =
                state_of(json_string_value(json_object_get(tr, "state"))) == RF_HP_TRIAL_COMPLETE;
            hist[h++] = r;
        }
    }
    if (found)
        prune = rf_hp_median_should_prune(&self, hist, h, d->prune_startup, d->prune_warmup,
                                          d->maximize);
out:
    free(steps);
    free(values);
    free(hist);
    return prune;
}

int rf_study_best(const rf_study_def *d, const json_t *trials)
{
    int best = -1;
    double bv = 0;
    long long bn = 0;
    for (size_t i = 0; i < json_array_size(trials); i++) {
        const json_t *tr = json_array_get(trials, i);
        json_t *v = json_object_get(tr, "value");
        if (state_of(json_string_value(json_object_get(tr, "state"))) != RF_HP_TRIAL_COMPLETE ||
            !json_is_number(v))
            continue;
        double x = json_number_value(v);
        long long num = json_integer_value(json_object_get(tr, "number"));
        bool better = best < 0 || (d->maximize ? x > bv : x < bv) || (x == bv && num < bn);
        if (better) best = (int)i, bv = x, bn = num;
    }
    return best;
}
