/* The tpe sampler: Optuna 3.1's TPESampler with its defaults (Bergstra et
 * al., "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011; Watanabe,
 * "Tree-Structured Parzen Estimator: Understanding Its Algorithm Components",
 * 2023): independent per dimension, 10 random start-up trials, the
 * completed and pruned trials split into the best γ(n) = min(⌈0.1·n⌉, 25)
 * ("below") and the rest ("above"), one Parzen estimator per side, 24
 * candidates drawn from the below estimator and the one with the largest
 * log l(x) - log g(x) kept. Pending trials are skipped (no constant liar),
 * as in Optuna's default.
 *
 * A Parzen estimator (Optuna's _ParzenEstimator, univariate): one component
 * per observation plus a prior component (weight 1) in the dimension's
 * working scale (log for log kinds; ints padded by half a step). Weights:
 * Optuna's default_weights (1 each below 25 observations, else a linear ramp
 * from 1/n for the oldest n - 25 and 1 for the newest 25), then normalised.
 * Numeric kernels: truncated normals on the working range, centred on the
 * observations (the prior at the range's middle, σ = the range); σ_i the
 * larger gap to a neighbour among the sorted centres and the range's ends,
 * the outermost taking their inner gap (consider_endpoints false), clipped
 * to [range / min(100, 1 + n_components), range] (the "magic clip"); the
 * kernel's density is normalised (1/σ included: Optuna 3.1 leaves the
 * factor out, its issue #5109, fixed in 3.5). Int
 * kinds with a step score the kernel's mass on the value's share; log_int
 * scores the density at log(value) as Optuna does. Categoricals: a kernel
 * per observation of weight 1 on its choice plus 1/(n + 1) on every choice,
 * normalised; the prior's is uniform. */
#ifndef RF_HPO_TPE_H
#define RF_HPO_TPE_H

#include <stdint.h>

#include "engine/hpo/sampler.h"

#define RF_HP_TPE_STARTUP 10
#define RF_HP_TPE_CANDIDATES 24

typedef struct rf_parzen {
    const rf_hp_dim *dim;
    int n;               /* components: observations then the prior */
    double *w;           /* [n] normalised weights */
    double *mu, *sigma;  /* [n] numeric: in the working scale */
    double low, high, q; /* working range; q: an int's step (0: continuous density) */
    double *cw;          /* [n · n_choices] categorical: each component's choice weights */
} rf_parzen;

/* obs [n_obs]: the dimension's values in natural units, oldest first. */
int rf_parzen_build(rf_parzen *p, const rf_hp_dim *dim, const double *obs, int n_obs);
void rf_parzen_free(rf_parzen *p);
/* log density (log mass for stepped ints and categoricals) at x, natural units. */
double rf_parzen_log_pdf(const rf_parzen *p, double x);
/* A draw from the mixture, natural units (rounded onto an int's grid). */
double rf_parzen_sample(const rf_parzen *p, uint64_t *rng);

int rf_hp_tpe_ask(const rf_hp_space *space, const rf_hp_sampler_config *cfg,
                  const rf_hp_trial *trials, int n_trials, int number, double *x, rf_error *err);

#endif
