/* engine/hpo numerics behind the gp sampler: the normal tails and log EI
 * against long-double evaluations of their closed forms, the GP posterior
 * and log posterior against a direct dense computation written here
 * (long double Gaussian elimination), analytic gradients against finite
 * differences, L-BFGS on known minima, and Sobol points against torch
 * (tests/reference/hpo_reference.py) and the net property. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/hpo/gp.h"
#include "engine/hpo/lbfgs.h"
#include "engine/hpo/normal.h"
#include "engine/hpo/sobol.h"

#define SOBOL_FIX "tests/reference/fixtures/hpo/sobol.json"

/* ---- references in long double, from the definitions ---- */

static long double ref_cdf(long double z)
{
    return 0.5L * erfcl(-z / sqrtl(2.0L));
}

static long double ref_pdf(long double z)
{
    return expl(-0.5L * z * z) / sqrtl(2 * 3.14159265358979323846264338327950288L);
}

/* h(z) = φ(z) + zΦ(z); for z < 0 the two terms cancel to ~φ/z², which
 * long double's 64-bit significand resolves to ~1e-15 relative at z = -40. */
static long double ref_h(long double z)
{
    return ref_pdf(z) + z * ref_cdf(z);
}

static void test_erfcx(void **state)
{
    for (double x = -5; x <= 100; x += 0.0625) {
        long double want = expl((long double)x * x) * erfcl(x);
        double got = rf_erfcx(x);
        if (!(fabsl(got - want) <= 4e-15L * want))
            fail_msg("erfcx(%g) = %.17g, want %.17Lg", x, got, want);
    }
    /* far tail: erfcx(x) → 1/(x√π) */
    assert_true(fabs(rf_erfcx(1e8) * 1e8 * sqrt(M_PI) - 1) < 1e-15);
}

static void test_log_h_tails(void **state)
{
    double worst = 0;
    for (int i = 0; i <= 4500; i++) {
        double z = -40 + i * 0.01;
        long double h = ref_h(z), want = logl(h);
        double got = rf_log_h(z), err = fabsl(got - want) / fmaxl(1, fabsl(want));
        if (err > worst) worst = err;
        if (!(err < 1e-13)) fail_msg("log_h(%g) = %.17g, want %.17Lg", z, got, want);
        /* d log h / dz = Φ(z)/h(z) */
        long double dwant = ref_cdf(z) / h;
        double dgot = rf_dlog_h(z);
        if (!(fabsl(dgot - dwant) <= 1e-11L * fmaxl(1, dwant)))
            fail_msg("dlog_h(%g) = %.17g, want %.17Lg", z, dgot, dwant);
    }
    print_message("log_h on [-40, 5]: worst relative error %.2g\n", worst);
    /* beyond where long double helps: h ~ φ(z)/z²·(1 - 3/z² + 15/z⁴) */
    for (double z = -1e3; z > -1e12; z *= 10) {
        double want = -0.5 * z * z - 0.5 * log(2 * M_PI) - 2 * log(-z) + log1p(-3 / (z * z));
        assert_true(fabs(rf_log_h(z) - want) <= 1e-15 * fabs(want));
    }
    /* the naive log(φ + zΦ) is -inf from z ≈ -38 on; ours is finite */
    assert_true(isfinite(rf_log_h(-1e100)));
}

static void test_log_ei(void **state)
{
    /* log EI = log σ + log h((μ - f0)/σ); derivatives by central differences */
    const double cases[][3] = {{0.3, 0.04, 0.1}, {-2, 0.01, 1.5}, {1, 2.5, 0}, {-30, 1, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double m = cases[c][0], v = cases[c][1], f0 = cases[c][2], dm, dv;
        double got = rf_log_ei(m, v, f0, &dm, &dv);
        long double z = (m - f0) / sqrtl(v);
        long double want = logl(ref_h(z)) + 0.5L * logl(v);
        assert_true(fabsl(got - want) <= 1e-12L * fmaxl(1, fabsl(want)));
        double hm = 1e-6 * fmax(1, fabs(m)), hv = 1e-6 * v;
        double fd_m =
            (rf_log_ei(m + hm, v, f0, NULL, NULL) - rf_log_ei(m - hm, v, f0, NULL, NULL)) /
            (2 * hm);
        double fd_v =
            (rf_log_ei(m, v + hv, f0, NULL, NULL) - rf_log_ei(m, v - hv, f0, NULL, NULL)) /
            (2 * hv);
        assert_true(fabs(dm - fd_m) <= 1e-6 * fmax(1, fabs(fd_m)));
        assert_true(fabs(dv - fd_v) <= 1e-6 * fmax(1, fabs(fd_v)));
    }
}

static void test_log_gauss_mass(void **state)
{
    const double ab[][2] = {{-1, 1},        {-0.1, 0.2},   {1e-9, 2e-9}, {-3, -2},
                            {2, 3},         {-40, -39},    {30, 31},     {-8, 0.5},
                            {-INFINITY, 0}, {1, INFINITY}, {-50, 50},    {-1e-12, 1e-12}};
    for (size_t i = 0; i < sizeof ab / sizeof ab[0]; i++) {
        long double a = ab[i][0], b = ab[i][1];
        /* Φ(b) - Φ(a) in whichever tail keeps it exact */
        long double m = b <= 0 ? ref_cdf(b) - ref_cdf(a) : ref_cdf(-a) - ref_cdf(-b);
        if ((a < 0 && b > 0) || (fabsl(a) <= 1 && fabsl(b) <= 1))
            m = 0.5L * (erfl(b / sqrtl(2.0L)) - erfl(a / sqrtl(2.0L)));
        long double want = logl(m);
        double got = rf_log_gauss_mass(ab[i][0], ab[i][1]);
        if (!(fabsl(got - want) <= 1e-12L * fmaxl(1, fabsl(want))))
            fail_msg("log mass [%g, %g] = %.17g, want %.17Lg", ab[i][0], ab[i][1], got, want);
    }
}

/* ---- the GP against a dense computation ---- */

enum { N = 9, D = 3 };
static const bool CAT[D] = {false, false, true};

static long double ref_m52(long double s)
{
    long double u = sqrtl(5 * s);
    return (1 + u + 5 * s / 3) * expl(-u);
}

static long double ref_k(const double *a, const double *b, const double *isl, double scale)
{
    long double s = 0;
    for (int k = 0; k < D; k++) {
        long double dd = CAT[k] ? (a[k] != b[k]) : (long double)(a[k] - b[k]) * (a[k] - b[k]);
        s += isl[k] * dd;
    }
    return scale * ref_m52(s);
}

/* Solves A z = b (A [n·n], copied) by Gaussian elimination with partial
 * pivoting; returns log|det A|. */
static long double ref_solve(int n, const long double *A_in, const long double *b, long double *z)
{
    long double A[N * N], r[N], logdet = 0;
    memcpy(A, A_in, sizeof(long double) * n * n);
    memcpy(r, b, sizeof(long double) * n);
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int i = c + 1; i < n; i++)
            if (fabsl(A[i * n + c]) > fabsl(A[p * n + c])) p = i;
        for (int j = 0; j < n; j++) {
            long double t = A[c * n + j];
            A[c * n + j] = A[p * n + j];
            A[p * n + j] = t;
        }
        long double t = r[c];
        r[c] = r[p];
        r[p] = t;
        logdet += logl(fabsl(A[c * n + c]));
        for (int i = c + 1; i < n; i++) {
            long double f = A[i * n + c] / A[c * n + c];
            for (int j = c; j < n; j++)
                A[i * n + j] -= f * A[c * n + j];
            r[i] -= f * r[c];
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        long double s = r[i];
        for (int j = i + 1; j < n; j++)
            s -= A[i * n + j] * z[j];
        z[i] = s / A[i * n + i];
    }
    return logdet;
}

static void make_data(double X[N][D], double y[N])
{
    uint64_t st = 2024;
    for (int i = 0; i < N; i++) {
        X[i][0] = rf_unit53(rf_splitmix64(&st));
        X[i][1] = rf_unit53(rf_splitmix64(&st));
        X[i][2] = (double)(rf_splitmix64(&st) % 3);
        y[i] = sin(6 * X[i][0]) + X[i][1] * X[i][1] - 0.5 * X[i][2] + 0.1 * (i % 2);
    }
}

static void test_posterior_dense(void **state)
{
    double X[N][D], y[N];
    make_data(X, y);
    rf_gp gp;
    assert_int_equal(rf_gp_init(&gp, D, CAT, N), 0);
    for (int i = 0; i < N; i++)
        rf_gp_add(&gp, X[i], y[i]);
    const double isl[D] = {4.0, 0.7, 1.3}, scale = 1.7, noise = 3e-3;
    assert_int_equal(rf_gp_set(&gp, isl, scale, noise), 0);

    long double K[N * N], yl[N], alpha[N];
    for (int i = 0; i < N; i++) {
        yl[i] = y[i];
        for (int j = 0; j < N; j++)
            K[i * N + j] = ref_k(X[i], X[j], isl, scale) + (i == j) * (long double)noise;
    }
    ref_solve(N, K, yl, alpha);
    const double xs[][D] = {{0.5, 0.5, 0}, {0.05, 0.9, 2}, {X[3][0], X[3][1], X[3][2]}, {1, 0, 1}};
    for (size_t t = 0; t < sizeof xs / sizeof xs[0]; t++) {
        long double k[N], w[N], mean = 0, kw = 0;
        for (int i = 0; i < N; i++)
            k[i] = ref_k(xs[t], X[i], isl, scale);
        ref_solve(N, K, k, w);
        for (int i = 0; i < N; i++)
            mean += k[i] * alpha[i], kw += k[i] * w[i];
        long double var = scale - kw;
        double m, v, dm[D], dv[D];
        rf_gp_posterior(&gp, xs[t], &m, &v, dm, dv);
        if (!(fabsl(m - mean) <= 1e-10L * fmaxl(1, fabsl(mean))))
            fail_msg("mean at %zu: %.17g, dense %.17Lg", t, m, mean);
        if (!(fabsl(v - var) <= 1e-10L * scale))
            fail_msg("var at %zu: %.17g, dense %.17Lg", t, v, var);
        /* gradients in the numeric dimensions by central differences */
        for (int c = 0; c < D; c++) {
            if (CAT[c]) {
                assert_true(dm[c] == 0 && dv[c] == 0);
                continue;
            }
            double xp[D], xm[D], mp, vp, mm, vm, h = 1e-6;
            memcpy(xp, xs[t], sizeof xp);
            memcpy(xm, xs[t], sizeof xm);
            xp[c] += h, xm[c] -= h;
            rf_gp_posterior(&gp, xp, &mp, &vp, NULL, NULL);
            rf_gp_posterior(&gp, xm, &mm, &vm, NULL, NULL);
            assert_true(fabs(dm[c] - (mp - mm) / (2 * h)) < 1e-6 * fmax(1, fabs(dm[c])));
            assert_true(fabs(dv[c] - (vp - vm) / (2 * h)) < 1e-6 * fmax(1, fabs(dv[c])));
        }
    }
    rf_gp_free(&gp);
}

static void test_log_posterior(void **state)
{
    double X[N][D], y[N];
    make_data(X, y);
    rf_gp gp;
    assert_int_equal(rf_gp_init(&gp, D, CAT, N), 0);
    for (int i = 0; i < N; i++)
        rf_gp_add(&gp, X[i], y[i]);
    const double theta[D + 2] = {log(2.0), log(0.5), log(1.5), log(1.2), log(0.02)};
    double grad[D + 2];
    double got = rf_gp_neg_log_map(&gp, theta, grad);

    /* -log N(y; 0, K) - log p(θ), with Optuna's priors written out */
    double isl[D] = {2.0, 0.5, 1.5}, scale = 1.2, noise = RF_GP_MIN_NOISE + 0.02;
    long double K[N * N], yl[N], a[N], quad = 0;
    for (int i = 0; i < N; i++) {
        yl[i] = y[i];
        for (int j = 0; j < N; j++)
            K[i * N + j] = ref_k(X[i], X[j], isl, scale) + (i == j) * (long double)noise;
    }
    long double logdet = ref_solve(N, K, yl, a);
    for (int i = 0; i < N; i++)
        quad += yl[i] * a[i];
    long double nll = 0.5L * quad + 0.5L * logdet + 0.5L * N * logl(2 * M_PI);
    long double prior = 0;
    for (int k = 0; k < D; k++)
        prior += -(0.1L / isl[k] + 0.1L * isl[k]);
    prior += (2 - 1) * logl(scale) - 1 * scale;     /* Gamma(2, 1) */
    prior += (1.1L - 1) * logl(noise) - 30 * noise; /* Gamma(1.1, 30) */
    long double want = nll - prior;
    if (!(fabsl(got - want) <= 1e-11L * fabsl(want)))
        fail_msg("-log posterior %.17g, dense %.17Lg", got, want);

    for (int k = 0; k < D + 2; k++) {
        double tp[D + 2], tm[D + 2], h = 1e-5;
        memcpy(tp, theta, sizeof tp);
        memcpy(tm, theta, sizeof tm);
        tp[k] += h, tm[k] -= h;
        double fd = (rf_gp_neg_log_map(&gp, tp, NULL) - rf_gp_neg_log_map(&gp, tm, NULL)) / (2 * h);
        if (!(fabs(grad[k] - fd) < 1e-6 * fmax(1, fabs(fd))))
            fail_msg("gradient %d: %.10g, finite difference %.10g", k, grad[k], fd);
    }

    /* the MAP fit: no worse than the prior's mode, and stationary inside the box */
    const double mode[D + 2] = {0, 0, 0, 0, log(1e-2)};
    double at_mode = rf_gp_neg_log_map(&gp, mode, NULL);
    rf_error e;
    assert_int_equal(rf_gp_fit(&gp, 1, &e), 0);
    double fitted[D + 2];
    for (int k = 0; k < D; k++)
        fitted[k] = log(gp.isl[k]);
    fitted[D] = log(gp.scale);
    fitted[D + 1] = log(gp.noise - RF_GP_MIN_NOISE);
    double best = rf_gp_neg_log_map(&gp, fitted, grad);
    assert_true(best <= at_mode);
    for (int k = 0; k < D + 2; k++)
        if (fitted[k] > -9.9 && fitted[k] < 2.9) assert_true(fabs(grad[k]) < 1e-2);
    rf_gp_free(&gp);
}

/* ---- L-BFGS ---- */

static double rosen(const double *x, double *g, void *ctx)
{
    double a = 1 - x[0], b = x[1] - x[0] * x[0];
    g[0] = -2 * a - 400 * x[0] * b;
    g[1] = 200 * b;
    return a * a + 100 * b * b;
}

static double bowl(const double *x, double *g, void *ctx)
{
    /* minimum at (2, -1, 0.5) outside the box [0, 1]^3 in two coordinates */
    const double c[3] = {2, -1, 0.5};
    double f = 0;
    for (int i = 0; i < 3; i++)
        g[i] = 2 * (i + 1) * (x[i] - c[i]), f += (i + 1) * (x[i] - c[i]) * (x[i] - c[i]);
    return f;
}

static void test_lbfgs(void **state)
{
    double x[2] = {-1.2, 1}, f;
    rf_lbfgs_opts o = {.max_iter = 500, .gtol = 1e-10, .ftol = 1e-16};
    assert_true(rf_lbfgs(2, x, NULL, NULL, rosen, NULL, &o, &f) > 0);
    assert_true(fabs(x[0] - 1) < 1e-5 && fabs(x[1] - 1) < 1e-5 && f < 1e-10);
    double y[3] = {0.5, 0.5, 0.5}, lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
    assert_true(rf_lbfgs(3, y, lo, hi, bowl, NULL, &o, &f) > 0);
    assert_true(y[0] == 1 && y[1] == 0 && fabs(y[2] - 0.5) < 1e-8);
}

/* ---- Sobol ---- */

static void test_sobol_matches_torch(void **state)
{
    json_error_t je;
    json_t *root = json_load_file(SOBOL_FIX, 0, &je);
    if (!root) fail_msg("%s: %s (run tests/reference/hpo_reference.py)", SOBOL_FIX, je.text);
    json_t *pts = json_object_get(root, "points");
    assert_int_equal(json_array_size(pts), 256);
    rf_sobol s;
    rf_sobol_init(&s, RF_HP_MAX_DIMS, false, 0);
    for (size_t i = 0; i < 256; i++) {
        double u[RF_HP_MAX_DIMS];
        rf_sobol_point(&s, i, u);
        json_t *row = json_array_get(pts, i);
        for (int j = 0; j < RF_HP_MAX_DIMS; j++)
            if (u[j] != json_real_value(json_array_get(row, (size_t)j)))
                fail_msg("point %zu dim %d: %.17g, torch %.17g", i, j, u[j],
                         json_real_value(json_array_get(row, (size_t)j)));
    }
    json_decref(root);
}

static void test_sobol_scrambled_net(void **state)
{
    /* The first 2^m points of a scrambled Sobol' sequence still put exactly
     * one point in every interval [k/2^m, (k+1)/2^m) of each dimension, and
     * the first two dimensions form a (0, m, 2)-net: one point in every
     * dyadic box of area 2^-m. */
    enum { M = 10, P = 1 << M };
    static double pts[P][RF_HP_MAX_DIMS];
    rf_sobol s, s2;
    rf_sobol_init(&s, RF_HP_MAX_DIMS, true, 77);
    for (int i = 0; i < P; i++)
        rf_sobol_point(&s, (uint64_t)i, pts[i]);
    for (int j = 0; j < RF_HP_MAX_DIMS; j++) {
        static int seen[P];
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < P; i++) {
            assert_true(pts[i][j] >= 0 && pts[i][j] < 1);
            seen[(int)(pts[i][j] * P)]++;
        }
        for (int k = 0; k < P; k++)
            assert_int_equal(seen[k], 1);
    }
    for (int a = 0; a <= M; a++) {
        static int box[P];
        memset(box, 0, sizeof box);
        for (int i = 0; i < P; i++) {
            int bx = (int)(pts[i][0] * (1 << a)), by = (int)(pts[i][1] * (1 << (M - a)));
            box[bx * (1 << (M - a)) + by]++;
        }
        for (int k = 0; k < P; k++)
            assert_int_equal(box[k], 1);
    }
    /* seeded: the same seed gives the same points, another seed others */
    double u[RF_HP_MAX_DIMS];
    rf_sobol_init(&s2, RF_HP_MAX_DIMS, true, 77);
    rf_sobol_point(&s2, 5, u);
    assert_memory_equal(u, pts[5], sizeof u);
    rf_sobol_init(&s2, RF_HP_MAX_DIMS, true, 78);
    rf_sobol_point(&s2, 5, u);
    assert_true(u[0] != pts[5][0] && u[7] != pts[5][7]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erfcx),
        cmocka_unit_test(test_log_h_tails),
        cmocka_unit_test(test_log_ei),
        cmocka_unit_test(test_log_gauss_mass),
        cmocka_unit_test(test_posterior_dense),
        cmocka_unit_test(test_log_posterior),
        cmocka_unit_test(test_lbfgs),
        cmocka_unit_test(test_sobol_matches_torch),
        cmocka_unit_test(test_sobol_scrambled_net),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
