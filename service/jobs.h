/* Jobs as the API sees them: create (validated by the type's runner, with
 * Idempotency-Key), get, list, cancel, events. Objects come back as JSON text
 * built by PostgreSQL itself, ready to send. Every call is scoped to a tenant:
 * another tenant's job is RF_ENOTFOUND. */
#ifndef RF_JOBS_H
#define RF_JOBS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "engine/core/error.h"

/* body: the parsed request. idem_key may be NULL. On success *json is the job
 * (free it) and *created is false when an earlier request with the same key
 * and body already made it. */
int rf_jobs_create(PGconn *c, const char *tenant, const json_t *body, const char *idem_key,
                   char **json, bool *created, rf_error *err);

int rf_jobs_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err);

typedef struct rf_job_query {
    const char *type;      /* NULL: any */
    const char *status;    /* NULL: any */
    const char *after;     /* a job id: start after it (newest first) */
    const char *parent_id; /* NULL: any; else the children of that job */
    int limit;             /* 1..100 */
} rf_job_query;

int rf_jobs_list(PGconn *c, const char *tenant, const rf_job_query *q, char **json, rf_error *err);

/* queued → cancelled at once; running → cancel requested (the runner stops at
 * its next safe point); waiting (a parent) → its children are cancelled and
 * it ends once they have stopped; finished → RF_ECONFLICT. */
int rf_jobs_cancel(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err);

/* Read job id (any tenant's) and offer it to the cache (service/job_cache.h):
 * for a reader that has just shown this job's events from another query. */
void rf_jobs_feed(PGconn *c, const char *id);

/* Events after event id `after` (0: from the start), oldest first. */
int rf_jobs_events(PGconn *c, const char *tenant, const char *id, long long after, int limit,
                   char **json, rf_error *err);

#endif
