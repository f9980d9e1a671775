/* A compact limited-memory BFGS (Nocedal, "Updating quasi-Newton matrices
 * with limited storage", 1980; the two-loop recursion of Nocedal & Wright,
 * Numerical Optimization, alg. 7.4) with optional box bounds handled by
 * projection: variables pinned at a bound with the gradient pushing out
 * are held fixed for the step, the step is projected onto the box, and a
 * backtracking (Armijo) line search runs along the projected path. What
 * the GP needs: a few to a few dozen variables, smooth objectives. */
#ifndef RF_HPO_LBFGS_H
#define RF_HPO_LBFGS_H

/* f(x) and its gradient into g; a non-finite value marks x infeasible
 * (the line search steps back). */
typedef double (*rf_lbfgs_fn)(const double *x, double *g, void *ctx);

typedef struct rf_lbfgs_opts {
    int memory;   /* stored (s, y) pairs; 0: 10 */
    int max_iter; /* 0: 100 */
    double gtol;  /* stop when the projected gradient's largest entry is below; 0: 1e-5 */
    double ftol;  /* stop when f falls by less than ftol·max(|f|, 1); 0: 1e-10 */
} rf_lbfgs_opts;

/* Minimises f from x (moved into [lo, hi] first; lo/hi may be NULL for no
 * bounds), leaving the best point in x and its value in *fx. Returns the
 * number of iterations, or a negative RF_E… code (no memory, or f not
 * finite at the start). */
int rf_lbfgs(int n, double *x, const double *lo, const double *hi, rf_lbfgs_fn f, void *ctx,
             const rf_lbfgs_opts *opts, double *fx);

#endif
