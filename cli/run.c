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

#include "engine/jobs/dataset_params.h"
#include "engine/jobs/job.h"
#include "engine/jobs/testjobs.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = 1;
}

typedef struct local {
    char dir[PATH_MAX];
} local;

static void emit(const char *kind, const json_t *data)
{
    json_t *line = json_pack("{s:s,s:O}", "event", kind, "data", data ? data : json_null());
    char *s = line ? json_dumps(line, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (s) puts(s);
    fflush(stdout);
    free(s);
    json_decref(line);
}

static int ctx_event(rf_job_ctx *ctx, const char *kind, const json_t *data)
{
    emit(kind, data);
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
 * runner gets back is that name. */
static int ctx_model(rf_job_ctx *ctx, const char *dir, const char *name, char *id_out, size_t cap)
{
    local *l = ctx->self;
    char models[PATH_MAX + 16], dst[PATH_MAX * 2];
    if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return RF_EINVAL;
    snprintf(models, sizeof models, "%s/models", l->dir);
    snprintf(dst, sizeof dst, "%s/%s", models, name);
    if ((mkdir(models, 0750) && errno != EEXIST) || rename(dir, dst)) return RF_EIO;
    json_t *d = json_pack("{s:s,s:s}", "name", name, "path", dst);
    emit("model", d);
    json_decref(d);
    snprintf(id_out, cap, "%s", name);
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
    return g_stop != 0;
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

static int local_resolve(void *user, const char *kind, const char *ref, char **path, rf_error *err)
{
    return ctx_resolve(NULL, kind, ref, path, err);
}

static int usage(void)
{
    fprintf(stderr, "usage: refinery run JOB.json [--workdir DIR]\n"
                    "  JOB.json: {\"type\": …, \"params\": {…}} as POST /v1/jobs takes it\n");
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
    json_t *job = json_load_file(file, JSON_REJECT_DUPLICATES, &je), *result = NULL, *resume = NULL;
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
    local l;
    if (workdir)
        snprintf(l.dir, sizeof l.dir, "%s", workdir);
    else
        snprintf(l.dir, sizeof l.dir, "refinery-run-%d", (int)getpid());
    if (mkdir(l.dir, 0750) && errno != EEXIST) {
        fprintf(stderr, "refinery run: cannot create %s: %s\n", l.dir, strerror(errno));
        status = 1;
        goto out;
    }
    char ckpt[PATH_MAX + 32];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.json", l.dir);
    resume = json_load_file(ckpt, 0, &je); /* none: a first attempt */

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rf_job_ctx ctx = {
        .self = &l,
        .job_id = "local",
        .attempt = resume ? 2 : 1,
        .workdir = l.dir,
        .resume = resume,
        .progress = ctx_progress,
        .event = ctx_event,
        .checkpoint = ctx_checkpoint,
        .artifact = ctx_artifact,
        .model = ctx_model,
        .should_stop = ctx_should_stop,
        .resolve = ctx_resolve,
        .dataset = ctx_dataset,
    };
    int rc = runner->run(params, &ctx, &result, &err);
    if (rc < 0) {
        if (result) emit("result", result); /* what it did before failing */
        fprintf(stderr, "refinery run: %s failed: %s\n", type,
                err.msg[0] ? err.msg : rf_strerror(rc));
        status = 1;
        goto out;
    }
    emit("result", result);
    status = 0;
out:
    json_decref(result);
    json_decref(resume);
    json_decref(job);
    return status;
}
