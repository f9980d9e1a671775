/* The standard normal's tails, computed where naive formulas underflow or
 * cancel: the scaled complementary error function, log Φ, the log of a
 * normal's mass on an interval (TPE's truncated Parzen kernels), and
 * log expected improvement (the GP's acquisition) after Ament et al.,
 * "Unexpected Improvements to Expected Improvement for Bayesian
 * Optimization" (NeurIPS 2023), eq. (9). */
#ifndef RF_HPO_NORMAL_H
#define RF_HPO_NORMAL_H

/* exp(x²)·erfc(x), accurate for every x ≥ -26 (beyond, it overflows). */
double rf_erfcx(double x);
/* log Φ(z), Φ the standard normal CDF; finite for every finite z. */
double rf_log_ndtr(double z);
/* log(Φ(b) - Φ(a)) for a < b (either may be ±INFINITY). */
double rf_log_gauss_mass(double a, double b);
/* log h(z), h(z) = φ(z) + zΦ(z): the expected improvement of a standard
 * normal over -z. Finite down to z ≈ -1e150. */
double rf_log_h(double z);
/* d log h / dz = Φ(z) / h(z), from the same stable pieces. */
double rf_dlog_h(double z);
/* log EI(μ, σ²; f0) = log σ + log h((μ - f0)/σ), for maximisation, with
 * its derivatives with respect to μ and σ² (either pointer may be NULL). */
double rf_log_ei(double mean, double var, double f0, double *d_mean, double *d_var);

#endif
