/* Job runners and the context they run in.
 *
 * A runner is the engine side of a job type: it validates its params (so that a
 * bad request is refused at POST, naming the field) and runs them. It talks to
 * the outside world only through rf_job_ctx, which the service implements on
 * PostgreSQL and the artifact store, and `refinery run job.json` implements on
 * stdout and a local folder. Nothing here knows about HTTP or SQL. */
#ifndef RF_JOB_H
#define RF_JOB_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/core/params.h"

typedef struct rf_job_ctx rf_job_ctx;

struct rf_job_ctx {
    void *self;
    const char *job_id;
    int attempt;         /* 1 on the first run, 2 after one rescue, … */
    const char *workdir; /* private folder of this job, kept across attempts */
    /* The state saved by the last checkpoint of an earlier attempt, or NULL. */
    const json_t *resume;

    /* fraction in [0,1]; message may be NULL. */
    int (*progress)(rf_job_ctx *ctx, double fraction, const char *message);
    /* Append an event: kind is "log", "metrics", "progress" or a runner's own;
     * data is borrowed. */
    int (*event)(rf_job_ctx *ctx, const char *kind, const json_t *data);
    /* Durably record state from which a later attempt resumes (files it names
     * must already be fsynced under workdir). */
    int (*checkpoint)(rf_job_ctx *ctx, const json_t *state);
    /* Register a finished file under workdir as an artifact of the job. */
    int (*artifact)(rf_job_ctx *ctx, const char *kind, const char *path, const char *name);
    /* Register the checkpoint folder dir (made under workdir) as a model of the
     * job's tenant, named name; the folder moves into the model store. The
     * new model's id is written to id_out (cap bytes; 40 is enough). */
    int (*model)(rf_job_ctx *ctx, const char *dir, const char *name, char *id_out, size_t cap);
    /* True once the job should stop at its next safe point: cancelled by a
     * user, or the process is shutting down. The runner then returns
     * RF_ECANCELED; the service decides which of the two it was. */
    bool (*should_stop)(rf_job_ctx *ctx);
    /* Where a registered object the params name lives: kind "model" (a
     * model's id or name) gives its checkpoint folder, "dataset" (an id or
     * name) its JSONL file, "artifact" (an id) its file, "teacher_cache" (an
     * artifact id of that kind) its file, "adapter" (a train job's id) a
     * folder with its PEFT adapter files, as the job's tenant sees them.
     * *path is malloc'd.
     * RF_ENOTFOUND when the tenant has no such object. The service answers
     * from PostgreSQL; `refinery run` takes the reference as a local path. */
    int (*resolve)(rf_job_ctx *ctx, const char *kind, const char *ref, char **path, rf_error *err);
    /* Register the JSONL file path (made under workdir, every line in the
     * format of engine/core/dataset.h) as a dataset of the job's tenant,
     * named name, with the job as its source; the file moves into the
     * dataset store. The id is written to id_out (cap bytes; 40 is enough).
     * Registering the same content again from the same job gives the same
     * id (a rescued attempt). NULL where datasets cannot be registered. */
    int (*dataset)(rf_job_ctx *ctx, const char *path, const char *name, char *id_out, size_t cap);

    /* ---- Jobs that run other jobs (DESIGN.md) ----------------------------
     * A parent's work is done by child jobs that any worker claims. The
     * parent never holds a worker while they run: it submits children, then
     * returns RF_EWAIT from run, and the job leaves the worker in status
     * "waiting". When one of its children ends (or wake_after_s passes) it is
     * queued again and run is called anew, from the top, with resume = its
     * last checkpoint. So run is written as "look at what exists, do the next
     * step": read children(), submit what is missing, return RF_EWAIT while
     * any child it needs is unfinished, or a result once all are done.
     *
     * Crash safety comes from the key: a child is named by a key unique for
     * its parent, and submitting a key that exists answers the existing child
     * (its id, created = false) rather than making another. A parent killed
     * after submitting but before checkpointing, and run again, finds its
     * children by key. A child that ends while the parent runs is not missed:
     * the parent is queued again at once after returning RF_EWAIT.
     *
     * Cancelling a parent cancels its children; the parent's cancel completes
     * once they have stopped (until then it shows "waiting"). A runner that
     * sees should_stop() simply returns RF_ECANCELED, as any other.
     *
     * These members are NULL where the context cannot run children. */

    /* Submit a child job of type with params (checked by that type's runner
     * as POST /v1/jobs would; a bad one is RF_EINVAL naming the field) and
     * metadata (an object of strings, or NULL). key: 1 to 100 characters of
     * [A-Za-z0-9._-]. The child's id goes to id_out (cap bytes; 40 is enough);
     * *created says whether it was made now. RF_ECANCELED once the parent was
     * asked to stop. `refinery run` runs the child inline, to its end, in a
     * subfolder children/KEY of the run folder. */
    int (*submit_child)(rf_job_ctx *ctx, const char *key, const char *type, const json_t *params,
                        const json_t *metadata, char *id_out, size_t cap, bool *created,
                        rf_error *err);
    /* The children so far, oldest first: a new array of {"id", "key", "type",
     * "status" (queued|running|waiting|succeeded|failed|cancelled), "result",
     * "error", "progress", "attempts", "metadata", "started_at",
     * "finished_at" (seconds since the epoch, null when not yet)}. */
    int (*children)(rf_job_ctx *ctx, json_t **out, rf_error *err);
    /* Set before returning RF_EWAIT to be queued again after this many
     * seconds even if no child has ended (0: only when a child ends). */
    double wake_after_s;

    /* An ask/tell study of the job's tenant (DESIGN.md "Studies"), the same
     * operations as /v1/studies; args and *out as the HTTP bodies:
     *   "create" {"key", "name", "direction", "space", "sampler", "pruner",
     *             "max_trials", "job_report"} → the study (the existing one
     *             when key was used before: idempotent, like children)
     *   "get" {"study"} → the study, with best_trial
     *   "ask" {"study", "params"?} → the new trial {"number", "params", …}
     *   "tell" {"study", "number", "state": complete|fail|prune, "value"?,
     *           "job_id"?} → the trial
     *   "attach" {"study", "number", "job_id"} → the trial (a job that
     *           evaluates it)
     *   "report" {"study", "number", "step", "value"} → {"should_prune"}
     *   "trials" {"study"} → [trial, …] by number
     * job_report {"event", "field", "step", "result"?} makes a child job
     * whose metadata names {"study_id", "trial"} report its events of that
     * kind to the trial as intermediate values, and stop once the pruner says
     * so (its trial is then told "prune"); with "result" (a path into the
     * job's result) its success tells the trial complete, and its failure or
     * cancel fails it. RF_ENOTFOUND / RF_EINVAL / RF_ECONFLICT as
     * the API answers 404 / 422 / 409. */
    int (*study)(rf_job_ctx *ctx, const char *op, const json_t *args, json_t **out, rf_error *err);
};

/* Where a reference in params points, kind as rf_job_ctx.resolve takes it;
 * *path malloc'd. */
typedef int (*rf_ref_resolver)(void *user, const char *kind, const char *ref, char **path,
                               rf_error *err);

typedef struct rf_runner {
    const char *type;
    /* Check params without side effects; on failure fill err with the field.
     * With a params table, it runs after the table check and keeps to the
     * rules a table cannot say (either a or b, b only with a); may be NULL. */
    int (*validate)(const json_t *params, rf_error *err);
    /* Run to completion; *result (owned by the caller afterwards) on success.
     * RF_EINVAL and RF_EUNSUPPORTED are final; other errors may be retried.
     * RF_EWAIT (a parent) waits for its children: see rf_job_ctx. */
    int (*run)(const json_t *params, rf_job_ctx *ctx, json_t **result, rf_error *err);
    /* What the job does, in a sentence or two (GET /v1/job-types). */
    const char *description;
    /* The params table (engine/core/params.h): checked before validate,
     * read by the runner, published by GET /v1/job-types; its ref entries
     * are the params that name registered objects. NULL: validate alone. */
    const rf_param *params;
    /* Checks that read the objects params name, run once the references
     * resolve: what a job cannot do with a given model (a GPTQ student
     * trained in full or exported merged) is refused when it is created
     * rather than failing when it runs. POST runs it through the service's
     * resolver, `refinery run` through local paths. err->field names the
     * param. May be NULL. */
    int (*check)(const json_t *params, rf_ref_resolver resolve, void *user, rf_error *err);
    /* The runner writes nothing under ctx->workdir (its path is given, the
     * folder is not made): a job that ends in milliseconds is not charged a
     * folder's creation and removal (on ext4, mkdir alone costs more than
     * the job's database writes). */
    bool no_workdir;
} rf_runner;

/* The table check, then runner->validate: what POST and `refinery run` call. */
int rf_runner_validate(const rf_runner *runner, const json_t *params, rf_error *err);

/* The registry maps a job type to its runner. Registration happens at start,
 * before any worker thread runs; lookups afterwards need no lock. */
int rf_runner_register(const rf_runner *runner);
const rf_runner *rf_runner_find(const char *type);
/* Fills names with up to cap registered types; returns how many exist. */
int rf_runner_types(const char **names, int cap);
/* The engine's own job types: evaluate, train, teacher-cache, quantize. */
void rf_runners_register_builtin(void);
#endif
