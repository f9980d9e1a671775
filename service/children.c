#include "service/children.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jobs/job.h"
#include "service/db.h"
#include "service/ids.h"
#include "service/resolve.h"

/* The fence of queue.c: the parent as this worker holds it ($1 id, $2 owner,
 * $3 attempt). */
#define HELD "id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'running'"
#define OPEN "('queued', 'running', 'waiting')"

static void held_params(const rf_claimed_job *j, const char *owner, char attempt[16],
                        const char **p)
{
    snprintf(attempt, 16, "%d", j->attempt);
    p[0] = j->id;
    p[1] = owner;
    p[2] = attempt;
}

static bool key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > 100) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = key[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static int check_metadata(const json_t *md, rf_error *err)
{
    if (!md || json_is_null(md)) return 0;
    if (!json_is_object(md) || json_object_size(md) > 16)
        return rf_error_field(err, RF_EINVAL, "metadata",
                              "a child's metadata must be an object of at most 16 strings");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)md, k, v)
    {
        if (!json_is_string(v) || strlen(k) > 64 || json_string_length(v) > 512)
            return rf_error_field(err, RF_EINVAL, "metadata",
                                  "a child's 'metadata.%s' must be a string of at most 512 "
                                  "characters under a key of at most 64",
                                  k);
    }
    return 0;
}

/* What POST /v1/jobs checks, for a child: its type's table and validate, and
 * the references its params make, as the parent's tenant sees them. */
static int check_child(PGconn *c, const char *tenant, const char *type, const json_t *params,
                       rf_error *err)
{
    const rf_runner *runner = rf_runner_find(type);
    if (!runner) return rf_errorf(err, RF_EINVAL, "child job type '%s' is not known", type);
    if (!json_is_object(params))
        return rf_error_field(err, RF_EINVAL, "params", "a child's params must be an object");
    rf_error perr;
    rf_error_clear(&perr);
    int rc = rf_runner_validate(runner, params, &perr);
    if (rc) {
        char field[sizeof err->field];
        snprintf(field, sizeof field, "params%s%s", perr.field[0] ? "." : "", perr.field);
        return rf_error_field(err, RF_EINVAL, field, "%s child: %s", type, perr.msg);
    }
    return rf_resolve_check(c, tenant, runner, params, err);
}

int rf_children_submit(PGconn *c, const rf_claimed_job *j, const char *owner, const char *key,
                       const char *type, const json_t *params, const json_t *metadata,
                       char id_out[RF_ID_MAX], bool *created, rf_error *err)
{
    *created = false;
    if (!key_ok(key))
        return rf_errorf(err, RF_EINVAL,
                         "a child's key must be 1 to 100 characters of A-Z a-z 0-9 . _ -");
    int rc = check_metadata(metadata, err);
    if (rc || (rc = check_child(c, j->tenant, type, params, err))) return rc;
    char *params_s = json_dumps(params, JSON_COMPACT);
    char *md_s = metadata && !json_is_null(metadata) ? json_dumps(metadata, JSON_COMPACT) : NULL;
    char attempt[16], id[RF_ID_MAX];
    const char *p[3];
    held_params(j, owner, attempt, p);
    PGresult *r = NULL;
    bool in_tx = false;
    if (!params_s || (metadata && !json_is_null(metadata) && !md_s)) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto out;
    }
    if (rf_id_new("job", id)) {
        rc = rf_errorf(err, RF_EIO, "the system's random source failed");
        goto out;
    }
    if ((rc = rf_db_begin(c, err))) goto out;
    in_tx = true;
    /* The parent's row lock orders this against a cancel (which sets
     * cancel_requested on that row) and against another submit of the same
     * key: under READ COMMITTED the locking read sees the latest version. */
    if ((rc = rf_db_execp(
             c, "SELECT cancel_requested, priority FROM jobs WHERE " HELD " FOR NO KEY UPDATE", 3,
             p, &r, err)))
        goto out;
    if (PQntuples(r) == 0) {
        rc = rf_errorf(err, RF_ECONFLICT, "job %s is no longer held by this worker (lease lost)",
                       j->id);
        goto out;
    }
    if (PQgetvalue(r, 0, 0)[0] == 't') {
        rc = rf_errorf(err, RF_ECANCELED, "job %s was cancelled; no more children", j->id);
        goto out;
    }
    char prio[16];
    snprintf(prio, sizeof prio, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    r = NULL;
    if ((rc = rf_db_execp(c, "SELECT id FROM jobs WHERE parent_id = $1 AND child_key = $2", 2,
                          (const char *[]){j->id, key}, &r, err)))
        goto out;
    if (PQntuples(r) == 1) {
        snprintf(id_out, RF_ID_MAX, "%s", PQgetvalue(r, 0, 0));
        goto out; /* made by an earlier attempt: rolled back below, nothing written */
    }
    PQclear(r);
    r = NULL;
    const char *ip[8] = {id, j->tenant, type, params_s, md_s, prio, j->id, key};
    if ((rc = rf_db_execp(c,
                          "INSERT INTO jobs (id, tenant_id, type, params, metadata, priority,"
                          " parent_id, child_key) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb,"
                          " $6::int, $7, $8)",
                          8, ip, NULL, err)) ||
        (rc = rf_db_execp(c,
                          "WITH u AS (UPDATE jobs SET has_children = true WHERE id = $1"
                          "  AND NOT has_children)"
                          " INSERT INTO job_events (job_id, kind, data) VALUES ($1, 'log',"
                          "  json_build_object('level', 'info', 'message', 'child job submitted',"
                          "  'child', $2::text, 'key', $3::text, 'type', $4::text))",
                          4, (const char *[]){j->id, id, key, type}, NULL, err)) ||
        (rc = rf_db_commit(c, err)))
        goto out;
    in_tx = false;
    snprintf(id_out, RF_ID_MAX, "%s", id);
    *created = true;
    rf_queue_announce(c);
out:
    if (in_tx) rf_db_rollback(c);
    PQclear(r);
    free(params_s);
    free(md_s);
    return rc;
}

int rf_children_list(PGconn *c, const rf_claimed_job *j, const char *owner, json_t **out,
                     rf_error *err)
{
    char attempt[16];
    const char *p[3];
    held_params(j, owner, attempt, p);
    *out = NULL;
    /* First consume the wakes, then read: a child that ends in between is
     * both seen and leaves a wake (one extra run later, never a lost one). */
    int rc = rf_db_execp(c,
                         "DELETE FROM job_wakes WHERE parent_id = $1"
                         " AND EXISTS (SELECT 1 FROM jobs WHERE " HELD ")",
                         3, p, NULL, err);
    if (rc) return rc;
    PGresult *r;
    rc = rf_db_execp(
        c,
        "SELECT coalesce(json_agg(json_build_object('id', id, 'key', child_key, 'type', type,"
        "  'status', status, 'result', result, 'error', error, 'progress', progress,"
        "  'attempts', attempts, 'metadata', metadata,"
        "  'started_at', extract(epoch from started_at)::float8,"
        "  'finished_at', extract(epoch from finished_at)::float8) ORDER BY seq), '[]')::text"
        " FROM jobs WHERE parent_id = $1",
        1, p, &r, err);
    if (rc) return rc;
    json_error_t je;
    *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
    PQclear(r);
    return *out ? 0
                : rf_errorf(err, RF_EINTERNAL, "the children of %s did not parse: %s", j->id,
                            je.text);
}

int rf_children_park(PGconn *c, const rf_claimed_job *j, const char *owner, long long wake_after_ms,
                     char status[16], rf_error *err)
{
    char attempt[16], wake[32];
    const char *p[4];
    held_params(j, owner, attempt, p);
    snprintf(wake, sizeof wake, "%lld", wake_after_ms > 0 ? wake_after_ms : 0);
    p[3] = wake;
    PGresult *r;
    /* The wakes seen by this statement are the ones it consumes (one
     * snapshot); a child that commits its end later leaves a wake that the
     * reconciler acts on. A park is not an attempt: like a release, it takes
     * back the claim's count, so max_attempts still bounds crashes only. A
     * runner that waits with nothing to wait for would be woken for ever:
     * that is a bug in its job type, and the job fails saying so. */
    int rc = rf_db_execp(
        c,
        "WITH f AS (SELECT id, cancel_requested AS cancel,"
        "   EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = p.id AND c.status IN " OPEN
        ") AS busy,"
        "   EXISTS (SELECT 1 FROM job_wakes w WHERE w.parent_id = p.id) AS woken"
        "  FROM jobs p WHERE " HELD "),"
        " s AS (SELECT id, CASE WHEN cancel AND NOT busy THEN 'cancelled' WHEN cancel THEN "
        "'waiting'"
        "   WHEN woken THEN 'queued' WHEN busy OR $4::bigint > 0 THEN 'waiting' ELSE 'failed' END"
        "   AS next FROM f),"
        " u AS (UPDATE jobs j SET status = s.next,"
        "   error = CASE s.next WHEN 'cancelled' THEN coalesce(j.error, 'cancelled by request')"
        "     WHEN 'failed' THEN 'the job asked to wait for its child jobs, but none is unfinished'"
        "     ELSE j.error END,"
        "   finished_at = CASE WHEN s.next IN ('cancelled', 'failed') THEN now() END,"
        "   attempts = CASE WHEN s.next IN ('waiting', 'queued') THEN j.attempts - 1"
        "     ELSE j.attempts END,"
        "   wake_at = CASE WHEN s.next = 'waiting' AND $4::bigint > 0"
        "     THEN now() + $4::bigint * interval '1 millisecond' END,"
        "   run_after = now(), lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
        "  FROM s WHERE j.id = s.id RETURNING j.id, j.status, j.error),"
        " d AS (DELETE FROM job_wakes w USING u WHERE w.parent_id = u.id),"
        " e AS (INSERT INTO job_events (job_id, kind, data) SELECT id,"
        "   CASE WHEN status IN ('cancelled', 'failed') THEN 'status' ELSE 'log' END,"
        "   CASE WHEN status IN ('cancelled', 'failed')"
        "     THEN json_build_object('status', status, 'error', error)"
        "   WHEN status = 'waiting' THEN json_build_object('level', 'info', 'message',"
        "     'waiting for child jobs')"
        "   ELSE json_build_object('level', 'info', 'message', 'a child job ended meanwhile;"
        " queued again') END FROM u)"
        " SELECT status, (SELECT count(*) FROM (SELECT pg_notify('refinery_jobs', '')"
        "   WHERE status = 'queued') n), pg_notify('refinery_events', id) FROM u",
        4, p, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_ECONFLICT, "job %s is no longer held by this worker (lease lost)",
                       j->id);
    else
        snprintf(status, 16, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* Each statement locks rows of one kind only (children, or parents), with
 * SKIP LOCKED: what another process holds now is taken on its next round. */
static const char *const k_cancel_children =
    "WITH c AS (SELECT c.id FROM jobs c JOIN jobs p ON p.id = c.parent_id"
    "  WHERE c.parent_id IS NOT NULL AND c.status IN " OPEN " AND NOT c.cancel_requested"
    "  AND (p.cancel_requested OR p.status IN ('succeeded', 'failed', 'cancelled'))"
    "  FOR UPDATE OF c SKIP LOCKED),"
    " u AS (UPDATE jobs j SET cancel_requested = true,"
    "   status = CASE WHEN j.status = 'queued' THEN 'cancelled' ELSE j.status END,"
    "   error = CASE WHEN j.status = 'queued' THEN 'cancelled with its parent job' ELSE j.error "
    "END,"
    "   finished_at = CASE WHEN j.status = 'queued' THEN now() ELSE j.finished_at END,"
    "   updated_at = now() FROM c WHERE j.id = c.id RETURNING j.id, j.status, j.parent_id),"
    " e AS (INSERT INTO job_events (job_id, kind, data) SELECT id, 'log',"
    "   json_build_object('level', 'info', 'message', 'cancel requested: its parent job '"
    "   || parent_id || ' was cancelled or has ended') FROM u)"
    " SELECT (SELECT count(*) FROM u),"
    "  (SELECT count(*) FROM (SELECT pg_notify('refinery_cancel', id) FROM u"
    "   WHERE status <> 'cancelled') n),"
    "  (SELECT count(*) FROM (SELECT pg_notify('refinery_events', id) FROM u) m)";

static const char *const k_end_cancelled =
    "WITH c AS (SELECT id FROM jobs p WHERE status = 'waiting' AND cancel_requested"
    "  AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = p.id AND c.status IN " OPEN ")"
    "  FOR UPDATE SKIP LOCKED),"
    " u AS (UPDATE jobs j SET status = 'cancelled',"
    "   error = coalesce(j.error, 'cancelled by request'), finished_at = now(), wake_at = NULL,"
    "   updated_at = now() FROM c WHERE j.id = c.id RETURNING j.id, j.status, j.error),"
    " d AS (DELETE FROM job_wakes w USING u WHERE w.parent_id = u.id),"
    " e AS (INSERT INTO job_events (job_id, kind, data) SELECT id, 'status',"
    "   json_build_object('status', status, 'error', error) FROM u)"
    " SELECT (SELECT count(*) FROM u),"
    "  (SELECT count(*) FROM (SELECT pg_notify('refinery_events', id) FROM u) m)";

static const char *const k_wake =
    "WITH c AS (SELECT id FROM jobs p WHERE status = 'waiting' AND NOT cancel_requested"
    "  AND (wake_at <= now() OR EXISTS (SELECT 1 FROM job_wakes w WHERE w.parent_id = p.id)"
    "   OR (wake_at IS NULL AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = p.id"
    "    AND c.status IN " OPEN ")))"
    "  FOR UPDATE SKIP LOCKED),"
    " u AS (UPDATE jobs j SET status = 'queued', run_after = now(), wake_at = NULL,"
    "   updated_at = now() FROM c WHERE j.id = c.id RETURNING j.id),"
    " d AS (DELETE FROM job_wakes w USING u WHERE w.parent_id = u.id),"
    " e AS (INSERT INTO job_events (job_id, kind, data) SELECT id, 'log',"
    "   json_build_object('level', 'info', 'message', 'woken: a child job ended') FROM u)"
    " SELECT (SELECT count(*) FROM u),"
    "  (SELECT count(*) FROM (SELECT pg_notify('refinery_jobs', '') FROM u LIMIT 1) n),"
    "  (SELECT count(*) FROM (SELECT pg_notify('refinery_events', id) FROM u) m)";

static int exec_count(PGconn *c, const char *sql, int *n, rf_error *err)
{
    PGresult *r;
    int rc = rf_db_execp(c, sql, 0, NULL, &r, err);
    if (!rc) *n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int rf_children_reconcile(PGconn *c, int *changed, rf_error *err)
{
    int total = 0, rc = 0;
    /* A cancel travels one generation per pass (pipeline → hpo → train), and
     * a parent ended here may wake its own parent: a few passes settle it. */
    for (int pass = 0; pass < 8 && !rc; pass++) {
        int a = 0, b = 0, w = 0;
        if ((rc = exec_count(c, k_cancel_children, &a, err)) ||
            (rc = exec_count(c, k_end_cancelled, &b, err)) || (rc = exec_count(c, k_wake, &w, err)))
            break;
        total += a + b + w;
        if (a + b + w == 0) break;
    }
    if (changed) *changed = total;
    return rc;
}

int rf_children_sweep(PGconn *c, rf_error *err)
{
    return rf_db_execp(c,
                       "DELETE FROM job_wakes w WHERE NOT EXISTS (SELECT 1 FROM jobs p"
                       " WHERE p.id = w.parent_id AND p.status IN " OPEN ")",
                       0, NULL, NULL, err);
}
