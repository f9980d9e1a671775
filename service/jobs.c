#include "service/jobs.h"
#include "service/headers.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jobs/job.h"
#include "service/db.h"
#include "service/ids.h"
#include "service/job_cache.h"
#include "service/queue.h"
#include "service/resolve.h"

/* The job object, built where the row is (one round trip, no re-encoding);
 * row_to_json keeps the column order and writes compact JSON. */
#define JOB_JSON                                                                                   \
    "(SELECT row_to_json(o) FROM (SELECT j.id, 'job' AS object, j.type, j.status, j.params,"       \
    " j.result, j.error, j.progress, j.priority, j.attempts, j.max_attempts, j.metadata,"          \
    " j.parent_id, j.cancel_requested,"                                                            \
    " extract(epoch from j.created_at)::bigint AS created_at,"                                     \
    " extract(epoch from j.started_at)::bigint AS started_at,"                                     \
    " extract(epoch from j.finished_at)::bigint AS finished_at) o)::text"

static char *take_text(PGresult *r, int row, int col)
{
    return strdup(PQgetvalue(r, row, col));
}

/* Field checks for the request body; the params are the runner's to check. */
static int validate_body(const json_t *body, const rf_runner **runner, rf_error *err)
{
    if (!json_is_object(body))
        return rf_error_field(err, RF_EINVAL, "", "the request body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (strcmp(k, "type") && strcmp(k, "params") && strcmp(k, "priority") &&
            strcmp(k, "max_attempts") && strcmp(k, "metadata"))
            return rf_error_field(err, RF_EINVAL, k,
                                  "unknown field '%s' (expected type, params, priority, "
                                  "max_attempts, metadata)",
                                  k);
    }
    json_t *type = json_object_get(body, "type");
    if (!type) return rf_error_field(err, RF_EINVAL, "type", "'type' is required");
    if (!json_is_string(type))
        return rf_error_field(err, RF_EINVAL, "type", "'type' must be a string");
    *runner = rf_runner_find(json_string_value(type));
    if (!*runner) {
        const char *names[64];
        int n = rf_runner_types(names, 64);
        char known[1024] = "";
        size_t len = 0;
        for (int i = 0; i < n && i < 64 && len < sizeof known; i++)
            len +=
                (size_t)snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", names[i]);
        return rf_error_field(err, RF_EINVAL, "type", "unknown job type '%s'%s%s",
                              json_string_value(type),
                              n ? "; known types: " : "; no job types are enabled", known);
    }
    json_t *params = json_object_get(body, "params");
    if (params && !json_is_object(params))
        return rf_error_field(err, RF_EINVAL, "params", "'params' must be an object");
    json_t *prio = json_object_get(body, "priority");
    if (prio && (!json_is_integer(prio) || json_integer_value(prio) < -1000 ||
                 json_integer_value(prio) > 1000))
        return rf_error_field(err, RF_EINVAL, "priority",
                              "'priority' must be an integer in [-1000, 1000]");
    json_t *ma = json_object_get(body, "max_attempts");
    if (ma && (!json_is_integer(ma) || json_integer_value(ma) < 1 || json_integer_value(ma) > 100))
        return rf_error_field(err, RF_EINVAL, "max_attempts",
                              "'max_attempts' must be an integer in [1, 100]");
    json_t *md = json_object_get(body, "metadata");
    if (md && !json_is_null(md)) {
        if (!json_is_object(md) || json_object_size(md) > 16)
            return rf_error_field(err, RF_EINVAL, "metadata",
                                  "'metadata' must be an object of at most 16 string values");
        json_object_foreach(md, k, v)
        {
            if (!json_is_string(v) || strlen(k) > 64 || json_string_length(v) > 512)
                return rf_error_field(err, RF_EINVAL, "metadata",
                                      "'metadata.%s' must be a string of at most 512 characters "
                                      "under a key of at most 64",
                                      k);
        }
    }
    if ((*runner)->validate || (*runner)->params) {
        json_t *empty = json_object();
        rf_error perr;
        rf_error_clear(&perr);
        int rc = rf_runner_validate(*runner, params ? params : empty, &perr);
        json_decref(empty);
        if (rc) {
            char field[sizeof err->field];
            snprintf(field, sizeof field, "params%s%s", perr.field[0] ? "." : "", perr.field);
            return rf_error_field(err, RF_EINVAL, field, "%s", perr.msg);
        }
    }
    return 0;
}

/* The request's fingerprint for Idempotency-Key: SHA-256 of its canonical JSON. */
static int body_hash(const json_t *body, char out[67])
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s) return RF_ENOMEM;
    unsigned char md[32];
    unsigned int len;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    free(s);
    out[0] = '\\';
    out[1] = 'x';
    rf_hex(md, 32, out + 2);
    return 0;
}

/* ---- group commit of POST /v1/jobs ------------------------------------ */

/* Concurrent creations (without Idempotency-Key) share one INSERT and one
 * commit: the first request to arrive while no insert is running inserts
 * every row queued by then, on its own connection, and hands each waiting
 * request its object (or the error) once the commit returned. So each reply
 * still goes out only after the commit that made its job durable, and a
 * burst of requests costs one statement and one WAL flush instead of one
 * each. */
typedef struct pending_job {
    struct pending_job *next;
    const char *const *p; /* id, tenant, type, params, metadata, priority, max_attempts */
    char *json;
    int rc;
    rf_error err;
    bool done;
} pending_job;

static pthread_mutex_t g_ins_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_ins_done = PTHREAD_COND_INITIALIZER;
static pending_job *g_ins_queue, **g_ins_tail = &g_ins_queue;
static bool g_ins_busy;

static void insert_batch(PGconn *c, pending_job *batch)
{
    rf_array_lit arr[7] = {0};
    int rc = 0;
    for (pending_job *b = batch; b && !rc; b = b->next)
        for (int k = 0; k < 7 && !rc; k++)
            rc = rf_array_lit_add(&arr[k], b->p[k]);
    for (int k = 0; k < 7 && !rc; k++)
        rc = rf_array_lit_end(&arr[k]);
    const char *vals[7];
    for (int k = 0; k < 7; k++)
        vals[k] = arr[k].s;
    rf_error err;
    PGresult *r = NULL;
    if (rc)
        rf_errorf(&err, rc, "out of memory");
    else
        rc = rf_db_execp(c,
                         "WITH j AS (INSERT INTO jobs (id, tenant_id, type, params, metadata,"
                         "  priority, max_attempts) SELECT * FROM unnest($1::text[], $2::text[],"
                         "  $3::text[], $4::jsonb[], $5::jsonb[], $6::int[], $7::int[])"
                         "  RETURNING *)"
                         " SELECT j.id, " JOB_JSON " FROM j",
                         7, vals, &r, &err);
    for (pending_job *b = batch; b; b = b->next) {
        b->rc = rc;
        if (rc) {
            b->err = err;
            continue;
        }
        for (int i = 0; i < PQntuples(r); i++)
            if (!strcmp(PQgetvalue(r, i, 0), b->p[0])) b->json = take_text(r, i, 1);
        if (!b->json) b->rc = rf_errorf(&b->err, RF_EINTERNAL, "job %s was not stored", b->p[0]);
    }
    PQclear(r);
    for (int k = 0; k < 7; k++)
        free(arr[k].s);
}

static int insert_job(PGconn *c, const char *const p[7], char **json, rf_error *err)
{
    pending_job me = {.p = p};
    pthread_mutex_lock(&g_ins_lock);
    *g_ins_tail = &me;
    g_ins_tail = &me.next;
    while (!me.done) {
        if (g_ins_busy) {
            pthread_cond_wait(&g_ins_done, &g_ins_lock);
            continue;
        }
        g_ins_busy = true;
        pending_job *batch = g_ins_queue;
        g_ins_queue = NULL;
        g_ins_tail = &g_ins_queue;
        pthread_mutex_unlock(&g_ins_lock);
        insert_batch(c, batch);
        pthread_mutex_lock(&g_ins_lock);
        for (pending_job *b = batch, *next; b; b = next) {
            next = b->next; /* b's owner may return once it sees done */
            b->done = true;
        }
        g_ins_busy = false;
        pthread_cond_broadcast(&g_ins_done);
    }
    pthread_mutex_unlock(&g_ins_lock);
    if (me.rc) {
        *err = me.err;
        return me.rc;
    }
    *json = me.json;
    return 0;
}

int rf_jobs_create(PGconn *c, const char *tenant, const json_t *body, const char *idem_key,
                   char **json, bool *created, rf_error *err)
{
    const rf_runner *runner = NULL;
    int rc = validate_body(body, &runner, err);
    if (rc) return rc;
    json_t *empty = json_object();
    json_t *given = json_object_get(body, "params");
    rc = rf_resolve_check(c, tenant, runner, given ? given : empty, err);
    json_decref(empty);
    if (rc) return rc;
    if (idem_key && !rf_idempotency_key_valid(idem_key))
        return rf_error_field(err, RF_EINVAL, "Idempotency-Key",
                              "Idempotency-Key must be 1 to 255 printable ASCII characters, "
                              "without spaces at either end");

    char id[RF_ID_MAX], hash[67], prio[16], maxa[16];
    if (rf_id_new("job", id)) return rf_errorf(err, RF_EIO, "the system's random source failed");
    json_t *params = json_object_get(body, "params");
    json_t *md = json_object_get(body, "metadata");
    char *params_s = params ? json_dumps(params, JSON_COMPACT) : strdup("{}");
    char *md_s = md && !json_is_null(md) ? json_dumps(md, JSON_COMPACT) : NULL;
    json_t *prio_j = json_object_get(body, "priority"),
           *maxa_j = json_object_get(body, "max_attempts");
    snprintf(prio, sizeof prio, "%lld", prio_j ? (long long)json_integer_value(prio_j) : 0LL);
    snprintf(maxa, sizeof maxa, "%lld", maxa_j ? (long long)json_integer_value(maxa_j) : 3LL);
    PGresult *r = NULL;
    bool in_tx = false;
    *json = NULL;
    *created = true;
    if (!params_s) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }

    rf_job_cache_ticket ticket;
    rf_job_cache_ticket_take(NULL, &ticket);
    if (idem_key) {
        if ((rc = body_hash(body, hash))) goto fail;
        if ((rc = rf_db_begin(c, err))) goto fail;
        in_tx = true;
        /* Serialise requests that carry the same key, then look it up. */
        const char *pk[2] = {tenant, idem_key};
        if ((rc = rf_db_execp(c,
                              "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
                              2, pk, NULL, err)))
            goto fail;
        if ((rc = rf_db_execp(c,
                              "SELECT i.request_hash = $3::bytea, " JOB_JSON ", j.version, j.id"
                              " FROM idempotency_keys i JOIN jobs j ON j.id = i.job_id"
                              " WHERE i.tenant_id = $1 AND i.key = $2"
                              " AND i.created_at > now() - interval '24 hours'",
                              3, (const char *[]){tenant, idem_key, hash}, &r, err)))
            goto fail;
        if (PQntuples(r) == 1) {
            if (PQgetvalue(r, 0, 0)[0] != 't') {
                rc = rf_error_field(err, RF_EINVAL, "Idempotency-Key",
                                    "this Idempotency-Key was already used with a different "
                                    "request body");
                goto fail;
            }
            *json = take_text(r, 0, 1);
            *created = false;
            /* Shown to the client: the cache may not serve an older state after it. */
            rf_job_cache_put(&ticket, tenant, PQgetvalue(r, 0, 3), atoll(PQgetvalue(r, 0, 2)),
                             *json);
            rf_db_rollback(c);
            in_tx = false;
            rc = 0;
            goto fail;
        }
        PQclear(r);
        r = NULL;
    }

    const char *p[7] = {
        id, tenant, json_string_value(json_object_get(body, "type")), params_s, md_s, prio, maxa};
    if (!idem_key) {
        if ((rc = insert_job(c, p, json, err))) goto fail;
        rf_queue_announce(c);
        goto fail; /* rc is 0: the common exit */
    }
    if ((rc = rf_db_execp(c,
                          "WITH j AS (INSERT INTO jobs (id, tenant_id, type, params, metadata,"
                          "  priority, max_attempts) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb,"
                          "  $6::int, $7::int) RETURNING *)"
                          " SELECT " JOB_JSON " FROM j",
                          7, p, &r, err)))
        goto fail;
    *json = take_text(r, 0, 0);
    if (idem_key) {
        PQclear(r);
        r = NULL;
        if ((rc = rf_db_execp(
                 c,
                 "INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id)"
                 " VALUES ($1, $2, $3::bytea, $4) ON CONFLICT (tenant_id, key) DO UPDATE"
                 " SET request_hash = EXCLUDED.request_hash, job_id = EXCLUDED.job_id,"
                 " created_at = now()",
                 4, (const char *[]){tenant, idem_key, hash, id}, NULL, err)) ||
            (rc = rf_db_commit(c, err)))
            goto fail;
        in_tx = false;
    }
    rf_queue_announce(c);
    rc = 0;
fail:
    if (in_tx) rf_db_rollback(c);
    if (rc) {
        free(*json);
        *json = NULL;
    }
    PQclear(r);
    free(params_s);
    free(md_s);
    return rc;
}

int rf_jobs_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err)
{
    if (!rf_id_valid("job", id)) return rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", id);
    /* service/job_cache.h says when a cached object may be served. */
    if ((*json = rf_job_cache_get(tenant, id))) return 0;
    rf_job_cache_ticket ticket;
    rf_job_cache_ticket_take(id, &ticket);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT " JOB_JSON ", j.version FROM jobs j"
                         " WHERE j.id = $1 AND j.tenant_id = $2",
                         2, (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", id);
    if (!rc) {
        *json = take_text(r, 0, 0);
        rf_job_cache_put(&ticket, tenant, id, atoll(PQgetvalue(r, 0, 1)), *json);
    }
    PQclear(r);
    return rc;
}

/* Offer each row of r (object, version, id) to the cache: a client shown
 * them must not be served older ones afterwards. */
static void feed_rows(const rf_job_cache_ticket *t, const char *tenant, PGresult *r, int limit)
{
    int n = PQntuples(r);
    for (int i = 0; i < n && i < limit; i++)
        rf_job_cache_put(t, tenant, PQgetvalue(r, i, 2), atoll(PQgetvalue(r, i, 1)),
                         PQgetvalue(r, i, 0));
}

void rf_jobs_feed(PGconn *c, const char *id)
{
    rf_job_cache_ticket ticket;
    rf_job_cache_ticket_take(id, &ticket);
    PGresult *r;
    if (!rf_db_execp(c, "SELECT " JOB_JSON ", j.version, j.tenant_id FROM jobs j WHERE j.id = $1",
                     1, (const char *[]){id}, &r, NULL) &&
        PQntuples(r) == 1)
        rf_job_cache_put(&ticket, PQgetvalue(r, 0, 2), id, atoll(PQgetvalue(r, 0, 1)),
                         PQgetvalue(r, 0, 0));
    PQclear(r);
}

int rf_jobs_list(PGconn *c, const char *tenant, const rf_job_query *q, char **json, rf_error *err)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", q->limit + 1);
    if (q->after && !rf_id_valid("job", q->after))
        return rf_error_field(err, RF_EINVAL, "after", "'after' must be a job id");
    if (q->parent_id && !rf_id_valid("job", q->parent_id))
        return rf_error_field(err, RF_EINVAL, "parent_id", "'parent_id' must be a job id");
    const char *p[6] = {tenant, q->type, q->status, q->after, limit, q->parent_id};
    PGresult *r;
    rf_job_cache_ticket ticket;
    rf_job_cache_ticket_take(NULL, &ticket);
    /* Newest first by insertion sequence: a cursor, so concurrent inserts
     * never shift a page. An `after` of another tenant matches nothing. */
    int rc = rf_db_execp(c,
                         "SELECT " JOB_JSON ", j.version, j.id FROM jobs j WHERE j.tenant_id = $1"
                         " AND ($2::text IS NULL OR j.type = $2)"
                         " AND ($3::text IS NULL OR j.status = $3)"
                         " AND ($6::text IS NULL OR j.parent_id = $6)"
                         " AND ($4::text IS NULL OR j.seq < (SELECT seq FROM jobs"
                         "      WHERE id = $4 AND tenant_id = $1))"
                         " ORDER BY j.seq DESC LIMIT $5::int",
                         6, p, &r, err);
    if (!rc) rc = rf_db_list_json(r, q->limit, json, err);
    if (!rc) feed_rows(&ticket, tenant, r, q->limit);
    PQclear(r);
    return rc;
}

int rf_jobs_cancel(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err)
{
    if (!rf_id_valid("job", id)) return rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", id);
    PGresult *r;
    const char *p[2] = {id, tenant};
    rf_job_cache_ticket ticket;
    rf_job_cache_ticket_take(id, &ticket);
    int rc = rf_db_execp(
        c,
        "WITH j AS (UPDATE jobs SET cancel_requested = true,"
        "   status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,"
        "   error = CASE WHEN status = 'queued' THEN 'cancelled by request' ELSE error END,"
        "   finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,"
        "   updated_at = now()"
        "   WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'running', 'waiting')"
        "   AND NOT cancel_requested RETURNING *),"
        " n AS (SELECT pg_notify('refinery_cancel', id) FROM j WHERE status = 'running'"
        "   UNION ALL SELECT pg_notify('refinery_events', id) FROM j"
        /* a parent's children are cancelled by the reconciler (service/children.h) */
        "   UNION ALL SELECT pg_notify('refinery_wake', id) FROM j WHERE has_children),"
        " e AS (INSERT INTO job_events (job_id, kind, data) SELECT id, 'log',"
        "   json_build_object('level', 'info', 'message', 'cancel requested') FROM j)"
        " SELECT " JOB_JSON ", (SELECT count(*) FROM n), j.version FROM j"
        " UNION ALL SELECT NULL,"
        "   CASE WHEN status IN ('queued', 'running', 'waiting') THEN 1 ELSE 0 END, NULL"
        "   FROM jobs WHERE id = $1 AND tenant_id = $2 AND NOT EXISTS (SELECT 1 FROM j)",
        2, p, &r, err);
    if (rc) goto out;
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", id);
    else if (PQgetisnull(r, 0, 0))
        rc = rf_errorf(err, RF_ECONFLICT,
                       PQgetvalue(r, 0, 1)[0] == '1'
                           ? "job %s is already being cancelled"
                           : "job %s has already finished and cannot be cancelled",
                       id);
    else {
        *json = take_text(r, 0, 0);
        /* The acknowledged write: this client reads it or later from now on. */
        rf_job_cache_put(&ticket, tenant, id, atoll(PQgetvalue(r, 0, 2)), *json);
    }
out:
    PQclear(r);
    return rc;
}

int rf_jobs_events(PGconn *c, const char *tenant, const char *id, long long after, int limit,
                   char **json, rf_error *err)
{
    if (!rf_id_valid("job", id)) return rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", id);
    char a[32], l[16];
    snprintf(a, sizeof a, "%lld", after);
    snprintf(l, sizeof l, "%d", limit + 1);
    PGresult *r, *jr = NULL;
    rf_job_cache_ticket ticket;
    /* The events first, the job after: the job then read is at least as new
     * as the last event shown, and goes to the cache (service/job_cache.h),
     * so that a client who saw an event never reads an older job after it. */
    int rc = rf_db_execp(c,
                         "SELECT (SELECT row_to_json(o) FROM (SELECT e.id, 'job.event' AS object,"
                         "  e.job_id, e.kind, e.data,"
                         "  extract(epoch from e.created_at)::bigint AS created_at) o)::text"
                         " FROM job_events e WHERE e.job_id = $1 AND e.id > $2::bigint"
                         " ORDER BY e.id LIMIT $3::int",
                         3, (const char *[]){id, a, l}, &r, err);
    if (rc) goto out;
    rf_job_cache_ticket_take(id, &ticket);
    if ((rc = rf_db_execp(c,
                          "SELECT " JOB_JSON ", j.version, j.id FROM jobs j"
                          " WHERE j.id = $1 AND j.tenant_id = $2",
                          2, (const char *[]){id, tenant}, &jr, err)))
        goto out;
    /* Another tenant's job: its events are never shown. */
    if (PQntuples(jr) == 0) {
        rc = rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", id);
        goto out;
    }
    feed_rows(&ticket, tenant, jr, 1);
    rc = rf_db_list_json(r, limit, json, err);
out:
    PQclear(jr);
    PQclear(r);
    return rc;
}
