#include "engine/hpo/gp.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/hpo/lbfgs.h"

#define SQRT5 2.23606797749978969641
#define HALF_LOG_2PI 0.91893853320467274178

int rf_gp_init(rf_gp *gp, int d, const bool *cat, int cap)
{
    memset(gp, 0, sizeof *gp);
    gp->d = d;
    gp->cap = cap > 0 ? cap : 1;
    for (int i = 0; i < d; i++)
        gp->cat[i] = cat && cat[i];
    size_t c = (size_t)gp->cap;
    gp->X = malloc(sizeof *gp->X * c * (size_t)d);
    gp->y = malloc(sizeof *gp->y * c);
    gp->L = malloc(sizeof *gp->L * c * c);
    gp->alpha = malloc(sizeof *gp->alpha * c);
    gp->work = malloc(sizeof *gp->work * (2 * c * c + 3 * c + (size_t)d));
    if (!gp->X || !gp->y || !gp->L || !gp->alpha || !gp->work) {
        rf_gp_free(gp);
        return RF_ENOMEM;
    }
    for (int i = 0; i < d; i++)
        gp->isl[i] = 1;
    gp->scale = 1;
    gp->noise = 1e-2;
    return 0;
}

void rf_gp_free(rf_gp *gp)
{
    free(gp->X);
    free(gp->y);
    free(gp->L);
    free(gp->alpha);
    free(gp->work);
    memset(gp, 0, sizeof *gp);
}

void rf_gp_add(rf_gp *gp, const double *x, double y)
{
    if (gp->n >= gp->cap) return;
    memcpy(gp->X + (size_t)gp->n * gp->d, x, sizeof *x * (size_t)gp->d);
    gp->y[gp->n++] = y;
}

double rf_gp_m52(double s, double *ds)
{
    double u = SQRT5 * sqrt(s), e = exp(-u);
    /* d/ds: -(5/6)(1 + u)e^{-u}, smooth at s = 0 */
    if (ds) *ds = -(5.0 / 6.0) * (1 + u) * e;
    return (1 + u + u * u / 3) * e;
}

static double delta2(const rf_gp *gp, int k, double a, double b)
{
    if (gp->cat[k]) return a != b;
    return (a - b) * (a - b);
}

double rf_gp_sqdist(const rf_gp *gp, const double *a, const double *b)
{
    double s = 0;
    for (int k = 0; k < gp->d; k++)
        s += gp->isl[k] * delta2(gp, k, a[k], b[k]);
    return s;
}

/* L z = b in place (forward substitution). */
static void solve_lower(int n, const double *L, double *b)
{
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int j = 0; j < i; j++)
            s -= L[(size_t)i * n + j] * b[j];
        b[i] = s / L[(size_t)i * n + i];
    }
}

/* Lᵀ z = b in place (backward substitution). */
static void solve_upper_t(int n, const double *L, double *b)
{
    for (int i = n - 1; i >= 0; i--) {
        double s = b[i];
        for (int j = i + 1; j < n; j++)
            s -= L[(size_t)j * n + i] * b[j];
        b[i] = s / L[(size_t)i * n + i];
    }
}

/* K into gp->L (lower triangle), factorised in place by LAPACK's dpotrf;
 * alpha = K⁻¹ y. The triangular solves are written out: at these sizes
 * they cost microseconds, and OpenBLAS's threaded solvers cost more in
 * thread wake-ups than in arithmetic (dpotri: 150 µs against 30 µs on one
 * thread at n = 24) and round differently with the thread count. */
static int factorise(rf_gp *gp)
{
    int n = gp->n;
    for (int i = 0; i < n; i++) {
        const double *xi = gp->X + (size_t)i * gp->d;
        for (int j = 0; j < i; j++)
            gp->L[(size_t)i * n + j] =
                gp->scale * rf_gp_m52(rf_gp_sqdist(gp, xi, gp->X + (size_t)j * gp->d), NULL);
        gp->L[(size_t)i * n + i] = gp->scale + gp->noise;
    }
    if (n == 0) return 0;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, gp->L, n) != 0) return RF_EINVAL;
    memcpy(gp->alpha, gp->y, sizeof *gp->alpha * (size_t)n);
    solve_lower(n, gp->L, gp->alpha);
    solve_upper_t(n, gp->L, gp->alpha);
    return 0;
}

/* K⁻¹ = L⁻ᵀ L⁻¹ (lower triangle) into W, with Linv [n·n] as scratch. */
static void inverse(int n, const double *L, double *Linv, double *W)
{
    for (int c = 0; c < n; c++) { /* column c of L⁻¹: forward substitution on e_c */
        for (int i = 0; i < c; i++)
            Linv[(size_t)i * n + c] = 0;
        Linv[(size_t)c * n + c] = 1 / L[(size_t)c * n + c];
        for (int i = c + 1; i < n; i++) {
            double s = 0;
            for (int j = c; j < i; j++)
                s -= L[(size_t)i * n + j] * Linv[(size_t)j * n + c];
            Linv[(size_t)i * n + c] = s / L[(size_t)i * n + i];
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int k = i; k < n; k++)
                s += Linv[(size_t)k * n + i] * Linv[(size_t)k * n + j];
            W[(size_t)i * n + j] = s;
        }
}

int rf_gp_set(rf_gp *gp, const double *isl, double scale, double noise)
{
    memcpy(gp->isl, isl, sizeof *isl * (size_t)gp->d);
    gp->scale = scale;
    gp->noise = noise;
    return factorise(gp);
}

double rf_gp_neg_log_map(rf_gp *gp, const double *theta, double *grad)
{
    int n = gp->n, d = gp->d;
    double isl[RF_HP_MAX_DIMS];
    for (int k = 0; k < d; k++)
        isl[k] = exp(theta[k]);
    double scale = exp(theta[d]), excess = exp(theta[d + 1]), noise = RF_GP_MIN_NOISE + excess;
    if (rf_gp_set(gp, isl, scale, noise)) return INFINITY;

    /* -log p(y|θ) = ½ yᵀα + Σ log L_ii + (n/2) log 2π */
    double nll = n * HALF_LOG_2PI;
    for (int i = 0; i < n; i++)
        nll += 0.5 * gp->y[i] * gp->alpha[i] + log(gp->L[(size_t)i * n + i]);
    /* -log p(θ) */
    double nlp = 0;
    for (int k = 0; k < d; k++)
        nlp += 0.1 / isl[k] + 0.1 * isl[k];
    nlp -= log(scale) - scale;
    nlp -= 0.1 * log(noise) - 30 * noise;
    if (!grad) return nll + nlp;

    /* W = K⁻¹ - ααᵀ (lower triangle), so ∂(-log p(y|θ))/∂θ = ½ Σ_ij W_ij ∂K_ij/∂θ */
    double *W = gp->work, *Linv = W + (size_t)n * n;
    inverse(n, gp->L, Linv, W);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            W[(size_t)i * n + j] -= gp->alpha[i] * gp->alpha[j];

    for (int k = 0; k < d + 2; k++)
        grad[k] = 0;
    for (int i = 0; i < n; i++) {
        const double *xi = gp->X + (size_t)i * d;
        grad[d] += 0.5 * W[(size_t)i * n + i] * scale; /* diagonal of σ²·M is σ² */
        grad[d + 1] += 0.5 * W[(size_t)i * n + i] * excess;
        for (int j = 0; j < i; j++) {
            const double *xj = gp->X + (size_t)j * d;
            double s = 0, ds;
            for (int k = 0; k < d; k++)
                s += isl[k] * delta2(gp, k, xi[k], xj[k]);
            double m = rf_gp_m52(s, &ds);
            double w = W[(size_t)i * n + j]; /* off-diagonal: counted twice, ½ cancels */
            grad[d] += w * scale * m;
            for (int k = 0; k < d; k++)
                grad[k] += w * scale * ds * isl[k] * delta2(gp, k, xi[k], xj[k]);
        }
    }
    for (int k = 0; k < d; k++)
        grad[k] += 0.1 * isl[k] - 0.1 / isl[k];
    grad[d] += scale - 1;
    grad[d + 1] += (30 - 0.1 / noise) * excess;
    return nll + nlp;
}

typedef struct fit_ctx {
    rf_gp *gp;
} fit_ctx;

static double fit_fn(const double *theta, double *g, void *ctx)
{
    return rf_gp_neg_log_map(((fit_ctx *)ctx)->gp, theta, g);
}

int rf_gp_fit(rf_gp *gp, uint64_t seed, rf_error *err)
{
    int d = gp->d, np = d + 2;
    /* Box on θ: λ in [e^-10, e^10], σ² in [e^-10, e^5], ν - ν_min in [e^-20, e^3];
     * the priors keep the optimum well inside, the box keeps exp() finite. */
    double lo[RF_HP_MAX_DIMS + 2], hi[RF_HP_MAX_DIMS + 2], theta[RF_HP_MAX_DIMS + 2],
        best[RF_HP_MAX_DIMS + 2];
    for (int k = 0; k < d; k++)
        lo[k] = -10, hi[k] = 10;
    lo[d] = -10, hi[d] = 5;
    lo[d + 1] = -20, hi[d + 1] = 3;
    double best_f = INFINITY;
    uint64_t st = seed;
    fit_ctx ctx = {gp};
    rf_lbfgs_opts opts = {.max_iter = 200, .gtol = 1e-3, .ftol = 1e-9};
    const int n_starts = 4;
    for (int r = 0; r < n_starts; r++) {
        /* 0: the prior's mode for λ and σ² (both 1), a small noise; 1: Optuna's
         * default start (noise 1); then random starts around them */
        for (int k = 0; k < d; k++)
            theta[k] = r < 2 ? 0 : 3 * (rf_unit53(rf_splitmix64(&st)) - 0.5) * 2;
        theta[d] = r < 2 ? 0 : 2 * (rf_unit53(rf_splitmix64(&st)) - 0.5);
        theta[d + 1] = r == 1 ? log(1 - RF_GP_MIN_NOISE)
                       : r == 0
                           ? log(1e-2)
                           : log(1e-4) + (log(1e-1) - log(1e-4)) * rf_unit53(rf_splitmix64(&st));
        double f;
        int it = rf_lbfgs(np, theta, lo, hi, fit_fn, &ctx, &opts, &f);
        if (it >= 0 && f < best_f) {
            best_f = f;
            memcpy(best, theta, sizeof *theta * (size_t)np);
        }
    }
    if (!isfinite(best_f))
        return rf_errorf(err, RF_EINTERNAL,
                         "the Gaussian process could not be fitted to the trials' values");
    rf_gp_neg_log_map(gp, best, NULL);
    return 0;
}

void rf_gp_posterior(const rf_gp *gp, const double *x, double *mean, double *var, double *d_mean,
                     double *d_var)
{
    int n = gp->n, d = gp->d;
    double *k = gp->work, *v = k + n, *ds = v + n;
    double mu = 0;
    for (int i = 0; i < n; i++) {
        k[i] = gp->scale * rf_gp_m52(rf_gp_sqdist(gp, x, gp->X + (size_t)i * d), &ds[i]);
        mu += k[i] * gp->alpha[i];
    }
    /* v = L⁻¹ k: var = σ² - vᵀv */
    memcpy(v, k, sizeof *v * (size_t)n);
    solve_lower(n, gp->L, v);
    double vv = 0;
    for (int i = 0; i < n; i++)
        vv += v[i] * v[i];
    *mean = mu;
    *var = fmax(gp->scale - vv, 1e-12 * gp->scale);
    if (!d_mean && !d_var) return;
    /* w = L⁻ᵀ v = K⁻¹ k (in place over v); ∂var/∂x = -2 Σ w_i ∂k_i/∂x */
    solve_upper_t(n, gp->L, v);
    for (int c = 0; c < d; c++) {
        double dm = 0, dv = 0;
        if (!gp->cat[c]) {
            /* ∂k_i/∂x_c = σ² m52'(s_i) · 2 λ_c (x_c - X_ic) */
            for (int i = 0; i < n; i++) {
                double dk = gp->scale * ds[i] * 2 * gp->isl[c] * (x[c] - gp->X[(size_t)i * d + c]);
                dm += gp->alpha[i] * dk;
                dv -= 2 * v[i] * dk;
            }
        }
        if (d_mean) d_mean[c] = dm;
        if (d_var) d_var[c] = dv;
    }
}
