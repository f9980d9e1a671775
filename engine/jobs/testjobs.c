#include "engine/jobs/testjobs.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/jobs/job.h"

/* Every test job records each execution as its first event, {"message":
 * "test execution", "attempt", "pid"}, before doing anything else: the
 * suites count executions per (job, attempt) — one each, however often
 * worker processes are killed — beside the one outcome each job records. */
static void record_execution(rf_job_ctx *ctx)
{
    json_t *e = json_pack("{s:s,s:i,s:i}", "message", "test execution", "attempt", ctx->attempt,
                          "pid", (int)getpid());
    if (e) ctx->event(ctx, "log", e);
    json_decref(e);
}

/* ---- test.noop ---- */

static const rf_param noop_params[] = {
    {.name = "echo", .type = RF_PARAM_JSON, .help = "any value, returned in the result"},
    {.name = "model",
     .type = RF_PARAM_STRING,
     .ref = "model",
     .help = "a model the job names (and so holds in use until it ends)"},
    {.name = "dataset",
     .type = RF_PARAM_STRING,
     .ref = "dataset",
     .help = "a dataset the job names (and so holds in use until it ends)"},
    {0}};

static int noop_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    record_execution(ctx);
    json_t *echo = json_object_get(params, "echo");
    *result = json_pack("{s:O?,s:i}", "echo", echo, "attempt", ctx->attempt);
    return *result ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
}

/* ---- test.sleep ---- */

static const rf_param sleep_params[] = {{.name = "ms",
                                         .type = RF_PARAM_INT,
                                         .flags = RF_PARAM_REQUIRED,
                                         .lo = 0,
                                         .hi = 3600000,
                                         .help = "how long the job runs, in milliseconds"},
                                        {.name = "steps",
                                         .type = RF_PARAM_INT,
                                         .lo = 1,
                                         .hi = 100000,
                                         .def = "10",
                                         .help = "progress steps, each one checkpointed"},
                                        {0}};

static void sleep_ms(long long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static int sleep_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    record_execution(ctx);
    long long ms = rf_param_int(params, sleep_params, "ms", 0);
    long long steps = rf_param_int(params, sleep_params, "steps", 10);
    long long start = 0;
    if (ctx->resume) start = json_integer_value(json_object_get(ctx->resume, "step"));
    for (long long s = start; s < steps; s++) {
        /* Sleep in slices of at most 50 ms so that a stop is seen promptly. */
        for (long long left = ms / steps; left > 0; left -= 50) {
            if (ctx->should_stop(ctx))
                return rf_errorf(err, RF_ECANCELED, "stopped at step %lld of %lld", s, steps);
            sleep_ms(left < 50 ? left : 50);
        }
        if (ctx->should_stop(ctx))
            return rf_errorf(err, RF_ECANCELED, "stopped at step %lld of %lld", s, steps);
        json_t *state = json_pack("{s:I}", "step", (json_int_t)(s + 1));
        int rc = ctx->checkpoint(ctx, state);
        json_decref(state);
        if (rc) return rf_errorf(err, rc, "could not save a checkpoint at step %lld", s + 1);
        ctx->progress(ctx, (double)(s + 1) / (double)steps, NULL);
    }
    *result = json_pack("{s:I,s:I,s:i}", "steps", (json_int_t)steps, "resumed_from",
                        (json_int_t)start, "attempt", ctx->attempt);
    return 0;
}

/* ---- test.fail ---- */

static const rf_param fail_params[] = {
    {.name = "fail_attempts",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 100,
     .def = "0",
     .help = "attempts that fail (and are retried) before one succeeds"},
    {.name = "final",
     .type = RF_PARAM_BOOL,
     .def = "false",
     .help = "fail at once with an error that retrying cannot fix"},
    {0}};

static int fail_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    record_execution(ctx);
    if (rf_param_bool(params, fail_params, "final", false))
        return rf_errorf(err, RF_EINVAL, "test failure that retrying cannot fix");
    long long n = rf_param_int(params, fail_params, "fail_attempts", 0);
    if (ctx->attempt <= n)
        return rf_errorf(err, RF_EIO, "test failure on attempt %d", ctx->attempt);
    *result = json_pack("{s:i}", "attempt", ctx->attempt);
    return 0;
}

/* ---- test.crash ---- */

/* Kills its own process the way a bug in a runner would (a segfault, an
 * integer division by zero, an abort), so that the service's handling of
 * a job that takes its worker down can be tested: the attempt is counted,
 * and the job fails for good after max_attempts. */
static const char *const crash_signals[] = {"segv", "fpe", "abort", NULL};
static const rf_param crash_params[] = {{.name = "signal",
                                         .type = RF_PARAM_ENUM,
                                         .flags = RF_PARAM_REQUIRED,
                                         .choices = crash_signals,
                                         .help = "how the process ends"},
                                        {0}};

static int crash_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    record_execution(ctx);
    const char *s = rf_param_str(params, crash_params, "signal", "abort");
    fflush(NULL);
    if (!strcmp(s, "abort")) abort();
    raise(!strcmp(s, "segv") ? SIGSEGV : SIGFPE);
    return rf_errorf(err, RF_EINTERNAL, "test.crash: signal %s did not end the process", s);
}

/* ---- test.artifact ---- */

static const rf_param artifact_params[] = {{.name = "content",
                                            .type = RF_PARAM_STRING,
                                            .flags = RF_PARAM_REQUIRED | RF_PARAM_EMPTY,
                                            .help = "the file's text"},
                                           {.name = "name",
                                            .type = RF_PARAM_STRING,
                                            .def = "output.txt",
                                            .help = "the artifact's file name (no '/')"},
                                           {.name = "repeat",
                                            .type = RF_PARAM_INT,
                                            .lo = 1,
                                            .hi = 1 << 20,
                                            .def = "1",
                                            .help = "the content written this many times over "
                                                    "(a large file from a short body)"},
                                           {0}};

static int artifact_validate(const json_t *params, rf_error *err)
{
    const char *name = rf_param_str(params, artifact_params, "name", "output.txt");
    if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return rf_error_field(err, RF_EINVAL, "name", "'name' must be a file name, not a path");
    return 0;
}

static int artifact_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    record_execution(ctx);
    const char *name = rf_param_str(params, artifact_params, "name", "output.txt");
    json_t *content = json_object_get(params, "content");
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", ctx->workdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return rf_errorf(err, RF_EIO, "cannot write %s: %s", path, strerror(errno));
    const size_t n = json_string_length(content);
    const long long repeat = rf_param_int(params, artifact_params, "repeat", 1);
    bool ok = true;
    for (long long i = 0; ok && i < repeat; i++)
        ok = fwrite(json_string_value(content), 1, n, f) == n;
    int e = ok ? 0 : errno;
    if (fclose(f) && ok) ok = false, e = errno;
    if (!ok) {
        /* A disk that filled up: say so, and leave no half-written file. */
        unlink(path);
        return rf_errorf(err, RF_EIO, "writing %s failed: %s", name, strerror(e));
    }
    int rc = ctx->artifact(ctx, "test", path, name);
    if (rc) return rf_errorf(err, rc, "could not register the artifact");
    *result = json_pack("{s:s,s:I,s:i}", "name", name, "bytes", (json_int_t)(n * (size_t)repeat),
                        "attempt", ctx->attempt);
    return 0;
}

/* ---- test.model ---- */

static const rf_param model_params[] = {
    {.name = "from",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .help = "an absolute folder path on the worker holding a checkpoint"},
    {.name = "name",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .help = "the new model's name"},
    {0}};

static int model_validate(const json_t *params, rf_error *err)
{
    if (rf_param_str(params, model_params, "from", "")[0] != '/')
        return rf_error_field(err, RF_EINVAL, "from", "'from' must be an absolute folder path");
    return 0;
}

static int copy_file(const char *src, const char *dst, rf_error *err)
{
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    char buf[65536];
    size_t n;
    bool ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out)) ok = false;
    return ok ? 0 : rf_errorf(err, RF_EIO, "copying %s failed", src);
}

/* Copies a checkpoint folder into its workdir and registers it as a model:
 * what a training or quantization job does with what it makes. */
static int model_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    record_execution(ctx);
    const char *from = json_string_value(json_object_get(params, "from"));
    char dir[1400];
    snprintf(dir, sizeof dir, "%s/model", ctx->workdir);
    if (mkdir(dir, 0750) && errno != EEXIST) return rf_errorf(err, RF_EIO, "cannot create %s", dir);
    DIR *d = opendir(from);
    if (!d) return rf_errorf(err, RF_EINVAL, "cannot read %s", from);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char a[2048], b[2048];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dir, e->d_name);
        rc = copy_file(a, b, err);
    }
    closedir(d);
    if (rc) return rc;
    char id[64];
    if ((rc = ctx->model(ctx, dir, json_string_value(json_object_get(params, "name")), id,
                         sizeof id)))
        return rf_errorf(err, rc, "the model was not registered");
    *result = json_pack("{s:s,s:i}", "model_id", id, "attempt", ctx->attempt);
    return 0;
}

/* ---- test.parent ----
 * A parent of `children` child jobs (test.sleep of `ms` when ms > 0, else
 * test.noop), at most `parallel` unfinished at once, waiting in between: the
 * child-job mechanism without any model. linger_ms keeps each run on its
 * worker that long after submitting (children end meanwhile). crash_after_submit kills its own
 * process (SIGKILL) right after submitting its first child on attempt 1,
 * before any checkpoint: the crash a rescued parent must survive without
 * submitting that child twice. */

static const rf_param parent_params[] = {
    {.name = "children",
     .type = RF_PARAM_INT,
     .flags = RF_PARAM_REQUIRED,
     .lo = 1,
     .hi = 100,
     .help = "how many child test.sleep jobs"},
    {.name = "parallel",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 100,
     .help = "children in flight at once (default: all)"},
    {.name = "ms",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 600000,
     .def = "0",
     .help = "each child's sleep"},
    {.name = "crash_after_submit",
     .type = RF_PARAM_BOOL,
     .def = "false",
     .help = "abort the process right after the first submit (crash-safety tests)"},
    {.name = "linger_ms",
     .type = RF_PARAM_INT,
     .lo = 0,
     .hi = 600000,
     .def = "0",
     .help = "stay running this long after submitting, before waiting"},
    {0}};

static int parent_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    if (!ctx->submit_child || !ctx->children)
        return rf_errorf(err, RF_EUNSUPPORTED, "this context cannot run child jobs");
    const int n = (int)json_integer_value(json_object_get(params, "children"));
    json_t *pv = json_object_get(params, "parallel");
    const int parallel = pv ? (int)json_integer_value(pv) : n;
    const long long ms = json_integer_value(json_object_get(params, "ms"));
    const bool crash = json_is_true(json_object_get(params, "crash_after_submit"));
    /* How many times run was entered, kept across parks and crashes. */
    json_int_t runs = ctx->resume ? json_integer_value(json_object_get(ctx->resume, "runs")) : 0;
    json_t *state = json_pack("{s:I}", "runs", runs + 1);
    int rc = ctx->checkpoint(ctx, state);
    json_decref(state);
    if (rc) return rf_errorf(err, rc, "could not save a checkpoint");
    if (ctx->should_stop(ctx)) return rf_errorf(err, RF_ECANCELED, "stopped");
    json_t *kids = NULL;
    if ((rc = ctx->children(ctx, &kids, err))) return rc;
    int open = 0, ended = 0;
    bool have[101] = {false};
    size_t i;
    json_t *k;
    json_array_foreach(kids, i, k)
    {
        const char *key = json_string_value(json_object_get(k, "key"));
        const char *st = json_string_value(json_object_get(k, "status"));
        int idx = key && key[0] == 'c' ? atoi(key + 1) : -1;
        if (idx >= 0 && idx < n) have[idx] = true;
        if (!strcmp(st, "queued") || !strcmp(st, "running") || !strcmp(st, "waiting"))
            open++;
        else
            ended++;
    }
    for (int c = 0; c < n && open < parallel; c++) {
        if (have[c]) continue;
        char key[16], id[64];
        snprintf(key, sizeof key, "c%d", c);
        json_t *cp = ms > 0 ? json_pack("{s:I,s:i}", "ms", (json_int_t)ms, "steps", 2)
                            : json_pack("{s:i}", "echo", c);
        bool created = false;
        rc = ctx->submit_child(ctx, key, ms > 0 ? "test.sleep" : "test.noop", cp, NULL, id,
                               sizeof id, &created, err);
        json_decref(cp);
        if (rc) goto out;
        if (crash && created && ctx->attempt == 1) raise(SIGKILL);
        open++;
    }
    if (ended < n) {
        /* linger: children may end while this run still holds its worker */
        for (long long left = json_integer_value(json_object_get(params, "linger_ms"));
             left > 0 && !ctx->should_stop(ctx); left -= 20)
            sleep_ms(left < 20 ? left : 20);
        rc = RF_EWAIT;
        goto out;
    }
    *result = json_pack("{s:O,s:I}", "children", kids, "runs", runs + 1);
out:
    json_decref(kids);
    return rc;
}

void rf_testjobs_register(void)
{
    static const rf_runner runners[] = {
        {.type = "test.noop",
         .run = noop_run,
         .description = "Diagnostic: succeeds at once, echoing its input.",
         .params = noop_params,
         .no_workdir = true},
        {.type = "test.sleep",
         .run = sleep_run,
         .description = "Diagnostic: sleeps in checkpointed steps, reporting progress; a rescued "
                        "attempt resumes from the last step.",
         .params = sleep_params,
         .no_workdir = true},
        {.type = "test.fail",
         .run = fail_run,
         .description = "Diagnostic: fails a given number of attempts, or at once for good.",
         .params = fail_params,
         .no_workdir = true},
        {.type = "test.crash",
         .run = crash_run,
         .description = "Diagnostic: takes its worker process down (a segfault, a division by "
                        "zero, an abort), as a bug in a runner would.",
         .params = crash_params,
         .no_workdir = true},
        {.type = "test.artifact",
         .validate = artifact_validate,
         .run = artifact_run,
         .description = "Diagnostic: writes a file and registers it as an artifact.",
         .params = artifact_params},
        {.type = "test.model",
         .validate = model_validate,
         .run = model_run,
         .description = "Diagnostic: copies a checkpoint folder and registers it as a model.",
         .params = model_params},
        {.type = "test.parent",
         .run = parent_run,
         .description = "Diagnostic: submits child test.sleep jobs (some at a time) and waits for "
                        "them without holding a worker; optionally crashes right after a submit.",
         .params = parent_params,
         .no_workdir = true},
    };
    for (size_t i = 0; i < sizeof runners / sizeof runners[0]; i++)
        rf_runner_register(&runners[i]);
}
