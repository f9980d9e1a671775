#include "engine/jobs/testjobs.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/jobs/job.h"

/* Only the named keys may appear, each an integer in [lo, hi] when present. */
static int check_int(const json_t *params, const char *key, long long lo, long long hi,
                     bool required, rf_error *err)
{
    json_t *v = json_object_get(params, key);
    if (!v) return required ? rf_error_field(err, RF_EINVAL, key, "'%s' is required", key) : 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rf_error_field(err, RF_EINVAL, key, "'%s' must be an integer in [%lld, %lld]", key,
                              lo, hi);
    return 0;
}

static int only_keys(const json_t *params, const char *const *keys, rf_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v)
    {
        bool ok = false;
        for (const char *const *p = keys; *p; p++)
            ok |= !strcmp(*p, k);
        if (!ok) return rf_error_field(err, RF_EINVAL, k, "unknown parameter '%s'", k);
    }
    return 0;
}

/* ---- test.noop ---- */

static int noop_validate(const json_t *params, rf_error *err)
{
    static const char *const keys[] = {"echo", NULL};
    return only_keys(params, keys, err);
}

static int noop_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    json_t *echo = json_object_get(params, "echo");
    *result = json_pack("{s:O?,s:i}", "echo", echo, "attempt", ctx->attempt);
    return *result ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
}

/* ---- test.sleep ---- */

static int sleep_validate(const json_t *params, rf_error *err)
{
    static const char *const keys[] = {"ms", "steps", NULL};
    int rc = only_keys(params, keys, err);
    if (!rc) rc = check_int(params, "ms", 0, 3600000, true, err);
    if (!rc) rc = check_int(params, "steps", 1, 100000, false, err);
    return rc;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static int sleep_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    long long ms = json_integer_value(json_object_get(params, "ms"));
    json_t *sv = json_object_get(params, "steps");
    long long steps = sv ? json_integer_value(sv) : 10;
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

static int fail_validate(const json_t *params, rf_error *err)
{
    static const char *const keys[] = {"fail_attempts", "final", NULL};
    int rc = only_keys(params, keys, err);
    if (!rc) rc = check_int(params, "fail_attempts", 0, 100, false, err);
    json_t *f = json_object_get(params, "final");
    if (!rc && f && !json_is_boolean(f))
        rc = rf_error_field(err, RF_EINVAL, "final", "'final' must be a boolean");
    return rc;
}

static int fail_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    if (json_is_true(json_object_get(params, "final")))
        return rf_errorf(err, RF_EINVAL, "test failure that retrying cannot fix");
    long long n = json_integer_value(json_object_get(params, "fail_attempts"));
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
static int crash_validate(const json_t *params, rf_error *err)
{
    static const char *const keys[] = {"signal", NULL};
    int rc = only_keys(params, keys, err);
    const char *s = json_string_value(json_object_get(params, "signal"));
    if (!rc && (!s || (strcmp(s, "segv") && strcmp(s, "fpe") && strcmp(s, "abort"))))
        rc = rf_error_field(err, RF_EINVAL, "signal", "'signal' must be segv, fpe or abort");
    return rc;
}

static int crash_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    const char *s = json_string_value(json_object_get(params, "signal"));
    fflush(NULL);
    if (!strcmp(s, "abort")) abort();
    raise(!strcmp(s, "segv") ? SIGSEGV : SIGFPE);
    return rf_errorf(err, RF_EINTERNAL, "test.crash: signal %s did not end the process", s);
}

/* ---- test.artifact ---- */

static int artifact_validate(const json_t *params, rf_error *err)
{
    static const char *const keys[] = {"content", "name", NULL};
    int rc = only_keys(params, keys, err);
    if (rc) return rc;
    if (!json_is_string(json_object_get(params, "content")))
        return rf_error_field(err, RF_EINVAL, "content", "'content' must be a string");
    json_t *name = json_object_get(params, "name");
    if (name && (!json_is_string(name) || strchr(json_string_value(name), '/')))
        return rf_error_field(err, RF_EINVAL, "name", "'name' must be a file name");
    return 0;
}

static int artifact_run(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    json_t *nv = json_object_get(params, "name");
    const char *name = nv ? json_string_value(nv) : "output.txt";
    json_t *content = json_object_get(params, "content");
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", ctx->workdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return rf_errorf(err, RF_EIO, "cannot write %s: %s", path, strerror(errno));
    size_t n = json_string_length(content);
    bool ok = fwrite(json_string_value(content), 1, n, f) == n;
    ok &= fclose(f) == 0;
    if (!ok) return rf_errorf(err, RF_EIO, "writing %s failed", path);
    int rc = ctx->artifact(ctx, "test", path, name);
    if (rc) return rf_errorf(err, rc, "could not register the artifact");
    *result = json_pack("{s:s,s:I}", "name", name, "bytes", (json_int_t)n);
    return 0;
}

/* ---- test.model ---- */

static int model_validate(const json_t *params, rf_error *err)
{
    static const char *const keys[] = {"from", "name", NULL};
    int rc = only_keys(params, keys, err);
    if (rc) return rc;
    const char *from = json_string_value(json_object_get(params, "from"));
    if (!from || from[0] != '/')
        return rf_error_field(err, RF_EINVAL, "from", "'from' must be an absolute folder path");
    if (!json_is_string(json_object_get(params, "name")))
        return rf_error_field(err, RF_EINVAL, "name", "'name' must be a string");
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
        return rf_errorf(err, RF_EINVAL, "the model was not registered");
    *result = json_pack("{s:s}", "model_id", id);
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

static int parent_validate(const json_t *params, rf_error *err)
{
    static const char *const keys[] = {"children",           "parallel",  "ms",
                                       "crash_after_submit", "linger_ms", NULL};
    int rc = only_keys(params, keys, err);
    if (!rc) rc = check_int(params, "linger_ms", 0, 600000, false, err);
    if (!rc) rc = check_int(params, "children", 1, 100, true, err);
    if (!rc) rc = check_int(params, "parallel", 1, 100, false, err);
    if (!rc) rc = check_int(params, "ms", 0, 600000, false, err);
    json_t *c = json_object_get(params, "crash_after_submit");
    if (!rc && c && !json_is_boolean(c))
        rc = rf_error_field(err, RF_EINVAL, "crash_after_submit", "must be true or false");
    return rc;
}

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
        {.type = "test.noop", .validate = noop_validate, .run = noop_run},
        {.type = "test.sleep", .validate = sleep_validate, .run = sleep_run},
        {.type = "test.fail", .validate = fail_validate, .run = fail_run},
        {.type = "test.crash", .validate = crash_validate, .run = crash_run},
        {.type = "test.artifact", .validate = artifact_validate, .run = artifact_run},
        {.type = "test.model", .validate = model_validate, .run = model_run},
        {.type = "test.parent", .validate = parent_validate, .run = parent_run},
    };
    for (size_t i = 0; i < sizeof runners / sizeof runners[0]; i++)
        rf_runner_register(&runners[i]);
}
