/* What every sampler does with a study's trials before modelling them:
 * put them in trial-number order (the caller's order must not change an
 * ask) and derive the seeded streams an ask draws from. */
#ifndef RF_HPO_TRIALS_H
#define RF_HPO_TRIALS_H

#include <stdint.h>

#include "engine/hpo/sampler.h"

/* Purposes, so that streams drawn for different things never coincide. */
enum {
    RF_HP_STREAM_RANDOM = 1,  /* the random sampler's point */
    RF_HP_STREAM_STARTUP = 2, /* the scramble of the start-up Sobol sequence (per study) */
    RF_HP_STREAM_GP = 3,      /* a GP ask: candidates, restarts */
    RF_HP_STREAM_TPE = 4,     /* a TPE ask */
};

/* A counter-based stream for (seed, purpose, number): a state for rf_splitmix64. */
uint64_t rf_hp_stream(uint64_t seed, int purpose, int64_t number);

/* order[n_trials] ← indices of trials sorted by trial number (a stable sort,
 * so duplicates keep the caller's order). */
void rf_hp_trial_order(const rf_hp_trial *trials, int n_trials, int *order);

/* A uniform point of the unit cube for (seed, number): the random sampler. */
void rf_hp_random_unit(int d, uint64_t seed, int number, double *u);

#endif
