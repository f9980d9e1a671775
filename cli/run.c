#include "cli/run.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include "cli/local_study.h"
#include "engine/jobs/dataset_params.h"
#include "engine/jobs/job.h"
#include "engine/jobs/testjobs.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = 1;
}

/* One job of the run: the top one, or a child run inline in a subfolder
 * children/KEY of its parent's folder (DESIGN.md "Jobs that run other jobs"). */
typedef struct local {
    char dir[PATH_MAX];
    char job[PATH_MAX];     /* "" for the top job, else the children's keys: "trial-0/x" */
    const char *root;       /* the top run folder: studies live there */
    const json_t *metadata; /* a child's: a study trial reports its events */
    bool pruned;
    char reason[320];
    int submitted; /* children run during this run of the job */
} local;

static void emit_as(const local *l, const char *kind, const json_t *data)
{
    json_t *line = json_pack("{s:s,s:O}", "event", kind, "data", data ? data : json_null());
    if (l && l->job[0]) json_object_set_new(line, "job", json_string(l->job));
    char *s = line ? json_dumps(line, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (s) puts(s);
    fflush(stdout);
    free(s);
    json_decref(line);
}

#define emit(kind, data) emit_as(ctx->self, kind, data)

static int ctx_event(rf_job_ctx *ctx, const char *kind, const json_t *data)
{
    local *l = ctx->self;
    emit(kind, data);
    bool stop = false;
    if (l->metadata && !l->pruned &&
        !rf_local_study_event(l->root, l->metadata, kind, data, &stop, l->reason,
                              sizeof l->reason) &&
        stop) {
        l->pruned = true;
        json_t *d = json_pack("{s:s,s:s}", "level", "info", "message", l->reason);
        emit("log", d);
        json_decref(d);
    }
    return 0;
}

static int ctx_progress(rf_job_ctx *ctx, double fraction, const char *message)
{
    json_t *d = json_pack("{s:f}", "progress", fraction);
    if (message) json_object_set_new(d, "message", json_string(message));
    emit("progress", d);
    json_decref(d);
    return 0;
}

/* Written to a temporary name, fsynced, renamed: a crash leaves the old
 * checkpoint or the new one, never half of one. */
static int ctx_checkpoint(rf_job_ctx *ctx, const json_t *state)
{
    local *l = ctx->self;
    char tmp[PATH_MAX + 32], path[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/checkpoint.json.tmp", l->dir);
    snprintf(path, sizeof path, "%s/checkpoint.json", l->dir);
    char *s = json_dumps(state, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return RF_ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640), rc = 0;
    size_t n = strlen(s);
    if (fd < 0 || write(fd, s, n) != (ssize_t)n || fsync(fd) || rename(tmp, path)) rc = RF_EIO;
    if (fd >= 0) close(fd);
    free(s);
    if (!rc) emit("checkpoint", state);
    return rc;
}

static int ctx_artifact(rf_job_ctx *ctx, const char *kind, const char *path, const char *name)
{
    struct stat st;
    if (stat(path, &st)) return RF_EIO;
    json_t *d = json_pack("{s:s,s:s,s:s,s:I}", "kind", kind, "name", name, "path", path, "bytes",
                          (json_int_t)st.st_size);
    emit("artifact", d);
    json_decref(d);
    return 0;
}

/* Without a model store the folder moves to DIR/models/NAME; the "id" a
 * runner gets back is that folder's path, which other jobs of `refinery run`
 * (a pipeline's later stages) take as the model. */
static int ctx_model(rf_job_ctx *ctx, const char *dir, const char *name, char *id_out, size_t cap)
{
    local *l = ctx->self;
    char models[PATH_MAX + 16], dst[PATH_MAX * 2];
    if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return RF_EINVAL;
    snprintf(models, sizeof models, "%s/models", l->dir);
    snprintf(dst, sizeof dst, "%s/%s", models, name);
    if ((mkdir(models, 0750) && errno != EEXIST) || rename(dir, dst)) return RF_EIO;
    char *abs = realpath(dst, NULL);
    json_t *d = json_pack("{s:s,s:s}", "name", name, "path", abs ? abs : dst);
    emit("model", d);
    json_decref(d);
    snprintf(id_out, cap, "%s", abs ? abs : dst);
    free(abs);
    return 0;
}

/* Without a dataset store the file moves to DIR/datasets/NAME.jsonl; the
 * "id" a runner gets back is that path, which other jobs of `refinery run`
 * take as the dataset. */
static int ctx_dataset(rf_job_ctx *ctx, const char *path, const char *name, char *id_out,
                       size_t cap)
{
    local *l = ctx->self;
    char dir[PATH_MAX + 16], dst[PATH_MAX * 2];
    if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return RF_EINVAL;
    snprintf(dir, sizeof dir, "%s/datasets", l->dir);
    snprintf(dst, sizeof dst, "%s/%s.jsonl", dir, name);
    if ((mkdir(dir, 0750) && errno != EEXIST) || rename(path, dst)) return RF_EIO;
    char *abs = realpath(dst, NULL);
    json_t *d = json_pack("{s:s,s:s}", "name", name, "path", abs ? abs : dst);
    emit("dataset", d);
    json_decref(d);
    snprintf(id_out, cap, "%s", abs ? abs : dst);
    free(abs);
    return 0;
}

static bool ctx_should_stop(rf_job_ctx *ctx)
{
    local *l = ctx->self;
    return g_stop != 0 || l->pruned;
}

/* The folder of the child job id of this run ("a/b" → ROOT/children/a/
 * children/b), when it exists. */
static bool child_dir(const local *l, const char *id, char *out, size_t cap)
{
    if (!l || !l->root || !*id || id[0] == '/' || strstr(id, "..")) return false;
    size_t n = (size_t)snprintf(out, cap, "%s", l->root);
    for (const char *p = id; *p && n < cap;) {
        size_t k = strcspn(p, "/");
        n += (size_t)snprintf(out + n, cap - n, "/children/%.*s", (int)k, p);
        p += k + (p[k] == '/');
    }
    struct stat st;
    return n < cap && stat(out, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Without a server a reference is a local path: a model's folder; a
 * dataset's, an artifact's or a teacher cache's file; an adapter's folder
 * (adapter_config.json and adapter_model.safetensors), or either file in it. */
static int ctx_resolve(rf_job_ctx *ctx, const char *kind, const char *ref, char **path,
                       rf_error *err)
{
    struct stat st;
    const bool adapter = !strcmp(kind, "adapter");
    const bool want_dir = !strcmp(kind, "model") || adapter;
    char child_adapter[PATH_MAX * 2];
    if (adapter && stat(ref, &st) &&
        child_dir(ctx->self, ref, child_adapter, sizeof child_adapter)) {
        /* a child train job of this run, named by its id ("train-muon",
         * "hpo/trial-3"), as a pipeline names the adapter to quantize: its
         * adapter/ folder */
        size_t n = strlen(child_adapter);
        snprintf(child_adapter + n, sizeof child_adapter - n, "/adapter");
        ref = child_adapter;
    }
    if (stat(ref, &st))
        return rf_errorf(err, RF_EINVAL,
                         "%s '%s' does not exist here (refinery run takes local "
                         "paths: a folder for a model or an adapter, a file otherwise)",
                         kind, ref);
    char *real = realpath(ref, NULL);
    if (!real) return rf_errorf(err, RF_ENOMEM, "out of memory");
    if (adapter && S_ISREG(st.st_mode)) {
        /* a file of the adapter: its folder is the adapter */
        char *slash = strrchr(real, '/');
        if (slash && slash != real) *slash = '\0';
        st.st_mode = S_IFDIR;
    }
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        free(real);
        return rf_errorf(err, RF_EINVAL, "%s '%s' is not a %s (refinery run takes local paths)",
                         kind, ref, want_dir ? "folder" : "file");
    }
    if (adapter) {
        char cfg[PATH_MAX + 32];
        snprintf(cfg, sizeof cfg, "%s/adapter_config.json", real);
        if (stat(cfg, &st)) {
            free(real);
            return rf_errorf(err, RF_EINVAL,
                             "adapter '%s' is not a PEFT adapter folder (no adapter_config.json "
                             "beside adapter_model.safetensors)",
                             ref);
        }
    }
    *path = real;
    return 0;
}

/* ---- children, run inline ---------------------------------------------- */

static int run_job(const rf_runner *runner, const json_t *params, local *l, json_t **result,
                   rf_error *err);
static int local_resolve(void *user, const char *kind, const char *ref, char **path, rf_error *err);

static json_t *load_children(const local *l)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/children.json", l->dir);
    json_t *c = json_load_file(path, 0, NULL);
    if (!json_is_array(c)) {
        json_decref(c);
        c = json_array();
    }
    return c;
}

static int save_children(const local *l, const json_t *kids)
{
    char tmp[PATH_MAX + 32], path[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/children.json.tmp", l->dir);
    snprintf(path, sizeof path, "%s/children.json", l->dir);
    char *s = json_dumps(kids, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!s) return RF_ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640), rc = 0;
    size_t n = strlen(s);
    if (fd < 0 || write(fd, s, n) != (ssize_t)n || fsync(fd) || rename(tmp, path)) rc = RF_EIO;
    if (fd >= 0) close(fd);
    free(s);
    return rc;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > 100 || !strcmp(key, ".") || !strcmp(key, "..")) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", key[i]))
            return false;
    return true;
}

/* The child runs now, to its end, in children/KEY; its record (the fields
 * rf_job_ctx.children lists) is kept in children.json. A key recorded as
 * finished answers that child; one left running by an interrupted run is
 * run again, resuming from its own checkpoint. */
static int ctx_submit_child(rf_job_ctx *ctx, const char *key, const char *type,
                            const json_t *params, const json_t *metadata, char *id_out, size_t cap,
                            bool *created, rf_error *err)
{
    local *l = ctx->self;
    *created = false;
    if (!key_ok(key))
        return rf_errorf(err, RF_EINVAL,
                         "a child's key must be 1 to 100 characters of A-Z a-z 0-9 . _ -");
    const rf_runner *runner = rf_runner_find(type);
    if (!runner) return rf_errorf(err, RF_EINVAL, "child job type '%s' is not known", type);
    rf_error perr = {0};
    if (rf_runner_validate(runner, params, &perr) < 0 ||
        (runner->check && runner->check(params, local_resolve, NULL, &perr) < 0)) {
        char field[sizeof err->field];
        snprintf(field, sizeof field, "params%s%s", perr.field[0] ? "." : "", perr.field);
        return rf_error_field(err, RF_EINVAL, field, "%s child: %s", type, perr.msg);
    }
    json_t *kids = load_children(l), *rec = NULL;
    size_t i;
    json_t *k;
    json_array_foreach(kids, i, k)
    {
        if (!strcmp(json_string_value(json_object_get(k, "key")), key)) rec = k;
    }
    const char *st = rec ? json_string_value(json_object_get(rec, "status")) : NULL;
    local child = {.root = l->root, .metadata = metadata};
    snprintf(child.job, sizeof child.job, "%s%s%s", l->job, l->job[0] ? "/" : "", key);
    snprintf(id_out, cap, "%s", child.job);
    if (st && strcmp(st, "running")) { /* made by an earlier run */
        json_decref(kids);
        return 0;
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/children", l->dir);
    mkdir(dir, 0750);
    snprintf(child.dir, sizeof child.dir, "%s/children/%s", l->dir, key);
    if (mkdir(child.dir, 0750) && errno != EEXIST) {
        json_decref(kids);
        return rf_errorf(err, RF_EIO, "cannot create %s: %s", child.dir, strerror(errno));
    }
    if (!rec) {
        rec = json_pack("{s:s,s:s,s:s,s:s,s:n,s:n,s:f,s:i,s:O?,s:f,s:n}", "id", child.job, "key",
                        key, "type", type, "status", "running", "result", "error", "progress", 0.0,
                        "attempts", 0, "metadata", metadata, "started_at", wall_s(), "finished_at");
        json_array_append_new(kids, rec);
    }
    json_object_set_new(rec, "attempts",
                        json_integer(json_integer_value(json_object_get(rec, "attempts")) + 1));
    int rc = save_children(l, kids);
    json_t *result = NULL;
    rf_error cerr = {0};
    l->submitted++;
    *created = true;
    if (!rc) rc = run_job(runner, params, &child, &result, &cerr);
    if (rc == RF_ECANCELED && !child.pruned) {
        /* interrupted (SIGINT): the whole run stops; the child resumes next time */
        json_decref(kids);
        return rf_errorf(err, RF_ECANCELED, "stopped while child %s ran", child.job);
    }
    if (rc == 0) rf_local_study_finish(l->root, metadata, result, child.job);
    const char *status = rc == 0 ? "succeeded" : rc == RF_ECANCELED ? "cancelled" : "failed";
    json_object_set_new(rec, "status", json_string(status));
    json_object_set_new(rec, "result", result ? result : json_null());
    json_object_set_new(rec, "error",
                        rc == 0              ? json_null()
                        : rc == RF_ECANCELED ? json_string(child.reason)
                                             : json_string(cerr.msg));
    json_object_set_new(rec, "progress", json_real(rc == 0 ? 1.0 : 0.0));
    json_object_set_new(rec, "finished_at", json_real(wall_s()));
    rc = save_children(l, kids);
    json_decref(kids);
    return rc ? rf_errorf(err, rc, "cannot record child %s in %s", key, l->dir) : 0;
}

static int ctx_children(rf_job_ctx *ctx, json_t **out, rf_error *err)
{
    *out = load_children(ctx->self);
    return 0;
}

static int ctx_study(rf_job_ctx *ctx, const char *op, const json_t *args, json_t **out,
                     rf_error *err)
{
    local *l = ctx->self;
    return rf_local_study_op(l->root, l->job[0] ? l->job : "local", op, args, out, err);
}

/* Run a job (the top one or a child) to its end: a parent that returns
 * RF_EWAIT is run again at once, since its children ran inline. */
static int run_job(const rf_runner *runner, const json_t *params, local *l, json_t **result,
                   rf_error *err)
{
    char ckpt[PATH_MAX + 32];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.json", l->dir);
    for (int runs = 0;; runs++) {
        json_t *resume = json_load_file(ckpt, 0, NULL); /* none: a first attempt */
        rf_job_ctx ctx = {
            .self = l,
            .job_id = l->job[0] ? l->job : "local",
            .attempt = resume ? 2 : 1,
            .workdir = l->dir,
            .resume = resume,
            .progress = ctx_progress,
            .event = ctx_event,
            .checkpoint = ctx_checkpoint,
            .artifact = ctx_artifact,
            .model = ctx_model,
            .should_stop = ctx_should_stop,
            .resolve = ctx_resolve,
            .dataset = ctx_dataset,
            .submit_child = ctx_submit_child,
            .children = ctx_children,
            .study = ctx_study,
        };
        l->submitted = 0;
        int rc = runner->run(params, &ctx, result, err);
        json_decref(resume);
        if (rc != RF_EWAIT) return rc;
        if (l->submitted == 0)
            return rf_errorf(err, RF_EINTERNAL,
                             "%s asked to wait for its child jobs, but none is unfinished",
                             runner->type);
    }
}

static int local_resolve(void *user, const char *kind, const char *ref, char **path, rf_error *err)
{
    return ctx_resolve(NULL, kind, ref, path, err);
}

static int usage(void)
{
    fprintf(stderr, "usage: refinery run JOB.json [--workdir DIR]\n"
                    "  JOB.json: {\"type\": …, \"params\": {…}} as POST /v1/jobs takes it\n"
                    "  child jobs (hpo trials) run inline, in order, under DIR/children/KEY\n");
    return 2;
}

int rf_cmd_run(int argc, char **argv)
{
    const char *file = NULL, *workdir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--workdir") && i + 1 < argc)
            workdir = argv[++i];
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else
            return usage();
    }
    if (!file) return usage();
    rf_runners_register_builtin();
    rf_dataset_configure(getenv("REFINERY_TEACHER_URLS"), true);
    const char *tj = getenv("REFINERY_TEST_JOBS");
    if (tj && !strcmp(tj, "1")) rf_testjobs_register();

    json_error_t je;
    json_t *job = json_load_file(file, JSON_REJECT_DUPLICATES, &je), *result = NULL;
    if (!job) {
        fprintf(stderr, "refinery run: %s: %s (line %d)\n", file, je.text, je.line);
        return 2;
    }
    int status = 2;
    const char *type = json_string_value(json_object_get(job, "type"));
    json_t *params = json_object_get(job, "params");
    const rf_runner *runner = rf_runner_find(type);
    rf_error err = {0};
    if (!runner) {
        fprintf(stderr, "refinery run: %s: unknown job type '%s'\n", file, type ? type : "(none)");
        goto out;
    }
    if (params && !json_is_object(params)) {
        fprintf(stderr, "refinery run: params: 'params' must be an object\n");
        goto out;
    }
    if (!params) json_object_set_new(job, "params", params = json_object());
    if (rf_runner_validate(runner, params, &err) < 0 ||
        (runner->check && runner->check(params, local_resolve, NULL, &err) < 0)) {
        fprintf(stderr, "refinery run: params%s%s: %s\n", err.field[0] ? "." : "", err.field,
                err.msg);
        goto out;
    }
    local l = {.root = NULL};
    if (workdir)
        snprintf(l.dir, sizeof l.dir, "%s", workdir);
    else
        snprintf(l.dir, sizeof l.dir, "refinery-run-%d", (int)getpid());
    l.root = l.dir;
    if (mkdir(l.dir, 0750) && errno != EEXIST) {
        fprintf(stderr, "refinery run: cannot create %s: %s\n", l.dir, strerror(errno));
        status = 1;
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = run_job(runner, params, &l, &result, &err);
    if (rc < 0) {
        if (result) emit_as(&l, "result", result); /* what it did before failing */
        fprintf(stderr, "refinery run: %s failed: %s\n", type,
                err.msg[0] ? err.msg : rf_strerror(rc));
        status = 1;
        goto out;
    }
    emit_as(&l, "result", result);
    status = 0;
out:
    json_decref(result);
    json_decref(job);
    return status;
}
