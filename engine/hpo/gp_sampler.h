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

/* The default n_startup: min(d + 1, 5) for d dimensions. d + 1 points in
 * general position are the fewest along which every dimension varies, and
 * the cap leaves 11 of a 16-trial budget to the model: with the GP's priors
 * a handful of well-spread points already give a usable fit. On bench/hpo
 * (60 seeds, 16 trials, median regret against Optuna's TPE) 3 start-up
 * points did best on 2-D Branin (0.17 against 0.35 with 5) and 5 on the
 * 4- to 6-dimensional functions (Hartmann-6 0.61 against 0.65 with 3,
 * Rosenbrock-4 0.69 against 1.04, Ackley-5 0.82 against 0.87); 4 was
 * nowhere better than both. */
#define RF_HP_GP_STARTUP_MAX 5
int rf_hp_gp_default_startup(int n_dims);
#define RF_HP_GP_CANDIDATES 2048
#define RF_HP_GP_LOCAL_SEARCHES 10
#define RF_HP_GP_MAX_POINTS 256 /* completed trials the GP fits (see keep_points) */
#define RF_HP_GP_MAX_PENDING 64

int rf_hp_gp_ask(const rf_hp_space *space, const rf_hp_sampler_config *cfg,
                 const rf_hp_trial *trials, int n_trials, int number, double *x, rf_error *err);

/* The start-up point of trial `number`: point `number` of the study's
 * scrambled Sobol sequence (shared by every ask of the study, so start-up
 * trials spread out whatever order they are asked in). */
void rf_hp_startup_point(const rf_hp_space *space, uint64_t seed, int number, double *x);

#endif
