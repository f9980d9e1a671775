#include "engine/hpo/lbfgs.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"

static double dot(int n, const double *a, const double *b)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void project(int n, double *x, const double *lo, const double *hi)
{
    for (int i = 0; i < n; i++) {
        if (lo && x[i] < lo[i]) x[i] = lo[i];
        if (hi && x[i] > hi[i]) x[i] = hi[i];
    }
}

int rf_lbfgs(int n, double *x, const double *lo, const double *hi, rf_lbfgs_fn f, void *ctx,
             const rf_lbfgs_opts *opts, double *fx)
{
    int m = opts && opts->memory > 0 ? opts->memory : 10;
    int max_iter = opts && opts->max_iter > 0 ? opts->max_iter : 100;
    double gtol = opts && opts->gtol > 0 ? opts->gtol : 1e-5;
    double ftol = opts && opts->ftol > 0 ? opts->ftol : 1e-10;
    /* g, pg (projected gradient), d, xn, gn, alpha[m], rho[m], S[m·n], Y[m·n] */
    double *buf = malloc(sizeof *buf * (size_t)(5 * n + 2 * m + 2 * m * n));
    if (!buf) return RF_ENOMEM;
    double *g = buf, *pg = g + n, *d = pg + n, *xn = d + n, *gn = xn + n;
    double *alpha = gn + n, *rho = alpha + m, *S = rho + m, *Y = S + (size_t)m * n;
    int stored = 0, head = 0, it = 0;

    project(n, x, lo, hi);
    double fv = f(x, g, ctx);
    if (!isfinite(fv)) {
        free(buf);
        return RF_EINVAL;
    }
    for (; it < max_iter; it++) {
        double pgmax = 0;
        for (int i = 0; i < n; i++) {
            bool pinned = (lo && x[i] <= lo[i] && g[i] > 0) || (hi && x[i] >= hi[i] && g[i] < 0);
            pg[i] = pinned ? 0 : g[i];
            if (fabs(pg[i]) > pgmax) pgmax = fabs(pg[i]);
        }
        if (pgmax <= gtol) break;

        /* d = -H pg by the two-loop recursion over the stored pairs, newest first */
        for (int i = 0; i < n; i++)
            d[i] = -pg[i];
        for (int k = 0; k < stored; k++) {
            int j = (head - 1 - k + m) % m;
            alpha[j] = rho[j] * dot(n, S + (size_t)j * n, d);
            for (int i = 0; i < n; i++)
                d[i] -= alpha[j] * Y[(size_t)j * n + i];
        }
        if (stored) {
            int j = (head - 1 + m) % m;
            double yy = dot(n, Y + (size_t)j * n, Y + (size_t)j * n);
            double gamma = 1 / (rho[j] * yy); /* sᵀy / yᵀy: the initial Hessian's scale */
            for (int i = 0; i < n; i++)
                d[i] *= gamma;
        }
        for (int k = stored - 1; k >= 0; k--) {
            int j = (head - 1 - k + m) % m;
            double beta = rho[j] * dot(n, Y + (size_t)j * n, d);
            for (int i = 0; i < n; i++)
                d[i] += (alpha[j] - beta) * S[(size_t)j * n + i];
        }
        for (int i = 0; i < n; i++)
            if (pg[i] == 0) d[i] = 0;
        if (dot(n, d, pg) >= 0) { /* not a descent direction: restart from steepest descent */
            stored = 0;
            for (int i = 0; i < n; i++)
                d[i] = -pg[i];
        }
        double t = 1;
        if (!stored) { /* no curvature known yet: a first step of unit length */
            double dn = sqrt(dot(n, d, d));
            if (dn > 1) t = 1 / dn;
        }
        double fn = INFINITY;
        bool ok = false;
        for (int ls = 0; ls < 40; ls++) {
            for (int i = 0; i < n; i++)
                xn[i] = x[i] + t * d[i];
            project(n, xn, lo, hi);
            double decrease = 0;
            for (int i = 0; i < n; i++)
                decrease += g[i] * (xn[i] - x[i]);
            fn = f(xn, gn, ctx);
            if (isfinite(fn) && fn <= fv + 1e-4 * decrease) {
                ok = true;
                break;
            }
            t *= isfinite(fn) ? 0.5 : 0.1;
        }
        if (!ok) break;
        /* curvature pair (into d and pg, free now); kept when sᵀy is safely positive */
        for (int i = 0; i < n; i++) {
            d[i] = xn[i] - x[i];
            pg[i] = gn[i] - g[i];
        }
        double sy = dot(n, d, pg);
        if (sy > 1e-10 * sqrt(dot(n, d, d) * dot(n, pg, pg))) {
            memcpy(S + (size_t)head * n, d, sizeof *d * (size_t)n);
            memcpy(Y + (size_t)head * n, pg, sizeof *pg * (size_t)n);
            rho[head] = 1 / sy;
            head = (head + 1) % m;
            if (stored < m) stored++;
        }
        double fall = fv - fn;
        memcpy(x, xn, sizeof *x * (size_t)n);
        memcpy(g, gn, sizeof *g * (size_t)n);
        fv = fn;
        if (fall <= ftol * fmax(fabs(fv), 1)) {
            it++;
            break;
        }
    }
    *fx = fv;
    free(buf);
    return it;
}
