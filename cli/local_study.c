#include "cli/local_study.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/hpo/study.h"

/* Wall-clock seconds: a study outlives one process. */
static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static json_t *load(const char *root)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/studies.json", root);
    json_t *s = json_load_file(path, 0, NULL);
    if (!json_is_object(s)) {
        json_decref(s);
        s = json_pack("{s:[]}", "studies");
    }
    return s;
}

static int save(const char *root, const json_t *all, rf_error *err)
{
    char tmp[PATH_MAX + 32], path[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/studies.json.tmp", root);
    snprintf(path, sizeof path, "%s/studies.json", root);
    char *s = json_dumps(all, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!s) return rf_errorf(err, RF_ENOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640), rc = 0;
    size_t n = strlen(s);
    if (fd < 0 || write(fd, s, n) != (ssize_t)n || fsync(fd) || rename(tmp, path))
        rc = rf_errorf(err, RF_EIO, "cannot write %s", path);
    if (fd >= 0) close(fd);
    free(s);
    return rc;
}

static json_t *find(const json_t *all, const char *field, const char *value)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(all, "studies"), i, s)
    {
        const char *v = json_string_value(json_object_get(s, field));
        if (v && value && !strcmp(v, value)) return s;
    }
    return NULL;
}

static json_t *trial_of(const json_t *study, int number)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(study, "trials"), i, t)
    {
        if (json_integer_value(json_object_get(t, "number")) == number) return t;
    }
    return NULL;
}

static int def_of(const json_t *study, rf_study_def *d, rf_error *err)
{
    return rf_study_def_parse(json_object_get(study, "definition"), 0, d, err);
}

/* The study object as GET /v1/studies/{id} shows it. */
static json_t *doc(const json_t *study)
{
    const json_t *def = json_object_get(study, "definition"),
                 *trials = json_object_get(study, "trials");
    json_t *o = json_pack("{s:O,s:s}", "id", json_object_get(study, "id"), "object", "study");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)def, k, v) json_object_set(o, k, v);
    json_object_set(o, "job_id", json_object_get(study, "job_id"));
    int c[4] = {0};
    size_t i;
    json_t *t;
    json_array_foreach(trials, i, t)
    {
        const char *s = json_string_value(json_object_get(t, "state"));
        c[!strcmp(s, "running") ? 0 : !strcmp(s, "complete") ? 1 : !strcmp(s, "pruned") ? 2 : 3]++;
    }
    json_object_set_new(o, "trials",
                        json_pack("{s:I,s:i,s:i,s:i,s:i}", "total",
                                  (json_int_t)json_array_size(trials), "running", c[0], "complete",
                                  c[1], "pruned", c[2], "failed", c[3]));
    rf_study_def d;
    rf_error e;
    int b = def_of(study, &d, &e) ? -1 : rf_study_best(&d, trials);
    if (d.json) rf_study_def_free(&d);
    json_object_set(o, "best_trial", b >= 0 ? json_array_get(trials, (size_t)b) : json_null());
    json_object_set(o, "created_at", json_object_get(study, "created_at"));
    return o;
}

static int create(const char *root, json_t *all, const char *job_id, const json_t *args,
                  json_t **out, rf_error *err)
{
    const char *key = json_string_value(json_object_get(args, "key"));
    json_t *have = key ? find(all, "key", key) : NULL;
    if (have) return *out = doc(have), 0;
    json_t *body = json_deep_copy(args);
    json_object_del(body, "key");
    rf_study_def d;
    int rc = rf_study_def_parse(body, 0, &d, err);
    json_decref(body);
    if (rc) return rc;
    char id[32];
    snprintf(id, sizeof id, "study-%zu", json_array_size(json_object_get(all, "studies")));
    json_t *s = json_pack("{s:s,s:s?,s:s?,s:O,s:[],s:I}", "id", id, "key", key, "job_id", job_id,
                          "definition", d.json, "trials", "created_at", (json_int_t)time(NULL));
    rf_study_def_free(&d);
    json_array_append_new(json_object_get(all, "studies"), s);
    if ((rc = save(root, all, err))) return rc;
    *out = doc(s);
    return 0;
}

static int ask(const char *root, json_t *all, json_t *study, const json_t *args, json_t **out,
               rf_error *err)
{
    rf_study_def d;
    int rc = def_of(study, &d, err);
    if (rc) return rc;
    json_t *trials = json_object_get(study, "trials"), *params = NULL;
    int number = (int)json_array_size(trials);
    const json_t *given = json_object_get(args, "params");
    if (d.max_trials && number >= d.max_trials)
        rc = rf_errorf(err, RF_ECONFLICT, "study %s has reached its max_trials (%d)",
                       json_string_value(json_object_get(study, "id")), d.max_trials);
    else if (given && !(rc = rf_study_check_point(&d, given, err)))
        params = json_incref((json_t *)given);
    else if (!given)
        rc = rf_study_ask(&d, trials, number, &params, err);
    rf_study_def_free(&d);
    if (rc) return rc;
    json_t *t = json_pack("{s:s,s:O,s:i,s:s,s:o,s:n,s:[],s:n,s:I,s:n,s:n}", "object", "study.trial",
                          "study_id", json_object_get(study, "id"), "number", number, "state",
                          "running", "params", params, "value", "intermediate", "job_id",
                          "created_at", (json_int_t)time(NULL), "finished_at", "seconds");
    json_object_set_new(t, "asked_at_s", json_real(wall_s()));
    json_array_append(trials, t);
    *out = t;
    return save(root, all, err);
}

static int tell(const char *root, json_t *all, json_t *study, json_t *t, const json_t *args,
                json_t **out, rf_error *err)
{
    const char *state = json_string_value(json_object_get(args, "state"));
    const json_t *value = json_object_get(args, "value");
    const char *st = !state                       ? NULL
                     : !strcmp(state, "complete") ? "complete"
                     : !strcmp(state, "fail")     ? "failed"
                     : !strcmp(state, "prune")    ? "pruned"
                                                  : NULL;
    if (!st) return rf_errorf(err, RF_EINVAL, "study tell: state must be complete, fail or prune");
    if (!strcmp(st, "complete") && (!value || rf_study_check_value(value, "value", err)))
        return rf_error_field(err, RF_EINVAL, "value", "'value' must be a finite number");
    if (value && !json_is_null(value) && rf_study_check_value(value, "value", err))
        return RF_EINVAL;
    json_object_set_new(t, "state", json_string(st));
    if (!strcmp(st, "pruned") && (!value || json_is_null(value))) {
        json_t *im = json_object_get(t, "intermediate");
        value = json_object_get(json_array_get(im, json_array_size(im) - 1), "value");
    }
    json_object_set(t, "value",
                    value && !strcmp(st, "failed") ? json_null()
                    : value                        ? (json_t *)value
                                                   : json_null());
    const char *jid = json_string_value(json_object_get(args, "job_id"));
    if (jid) json_object_set_new(t, "job_id", json_string(jid));
    json_object_set_new(t, "finished_at", json_integer((json_int_t)time(NULL)));
    json_t *a = json_object_get(t, "asked_at_s");
    if (json_is_number(a))
        json_object_set_new(t, "seconds", json_real(wall_s() - json_number_value(a)));
    *out = json_incref(t);
    return save(root, all, err);
}

static int report(const char *root, json_t *all, json_t *study, json_t *t, const json_t *args,
                  json_t **out, rf_error *err)
{
    json_t *step = json_object_get(args, "step"), *value = json_object_get(args, "value");
    if (!json_is_integer(step) || json_integer_value(step) < 0)
        return rf_error_field(err, RF_EINVAL, "step", "'step' must be an integer ≥ 0");
    int rc = rf_study_check_value(value, "value", err);
    if (rc) return rc;
    json_t *im = json_object_get(t, "intermediate");
    bool seen = false;
    size_t i;
    json_t *r;
    json_array_foreach(im, i, r) seen |= json_equal(json_object_get(r, "step"), step);
    if (!seen) json_array_append_new(im, json_pack("{s:O,s:O}", "step", step, "value", value));
    rf_study_def d;
    if ((rc = def_of(study, &d, err))) return rc;
    int number = (int)json_integer_value(json_object_get(t, "number"));
    bool prune = rf_study_should_prune(&d, json_object_get(study, "trials"), number);
    rf_study_def_free(&d);
    *out = json_pack("{s:s,s:O,s:i,s:O,s:b}", "object", "study.report", "study_id",
                     json_object_get(study, "id"), "number", number, "step", step, "should_prune",
                     prune);
    return save(root, all, err);
}

int rf_local_study_op(const char *root, const char *job_id, const char *op, const json_t *args,
                      json_t **out, rf_error *err)
{
    *out = NULL;
    json_t *all = load(root);
    int rc = 0;
    if (!strcmp(op, "create")) {
        rc = create(root, all, job_id, args, out, err);
        goto done;
    }
    const char *id = json_string_value(json_object_get(args, "study"));
    json_t *study = find(all, "id", id);
    if (!study) {
        rc = rf_errorf(err, RF_ENOTFOUND, "no study with id '%s'", id ? id : "");
        goto done;
    }
    if (!strcmp(op, "get")) {
        *out = doc(study);
        goto done;
    }
    if (!strcmp(op, "trials")) {
        *out = json_deep_copy(json_object_get(study, "trials"));
        goto done;
    }
    if (!strcmp(op, "ask")) {
        rc = ask(root, all, study, args, out, err);
        goto done;
    }
    int number = (int)json_integer_value(json_object_get(args, "number"));
    json_t *t = trial_of(study, number);
    if (!t) {
        rc = rf_errorf(err, RF_ENOTFOUND, "study %s has no trial %d", id, number);
        goto done;
    }
    if (!strcmp(op, "attach")) {
        json_object_set(t, "job_id", json_object_get(args, "job_id"));
        *out = json_incref(t);
        rc = save(root, all, err);
        goto done;
    }
    const char *state = json_string_value(json_object_get(t, "state"));
    if (strcmp(state, "running")) {
        rc = rf_errorf(err, RF_ECONFLICT,
                       "trial %d of study %s is already %s; only a running trial can be told",
                       number, id, state);
        goto done;
    }
    if (!strcmp(op, "tell"))
        rc = tell(root, all, study, t, args, out, err);
    else if (!strcmp(op, "report"))
        rc = report(root, all, study, t, args, out, err);
    else
        rc = rf_errorf(err, RF_EINTERNAL, "unknown study operation '%s'", op);
done:
    json_decref(all);
    return rc;
}

int rf_local_study_event(const char *root, const json_t *metadata, const char *kind,
                         const json_t *data, bool *stop, char *reason, size_t cap)
{
    *stop = false;
    const char *sid = json_string_value(json_object_get(metadata, "study_id"));
    const char *num = json_string_value(json_object_get(metadata, "trial"));
    if (!sid || !num) return 0;
    json_t *all = load(root), *study = find(all, "id", sid);
    const json_t *jr = json_object_get(json_object_get(study, "definition"), "job_report");
    const char *event = json_string_value(json_object_get(jr, "event"));
    const char *fk = json_string_value(json_object_get(jr, "field"));
    const char *stepk = json_string_value(json_object_get(jr, "step"));
    json_t *v = fk ? json_object_get(data, fk) : NULL;
    json_t *s = stepk ? json_object_get(data, stepk) : NULL;
    bool ours = event && !strcmp(event, kind);
    char field[65];
    snprintf(field, sizeof field, "%s", fk ? fk : "");
    json_decref(all);
    if (!ours || !json_is_number(v) || !json_is_integer(s)) return 0;
    json_t *args = json_pack("{s:s,s:i,s:O,s:O}", "study", sid, "number", atoi(num), "step", s,
                             "value", v),
           *res = NULL;
    rf_error err;
    int rc = rf_local_study_op(root, NULL, "report", args, &res, &err);
    if (!rc && json_is_true(json_object_get(res, "should_prune"))) {
        json_t *targs = json_pack("{s:s,s:i,s:s,s:O}", "study", sid, "number", atoi(num), "state",
                                  "prune", "value", v),
               *t = NULL;
        if (!rf_local_study_op(root, NULL, "tell", targs, &t, &err)) {
            *stop = true;
            snprintf(reason, cap, "pruned: %s %.6g at step %lld is behind the median", field,
                     json_number_value(v), (long long)json_integer_value(s));
        }
        json_decref(t);
        json_decref(targs);
    }
    json_decref(res);
    json_decref(args);
    return 0;
}

int rf_local_study_finish(const char *root, const json_t *metadata, const json_t *result,
                          const char *job_id)
{
    const char *sid = json_string_value(json_object_get(metadata, "study_id"));
    const char *num = json_string_value(json_object_get(metadata, "trial"));
    if (!sid || !num) return 0;
    json_t *all = load(root), *study = find(all, "id", sid);
    const json_t *jr = json_object_get(json_object_get(study, "definition"), "job_report");
    const char *path = json_string_value(json_object_get(jr, "result"));
    const json_t *v = path ? rf_study_json_path(result, path) : NULL;
    int rc = 0;
    if (json_is_number(v) && isfinite(json_number_value(v))) {
        json_t *args = json_pack("{s:s,s:i,s:s,s:O,s:s}", "study", sid, "number", atoi(num),
                                 "state", "complete", "value", v, "job_id", job_id),
               *t = NULL;
        rf_error err;
        rc = rf_local_study_op(root, NULL, "tell", args, &t, &err);
        if (rc == RF_ECONFLICT) rc = 0;
        json_decref(t);
        json_decref(args);
    }
    json_decref(all);
    return rc;
}
