/* Evaluation of a model on a dataset file (the JSONL line format of
 * engine/dataset.h), with the metrics lm-evaluation-harness defines:
 *   perplexity   exp of the mean negative log-likelihood of the response
 *                tokens given the prompt, over every row that has a response
 *                (and no choices); `loss` is that mean.
 *   accuracy     rows with `choices` + `answer`: each choice scored by the
 *                summed log-likelihood of its tokens given the prompt; `acc`
 *                picks the largest sum, `acc_norm` the largest sum divided by
 *                the choice's length in characters.
 *   exact_match  rows with a response: a greedy generation (up to
 *                max_new_tokens, ended by the model's stop tokens) equal to
 *                the response once surrounding whitespace is trimmed.
 *   latency      batch-1 prefill and decode speed on this machine
 *                (engine/eval/latency.h), the prompt made of the first
 *                row's context: decode_tokens_per_s, latency_ms_per_token,
 *                prefill_tokens_per_s, first_token_ms.
 * Contexts are formatted as lm-evaluation-harness does without a chat
 * template: the prompt, then the target after a single space (the target's
 * tokens are those of context+target past the context's). With chat, a
 * prompt_response row becomes a user turn and the target follows the
 * assistant header directly; a messages row is always formatted as chat, its
 * last assistant message being the target. */
#ifndef RF_EVAL_DATASET_H
#define RF_EVAL_DATASET_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/model/lm.h"

enum {
    RF_METRIC_PERPLEXITY = 1,
    RF_METRIC_ACCURACY = 2,
    RF_METRIC_EXACT_MATCH = 4,
    RF_METRIC_LATENCY = 8, /* engine/eval/latency.h, on the first row's prompt */
};

typedef struct rf_eval_opts {
    int metrics;        /* RF_METRIC_* bits */
    int split;          /* rf_split, or -1 for every row */
    long limit;         /* rows at most (after the split filter); 0: all */
    bool chat;          /* format prompt_response rows as chat */
    int max_new_tokens; /* exact match generation length */
    /* Optional: called after each row; return false to stop (RF_ECANCELED). */
    bool (*on_row)(void *ctx, long done, long total);
    /* Optional: the running totals, at most every checkpoint_s seconds (and
     * never after the last row); a later call with resume = that state skips
     * the rows already counted. state is borrowed for the call. */
    void (*on_checkpoint)(void *ctx, const json_t *state);
    double checkpoint_s;
    const json_t *resume;
    void *ctx;
} rf_eval_opts;

/* "perplexity,accuracy,exact_match" (any subset, comma-separated) → bits. */
int rf_eval_parse_metrics(const char *list, int *bits, rf_error *err);
/* The same from a JSON array of names (params.metrics). */
int rf_eval_metrics_json(const json_t *arr, int *bits, rf_error *err);
/* "train" / "validation" / "test" → rf_split; NULL or "all" → -1. */
int rf_eval_parse_split(const char *s, int *split, rf_error *err);

/* Run the metrics over path. *result: {rows, perplexity, loss,
 * perplexity_tokens, acc, acc_norm, multiple_choice_rows, exact_match,
 * exact_match_rows, model_bytes, seconds}; a metric no row qualifies for is
 * null. A bad line is RF_EINVAL naming the line. */
int rf_eval_dataset(const rf_lm *lm, const char *path, const rf_eval_opts *o, json_t **result,
                    rf_error *err);

#endif
