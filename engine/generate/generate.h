/* Generation: several continuations of one prompt decoded as one batch,
 * each with its own sampler, stopping on EOS, stop tokens, a length limit
 * or the caller's word (stop strings and streaming live in the caller's
 * callback, which sees every token and its logits). */
#ifndef RF_GENERATE_H
#define RF_GENERATE_H

#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/model/llama.h"
#include "engine/generate/sampler.h"

typedef struct rf_gen_params {
    int max_tokens;      /* new tokens per sequence, at most */
    bool stop_at_eos;    /* stop on the model's EOS ids (config, generation_config) */
    const int *stop_ids; /* further stop tokens */
    int n_stop;
} rf_gen_params;

enum { RF_FINISH_LENGTH = 0, RF_FINISH_STOP = 1 };

/* Called for each token kept for sequence seq, with the logits it was drawn
 * from ([vocab]); return false to finish that sequence after this token. */
typedef bool (*rf_gen_token_fn)(void *ctx, int seq, int token, const float *logits);

/* Generate n_seq continuations of prompt. The prompt is prefilled once in
 * slot 0 and its KV cache copied to slots 1..n_seq-1; the sequences then
 * decode together, sequence s drawing from samplers[s]. out[s] (room for
 * max_tokens ids) receives the tokens, lens[s] their count, finish[s]
 * RF_FINISH_STOP or RF_FINISH_LENGTH. Stop tokens are not kept. A finished
 * sequence keeps its batch row until all are done; its results no longer
 * change. on_token may be NULL. */
int rf_generate(const rf_llama_model *m, rf_llama_acts *a, const int *prompt, int n_prompt,
                int n_seq, rf_sampler *samplers, const rf_gen_params *p, rf_gen_token_fn on_token,
                void *ctx, int **out, int *lens, int *finish, rf_error *err);

#endif
