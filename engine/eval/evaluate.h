/* Evaluation primitives on token ids, as lm-evaluation-harness defines the
 * metrics: multiple choice by summed log-likelihood of each choice given the
 * context (acc), or that sum divided by the choice's length in characters
 * (acc_norm); perplexity from rf_llama_score. Tokenising, datasets and
 * aggregation belong to the caller. */
#ifndef RF_EVALUATE_H
#define RF_EVALUATE_H

#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/model/llama.h"

/* loglik[c] = Σ log p(choice c's tokens | context), greedy[c] whether each of
 * them was the argmax (may be NULL). The context is run once; each choice
 * reuses its KV cache (slot 0), so the cost is one context plus the choices. */
int rf_eval_choices(const rf_llama_model *m, rf_llama_acts *a, const int *ctx, int n_ctx,
                    const int *const *choices, const int *choice_len, int n_choices, double *loglik,
                    bool *greedy, rf_error *err);

/* The index with the largest loglik (acc), and with the largest
 * loglik / chars (acc_norm; chars = the choice's length in characters). */
void rf_eval_pick(const double *loglik, const int *chars, int n, int *pred, int *pred_norm);

#endif
