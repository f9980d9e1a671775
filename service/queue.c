#include "service/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "service/db.h"
#include "service/log.h"

void rf_claimed_job_clear(rf_claimed_job *j)
{
    json_decref(j->params);
    json_decref(j->checkpoint);
    memset(j, 0, sizeof *j);
}

/* The fence every write on a running job carries: $1 id, $2 owner, $3 attempt. */
#define FENCE " WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'"

/* Backoff delay for the attempt just made: base·2^(attempts−1), capped, times a
 * jitter factor in [0.5, 1) so that retries of many jobs spread out. B and M
 * name the parameters holding the base and the cap, in milliseconds. */
#define BACKOFF(B, M)                                                                              \
    "now() + (least(" M "::float8, " B "::float8 * power(2, greatest(attempts - 1, 0)))"           \
    " * (0.5 + random() / 2)) * interval '1 millisecond'"

/* The claim, for LIMIT N. The limit is part of the text, not a parameter:
 * the cached generic plan of a parameterised LIMIT is made for a tenth of
 * the queued rows (PostgreSQL's guess for an unknown limit), and with a
 * backlog that is a sort of them all instead of the claim index's walk
 * (milliseconds instead of tens of microseconds). */
#define CLAIM_SQL(N)                                                                               \
    "WITH next AS ("                                                                               \
    "  SELECT id FROM jobs"                                                                        \
    "  WHERE status = 'queued' AND run_after <= now() AND type = ANY($2::text[])"                  \
    "  ORDER BY priority DESC, seq"                                                                \
    "  FOR UPDATE SKIP LOCKED LIMIT " N "),"                                                       \
    " u AS (UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, lease_owner = $1,"    \
    "   lease_expires_at = now() + $3 * interval '1 millisecond',"                                 \
    "   started_at = coalesce(j.started_at, now()), updated_at = now()"                            \
    "  FROM next WHERE j.id = next.id"                                                             \
    "  RETURNING j.id, j.tenant_id, j.type, j.attempts, j.max_attempts, j.params::text,"           \
    "   j.checkpoint::text, j.metadata ? 'study_id', j.priority, j.seq)," /* The attempt's first   \
                                                                             event, in the same    \
                                                                             round trip. */        \
    " e AS (INSERT INTO job_events (job_id, kind, data) SELECT id, 'log',"                         \
    "   json_build_object('level', 'info', 'message', 'attempt started',"                          \
    "   'attempt', attempts, 'worker', $1::text) FROM u RETURNING job_id)"                         \
    " SELECT u.*, (SELECT count(*) FROM (SELECT pg_notify('refinery_events', job_id) FROM e) n)"   \
    " FROM u ORDER BY priority DESC, seq"

static const char *const CLAIM[RF_QUEUE_CLAIM_MAX] = {
    CLAIM_SQL("1"),  CLAIM_SQL("2"),  CLAIM_SQL("3"),  CLAIM_SQL("4"),
    CLAIM_SQL("5"),  CLAIM_SQL("6"),  CLAIM_SQL("7"),  CLAIM_SQL("8"),
    CLAIM_SQL("9"),  CLAIM_SQL("10"), CLAIM_SQL("11"), CLAIM_SQL("12"),
    CLAIM_SQL("13"), CLAIM_SQL("14"), CLAIM_SQL("15"), CLAIM_SQL("16")};

/* The rows of a claim into jobs[0 .. *got). */
static void claimed_rows(PGresult *r, int max, rf_claimed_job *jobs, int *got)
{
    *got = 0;
    int n = PQntuples(r);
    for (int i = 0; i < n && i < max; i++) {
        rf_claimed_job *job = &jobs[*got];
        memset(job, 0, sizeof *job);
        snprintf(job->id, sizeof job->id, "%s", PQgetvalue(r, i, 0));
        snprintf(job->tenant, sizeof job->tenant, "%s", PQgetvalue(r, i, 1));
        snprintf(job->type, sizeof job->type, "%s", PQgetvalue(r, i, 2));
        job->attempt = atoi(PQgetvalue(r, i, 3));
        job->max_attempts = atoi(PQgetvalue(r, i, 4));
        job->params = json_loads(PQgetvalue(r, i, 5), 0, NULL);
        if (!PQgetisnull(r, i, 6)) job->checkpoint = json_loads(PQgetvalue(r, i, 6), 0, NULL);
        job->trial = PQgetvalue(r, i, 7)[0] == 't';
        if (job->params) {
            (*got)++;
            continue;
        }
        /* Left to expire and be rescued (the attempt counts); the others run. */
        rf_log(RF_LOG_WARN, "job %s has unreadable params (out of memory?)", job->id);
        rf_claimed_job_clear(job);
    }
}

static int clamp_claim(int max)
{
    return max < 1 ? 1 : max > RF_QUEUE_CLAIM_MAX ? RF_QUEUE_CLAIM_MAX : max;
}

int rf_queue_claim_many(PGconn *c, const char *owner, const char *types, int lease_ms, int max,
                        rf_claimed_job *jobs, int *got, rf_error *err)
{
    char lease[32];
    snprintf(lease, sizeof lease, "%d", lease_ms);
    const char *p[3] = {owner, types, lease};
    PGresult *r;
    *got = 0;
    max = clamp_claim(max);
    /* Prepared, and planned once per connection: planning this statement
     * (two scans of jobs and an insert, every index of both tables) costs
     * more than running it. The worker connection disables sequential scans
     * (service/worker.c) so that the cached plan is the claim index's walk
     * even when it is made while the table is empty. One statement claims
     * for every idle worker at once: its parse, its transaction and its
     * round trip are paid once per batch, not once per job. */
    int rc = rf_db_execp(c, CLAIM[max - 1], 3, p, &r, err);
    if (!rc) claimed_rows(r, max, jobs, got);
    PQclear(r);
    return rc;
}

int rf_queue_claim(PGconn *c, const char *owner, const char *types, int lease_ms,
                   rf_claimed_job *job, bool *got, rf_error *err)
{
    int n = 0;
    memset(job, 0, sizeof *job);
    int rc = rf_queue_claim_many(c, owner, types, lease_ms, 1, job, &n, err);
    *got = n == 1;
    return rc;
}

static void fence_params(const rf_claimed_job *j, const char *owner, char attempt[16],
                         const char *p[3])
{
    snprintf(attempt, 16, "%d", j->attempt);
    p[0] = j->id;
    p[1] = owner;
    p[2] = attempt;
}

/* Run a fenced statement; RF_ECONFLICT when it touched no row. */
static int fenced(PGconn *c, const char *sql, int n, const char *const *p, PGresult **out,
                  rf_error *err)
{
    PGresult *r;
    int rc = rf_db_execp(c, sql, n, p, &r, err);
    if (!rc && atoi(PQcmdTuples(r)) == 0)
        rc = rf_errorf(err, RF_ECONFLICT, "job %s is no longer held by this worker (lease lost)",
                       p[0]);
    if (out && !rc)
        *out = r;
    else
        PQclear(r);
    return rc;
}

/* The outcomes of many jobs as one statement: unnest() pairs each job with
 * its own attempt, so the fence holds row by row — a job whose lease was
 * lost is simply not among the rows updated, and the others are. */
static const char *const FINISH_SQL =
    "WITH f AS (SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::jsonb[], $6::text[])"
    "  AS f(id, attempt, status, result, error)),"
    " u AS (UPDATE jobs j SET status = f.status, result = f.result, error = f.error,"
    "  progress = CASE WHEN f.status = 'succeeded' THEN 1 ELSE j.progress END,"
    "  finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL"
    "  FROM f WHERE j.id = f.id AND j.lease_owner = $1 AND j.attempts = f.attempt"
    "  AND j.status = 'running' RETURNING j.id, j.status, j.error),"
    /* The final state as an event too: event streams end on it. */
    " e AS (INSERT INTO job_events (job_id, kind, data) SELECT id, 'status',"
    "  json_build_object('status', status, 'error', error) FROM u)"
    " SELECT id, pg_notify('refinery_events', id),"
    "  set_config('synchronous_commit', 'off', true) FROM u";

static const char *const DURABLE_SQL =
    "SELECT set_config('synchronous_commit', 'on', true), pg_current_xact_id()";

/* One try of rf_queue_finish_many; *unprepared when the server did not know
 * a statement this connection was thought to have prepared. The claim, when
 * there is one and it was not made by an earlier try, goes between the
 * outcomes and the flush: its own transaction, in the same round trip. */
static int finish_once(PGconn *c, const char *const vals[6], rf_finish *f, int n, rf_claim *claim,
                       bool *unprepared, rf_error *err)
{
    char upd[32], durable[32], take[32], lease[32];
    const char *cp[3] = {vals[0], claim ? claim->types : NULL, lease};
    *unprepared = false;
    bool claiming = claim && !claim->made;
    int max = claiming ? clamp_claim(claim->max) : 0;
    int rc = rf_db_prepare(c, FINISH_SQL, 6, upd, err);
    if (!rc) rc = rf_db_prepare(c, DURABLE_SQL, 0, durable, err);
    if (!rc && claiming) rc = rf_db_prepare(c, CLAIM[max - 1], 3, take, err);
    if (rc) return rc;
    if (claiming) snprintf(lease, sizeof lease, "%d", claim->lease_ms);
    if (!PQenterPipelineMode(c))
        return rf_errorf(err, RF_EDB, "database error: %s", PQerrorMessage(c));
    /* A sync after each: in a pipeline, what lies between two syncs is one
     * (implicit) transaction, and these must be apart. */
    int sent =
        PQsendQueryPrepared(c, upd, 6, vals, NULL, NULL, 0) && PQpipelineSync(c) &&
        (!claiming || (PQsendQueryPrepared(c, take, 3, cp, NULL, NULL, 0) && PQpipelineSync(c))) &&
        PQsendQueryPrepared(c, durable, 0, NULL, NULL, NULL, 0) && PQpipelineSync(c);
    rc = sent ? 0 : rf_errorf(err, RF_EDB, "database error: %s", PQerrorMessage(c));
    /* Read each statement's result and its sync point, keeping the first error
     * of the outcomes' statements (the claim's is the claim's own). */
    for (int i = 0; sent && i < (claiming ? 3 : 2); i++) {
        bool is_claim = claiming && i == 1;
        PGresult *r = PQgetResult(c);
        ExecStatusType st = PQresultStatus(r);
        bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
        if (is_claim) {
            claim->made = true;
            if (ok) {
                claimed_rows(r, max, claim->jobs, &claim->got);
                claim->rc = 0;
            } else {
                /* Prepared again at the next claim; the workers claim on
                 * their own meanwhile. */
                if (!strcmp(rf_db_sqlstate(r), "26000")) rf_db_forget(c, CLAIM[max - 1]);
                claim->rc = rf_errorf(&claim->err, RF_EDB, "database error: %s",
                                      r ? PQresultErrorMessage(r) : PQerrorMessage(c));
            }
        } else if (!rc && !ok) {
            *unprepared = !strcmp(rf_db_sqlstate(r), "26000");
            rc = rf_errorf(err, RF_EDB, "database error: %s",
                           r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        } else if (!rc && i == 0) {
            /* The jobs not among the rows returned were not updated: their
             * fence refused the write. */
            for (int k = 0; k < n; k++) {
                bool found = false;
                for (int row = 0; row < PQntuples(r) && !found; row++)
                    found = !strcmp(PQgetvalue(r, row, 0), f[k].job->id);
                f[k].rc = found ? 0 : RF_ECONFLICT;
            }
        }
        PQclear(r);
        PQclear(PQgetResult(c)); /* the NULL that ends the statement's results */
        PQclear(PQgetResult(c)); /* its sync point */
    }
    PQexitPipelineMode(c);
    /* A lost fence aborts nothing by itself: the statement changed nothing. */
    if (PQtransactionStatus(c) != PQTRANS_IDLE) rf_db_rollback(c);
    if (claiming && !claim->made)
        claim->rc = rf_errorf(&claim->err, RF_EDB, "not claimed: %s", err ? err->msg : "");
    return rc;
}

int rf_queue_finish_many(PGconn *c, const char *owner, rf_finish *f, int n, rf_claim *then,
                         rf_error *err)
{
    /* Worker connections commit asynchronously (a lost claim or event only
     * means a re-run); a job's outcome is the exception and is on disk
     * before this returns (and so before the job's folder is swept).
     * The row's trigger announces the change (NOTIFY refinery_job), and a
     * NOTIFY holds a cluster-wide lock through its transaction's commit: a
     * commit that waited for disk there would serialise every notifying
     * transaction of the cluster behind one fsync. So the outcomes commit
     * without waiting (set_config(…, true): this statement's transaction
     * only), then a second statement whose transaction writes a commit
     * record (it takes a transaction id) commits waiting for disk: WAL is
     * flushed in order, so once it returns the outcomes are durable too.
     * (Readers may see an outcome up to one flush before it is durable; a
     * database crash in that window loses it as it would lose a claim: the
     * job is rescued and runs again.) Both go out as one pipeline: one round
     * trip, and one flush, for the whole batch. */
    rf_array_lit arr[5] = {0};
    int rc = 0;
    if (then && !then->made) {
        then->got = 0;
        then->rc = rf_errorf(&then->err, RF_ENOMEM, "not claimed: out of memory");
    }
    for (int k = 0; k < n; k++) {
        char attempt[16];
        snprintf(attempt, sizeof attempt, "%d", f[k].job->attempt);
        f[k].rc = RF_EDB;
        const char *v[5] = {f[k].job->id, attempt, f[k].status, f[k].result_json, f[k].error};
        for (int i = 0; i < 5 && !rc; i++)
            rc = rf_array_lit_add(&arr[i], v[i]);
    }
    for (int i = 0; i < 5 && !rc; i++)
        rc = rf_array_lit_end(&arr[i]);
    if (rc) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto out;
    }
    const char *vals[6] = {owner, arr[0].s, arr[1].s, arr[2].s, arr[3].s, arr[4].s};
    bool unprepared;
    rc = finish_once(c, vals, f, n, then, &unprepared, err);
    if (rc && unprepared) {
        rf_db_forget(c, FINISH_SQL);
        rf_db_forget(c, DURABLE_SQL);
        rc = finish_once(c, vals, f, n, then, &unprepared, err);
    }
out:
    for (int i = 0; i < 5; i++)
        free(arr[i].s);
    return rc;
}

int rf_queue_finish(PGconn *c, const rf_claimed_job *j, const char *owner, const char *status,
                    const char *result_json, const char *error, rf_error *err)
{
    rf_finish f = {.job = j, .status = status, .result_json = result_json, .error = error};
    int rc = rf_queue_finish_many(c, owner, &f, 1, NULL, err);
    if (!rc && f.rc)
        rc = rf_errorf(err, f.rc, "job %s is no longer held by this worker (lease lost)", j->id);
    return rc;
}

/* Wake-ups for new jobs: workers of this process directly, other processes
 * by NOTIFY — at most one per interval, sent outside the inserting
 * transaction, because a NOTIFY holds a cluster-wide lock through its
 * transaction's commit and would serialise every insert behind one fsync. */
#define ANNOUNCE_INTERVAL_NS 5000000L

static void (*g_local_wake)(void *);
static void *g_local_wake_arg;
static pthread_rwlock_t g_wake_lock = PTHREAD_RWLOCK_INITIALIZER; /* the hook vs. its removal */
static _Atomic long long g_last_announce;

void rf_queue_set_local_wake(void (*fn)(void *), void *arg)
{
    pthread_rwlock_wrlock(&g_wake_lock);
    g_local_wake = fn;
    g_local_wake_arg = arg;
    pthread_rwlock_unlock(&g_wake_lock);
}

void rf_queue_announce(PGconn *c)
{
    pthread_rwlock_rdlock(&g_wake_lock);
    if (g_local_wake) g_local_wake(g_local_wake_arg);
    pthread_rwlock_unlock(&g_wake_lock);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    long long last = atomic_load(&g_last_announce);
    if (now - last < ANNOUNCE_INTERVAL_NS ||
        !atomic_compare_exchange_strong(&g_last_announce, &last, now))
        return;
    /* Best effort: workers poll as well. A NOTIFY gets a transaction id and
     * so a commit record; set_config(…, true) makes this one statement's
     * transaction commit without waiting for the disk, which matters because
     * the notify lock is held until the commit returns. */
    PGresult *r = PQexec(c, "SELECT set_config('synchronous_commit', 'off', true),"
                            " pg_notify('refinery_jobs', '')");
    PQclear(r);
}

int rf_queue_retry(PGconn *c, const rf_claimed_job *j, const char *owner, const char *error,
                   int base_ms, int max_ms, bool *final, rf_error *err)
{
    char attempt[16], base[16], cap[16];
    const char *p[6];
    fence_params(j, owner, attempt, p);
    snprintf(base, sizeof base, "%d", base_ms);
    snprintf(cap, sizeof cap, "%d", max_ms);
    p[3] = base;
    p[4] = cap;
    p[5] = error;
    PGresult *r = NULL;
    int rc = fenced(
        c,
        "WITH u AS (UPDATE jobs SET"
        "  status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
        "  error = CASE WHEN attempts >= max_attempts"
        "    THEN format('%s (attempt %s of %s; giving up)', $6::text, attempts, max_attempts)"
        "    ELSE format('%s (attempt %s of %s; will retry)', $6::text, attempts, max_attempts) "
        "END,"
        "  finished_at = CASE WHEN attempts >= max_attempts THEN now() END,"
        "  run_after = " BACKOFF(
            "$4",
            "$5") ","
                  "  lease_owner = NULL, lease_expires_at = NULL, updated_at = now()" FENCE
                  "  RETURNING id, status)"
                  " SELECT status, pg_notify('refinery_jobs', ''), pg_notify('refinery_events', id)"
                  " FROM u",
        6, p, &r, err);
    if (!rc) *final = !strcmp(PQgetvalue(r, 0, 0), "failed");
    PQclear(r);
    return rc;
}

int rf_queue_release(PGconn *c, const rf_claimed_job *j, const char *owner, rf_error *err)
{
    if (!j) {
        const char *p[1] = {owner};
        return rf_db_execp(c,
                           "WITH u AS (UPDATE jobs SET status = 'queued', attempts = attempts - 1,"
                           "  run_after = now(), lease_owner = NULL, lease_expires_at = NULL,"
                           "  updated_at = now() WHERE lease_owner = $1 AND status = 'running'"
                           "  RETURNING id)"
                           " SELECT pg_notify('refinery_jobs', '') FROM u",
                           1, p, NULL, err);
    }
    char attempt[16];
    const char *p[3];
    fence_params(j, owner, attempt, p);
    return fenced(c,
                  "WITH u AS (UPDATE jobs SET status = 'queued', attempts = attempts - 1,"
                  "  run_after = now(), lease_owner = NULL, lease_expires_at = NULL,"
                  "  updated_at = now()" FENCE " RETURNING id)"
                  " SELECT pg_notify('refinery_jobs', '') FROM u",
                  3, p, NULL, err);
}

int rf_queue_heartbeat(PGconn *c, const char *owner, const char *ids, int lease_ms,
                       void (*on_job)(const char *id, bool cancel, void *arg), void *arg,
                       rf_error *err)
{
    char lease[32];
    snprintf(lease, sizeof lease, "%d", lease_ms);
    const char *p[3] = {owner, lease, ids};
    PGresult *r;
    int rc = rf_db_execp(c,
                         "UPDATE jobs SET lease_expires_at = now() + $2 * interval '1 millisecond'"
                         " WHERE lease_owner = $1 AND status = 'running' AND id = ANY($3::text[])"
                         " RETURNING id, cancel_requested",
                         3, p, &r, err);
    if (!rc && on_job)
        for (int i = 0; i < PQntuples(r); i++)
            on_job(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)[0] == 't', arg);
    PQclear(r);
    return rc;
}

int rf_queue_rescue(PGconn *c, int base_ms, int max_ms, int *rescued, rf_error *err)
{
    char base[16], cap[16];
    snprintf(base, sizeof base, "%d", base_ms);
    snprintf(cap, sizeof cap, "%d", max_ms);
    const char *p[2] = {base, cap};
    PGresult *r;
    int rc = rf_db_execp(
        c,
        "WITH expired AS ("
        "  SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < now()"
        "  FOR UPDATE SKIP LOCKED),"
        " u AS (UPDATE jobs j SET"
        "  status = CASE WHEN j.cancel_requested THEN 'cancelled'"
        "    WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,"
        "  error = CASE WHEN j.cancel_requested THEN 'cancelled; its worker was lost'"
        "    WHEN j.attempts >= j.max_attempts"
        "    THEN format('worker lost (lease expired) on attempt %s of %s; giving up: the"
        " process running it died (a crash counts as an attempt) or stopped answering',"
        "                j.attempts, j.max_attempts)"
        "    ELSE format('worker lost (lease expired) on attempt %s of %s; will retry',"
        "                j.attempts, j.max_attempts) END,"
        "  finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts"
        "    THEN now() END,"
        "  run_after = " BACKOFF(
            "$1",
            "$2") ","
                  "  lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
                  "  FROM expired WHERE j.id = expired.id"
                  "  RETURNING j.id, j.status, j.error),"
                  " ev AS (INSERT INTO job_events (job_id, kind, data)"
                  "  SELECT id, 'log', json_build_object('level', 'warn', 'message', error) FROM "
                  "u"
                  /* A job ended here has its final status as an event, as one
                   * its worker ends has (event streams end on it). */
                  "  UNION ALL SELECT id, 'status', json_build_object('status', status, 'error',"
                  "   error) FROM u WHERE status IN ('succeeded', 'failed', 'cancelled')),"
                  " idem AS (DELETE FROM idempotency_keys WHERE created_at < now() - interval '25 "
                  "hours')"
                  " SELECT count(*), (SELECT count(*) FROM (SELECT pg_notify('refinery_jobs', '')"
                  "   FROM u WHERE status = 'queued' LIMIT 1) n),"
                  "  (SELECT count(*) FROM (SELECT pg_notify('refinery_events', id) FROM u) m) "
                  "FROM u",
        2, p, &r, err);
    if (!rc && rescued) *rescued = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int rf_queue_event(PGconn *c, const char *job_id, const char *kind, const char *data_json,
                   rf_error *err)
{
    return rf_queue_events(c, 1, &job_id, &kind, &data_json, err);
}

int rf_queue_events(PGconn *c, int n, const char *const *job_ids, const char *const *kinds,
                    const char *const *datas, rf_error *err)
{
    rf_array_lit arr[3] = {0};
    int rc = 0;
    for (int k = 0; k < n && !rc; k++)
        if ((rc = rf_array_lit_add(&arr[0], job_ids[k])) ||
            (rc = rf_array_lit_add(&arr[1], kinds[k])) ||
            (rc = rf_array_lit_add(&arr[2], datas[k])))
            break;
    for (int i = 0; i < 3 && !rc; i++)
        rc = rf_array_lit_end(&arr[i]);
    const char *p[3] = {arr[0].s, arr[1].s, arr[2].s};
    /* unnest yields the rows in array order, so one job's events keep the
     * order they were given in (their ids are assigned in that order); one
     * notification per job is enough for its streams to read them all. */
    if (rc)
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    else
        rc = rf_db_execp(c,
                         "WITH e AS (INSERT INTO job_events (job_id, kind, data)"
                         " SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])"
                         " RETURNING job_id)"
                         " SELECT pg_notify('refinery_events', id)"
                         " FROM (SELECT DISTINCT job_id AS id FROM e) d",
                         3, p, NULL, err);
    for (int i = 0; i < 3; i++)
        free(arr[i].s);
    return rc;
}

int rf_queue_progress(PGconn *c, const rf_claimed_job *j, const char *owner, double fraction,
                      rf_error *err)
{
    char attempt[16], f[32];
    const char *p[4];
    fence_params(j, owner, attempt, p);
    snprintf(f, sizeof f, "%.6f", fraction < 0 ? 0 : fraction > 1 ? 1 : fraction);
    p[3] = f;
    return fenced(c, "UPDATE jobs SET progress = $4, updated_at = now()" FENCE, 4, p, NULL, err);
}

int rf_queue_checkpoint(PGconn *c, const rf_claimed_job *j, const char *owner,
                        const char *state_json, rf_error *err)
{
    char attempt[16];
    const char *p[4];
    fence_params(j, owner, attempt, p);
    p[3] = state_json;
    return fenced(c, "UPDATE jobs SET checkpoint = $4::jsonb, updated_at = now()" FENCE, 4, p, NULL,
                  err);
}

int rf_queue_cancel_requested(PGconn *c, const rf_claimed_job *j, bool *yes, rf_error *err)
{
    const char *p[1] = {j->id};
    PGresult *r;
    int rc = rf_db_execp(c, "SELECT cancel_requested FROM jobs WHERE id = $1", 1, p, &r, err);
    *yes = !rc && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return rc;
}
