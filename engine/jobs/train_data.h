/* Training examples from a dataset JSONL (engine/dataset.h): each line is
 * rendered with the student's chat template, tokenized with spans, and
 * given its answer mask (rf_chat_answer_mask), so the loss sees only
 * answer tokens (FORMATS.md "Knowledge distillation loss"). Lines of the
 * "validation" split form the held-out set. */
#ifndef RF_JOBS_TRAIN_DATA_H
#define RF_JOBS_TRAIN_DATA_H

#include <stdint.h>

#include "engine/tokenizer/chat_template.h"
#include "engine/core/error.h"
#include "engine/jobs/job.h"
#include "engine/tokenizer/tokenizer.h"

typedef struct rf_train_example {
    int32_t *ids;
    unsigned char *mask; /* 1: answer token */
    int n;
} rf_train_example;

typedef struct rf_train_data {
    rf_train_example *ex;
    int n, cap;
    long skipped;            /* lines whose answer fell beyond seq_len */
    long unstable;           /* lines whose template rendering was not prefix-stable */
    char unstable_note[400]; /* the first of them: line, message, handling */
} rf_train_data;

/* Read path; each line rendered with chat (a prompt/response row as a
 * one-turn conversation), its answers masked from the prefix renderings
 * (rf_chat_render_spans); examples are cut to seq_len tokens. */
int rf_train_data_load(const char *path, const rf_tokenizer *tok, const rf_chat_template *chat,
                       int seq_len, rf_train_data *train, rf_train_data *val, rf_error *err);
void rf_train_data_free(rf_train_data *d);
/* A "log" event (level warning) when some lines' template rendering was
 * not prefix-stable: how many, the first one, and how it was handled. */
void rf_train_data_report(const rf_train_data *d, rf_job_ctx *ctx);

/* A batch of B rows of T tokens from examples idx[0..B) (idx[b] < 0: an
 * empty row): ids padded with pad, targets[t] = ids[t+1] where token t+1 is
 * an answer token, else -1. Returns the number of answer targets. */
int rf_train_data_batch(const rf_train_data *d, const int *idx, int B, int T, int pad, int *ids,
                        int *targets);

#endif
