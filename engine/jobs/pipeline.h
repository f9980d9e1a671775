/* The `pipeline` job: a task description (or a dataset) → a refined 4-bit
 * student and the paper's table for the user's own task. Every stage is a
 * child job (engine/jobs/pipeline_plan.h lists them); the pipeline submits
 * each one as soon as what it needs exists (quantizing the untouched student
 * and evaluating the base and the teacher run beside the training), waits
 * without a worker in between, and is resumed by its children's ends, so a
 * rescued or re-run pipeline continues where it was. Its result is the table
 * (engine/jobs/report.h describes it), registered also as a self-contained
 * HTML report artifact (report.html, kind report). */
#ifndef RF_JOBS_PIPELINE_H
#define RF_JOBS_PIPELINE_H

#include "engine/jobs/job.h"

extern const rf_runner rf_pipeline_runner;

#endif
