/* Checkpoint of a training run (DESIGN.md: a rescued job resumes from its
 * last checkpoint): the trainable parameters (LoRA adapters, or every f32
 * weight in full mode), the optimiser's moments and step, the trainer's
 * dropout stream, and the caller's RNG and data position. One safetensors
 * file, written to a temporary name, fsynced and renamed (rf_st_write), so
 * a crash leaves the previous checkpoint whole. Resuming from it reaches
 * the same parameters as a run that never stopped. */
#ifndef RF_TRAIN_STATE_H
#define RF_TRAIN_STATE_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/train/optim.h"
#include "engine/train/train.h"

typedef struct rf_train_cursor {
    uint64_t rng;  /* the caller's data RNG state */
    int64_t epoch; /* data position */
    int64_t index;
    int64_t tokens; /* trained so far */
} rf_train_cursor;

int rf_train_state_save(const char *path, const rf_trainer *t, const rf_optim *o,
                        const rf_train_cursor *cur, rf_error *err);
/* Into a trainer and optimiser built as the saved ones were (same mode,
 * model, adapters' shapes, parameters registered in the same order). */
int rf_train_state_load(const char *path, rf_trainer *t, rf_optim *o, rf_train_cursor *cur,
                        rf_error *err);

#endif
