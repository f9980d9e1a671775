/* A Gaussian process regressor for the GP sampler (FORMATS.md "Bayesian
 * optimisation"; Rasmussen & Williams, "Gaussian Processes for Machine
 * Learning", 2006, ch. 2 and 5).
 *
 * Kernel: k(x, x') = σ² · m52(r²), m52 the Matérn-5/2 correlation
 *   m52(s) = (1 + √(5s) + 5s/3) · exp(-√(5s)),
 *   r² = Σ_d λ_d · δ_d²   (ARD; λ_d = 1/ℓ_d² the inverse squared length scale),
 * δ_d = x_d - x'_d on a numeric dimension (inputs in [0, 1]) and the 0/1
 * mismatch [x_d ≠ x'_d] on a categorical one (x_d is the choice's index).
 * Observations y (standardised) carry Gaussian noise of variance ν.
 *
 * Hyper-parameters θ = (log λ_1..log λ_D, log σ², log(ν - ν_min)) by
 * maximum a posteriori, the priors Optuna's GPSampler uses:
 *   log p(λ_d) = -(0.1/λ_d + 0.1·λ_d),  σ² ~ Gamma(2, 1),  ν ~ Gamma(1.1, 30),
 * ν_min = 1e-6; multi-start L-BFGS on the negative log posterior with its
 * analytic gradient, ∂ log p(y|θ)/∂θ = ½ tr((ααᵀ - K⁻¹) ∂K/∂θ) (R&W eq. 5.9). */
#ifndef RF_HPO_GP_H
#define RF_HPO_GP_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/hpo/space.h"

#define RF_GP_MIN_NOISE 1e-6

typedef struct rf_gp {
    int n, d, cap;
    bool cat[RF_HP_MAX_DIMS];                 /* categorical dimensions: mismatch distance */
    double *X;                                /* [cap·d] inputs, row per point */
    double *y;                                /* [cap] targets */
    double isl[RF_HP_MAX_DIMS], scale, noise; /* λ, σ², ν */
    double *L;     /* [n·n] lower Cholesky factor of K = σ²·M + ν·I (row-major) */
    double *alpha; /* [n] K⁻¹ y */
    double *work;  /* [n·n + 2n] scratch for the posterior and the MAP gradient */
} rf_gp;

/* Room for cap points of d dimensions; cat[d] may be NULL (all numeric). */
int rf_gp_init(rf_gp *gp, int d, const bool *cat, int cap);
void rf_gp_free(rf_gp *gp);
/* Appends a point (n < cap). */
void rf_gp_add(rf_gp *gp, const double *x, double y);

/* The Matérn-5/2 correlation of a squared distance s, and d/ds into *ds. */
double rf_gp_m52(double s, double *ds);
/* r² between two inputs under the current length scales. */
double rf_gp_sqdist(const rf_gp *gp, const double *a, const double *b);

/* Fixes the hyper-parameters and factorises K; RF_EINVAL when K is not
 * numerically positive definite. */
int rf_gp_set(rf_gp *gp, const double *isl, double scale, double noise);
/* The negative log posterior -log p(y|θ) - log p(θ) (up to a constant) of
 * θ [d + 2] and its gradient into grad (may be NULL); INFINITY when K does
 * not factorise. Leaves the GP set to θ. */
double rf_gp_neg_log_map(rf_gp *gp, const double *theta, double *grad);
/* MAP fit from several starts (the prior's mode, a noisier one, and seeded
 * random ones); leaves the GP set to the best θ found. */
int rf_gp_fit(rf_gp *gp, uint64_t seed, rf_error *err);

/* Posterior of the latent f at x: mean and variance, and their gradients
 * with respect to x's numeric dimensions (d_mean/d_var [d], may be NULL;
 * categorical entries are set to 0). */
void rf_gp_posterior(const rf_gp *gp, const double *x, double *mean, double *var, double *d_mean,
                     double *d_var);

#endif
