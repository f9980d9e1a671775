/* The job queue on PostgreSQL: claim, lease, heartbeat, finish, retry with
 * backoff, release, rescue. Every write that changes a running job is fenced
 * by (id, lease_owner, attempts), so a worker that lost its lease can no
 * longer touch the job it thought it had. */
#ifndef RF_QUEUE_H
#define RF_QUEUE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "service/ids.h"

#define RF_QUEUE_CLAIM_MAX 16 /* jobs one claim takes at most */

typedef struct rf_claimed_job {
    char id[RF_ID_MAX];
    char tenant[RF_ID_MAX];
    char type[64];
    int attempt; /* this run's number, 1-based */
    int max_attempts;
    json_t *params;
    json_t *checkpoint; /* NULL when no earlier attempt saved one */
    bool trial;         /* its metadata names a study (service/study_link.h) */
} rf_claimed_job;

void rf_claimed_job_clear(rf_claimed_job *j);

/* Claim the most urgent runnable job of one of types (a PostgreSQL text[]
 * literal such as {a,b}). *got is false when none is runnable. The claim
 * itself counts the attempt (attempts + 1, in the same statement), so an
 * attempt that never reports back — its process crashed on the job — still
 * counts, and the rescuer fails the job once max_attempts is reached. */
int rf_queue_claim(PGconn *c, const char *owner, const char *types, int lease_ms,
                   rf_claimed_job *job, bool *got, rf_error *err);

/* Claim up to max (1 to RF_QUEUE_CLAIM_MAX, clamped) jobs at once, the most urgent first, as
 * rf_queue_claim claims one: jobs[0 .. *got) are filled (clear each). Claim
 * no more than can start now: a claimed job shows as running and its lease
 * runs. */
int rf_queue_claim_many(PGconn *c, const char *owner, const char *types, int lease_ms, int max,
                        rf_claimed_job *jobs, int *got, rf_error *err);

/* One job's outcome for rf_queue_finish_many. */
typedef struct rf_finish {
    const rf_claimed_job *job;
    const char *status, *result_json, *error; /* as rf_queue_finish takes them */
    int rc; /* out: 0, RF_ECONFLICT (lease lost) or, when the batch failed, RF_EDB */
} rf_finish;

/* A claim made with a batch of outcomes (rf_queue_finish_many): for the
 * workers those outcomes free, in the same round trip. */
typedef struct rf_claim {
    const char *types;    /* as rf_queue_claim_many takes them */
    int lease_ms, max;    /* max: 1 to RF_QUEUE_CLAIM_MAX (clamped) */
    rf_claimed_job *jobs; /* room for max */
    int got;              /* out: jobs[0 .. got) claimed (clear each) */
    int rc;               /* out: the claim's own outcome (err says why) */
    rf_error err;
    bool made; /* false at first; set once the claim was answered, so that
                * a call made again (after a lost connection) claims no more */
} rf_claim;

/* The outcomes of n jobs of owner in one transaction and one flush (group
 * commit); each row is fenced on its own, so a job whose lease was lost gets
 * RF_ECONFLICT and the others are recorded. A failed statement fails all
 * (returned, and each rc RF_EDB). then, when not NULL, is a claim made in
 * the same round trip after the outcomes (its own transaction: its failure
 * costs the outcomes nothing, and theirs not it), flushed with them; made
 * again by a later call only while then->made is false. */
int rf_queue_finish_many(PGconn *c, const char *owner, rf_finish *f, int n, rf_claim *then,
                         rf_error *err);

/* Final states. status is "succeeded", "failed" or "cancelled"; result_json
 * and error may be NULL. RF_ECONFLICT when the lease was lost meanwhile. */
int rf_queue_finish(PGconn *c, const rf_claimed_job *j, const char *owner, const char *status,
                    const char *result_json, const char *error, rf_error *err);

/* A failed attempt that may be retried: back to the queue after an exponential
 * backoff with jitter, or failed for good once max_attempts is reached.
 * *final tells which. */
int rf_queue_retry(PGconn *c, const rf_claimed_job *j, const char *owner, const char *error,
                   int base_ms, int max_ms, bool *final, rf_error *err);

/* Tell workers that a job became runnable: this process's at once (through
 * the hook the worker pool sets), other processes' by a rate-limited NOTIFY.
 * Call after the commit that made the job visible. */
void rf_queue_announce(PGconn *c);
void rf_queue_set_local_wake(void (*fn)(void *), void *arg);

/* Hand a job back untouched (shutdown): queued again at once, this attempt not
 * counted. owner alone (j NULL) releases every job of that owner. */
int rf_queue_release(PGconn *c, const rf_claimed_job *j, const char *owner, rf_error *err);

/* Extend the leases of the jobs owner holds among ids (a text[] literal: the
 * jobs its workers run now). A job the owner still holds but no longer runs
 * (its outcome could not be recorded) is left to expire and be rescued,
 * never kept alive. For each, on_job(id, cancel requested, arg) is called, so
 * the caller learns of cancels too. */
int rf_queue_heartbeat(PGconn *c, const char *owner, const char *ids, int lease_ms,
                       void (*on_job)(const char *id, bool cancel, void *arg), void *arg,
                       rf_error *err);

/* Re-queue (or fail, past max_attempts; or cancel, if asked) the jobs whose
 * lease expired — their worker process died (a crash on the job, kill -9)
 * or stopped answering — and prune idempotency keys older than a day. */
int rf_queue_rescue(PGconn *c, int base_ms, int max_ms, int *rescued, rf_error *err);

/* Per-job writes from a running job, fenced like the others. */
int rf_queue_event(PGconn *c, const char *job_id, const char *kind, const char *data_json,
                   rf_error *err);
/* n events at once (one statement), of one job or of many. */
int rf_queue_events(PGconn *c, int n, const char *const *job_ids, const char *const *kinds,
                    const char *const *datas, rf_error *err);
int rf_queue_progress(PGconn *c, const rf_claimed_job *j, const char *owner, double fraction,
                      rf_error *err);
int rf_queue_checkpoint(PGconn *c, const rf_claimed_job *j, const char *owner,
                        const char *state_json, rf_error *err);
/* Whether a cancel was asked for this job (false when it no longer runs here). */
int rf_queue_cancel_requested(PGconn *c, const rf_claimed_job *j, bool *yes, rf_error *err);

#endif
