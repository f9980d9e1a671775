/* The `evaluate` job type: a model's metrics on a dataset
 * (engine/eval/eval_dataset.h). Params (the table in evaluate.c):
 *   model           registered model, id or name          (required)
 *   dataset         dataset id                            (required)
 *   split           "train" | "validation" | "test" | "all" (default all)
 *   metrics         array of "perplexity", "accuracy", "exact_match"
 *                   (default perplexity and accuracy)
 *   limit           rows at most (default: every row)
 *   chat            format prompt_response rows with the chat template
 *   max_new_tokens  exact-match generation length (default 64)
 * Result: the metrics object, with model, dataset and split echoed.
 * The running totals are checkpointed every 30 s; an attempt after a lost
 * worker resumes from them instead of starting over. */
#ifndef RF_JOBS_EVALUATE_H
#define RF_JOBS_EVALUATE_H

#include "engine/jobs/job.h"

extern const rf_runner rf_evaluate_runner;

#endif
