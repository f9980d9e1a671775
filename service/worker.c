#include "service/worker.h"
#include "engine/core/util.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/jobs/job.h"
#include "service/db.h"
#include "service/log.h"
#include "service/metrics.h"
#include "service/models.h"
#include "service/artifacts.h"
#include "service/datasets.h"
#include "service/auth.h"
#include "service/children.h"
#include "service/job_cache.h"
#include "service/queue.h"
#include "service/resolve.h"
#include "service/scrub.h"
#include "service/sse.h"
#include "service/studies.h"
#include "service/study_link.h"
#include "service/sweep.h"

typedef struct worker {
    struct rf_workers *pool;
    int index;
    pthread_t thread;
    PGconn *db;
    pthread_mutex_t lock;   /* guards job_id */
    char job_id[RF_ID_MAX]; /* the job running now, "" when idle */
    atomic_bool cancel;     /* a cancel was asked for that job */
    rf_claimed_job job;
    double last_cancel_check; /* monotonic seconds */
    rf_study_link link;       /* the job as a study's trial (service/study_link.h) */
    char stop_reason[320];    /* why the job was stopped, when not by a user */
    char workdir[1200];
    bool let_go;             /* its job's outcome is recorded: it counts as idle (wake_lock) */
    bool claimed_for;        /* a claim was made for it with its outcome (wake_lock) */
    atomic_bool running;     /* between a job's start and its end */
    _Atomic double active_s; /* rf_now_s() of its job's start or its last write */
} worker;

/* A write of a running job waiting for the group commit of such writes:
 * its outcome, or (kind set) an event. */
typedef struct finish_req {
    struct finish_req *next;
    worker *w;
    rf_finish f;
    const char *kind, *data; /* an event's */
    int rc;
    rf_error err;
    bool done;
} finish_req;

struct rf_workers {
    const rf_config *cfg;
    char owner[128];  /* lease owner: host:pid:random, one per process */
    char types[2048]; /* text[] literal of the types this process runs */
    int n;
    worker *w;
    pthread_t listener;
    bool listener_started;
    PGconn *ldb;
    atomic_bool stopping;
    atomic_int busy;
    /* Dispatch (worker_main): one idle worker at a time claims, for every
     * idle worker at once, and hands the jobs beyond its own to the others.
     * Guarded by wake_lock. */
    pthread_mutex_t wake_lock;
    pthread_cond_t wake;
    bool pending;            /* a job may have become runnable since the last claim began */
    bool claiming;           /* a worker is claiming now */
    int held;                /* jobs claimed and not yet done with: run by a worker or in handoff */
    rf_claimed_job *handoff; /* claimed for idle workers, not yet taken */
    int handoff_n;
    rf_claimed_job *claim_buf; /* the claim made with a batch of outcomes (fin_busy) */
    /* Group commit of finishes (finish_job). */
    pthread_mutex_t fin_lock;
    pthread_cond_t fin_done;
    pthread_cond_t fin_arrive; /* a write joined the queue (to a gathering leader) */
    finish_req *fin_queue, **fin_tail;
    int fin_n; /* writes queued */
    bool fin_busy, fin_gathering;
};

/* A batch's leader waits for the writes of its siblings (gather) at most
 * this long; a sibling is a worker whose job started or wrote within the
 * window before. */
#define GATHER_MAX_S 0.001
#define SIBLING_WINDOW_S 0.005

/* A job may have become runnable: one idle worker claims (for all of them). */
static void wake_one(rf_workers *p)
{
    pthread_mutex_lock(&p->wake_lock);
    p->pending = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->wake_lock);
}

static void wake_all(rf_workers *p)
{
    pthread_mutex_lock(&p->wake_lock);
    p->pending = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->wake_lock);
}

static void wake_hook(void *arg)
{
    wake_one(arg);
}

/* Mark the worker running job id (if any) as cancelled. */
static void flag_cancel(rf_workers *p, const char *id)
{
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        pthread_mutex_lock(&w->lock);
        if (!strcmp(w->job_id, id)) atomic_store(&w->cancel, true);
        pthread_mutex_unlock(&w->lock);
    }
}

static void on_heartbeat(const char *id, bool cancel, void *arg)
{
    if (cancel) flag_cancel(arg, id);
}

/* ---- the database connection of a worker -------------------------------- */

static int worker_connect(rf_workers *p, PGconn **c, rf_error *err)
{
    if (*c) PQfinish(*c);
    *c = NULL;
    if (rf_db_connect(p->cfg->database_url, c, err) ||
        rf_db_exec(*c, "SET synchronous_commit = off", 0, NULL, NULL, err) ||
        /* The jobs table grows from nothing to a backlog: a claim plan
         * cached while it was empty would scan and sort the whole table
         * until the next ANALYZE. Every statement of a worker finds its
         * rows by an index, so no plan here needs a sequential scan (one
         * is still made where no index applies). */
        rf_db_exec(*c, "SET enable_seqscan = off", 0, NULL, NULL, err) ||
        /* Nor an unordered one: a claim of several jobs planned while the
         * statistics counted few queued rows would collect every queued row
         * by a bitmap scan of the claim index and sort them (25 ms under a
         * backlog of 20,000, against 0.1 ms for the index's ordered walk),
         * and the cached plan stays so until the connection ends. */
        rf_db_exec(*c, "SET enable_bitmapscan = off", 0, NULL, NULL, err))
        return RF_EDB;
    return 0;
}

/* Sleep up to s seconds in slices, so that a stop is seen within 50 ms;
 * false once the pool stops. */
static bool nap(rf_workers *p, double s)
{
    for (double left = s; left > 0 && !atomic_load(&p->stopping); left -= 0.05)
        usleep((useconds_t)((left < 0.05 ? left : 0.05) * 1e6));
    return !atomic_load(&p->stopping);
}

/* Wait for the database (a restart, a failover): reconnect with backoff,
 * 250 ms doubling to 5 s, logging each failure, for as long as the pool
 * runs. RF_ECANCELED when it stops first. who names the thread in the log. */
static int wait_for_db(rf_workers *p, PGconn **c, const char *who,
                       int (*connect)(rf_workers *, PGconn **, rf_error *))
{
    double delay = 0.25;
    for (int attempt = 1; !atomic_load(&p->stopping); attempt++) {
        rf_error err;
        if (connect(p, c, &err) == 0) {
            if (attempt > 1) rf_log(RF_LOG_INFO, "%s: database reached again", who);
            return 0;
        }
        rf_log(RF_LOG_WARN, "%s: %s (attempt %d; retrying in %.2f s)", who, err.msg, attempt,
               delay);
        if (!nap(p, delay)) break;
        delay = delay * 2 > 5 ? 5 : delay * 2;
    }
    return RF_ECANCELED;
}

/* After a statement of w failed with rc: when the cause was the connection
 * (the server went away), wait for a new one and say to run it again. A
 * running job so waits out an outage shorter than its lease (the fence
 * refuses its writes after a longer one, when the job was rescued). */
static bool db_lost(worker *w, int rc)
{
    if (rc != RF_EDB || rf_db_alive(w->db)) return false;
    char who[32];
    snprintf(who, sizeof who, "worker %d", w->index);
    return wait_for_db(w->pool, &w->db, who, worker_connect) == 0;
}

/* ---- the context a runner sees ---------------------------------------- */

static int event_job(worker *w, const char *kind, const char *data, rf_error *err);

static worker *ctx_worker(rf_job_ctx *ctx)
{
    return ctx->self;
}

static int ctx_event(rf_job_ctx *ctx, const char *kind, const json_t *data)
{
    worker *w = ctx_worker(ctx);
    char *s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
    if (!s) return RF_ENOMEM;
    rf_error err;
    int rc;
    rc = event_job(w, kind, s, &err);
    if (rc) rf_log(RF_LOG_WARN, "job %s: event not recorded: %s", w->job.id, err.msg);
    free(s);
    bool stop = false;
    if (rf_study_link_event(w->db, &w->job, &w->link, kind, data, &stop, w->stop_reason,
                            sizeof w->stop_reason, &err))
        rf_log(RF_LOG_WARN, "job %s: not reported to its study: %s", w->job.id, err.msg);
    if (stop) {
        rf_log(RF_LOG_INFO, "job %s %s", w->job.id, w->stop_reason);
        atomic_store(&w->cancel, true);
    }
    return rc;
}

static int ctx_progress(rf_job_ctx *ctx, double fraction, const char *message)
{
    worker *w = ctx_worker(ctx);
    rf_error err;
    int rc;
    while (db_lost(w, rc = rf_queue_progress(w->db, &w->job, w->pool->owner, fraction, &err))) {
    }
    if (rc) return rc;
    json_t *d = json_pack("{s:f}", "progress", fraction);
    if (message) json_object_set_new(d, "message", json_string(message));
    rc = ctx_event(ctx, "progress", d);
    json_decref(d);
    return rc;
}

static int ctx_checkpoint(rf_job_ctx *ctx, const json_t *state)
{
    worker *w = ctx_worker(ctx);
    char *s = json_dumps(state, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return RF_ENOMEM;
    rf_error err;
    int rc;
    while (db_lost(w, rc = rf_queue_checkpoint(w->db, &w->job, w->pool->owner, s, &err))) {
    }
    free(s);
    if (rc) rf_log(RF_LOG_WARN, "job %s: checkpoint not saved: %s", w->job.id, err.msg);
    return rc;
}

static int ctx_artifact(rf_job_ctx *ctx, const char *kind, const char *path, const char *name)
{
    worker *w = ctx_worker(ctx);
    char id[RF_ID_MAX];
    rf_error err;
    int rc;
    /* Registration undoes its move when the row was not written: safe to repeat. */
    while (db_lost(w, rc = rf_artifact_register(w->db, w->pool->cfg->data_dir, w->job.tenant,
                                                w->job.id, w->pool->owner, w->job.attempt, kind,
                                                path, name, id, &err))) {
    }
    if (rc) {
        rf_log(RF_LOG_WARN, "job %s: artifact %s not registered: %s", w->job.id, name, err.msg);
        return rc;
    }
    json_t *d = json_pack("{s:s,s:s,s:s}", "artifact_id", id, "kind", kind, "name", name);
    ctx_event(ctx, "artifact", d);
    json_decref(d);
    return 0;
}

static int ctx_model(rf_job_ctx *ctx, const char *dir, const char *name, char *id_out, size_t cap)
{
    worker *w = ctx_worker(ctx);
    char id[RF_ID_MAX];
    rf_error err;
    int rc;
    while (db_lost(w, rc = rf_models_adopt(w->db, w->pool->cfg->data_dir, w->job.tenant, w->job.id,
                                           w->pool->owner, w->job.attempt, dir, name, id, &err))) {
    }
    if (rc) {
        rf_log(RF_LOG_WARN, "job %s: model %s not registered: %s", w->job.id, name, err.msg);
        return rc;
    }
    snprintf(id_out, cap, "%s", id);
    json_t *d = json_pack("{s:s,s:s}", "model_id", id, "name", name);
    ctx_event(ctx, "model", d);
    json_decref(d);
    return 0;
}

static int ctx_dataset(rf_job_ctx *ctx, const char *path, const char *name, char *id_out,
                       size_t cap)
{
    worker *w = ctx_worker(ctx);
    char id[RF_ID_MAX];
    rf_error err;
    int rc;
    while (db_lost(w, rc = rf_datasets_adopt(w->db, w->pool->cfg->data_dir, w->job.tenant,
                                             w->job.id, path, name, id, &err))) {
    }
    if (rc) {
        rf_log(RF_LOG_WARN, "job %s: dataset %s not registered: %s", w->job.id, name, err.msg);
        return rc;
    }
    snprintf(id_out, cap, "%s", id);
    return 0;
}

static bool ctx_should_stop(rf_job_ctx *ctx)
{
    worker *w = ctx_worker(ctx);
    if (atomic_load(&w->pool->stopping) || atomic_load(&w->cancel)) return true;
    /* NOTIFY is the fast path; this is the fallback that bounds the delay to
     * about a second even if a notification was lost. */
    double t = rf_now_s();
    if (t - w->last_cancel_check >= 0.5) {
        w->last_cancel_check = t;
        bool yes = false;
        if (!rf_queue_cancel_requested(w->db, &w->job, &yes, NULL) && yes)
            atomic_store(&w->cancel, true);
    }
    return atomic_load(&w->cancel);
}

static int ctx_resolve(rf_job_ctx *ctx, const char *kind, const char *ref, char **path,
                       rf_error *err)
{
    worker *w = ctx_worker(ctx);
    int rc;
    do {
        if (!strcmp(kind, "adapter")) {
            char dir[1400];
            snprintf(dir, sizeof dir, "%s/adapter-in", w->workdir);
            rc = rf_resolve_adapter(w->db, w->job.tenant, ref, dir, err);
            if (!rc && !(*path = strdup(dir))) rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        } else {
            rc = rf_resolve(w->db, w->job.tenant, kind, ref, path, err);
        }
    } while (db_lost(w, rc));
    /* Gone since the job was created: bad input now, not worth a retry. */
    return rc == RF_ENOTFOUND ? rf_errorf(err, RF_EINVAL, "%s", err->msg) : rc;
}

static int ctx_submit_child(rf_job_ctx *ctx, const char *key, const char *type,
                            const json_t *params, const json_t *metadata, char *id_out, size_t cap,
                            bool *created, rf_error *err)
{
    worker *w = ctx_worker(ctx);
    char id[RF_ID_MAX];
    int rc;
    /* A child is keyed by its parent: submitting again after a lost
     * connection finds the one made, if it was. */
    while (db_lost(w, rc = rf_children_submit(w->db, &w->job, w->pool->owner, key, type, params,
                                              metadata, id, created, err))) {
    }
    if (!rc) snprintf(id_out, cap, "%s", id);
    return rc;
}

static int ctx_children(rf_job_ctx *ctx, json_t **out, rf_error *err)
{
    worker *w = ctx_worker(ctx);
    int rc;
    while (db_lost(w, rc = rf_children_list(w->db, &w->job, w->pool->owner, out, err))) {
    }
    return rc;
}

static int ctx_study(rf_job_ctx *ctx, const char *op, const json_t *args, json_t **out,
                     rf_error *err)
{
    worker *w = ctx_worker(ctx);
    return rf_studies_op(w->db, w->job.tenant, w->job.id, op, args, out, err);
}

/* ---- group commit of finishes ------------------------------------------ */

/* The batch's leader records every outcome queued by then on its own
 * connection (one statement, one flush); see finish_job. */
/* The events of a batch, in one statement; each on its own when that fails
 * (one refused must not cost the others). */
static void events_batch(worker *leader, finish_req *batch, int n)
{
    const char **v = malloc((size_t)n * 3 * sizeof *v);
    rf_error err;
    int rc = 0, i = 0;
    if (!v) {
        rc = rf_errorf(&err, RF_ENOMEM, "out of memory");
    } else {
        for (finish_req *b = batch; b; b = b->next)
            if (b->kind) {
                v[i] = b->f.job->id;
                v[n + i] = b->kind;
                v[2 * n + i++] = b->data;
            }
        while (db_lost(leader, rc = rf_queue_events(leader->db, n, v, v + n, v + 2 * n, &err))) {
        }
    }
    for (finish_req *b = batch; b; b = b->next) {
        if (!b->kind) continue;
        b->rc = rc;
        if (rc && n > 1 && rc == RF_EDB && rf_db_alive(leader->db))
            while (db_lost(leader, b->rc = rf_queue_event(leader->db, b->f.job->id, b->kind,
                                                          b->data, &b->err))) {
            }
        else if (rc)
            b->err = err;
    }
    free(v);
}

/* The batch's leader records every write queued by then on its own
 * connection: the events in one statement, the outcomes in another (and one
 * flush, and the claim for the workers they free); see finish_job. */
static void finish_batch(worker *leader, finish_req *batch, rf_claim *then)
{
    rf_workers *p = leader->pool;
    int n = 0, events = 0;
    for (finish_req *b = batch; b; b = b->next)
        if (b->kind)
            events++;
        else
            n++;
    if (events) events_batch(leader, batch, events);
    if (!n) return;
    rf_finish *f = malloc((size_t)n * sizeof *f);
    rf_error err;
    int rc = 0;
    if (!f) {
        rc = rf_errorf(&err, RF_ENOMEM, "out of memory");
        if (then) then->rc = rf_errorf(&then->err, RF_ENOMEM, "not claimed: out of memory");
    } else {
        int i = 0;
        for (finish_req *b = batch; b; b = b->next)
            if (!b->kind) f[i++] = b->f;
        while (db_lost(leader, rc = rf_queue_finish_many(leader->db, p->owner, f, n, then, &err))) {
        }
        /* A statement fails as a whole: one outcome the database refuses (a
         * trigger's error) must not cost the others theirs, so each is then
         * recorded on its own. */
        if (rc == RF_EDB && n > 1 && rf_db_alive(leader->db)) {
            rc = 0;
            for (i = 0; i < n; i++) {
                rf_error one;
                int orc;
                while (db_lost(leader, orc = rf_queue_finish_many(leader->db, p->owner, &f[i], 1,
                                                                  NULL, &one))) {
                }
                if (orc) f[i].rc = orc;
                if (orc) rf_log(RF_LOG_WARN, "job %s: %s", f[i].job->id, one.msg);
            }
        }
    }
    int i = 0;
    for (finish_req *b = batch; b; b = b->next) {
        if (b->kind) continue;
        b->rc = rc ? rc : f[i].rc;
        i++;
        if (rc)
            b->err = err;
        else if (b->rc == RF_ECONFLICT)
            rf_errorf(&b->err, RF_ECONFLICT, "job %s is no longer held by this worker (lease lost)",
                      b->f.job->id);
        else if (b->rc)
            rf_errorf(&b->err, b->rc, "job %s: its outcome was not recorded", b->f.job->id);
    }
    free(f);
}

/* Workers running a job that started or wrote within the window: likely to
 * write again soon (short jobs, handed out together by one claim). */
static int siblings(rf_workers *p, double now)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += atomic_load(&p->w[i].running) &&
             now - atomic_load(&p->w[i].active_s) < SIBLING_WINDOW_S;
    return n;
}

/* With fin_lock held, as the batch's leader: wait, at most GATHER_MAX_S,
 * until every sibling has queued a write — PostgreSQL's commit_delay and
 * commit_siblings, for the same reason. Workers handed jobs by one claim
 * reach their writes a moment apart (each must be scheduled, on a machine
 * with fewer cores than threads); without the wait the first one writes
 * alone and the rest together, and the batches, and the claims made with
 * them, halve. Long jobs are not siblings: they add no wait. */
static void gather(rf_workers *p)
{
    double start = rf_now_s(), deadline = start + GATHER_MAX_S;
    for (double t = start; p->fin_n < siblings(p, t) && t < deadline; t = rf_now_s()) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = until.tv_nsec + (long long)((deadline - t) * 1e9);
        until.tv_sec += ns / 1000000000LL;
        until.tv_nsec = ns % 1000000000LL;
        p->fin_gathering = true;
        pthread_cond_timedwait(&p->fin_arrive, &p->fin_lock, &until);
        p->fin_gathering = false;
    }
}

/* With wake_lock held, after the outcomes of batch were counted: the jobs of
 * the claim made with them go to the idle workers. A failed claim leaves the
 * claiming to the workers. */
static void hand_off(rf_workers *p, finish_req *batch, const rf_claim *claim)
{
    p->claiming = false;
    p->held += claim->got;
    for (int i = 0; i < claim->got; i++) {
        p->handoff[p->handoff_n++] = claim->jobs[i];
        pthread_cond_signal(&p->wake);
    }
    if (claim->rc) {
        p->pending = true;
        pthread_cond_signal(&p->wake);
        return;
    }
    /* Looked for: they need not look again until a wake-up says there may be
     * more. */
    for (finish_req *b = batch; b; b = b->next)
        if (!b->kind && b->w->let_go) b->w->claimed_for = true;
    if (p->pending && p->held < p->n) pthread_cond_signal(&p->wake);
}

/* rf_queue_finish for w's job, shared with the workers finishing at the same
 * time: the first to arrive while no batch is being recorded records every
 * outcome queued by then, and each worker returns once the flush that made
 * its own durable returned. Concurrent finishes so cost one statement and
 * one WAL flush instead of one each, and the workers come back idle
 * together, ready to be claimed for together. */
static int shared_write(worker *w, finish_req *req, rf_error *err)
{
    rf_workers *p = w->pool;
    finish_req me = *req;
    pthread_mutex_lock(&p->fin_lock);
    *p->fin_tail = &me;
    p->fin_tail = &me.next;
    p->fin_n++;
    atomic_store(&w->active_s, rf_now_s());
    if (p->fin_gathering) pthread_cond_signal(&p->fin_arrive);
    while (!me.done) {
        if (p->fin_busy) {
            pthread_cond_wait(&p->fin_done, &p->fin_lock);
            continue;
        }
        p->fin_busy = true;
        gather(p);
        finish_req *batch = p->fin_queue;
        p->fin_queue = NULL;
        p->fin_tail = &p->fin_queue;
        p->fin_n = 0;
        pthread_mutex_unlock(&p->fin_lock);
        /* The workers these outcomes free (and any idle now) get their next
         * jobs from a claim in the same round trip: no wake-up, no claim of
         * their own, and they start again together, so that the next batch
         * of outcomes is as large as this one. */
        rf_claim claim = {.types = p->types, .lease_ms = p->cfg->lease_ms, .jobs = p->claim_buf};
        int ending = 0;
        for (finish_req *b = batch; b; b = b->next)
            ending += !b->kind;
        pthread_mutex_lock(&p->wake_lock);
        if (ending && !p->claiming && !atomic_load(&p->stopping)) {
            claim.max = p->n - p->held + ending; /* ≤ n: the ending are among the held */
            p->claiming = true;
            p->pending = false; /* every wake-up from now on is for a claim after this one */
        }
        pthread_mutex_unlock(&p->wake_lock);
        finish_batch(w, batch, claim.max > 0 ? &claim : NULL);
        if (claim.max > 0 && claim.rc) rf_log(RF_LOG_WARN, "claim failed: %s", claim.err.msg);
        /* The workers whose outcome is recorded are idle from now on (what
         * is left of their job is removing its folder): counted so at once,
         * all together, with the jobs claimed for them. */
        pthread_mutex_lock(&p->wake_lock);
        for (finish_req *b = batch; b; b = b->next)
            if (!b->kind && (b->rc == 0 || b->rc == RF_ECONFLICT)) {
                b->w->let_go = true;
                p->held--;
            }
        if (claim.max > 0) hand_off(p, batch, &claim);
        pthread_mutex_unlock(&p->wake_lock);
        pthread_mutex_lock(&p->fin_lock);
        for (finish_req *b = batch, *next; b; b = next) {
            next = b->next; /* b's owner may return once it sees done */
            b->done = true;
        }
        p->fin_busy = false;
        pthread_cond_broadcast(&p->fin_done);
    }
    pthread_mutex_unlock(&p->fin_lock);
    if (me.rc) *err = me.err;
    return me.rc;
}

static int finish_job(worker *w, const char *status, const char *result_json, const char *error,
                      rf_error *err)
{
    finish_req r = {
        .w = w,
        .f = {.job = &w->job, .status = status, .result_json = result_json, .error = error}};
    return shared_write(w, &r, err);
}

/* rf_queue_event for w's job, shared with the workers writing at the same
 * time, as finish_job is. */
static int event_job(worker *w, const char *kind, const char *data, rf_error *err)
{
    finish_req r = {.w = w, .f = {.job = &w->job}, .kind = kind, .data = data};
    return shared_write(w, &r, err);
}

/* ---- running one job ---------------------------------------------------- */

static void run_one(worker *w)
{
    rf_workers *p = w->pool;
    rf_claimed_job *j = &w->job;
    const rf_runner *runner = rf_runner_find(j->type);
    rf_error err;
    rf_error_clear(&err);
    json_t *result = NULL;
    double wake_after_s = 0;
    int rc;

    snprintf(w->workdir, sizeof w->workdir, "%s/jobs/%s", p->cfg->data_dir, j->id);
    char jobs_dir[1100];
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", p->cfg->data_dir);
    /* A runner that writes no files gets no folder (rf_runner.no_workdir). */
    bool folder = !runner || !runner->no_workdir;
    if (folder) {
        mkdir(p->cfg->data_dir, 0750);
        mkdir(jobs_dir, 0750);
    }
    if (folder && mkdir(w->workdir, 0750) && errno != EEXIST) {
        rc = rf_errorf(&err, RF_EIO, "cannot create the job's folder %s: %s", w->workdir,
                       strerror(errno));
        goto done;
    }

    rf_job_ctx ctx = {
        .self = w,
        .job_id = j->id,
        .attempt = j->attempt,
        .workdir = w->workdir,
        .resume = j->checkpoint,
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
    memset(&w->link, 0, sizeof w->link);
    if (!j->trial) w->link.state = 1; /* no study to look up */
    w->stop_reason[0] = '\0';
    w->last_cancel_check = rf_now_s();
    rf_log(RF_LOG_INFO, "job %s (%s) attempt %d/%d started", j->id, j->type, j->attempt,
           j->max_attempts);
    rc = runner ? runner->run(j->params, &ctx, &result, &err)
                : rf_errorf(&err, RF_EUNSUPPORTED, "no runner for job type '%s'", j->type);
    wake_after_s = ctx.wake_after_s;
done:;
    /* the job's owner sees err.msg: ids, never server paths */
    rf_scrub_paths(err.msg, p->cfg->data_dir);
    rf_scrub_paths(err.msg, p->cfg->served_roots);
    rf_error qerr;
    int qrc;
    bool ended = true; /* the outcome recorded is a final state */
record:                /* again after a lost connection: the outcome is known, only not yet told */
    if (rc == RF_EWAIT) {
        /* A parent leaves its worker until a child ends (service/children.h). */
        char status[16] = "";
        qrc = rf_children_park(w->db, j, p->owner, (long long)(wake_after_s * 1000), status, &qerr);
        ended = !strcmp(status, "cancelled") || !strcmp(status, "failed");
        rf_log(RF_LOG_INFO, "job %s %s", j->id,
               !strcmp(status, "waiting") ? "waiting for its child jobs" : status);
    } else if (rc == 0) {
        if (rf_study_link_finish(w->db, j, &w->link, result, &qerr))
            rf_log(RF_LOG_WARN, "job %s: its trial was not told: %s", j->id, qerr.msg);
        char *s = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        qrc = finish_job(w, "succeeded", s ? s : "null", NULL, &qerr);
        free(s);
        rf_log(RF_LOG_INFO, "job %s succeeded", j->id);
    } else if (rc == RF_ECANCELED && atomic_load(&w->cancel)) {
        qrc = finish_job(w, "cancelled", NULL,
                         w->stop_reason[0] ? w->stop_reason : "cancelled by request", &qerr);
        rf_log(RF_LOG_INFO, "job %s cancelled", j->id);
    } else if (rc == RF_ECANCELED && atomic_load(&p->stopping)) {
        qrc = rf_queue_release(w->db, j, p->owner, &qerr);
        ended = false;
        rf_log(RF_LOG_INFO, "job %s released to the queue (shutting down)", j->id);
    } else if (rc == RF_EINVAL || rc == RF_EUNSUPPORTED || rc == RF_ECANCELED) {
        /* Bad input does not get better by retrying. A runner may leave a
         * result of what it did before failing (a partial dataset). */
        char *s = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        qrc = finish_job(w, "failed", s, err.msg, &qerr);
        free(s);
        rf_log(RF_LOG_WARN, "job %s failed: %s", j->id, err.msg);
    } else {
        bool final = false;
        qrc = rf_queue_retry(w->db, j, p->owner, err.msg[0] ? err.msg : rf_strerror(rc),
                             p->cfg->retry_base_ms, p->cfg->retry_max_ms, &final, &qerr);
        ended = final;
        rf_log(RF_LOG_WARN, "job %s attempt %d failed%s: %s", j->id, j->attempt,
               final ? " for good" : ", will retry", err.msg);
    }
    if (db_lost(w, qrc)) goto record;
    if (qrc) rf_log(RF_LOG_WARN, "job %s: could not record its outcome: %s", j->id, qerr.msg);
    /* Ended: its folder (checkpoints, half-written files) and any temporary
     * a killed attempt left in the stores go now. A job handed back keeps
     * them for its next attempt. */
    if (!qrc && ended) rf_sweep_job(w->db, p->cfg->data_dir, j->tenant, j->id);
    json_decref(result);
}

/* Until the poll interval from now. */
static void poll_deadline(const rf_workers *p, struct timespec *until)
{
    clock_gettime(CLOCK_REALTIME, until);
    long ns = until->tv_nsec + (long)(p->cfg->poll_ms % 1000) * 1000000L;
    until->tv_sec += p->cfg->poll_ms / 1000 + ns / 1000000000L;
    until->tv_nsec = ns % 1000000000L;
}

/* The next job for w: one handed over by the worker that claimed it, or
 * claimed here for every idle worker at once (the most urgent kept, the rest
 * handed over). A worker claims only as many jobs as there are idle workers
 * (itself included), so that every job claimed starts at once: users see
 * `running` only for jobs that run, and leases time jobs that run. *want
 * says to look without waiting for a wake-up (at start, after a job, after
 * the poll interval). false once the pool stops. */
static bool next_job(worker *w, rf_claimed_job *batch, bool *want)
{
    rf_workers *p = w->pool;
    struct timespec until;
    poll_deadline(p, &until);
    int k = 0;
    pthread_mutex_lock(&p->wake_lock);
    for (;;) {
        if (p->handoff_n) {
            w->job = p->handoff[--p->handoff_n];
            pthread_mutex_unlock(&p->wake_lock);
            return true;
        }
        if (atomic_load(&p->stopping)) break;
        if (!p->claiming && (*want || p->pending)) {
            /* Every wake-up from now on is for a claim after this one. */
            p->claiming = true;
            p->pending = false;
            /* Workers returning with this one (from one batch of outcomes)
             * are likely a moment behind: a chance to be counted. */
            pthread_mutex_unlock(&p->wake_lock);
            sched_yield();
            pthread_mutex_lock(&p->wake_lock);
            k = p->n - p->held; /* ≥ 1: this worker holds none, and none waits in handoff */
            if (k < 1) {
                /* Defensive: every job held is someone's; nothing to claim for. */
                p->claiming = false;
                *want = false;
                pthread_mutex_unlock(&p->wake_lock);
                return true;
            }
            break;
        }
        if (pthread_cond_timedwait(&p->wake, &p->wake_lock, &until) == ETIMEDOUT) {
            *want = true; /* jobs whose backoff ends need no notification */
            poll_deadline(p, &until);
        }
    }
    pthread_mutex_unlock(&p->wake_lock);
    if (!k) return false;

    int got = 0;
    rf_error err;
    if (rf_queue_claim_many(w->db, p->owner, p->types, p->cfg->lease_ms, k, batch, &got, &err)) {
        rf_log(RF_LOG_WARN, "worker %d: claim failed: %s", w->index, err.msg);
        got = 0;
    }
    pthread_mutex_lock(&p->wake_lock);
    p->claiming = false;
    p->held += got;
    for (int i = 1; i < got; i++) {
        p->handoff[p->handoff_n++] = batch[i];
        pthread_cond_signal(&p->wake);
    }
    /* A wake-up during the claim may be for a job it did not see: another
     * idle worker claims again (this one does itself when it got none). */
    if (got && p->pending && p->held < p->n) pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->wake_lock);
    /* Found none (or failed): wait for a wake-up or the poll interval. */
    *want = false;
    if (got) w->job = batch[0];
    return true;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    rf_workers *p = w->pool;
    rf_claimed_job *batch = calloc((size_t)p->n, sizeof *batch);
    bool want = true;
    while (batch) {
        if (!atomic_load(&p->stopping) && !rf_db_alive(w->db)) {
            char who[32];
            snprintf(who, sizeof who, "worker %d", w->index);
            if (wait_for_db(p, &w->db, who, worker_connect)) break;
        }
        memset(&w->job, 0, sizeof w->job);
        if (!next_job(w, batch, &want)) break;
        if (!w->job.id[0]) continue;
        if (atomic_load(&p->stopping)) {
            /* Claimed just before the stop: handed back untouched. */
            rf_error err;
            if (rf_queue_release(w->db, &w->job, p->owner, &err))
                rf_log(RF_LOG_WARN, "job %s: not released: %s", w->job.id, err.msg);
        } else {
            pthread_mutex_lock(&w->lock);
            snprintf(w->job_id, sizeof w->job_id, "%s", w->job.id);
            atomic_store(&w->cancel, false);
            pthread_mutex_unlock(&w->lock);
            atomic_fetch_add(&p->busy, 1);
            rf_metrics_workers(0, 1);
            atomic_store(&w->active_s, rf_now_s());
            atomic_store(&w->running, true);
            run_one(w);
            atomic_store(&w->running, false);
            rf_metrics_workers(0, -1);
            atomic_fetch_sub(&p->busy, 1);
            pthread_mutex_lock(&w->lock);
            w->job_id[0] = '\0';
            pthread_mutex_unlock(&w->lock);
        }
        rf_claimed_job_clear(&w->job);
        pthread_mutex_lock(&p->wake_lock);
        if (!w->let_go) p->held--;
        w->let_go = false;
        /* When a claim was made for it with its outcome, the jobs there were
         * are in handoff; otherwise it looks for one itself. */
        want = !w->claimed_for;
        w->claimed_for = false;
        pthread_mutex_unlock(&p->wake_lock);
    }
    if (!batch) rf_log(RF_LOG_ERROR, "worker %d: out of memory; not started", w->index);
    free(batch);
    if (w->db) PQfinish(w->db);
    w->db = NULL;
    return NULL;
}

/* ---- the listener ------------------------------------------------------- */

static int listen_connect(rf_workers *p, PGconn **c, rf_error *err)
{
    if (*c) PQfinish(*c);
    *c = NULL;
    int rc = rf_db_connect(p->cfg->database_url, c, err);
    if (rc) return rc;
    /* PQexec: three statements in one string (PQexecParams takes one). */
    PGresult *r = PQexec(*c, "LISTEN refinery_jobs; LISTEN refinery_cancel; LISTEN refinery_keys;"
                             " LISTEN refinery_events; LISTEN refinery_wake; LISTEN refinery_job");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = rf_errorf(err, RF_EDB, "LISTEN failed: %s", PQerrorMessage(*c));
    PQclear(r);
    return rc;
}

/* The jobs this process's workers run now, as a text[] literal ("{}" when none). */
static void held_ids(rf_workers *p, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        pthread_mutex_lock(&w->lock);
        if (w->job_id[0] && len + strlen(w->job_id) + 3 < cap)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", len > 1 ? "," : "", w->job_id);
        pthread_mutex_unlock(&w->lock);
    }
    snprintf(buf + len, cap - len, "}");
}

static void *listener_main(void *arg)
{
    rf_workers *p = arg;
    int beat_ms = p->cfg->lease_ms / 3;
    int rescue_ms = p->cfg->lease_ms / 2 < 5000 ? p->cfg->lease_ms / 2 : 5000;
    double next_beat = 0, next_rescue = 0;
    char *ids = malloc((size_t)(p->n + 1) * (RF_ID_MAX + 1) + 8);
    if (!ids) {
        rf_log(RF_LOG_ERROR, "listener: out of memory; leases will not be extended");
        return NULL;
    }
    bool reconcile = false;
    while (!atomic_load(&p->stopping)) {
        rf_error err;
        if (!p->ldb || PQstatus(p->ldb) != CONNECTION_OK) {
            /* Deaf now: changes may go unannounced until LISTEN is back. */
            rf_job_cache_online(false);
            if (wait_for_db(p, &p->ldb, "listener", listen_connect)) break;
            rf_job_cache_online(true);
            /* Notifications may have been missed meanwhile: workers look for
             * jobs, event streams for events, keys are checked afresh, parents
             * whose children ended are woken; leases are extended at once. */
            wake_one(p);
            rf_sse_notify(NULL);
            rf_auth_flush();
            reconcile = true;
            next_beat = 0;
        }
        double t = rf_now_s();
        if (t >= next_beat) {
            held_ids(p, ids, (size_t)(p->n + 1) * (RF_ID_MAX + 1) + 8);
            if (strcmp(ids, "{}") &&
                rf_queue_heartbeat(p->ldb, p->owner, ids, p->cfg->lease_ms, on_heartbeat, p, &err))
                rf_log(RF_LOG_WARN, "heartbeat failed: %s", err.msg);
            next_beat = t + beat_ms / 1000.0;
        }
        if (t >= next_rescue) {
            int n = 0;
            if (rf_queue_rescue(p->ldb, p->cfg->retry_base_ms, p->cfg->retry_max_ms, &n, &err))
                rf_log(RF_LOG_WARN, "rescue failed: %s", err.msg);
            else if (n) {
                rf_log(RF_LOG_WARN, "rescued %d job(s) whose worker was lost", n);
                /* What the lost workers left in the data folder: the jobs
                 * that ended go (service/sweep.h). */
                rf_sweep_stats st;
                if (rf_sweep_data(p->ldb, p->cfg->data_dir, false, &st, &err))
                    rf_log(RF_LOG_WARN, "sweep failed: %s", err.msg);
            }
            /* The fallback for lost wake-ups: parents whose children ended. */
            reconcile = true;
            if (rf_children_sweep(p->ldb, &err))
                rf_log(RF_LOG_WARN, "sweeping wake-ups failed: %s", err.msg);
            next_rescue = t + rescue_ms / 1000.0;
        }
        double next = next_beat < next_rescue ? next_beat : next_rescue;
        int timeout = (int)((next - rf_now_s()) * 1000);
        if (timeout > 250) timeout = 250; /* also bounds how long stop() waits */
        if (timeout < 0) timeout = 0;
        struct pollfd pfd = {.fd = PQsocket(p->ldb), .events = POLLIN};
        if (poll(&pfd, 1, timeout) > 0 && !PQconsumeInput(p->ldb)) continue;
        PGnotify *n;
        while ((n = PQnotifies(p->ldb))) {
            if (!strcmp(n->relname, "refinery_jobs"))
                wake_one(p);
            else if (!strcmp(n->relname, "refinery_cancel"))
                flag_cancel(p, n->extra);
            else if (!strcmp(n->relname, "refinery_keys"))
                rf_auth_flush();
            else if (!strcmp(n->relname, "refinery_job"))
                rf_job_cache_changed(n->extra);
            else if (!strcmp(n->relname, "refinery_events"))
                rf_sse_notify(n->extra);
            else if (!strcmp(n->relname, "refinery_wake"))
                reconcile = true; /* a child ended, or a parent was cancelled */
            PQfreemem(n);
        }
        if (reconcile) {
            reconcile = false;
            if (rf_children_reconcile(p->ldb, NULL, &err))
                rf_log(RF_LOG_WARN, "waking parent jobs failed: %s", err.msg);
        }
    }
    free(ids);
    return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

int rf_workers_start(const rf_config *cfg, rf_workers **out, rf_error *err)
{
    rf_workers *p = calloc(1, sizeof *p);
    if (!p) return rf_errorf(err, RF_ENOMEM, "out of memory");
    p->cfg = cfg;
    pthread_mutex_init(&p->wake_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_mutex_init(&p->fin_lock, NULL);
    pthread_cond_init(&p->fin_done, NULL);
    pthread_cond_init(&p->fin_arrive, NULL);
    p->fin_tail = &p->fin_queue;
    char host[64] = "host", rnd[9];
    gethostname(host, sizeof host - 1);
    rf_random_alnum(rnd, 8);
    snprintf(p->owner, sizeof p->owner, "%s:%d:%s", host, (int)getpid(), rnd);

    /* {type1,type2}: the types this process can run. */
    const char *names[64];
    int nt = rf_runner_types(names, 64);
    size_t len = (size_t)snprintf(p->types, sizeof p->types, "{");
    for (int i = 0; i < nt && i < 64; i++)
        len += (size_t)snprintf(p->types + len, sizeof p->types - len, "%s\"%s\"", i ? "," : "",
                                names[i]);
    snprintf(p->types + len, sizeof p->types - len, "}");

    rf_queue_set_local_wake(wake_hook, p);
    p->n = cfg->workers;
    p->w = calloc((size_t)(p->n ? p->n : 1), sizeof *p->w);
    p->handoff = calloc((size_t)(p->n ? p->n : 1), sizeof *p->handoff);
    p->claim_buf = calloc((size_t)(p->n ? p->n : 1), sizeof *p->claim_buf);
    if (!p->w || !p->handoff || !p->claim_buf) {
        free(p->w);
        free(p->handoff);
        free(p->claim_buf);
        free(p);
        return rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    int rc = listen_connect(p, &p->ldb, err);
    if (rc) goto fail;
    rf_job_cache_online(true); /* listening: the job cache may serve */
    if (pthread_create(&p->listener, NULL, listener_main, p)) {
        rc = rf_errorf(err, RF_EINTERNAL, "cannot start the listener thread");
        goto fail;
    }
    p->listener_started = true;
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        w->pool = p;
        w->index = i;
        pthread_mutex_init(&w->lock, NULL);
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            p->n = i;
            rc = rf_errorf(err, RF_EINTERNAL, "cannot start worker thread %d", i);
            goto fail;
        }
    }
    rf_metrics_workers(p->n, 0);
    rf_log(RF_LOG_INFO, "%d worker(s) started as %s for job types %s", p->n, p->owner, p->types);
    *out = p;
    return 0;
fail:
    rf_workers_stop(p, 0);
    return rc;
}

int rf_workers_busy(const rf_workers *w)
{
    return w ? atomic_load(&w->busy) : 0;
}

void rf_workers_stop(rf_workers *p, int grace_ms)
{
    if (!p) return;
    rf_queue_set_local_wake(NULL, NULL);
    atomic_store(&p->stopping, true);
    wake_all(p);
    /* Runners see should_stop() and hand their jobs back; wait for them. */
    double deadline = rf_now_s() + grace_ms / 1000.0;
    while (atomic_load(&p->busy) > 0 && rf_now_s() < deadline)
        usleep(20000);
    bool stuck = atomic_load(&p->busy) > 0;
    if (p->listener_started) pthread_join(p->listener, NULL);
    if (stuck) {
        /* A runner that did not reach a safe point in time: give its job back
         * from here, and leave its thread to die with the process. */
        rf_error err;
        if (p->ldb && rf_queue_release(p->ldb, NULL, p->owner, &err))
            rf_log(RF_LOG_WARN, "could not release jobs at shutdown: %s", err.msg);
        rf_log(RF_LOG_WARN, "%d job(s) did not stop within %d ms; released to the queue",
               atomic_load(&p->busy), grace_ms);
    } else {
        for (int i = 0; i < p->n; i++)
            pthread_join(p->w[i].thread, NULL);
        for (int i = 0; i < p->n; i++)
            pthread_mutex_destroy(&p->w[i].lock);
        free(p->w);
        free(p->handoff);
        free(p->claim_buf);
    }
    rf_job_cache_online(false);
    if (p->ldb) PQfinish(p->ldb);
    if (!stuck) free(p);
}
