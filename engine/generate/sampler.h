/* Token sampling from logits: greedy, temperature, top-k, top-p, with a
 * seeded generator so that a request with a seed is reproducible. The order
 * of the filters is the one Hugging Face's generate applies: temperature,
 * then top-k, then top-p on what is left. */
#ifndef RF_SAMPLER_H
#define RF_SAMPLER_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/util.h" /* rf_logprob, rf_argmax */

typedef struct rf_sampler_params {
    float temperature; /* 0: greedy */
    int top_k;         /* 0: no limit */
    float top_p;       /* 1: no limit; the smallest set with mass >= top_p */
    uint64_t seed;
} rf_sampler_params;

typedef struct rf_sampler {
    rf_sampler_params p;
    int vocab;
    uint64_t state;
    float *probs; /* [vocab] scratch */
    int *order;   /* [vocab] scratch */
} rf_sampler;

int rf_sampler_init(rf_sampler *s, int vocab, const rf_sampler_params *p, rf_error *err);
void rf_sampler_free(rf_sampler *s);
/* Choose the next token from logits [vocab]. logits are not modified. */
int rf_sampler_sample(rf_sampler *s, const float *logits);

#endif
