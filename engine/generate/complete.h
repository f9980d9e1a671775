/* Text completion over rf_generate: n continuations of a tokenised prompt,
 * decoded to text as they grow, ended by the model's stop tokens, by stop
 * strings (cut from the text, as OpenAI does) or by max_tokens, with the
 * log-probabilities OpenAI's `logprobs`/`top_logprobs` report. Text is handed
 * to an optional callback as soon as it is certain — no stop string can
 * still begin in it and it ends on a whole UTF-8 character — which is what
 * streaming sends. Runs on the caller's thread with its own activations, so
 * concurrent completions on one rf_lm share nothing writable. */
#ifndef RF_COMPLETE_H
#define RF_COMPLETE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/core/error.h"
#include "engine/generate/generate.h"
#include "engine/model/lm.h"
#include "engine/generate/sampler.h"

#define RF_MAX_TOP_LOGPROBS 20
#define RF_MAX_STOP_STRINGS 4

typedef struct rf_complete_params {
    int max_tokens;
    int n; /* continuations, each with its own sampler (seed + index) */
    rf_sampler_params sampling;
    const char *const *stop; /* stop strings; n_stop ≤ RF_MAX_STOP_STRINGS */
    int n_stop;
    int top_logprobs; /* -1: no log-probabilities; else how many alternatives */
} rf_complete_params;

typedef struct rf_token_logprob {
    int id;
    float logprob;
} rf_token_logprob;

typedef struct rf_complete_token {
    int id;
    float logprob; /* log softmax of the raw logits at the chosen id */
    int n_top;
    rf_token_logprob top[RF_MAX_TOP_LOGPROBS];
} rf_complete_token;

typedef struct rf_complete_choice {
    char *text; /* the continuation, stop string and after cut off */
    size_t len;
    int finish; /* RF_FINISH_STOP or RF_FINISH_LENGTH */
    int n_tokens;
    int *ids;              /* [n_tokens] */
    rf_complete_token *lp; /* [n_tokens] when top_logprobs >= 0, else NULL */
    size_t emitted;        /* text bytes handed to the callback so far */
    int tokens_emitted;    /* tokens covered by those calls */
    bool done;
} rf_complete_choice;

typedef struct rf_complete_result {
    int n;
    rf_complete_choice *choices;
    int prompt_tokens, completion_tokens;
} rf_complete_result;

/* Called after each token of choice seq. text[0, len) continues what was
 * handed before (len may be 0: nothing is certain yet); when len > 0 or
 * final, tokens [first_token, first_token + n_tokens) are those decoded
 * since the previous such call (else n_tokens is 0). final: the choice is
 * finished (c->finish says why); it is the last call for seq. Return false
 * to end the whole completion (the client went away); rf_complete then
 * returns RF_ECANCELED. */
typedef bool (*rf_complete_fn)(void *ctx, int seq, const char *text, size_t len, int first_token,
                               int n_tokens, const rf_complete_choice *c, bool final);

int rf_complete(const rf_lm *lm, const int *prompt, int n_prompt, const rf_complete_params *p,
                rf_complete_fn on_text, void *ctx, rf_complete_result *out, rf_error *err);
void rf_complete_result_free(rf_complete_result *r);

/* The k most likely ids of logits [n] with their log-probabilities, most
 * likely first (ties: lower id first). */
void rf_top_logprobs(const float *logits, int n, int k, rf_token_logprob *out);

#endif
