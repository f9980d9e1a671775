/* The gp sampler's ask (FORMATS.md "Bayesian optimisation"): n_startup
 * scrambled-Sobol trials, then a Gaussian process (engine/hpo/gp.h) fitted
 * to the completed trials, pending trials conditioned on as a constant liar
 * (the best observed value), and the next point where log expected
 * improvement is largest: 2048 scrambled Sobol candidates, then local
 * searches from the best of them, from 9 more drawn by roulette on their
 * acquisition value, and from the best trial so far; a local search
 * alternates L-BFGS on the continuous dimensions with a search over each
 * discrete one (every value of a categorical or a small int, a pattern
 * search over a large int) until nothing moves. */
#ifndef RF_HPO_GP_SAMPLER_H
#define RF_HPO_GP_SAMPLER_H

#include "engine/hpo/sampler.h"

/* The default n_startup. 4 of a budget of 16 leaves 12 trials to the model:
 * with the GP's priors 4 well-spread points already give a usable fit, and
 * on the bench (bench/hpo) 4 did better at 16 trials than 2, 6 or 10. */
#define RF_HP_GP_STARTUP 4
#define RF_HP_GP_CANDIDATES 2048
#define RF_HP_GP_LOCAL_SEARCHES 10

int rf_hp_gp_ask(const rf_hp_space *space, const rf_hp_sampler_config *cfg,
                 const rf_hp_trial *trials, int n_trials, int number, double *x, rf_error *err);

/* The start-up point of trial `number`: point `number` of the study's
 * scrambled Sobol sequence (shared by every ask of the study, so start-up
 * trials spread out whatever order they are asked in). */
void rf_hp_startup_point(const rf_hp_space *space, uint64_t seed, int number, double *x);

#endif
