#include "engine/hpo/normal.h"

#include <float.h>
#include <math.h>

#define SQRT1_2 0.70710678118654752440
#define LOG_2PI 1.83787706640934548356  /* log(2π) */
#define LOG_PI_2 0.45158270528945486473 /* log(π/2) */

/* exp(x²) with x² split into its rounded value and the rounding error
 * (fma), so that the product with erfc keeps full relative precision. */
static double exp_sq(double x)
{
    double hi = x * x, lo = fma(x, x, -hi);
    return exp(hi) * (1 + lo);
}

double rf_erfcx(double x)
{
    if (x < 8) return exp_sq(x) * erfc(x);
    /* Laplace's continued fraction, erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x +
     * …)))), evaluated from the tail; 40 levels are exact to rounding for x ≥ 8. */
    double t = x;
    for (int k = 40; k >= 1; k--)
        t = x + 0.5 * k / t;
    return 1 / (1.7724538509055160273 * t);
}

double rf_log_ndtr(double z)
{
    if (z > 6) return log1p(-0.5 * erfc(z * SQRT1_2));
    if (z > -1) return log(0.5 * erfc(-z * SQRT1_2));
    /* Φ(z) = ½ erfcx(-z/√2) exp(-z²/2) */
    return log(0.5 * rf_erfcx(-z * SQRT1_2)) - 0.5 * z * z;
}

/* log(1 - exp(x)) for x < 0 (Mächler, "Accurately computing log(1 - exp(-|a|))"). */
static double log1mexp(double x)
{
    return x > -0.69314718055994530942 ? log(-expm1(x)) : log1p(-exp(x));
}

double rf_log_gauss_mass(double a, double b)
{
    /* Near the centre erf is exact to rounding and odd, so its difference
     * keeps the digits that a difference of two values near ½ would lose. */
    if (a >= -1 && b <= 1) return log(0.5 * (erf(b * SQRT1_2) - erf(a * SQRT1_2)));
    if (b <= 0) {
        double lb = rf_log_ndtr(b);
        return lb + log1mexp(rf_log_ndtr(a) - lb);
    }
    if (a >= 0) return rf_log_gauss_mass(-b, -a);
    /* a < 0 < b: two positive halves, no cancellation */
    return log(0.5 * (erf(b * SQRT1_2) - erf(a * SQRT1_2)));
}

double rf_log_h(double z)
{
    if (z > -1) {
        double phi = exp(-0.5 * z * z - 0.5 * LOG_2PI), cdf = 0.5 * erfc(-z * SQRT1_2);
        return log(phi + z * cdf);
    }
    /* h(z) = φ(z)·(1 - |z|·√(π/2)·erfcx(|z|/√2)) for z < 0; the bracket is
     * ≈ 1/z² for large |z|, where 1/√ε bounds what the difference resolves. */
    if (z > -1 / sqrt(DBL_EPSILON))
        return -0.5 * z * z - 0.5 * LOG_2PI +
               log1mexp(log(rf_erfcx(-z * SQRT1_2) * -z) + 0.5 * LOG_PI_2);
    return -0.5 * z * z - 0.5 * LOG_2PI - 2 * log(-z);
}

double rf_dlog_h(double z)
{
    return exp(rf_log_ndtr(z) - rf_log_h(z));
}

double rf_log_ei(double mean, double var, double f0, double *d_mean, double *d_var)
{
    double sd = sqrt(var), z = (mean - f0) / sd;
    double v = rf_log_h(z) + log(sd);
    if (d_mean || d_var) {
        double g = rf_dlog_h(z);
        /* ∂/∂μ = g/σ; ∂/∂σ = (1 - z g)/σ and ∂σ/∂σ² = 1/(2σ) */
        if (d_mean) *d_mean = g / sd;
        if (d_var) *d_var = (1 - z * g) / (2 * var);
    }
    return v;
}
