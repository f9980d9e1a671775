/* Small helpers every layer of the engine uses: a monotonic clock, the
 * splitmix64 stream (Steele, Lea, Flood 2014) behind every seeded choice,
 * and the two reductions over a row of logits that scoring and sampling
 * share. */
#ifndef RF_UTIL_H
#define RF_UTIL_H

#include <stdint.h>

/* Seconds of CLOCK_MONOTONIC: for durations, never for dates. */
double rf_now_s(void);

/* splitmix64's output function of z + the golden gamma: a stateless hash,
 * so counter-based streams (mix(seed + i)) need no state to replay. */
uint64_t rf_mix64(uint64_t z);
/* The stateful form: advances *state and returns the next value; any seed,
 * 0 included. rf_splitmix64(&s) == rf_mix64(s) before the advance. */
uint64_t rf_splitmix64(uint64_t *state);
/* A uniform double in [0, 1) from the top 53 bits of x. */
static inline double rf_unit53(uint64_t x)
{
    return (double)(x >> 11) * 0x1p-53;
}

/* Index of the largest value; the first one on ties, as torch.argmax. */
int rf_argmax(const float *x, int n);
/* log softmax(logits)[id], in double, max-subtracted. */
double rf_logprob(const float *logits, int n, int id);

#endif
