/* Samplers for ask/tell optimisation: gp (the default: Gaussian process,
 * Matérn-5/2 ARD, log expected improvement), tpe (Optuna's algorithm) and
 * random — FORMATS.md "Bayesian optimisation".
 *
 * A sampler is a pure function of (space, config, the trials so far, the
 * number of the trial being asked for): no state lives between asks, so
 * any process that reads a study's trials from PostgreSQL can ask, and the
 * same seed and tells give the same asks. Running trials are passed as
 * pending (no value), and the sampler treats them so that parallel asks
 * get different points (constant liar for gp; tpe skips them, as Optuna's
 * default does, and relies on its seeded randomness). */
#ifndef RF_HPO_SAMPLER_H
#define RF_HPO_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/hpo/space.h"

typedef enum rf_hp_sampler_kind {
    RF_HP_SAMPLER_GP,
    RF_HP_SAMPLER_TPE,
    RF_HP_SAMPLER_RANDOM,
} rf_hp_sampler_kind;

typedef struct rf_hp_sampler_config {
    rf_hp_sampler_kind kind;
    int n_startup; /* quasi-random trials before the model is used; -1: the sampler's default
                      (gp: min(dims + 1, 5), engine/hpo/gp_sampler.h; tpe: 10, as Optuna) */
    uint64_t seed;
    bool maximize; /* direction of the objective */
} rf_hp_sampler_config;

typedef enum rf_hp_trial_state {
    RF_HP_TRIAL_RUNNING, /* asked, not told: pending */
    RF_HP_TRIAL_COMPLETE,
    RF_HP_TRIAL_PRUNED, /* stopped early; value = its last intermediate value, if any */
    RF_HP_TRIAL_FAILED,
} rf_hp_trial_state;

typedef struct rf_hp_trial {
    int number;
    rf_hp_trial_state state;
    const double *x; /* [space->n], natural units */
    double value;    /* COMPLETE (and PRUNED with has_value) */
    bool has_value;
} rf_hp_trial;

/* "gp" | "tpe" | "random" (NULL: gp) into *kind. */
int rf_hp_sampler_parse(const char *name, rf_hp_sampler_kind *kind, rf_error *err);

/* The point for trial `number` (trials holds every other trial of the
 * study, any order), written to x [space->n] in natural units. */
int rf_hp_ask(const rf_hp_space *space, const rf_hp_sampler_config *cfg, const rf_hp_trial *trials,
              int n_trials, int number, double *x, rf_error *err);

/* Median pruner (Optuna's MedianPruner): prune when this trial's best
 * intermediate value over every step it reported is worse than the median,
 * over the completed trials, of their values at this trial's latest step;
 * never before n_startup completed trials or before warmup_steps (steps
 * below it), nor when no completed trial reported that step. A trial whose
 * reports are all NaN is pruned.
 * history[i] holds trial i's reports: steps ascending, values aligned. */
typedef struct rf_hp_reports {
    int n;
    const int *steps;
    const double *values;
    bool complete; /* the trial completed (only those count toward the median) */
} rf_hp_reports;

bool rf_hp_median_should_prune(const rf_hp_reports *self, const rf_hp_reports *history,
                               int n_history, int n_startup, int warmup_steps, bool maximize);

#endif
