/* The `train` job runner (engine/job.h): LoRA or full-parameter training of
 * a student on a dataset JSONL, optionally distilled from a teacher that
 * shares its tokenizer (checked at start), with the step, loss, KL, CE,
 * learning rate, gradient norm and tokens/s of every step as "metrics"
 * events, held-out "eval" events, checkpoints through ctx->checkpoint
 * (resumed on a later attempt), cancellation within one step, and the
 * adapter (PEFT) and merged checkpoint (HF layout) registered as artifacts.
 * The teacher is a checkpoint run in the same step, or a teacher cache
 * (engine/jobs/teacher_cache.h: top-k log-probabilities, sparse KL).
 * Parameters: engine/jobs/train_params.h. */
#ifndef RF_JOBS_TRAIN_H
#define RF_JOBS_TRAIN_H

#include "engine/jobs/job.h"

const rf_runner *rf_train_runner(void);

#endif
