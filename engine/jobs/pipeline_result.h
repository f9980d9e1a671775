/* The pipeline's result from its children's: the paper's table (one row a
 * variant; accuracy and acc_norm on each evaluation dataset, perplexity on
 * the task's held-out split, the accuracy each quantization lost, model and
 * resident bytes, decode tokens/s and ms per token on this machine), the
 * training loss curves, the search's trials and the stages' timings — the
 * shape engine/jobs/report.h renders — then that report as an artifact. */
#ifndef RF_JOBS_PIPELINE_RESULT_H
#define RF_JOBS_PIPELINE_RESULT_H

#include <jansson.h>

#include "engine/core/error.h"
#include "engine/jobs/job.h"
#include "engine/jobs/pipeline_plan.h"

/* Rows of a dataset file by split: n[0] train, n[1] validation, n[2] test. */
int rf_pipeline_split_rows(const char *path, long n[3], rf_error *err);

/* A few figures of a finished stage for its event (NULL when none). */
json_t *rf_pipeline_stage_summary(const char *key, const json_t *result);

/* Assemble, render report.html under the workdir and register it. */
int rf_pipeline_result(const rf_pipeline_opts *o, const json_t *kids, const char *ds,
                       const char *split, rf_job_ctx *ctx, json_t **result, rf_error *err);

#endif
