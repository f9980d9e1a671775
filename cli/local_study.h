/* Studies for `refinery run`, kept in one file (DIR/studies.json, rewritten
 * whole: a temporary name, fsync, rename) instead of PostgreSQL: the same
 * operations as rf_job_ctx.study (engine/jobs/job.h), the same answers as
 * the service's, the decisions made by engine/hpo/study.h. */
#ifndef RF_CLI_LOCAL_STUDY_H
#define RF_CLI_LOCAL_STUDY_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"

/* op and args as rf_job_ctx.study; root is the run folder. */
int rf_local_study_op(const char *root, const char *job_id, const char *op, const json_t *args,
                      json_t **out, rf_error *err);

/* A child whose metadata names {"study_id", "trial"} reports an event to its
 * trial when the study has a job_report for that kind; *stop once pruned
 * (the trial is then told "prune"), with reason (cap bytes). */
int rf_local_study_event(const char *root, const json_t *metadata, const char *kind,
                         const json_t *data, bool *stop, char *reason, size_t cap);

/* That child succeeded with result: with a job_report "result" path, its
 * trial is told complete with the value there. */
int rf_local_study_finish(const char *root, const json_t *metadata, const json_t *result,
                          const char *job_id);

#endif
