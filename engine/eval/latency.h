/* Per-token latency of a model on this machine, as a user of the 4-bit
 * model feels it: batch 1, a prompt prefilled in one call, then greedy
 * decoding one token per call (EOS ignored, so every run decodes the same
 * count). Repeated, and the median run reported, because the machine is
 * shared. What the pipeline's report shows beside accuracy and bytes. */
#ifndef RF_EVAL_LATENCY_H
#define RF_EVAL_LATENCY_H

#include "engine/core/error.h"
#include "engine/model/llama.h"

typedef struct rf_latency {
    int prompt_tokens, new_tokens, repeats;
    double prefill_tokens_per_s; /* prompt tokens / prefill seconds */
    double decode_tokens_per_s;  /* new tokens / decode seconds (the first token excluded) */
    double ms_per_token;         /* 1000 / decode_tokens_per_s */
    double first_token_ms;       /* prefill and the first token */
} rf_latency;

/* prompt: n_prompt ids (repeated cyclically up to prompt_tokens when
 * shorter); prompt_tokens + new_tokens must fit the model's positions. */
int rf_eval_latency(const rf_llama_model *m, const int *prompt, int n_prompt, int prompt_tokens,
                    int new_tokens, int repeats, rf_latency *out, rf_error *err);

#endif
