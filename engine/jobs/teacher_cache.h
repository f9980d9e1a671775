/* Teacher cache (issue 5): the teacher's top-k log-probabilities at every
 * position of every training example, computed once (the `teacher-cache`
 * job) and reused by every training trial as a sparse teacher
 * (rf_loss_topk; FORMATS.md "Knowledge distillation loss", sparse mode).
 *
 * File: safetensors with
 *   offsets I64 [n+1]    first row of example i (rows = its tokens, cut to seq_len)
 *   ids     I32 [rows, k] top-k token ids at each position, most likely first
 *   logp    F32 [rows, k] their log-probabilities (temperature 1)
 *   meta    I64 [3]      k, seq_len, vocabulary size
 * Examples are the training split in dataset order, as rf_train_data_load
 * reads it with the same tokenizer, chat template and seq_len. */
#ifndef RF_JOBS_TEACHER_CACHE_H
#define RF_JOBS_TEACHER_CACHE_H

#include <stdint.h>

#include "engine/jobs/job.h"
#include "engine/jobs/train_data.h"
#include "engine/model/llama.h"
#include "engine/core/safetensors.h"

typedef struct rf_teacher_cache {
    rf_st_file f;
    int k, seq_len, vocab;
    int64_t n;
    const int64_t *offsets;
    const int32_t *ids;
    const float *logp;
} rf_teacher_cache;

int rf_teacher_cache_build(const char *path, const rf_llama_model *teacher,
                           const rf_train_data *data, int batch, int seq_len, int k, rf_error *err);
int rf_teacher_cache_open(rf_teacher_cache *c, const char *path, rf_error *err);
void rf_teacher_cache_close(rf_teacher_cache *c);
/* Check that the cache was built for these examples, this seq_len and vocabulary. */
int rf_teacher_cache_check(const rf_teacher_cache *c, const rf_train_data *d, int seq_len,
                           int vocab, rf_error *err);
/* Rows of a batch laid out as rf_train_data_batch lays tokens: [B·T, k];
 * rows past an example's end get id 0 and log-probability 0 (their targets
 * are masked). */
void rf_teacher_cache_batch(const rf_teacher_cache *c, const int *idx, int B, int T, int *ids,
                            float *logp);

/* The `teacher-cache` job: {teacher, dataset, k, seq_len, batch, chat_template}. */
const rf_runner *rf_teacher_cache_runner(void);

#endif
