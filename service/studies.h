/* Studies as the API sees them (DESIGN.md "Studies"): create, get, list, ask,
 * tell, report, trials; stored in PostgreSQL (migrations/0007_studies.sql),
 * the decisions made by engine/hpo/study.h. Objects come back as JSON text
 * built by PostgreSQL. Every call is scoped to a tenant: another tenant's
 * study is RF_ENOTFOUND. The hpo job is a client of the same functions
 * through its context (rf_studies_op). */
#ifndef RF_STUDIES_H
#define RF_STUDIES_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "engine/core/error.h"

/* body as engine/hpo/study.h rf_study_def_parse takes it. key (may be NULL):
 * creation is idempotent per tenant and key — the same key and definition
 * answer the existing study (*created false), another definition is a 422.
 * job_id (may be NULL): the job the study belongs to. */
int rf_studies_create(PGconn *c, const char *tenant, const json_t *body, const char *key,
                      const char *job_id, char **json, bool *created, rf_error *err);
int rf_studies_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err);
/* Newest first; after: a study id. */
int rf_studies_list(PGconn *c, const char *tenant, const char *after, int limit, char **json,
                    rf_error *err);

/* A new running trial: the sampler's point, or body's "params" (a point the
 * client chose, checked against the space). body may be NULL. */
int rf_studies_ask(PGconn *c, const char *tenant, const char *id, const json_t *body, char **json,
                   rf_error *err);
/* state: "complete" (body "value" required), "fail", or "prune" (body
 * "value" optional: the last intermediate value otherwise). Only a running
 * trial can be told (RF_ECONFLICT). job_id may be NULL. */
int rf_studies_tell(PGconn *c, const char *tenant, const char *id, int number, const char *state,
                    const json_t *body, const char *job_id, char **json, rf_error *err);
/* body {"step", "value"} → {"object": "study.report", …, "should_prune"}. */
int rf_studies_report(PGconn *c, const char *tenant, const char *id, int number, const json_t *body,
                      char **json, rf_error *err);
/* Trials by number after `after` (-1: from the first), a list page. */
int rf_studies_trials(PGconn *c, const char *tenant, const char *id, long long after, int limit,
                      char **json, rf_error *err);
/* Record the job that evaluates a trial. */
int rf_studies_attach(PGconn *c, const char *tenant, const char *id, int number, const char *job_id,
                      char **json, rf_error *err);

/* The operations of rf_job_ctx.study (engine/jobs/job.h) for job_id of tenant. */
int rf_studies_op(PGconn *c, const char *tenant, const char *job_id, const char *op,
                  const json_t *args, json_t **out, rf_error *err);

#endif
