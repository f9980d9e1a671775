#include "engine/hpo/gp_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/hpo/gp.h"
#include "engine/hpo/lbfgs.h"
#include "engine/hpo/normal.h"
#include "engine/hpo/sobol.h"
#include "engine/hpo/trials.h"

/* Ints with at most this many values are searched exhaustively, as categoricals are. */
#define EXHAUSTIVE_MAX 16
#define LOCAL_ROUNDS 20

int rf_hp_gp_default_startup(int n_dims)
{
    return n_dims + 1 < RF_HP_GP_STARTUP_MAX ? n_dims + 1 : RF_HP_GP_STARTUP_MAX;
}

void rf_hp_startup_point(const rf_hp_space *space, uint64_t seed, int number, double *x)
{
    rf_sobol sob;
    double u[RF_HP_MAX_DIMS];
    rf_sobol_init(&sob, space->n, true, rf_hp_stream(seed, RF_HP_STREAM_STARTUP, 0));
    rf_sobol_point(&sob, (uint64_t)number, u);
    rf_hp_from_unit(space, u, x);
}

/* The GP's input for a point in natural units: the unit cube for numeric
 * dimensions (ints at the centre of their share), the index for categoricals. */
static void features(const rf_hp_space *s, const double *x, double *f)
{
    for (int i = 0; i < s->n; i++)
        f[i] = s->dims[i].kind == RF_HP_CATEGORICAL ? x[i] : rf_hp_dim_to_unit(&s->dims[i], x[i]);
}

static void natural(const rf_hp_space *s, const double *f, double *x)
{
    for (int i = 0; i < s->n; i++)
        x[i] = s->dims[i].kind == RF_HP_CATEGORICAL ? f[i] : rf_hp_dim_from_unit(&s->dims[i], f[i]);
}

/* A unit-cube point snapped to what the space can take (ints to their grid,
 * categoricals to an index), as a feature vector. */
static void snap(const rf_hp_space *s, const double *u, double *f)
{
    double x[RF_HP_MAX_DIMS];
    for (int i = 0; i < s->n; i++) {
        const rf_hp_dim *d = &s->dims[i];
        f[i] = d->kind == RF_HP_FLOAT || d->kind == RF_HP_LOG_FLOAT ? u[i] : 0;
        x[i] = rf_hp_dim_from_unit(d, u[i]);
    }
    for (int i = 0; i < s->n; i++)
        if (s->dims[i].kind != RF_HP_FLOAT && s->dims[i].kind != RF_HP_LOG_FLOAT)
            f[i] =
                s->dims[i].kind == RF_HP_CATEGORICAL ? x[i] : rf_hp_dim_to_unit(&s->dims[i], x[i]);
}

/* The feature of value k of a discrete dimension. */
static double discrete_feature(const rf_hp_dim *d, int k)
{
    if (d->kind == RF_HP_CATEGORICAL) return k;
    return rf_hp_dim_to_unit(d, d->low + k * d->step);
}

static int discrete_index(const rf_hp_dim *d, double f)
{
    if (d->kind == RF_HP_CATEGORICAL) return (int)f;
    return (int)llround((rf_hp_dim_from_unit(d, f) - d->low) / d->step);
}

typedef struct acq {
    const rf_gp *gp;
    const rf_hp_space *space;
    double f0;
    int n_cont, cont[RF_HP_MAX_DIMS];
    double pre[RF_HP_MAX_DIMS]; /* √λ: L-BFGS runs on z = u·√λ, where the kernel is isotropic */
    double base[RF_HP_MAX_DIMS]; /* the point whose continuous dimensions move */
} acq;

static double acq_value(const acq *a, const double *f)
{
    double mean, var;
    rf_gp_posterior(a->gp, f, &mean, &var, NULL, NULL);
    return rf_log_ei(mean, var, a->f0, NULL, NULL);
}

static double cont_fn(const double *z, double *g, void *ctx)
{
    const acq *a = ctx;
    double f[RF_HP_MAX_DIMS], dm[RF_HP_MAX_DIMS], dv[RF_HP_MAX_DIMS], mean, var, em, ev;
    memcpy(f, a->base, sizeof *f * (size_t)a->space->n);
    for (int j = 0; j < a->n_cont; j++)
        f[a->cont[j]] = z[j] / a->pre[j];
    rf_gp_posterior(a->gp, f, &mean, &var, dm, dv);
    double v = rf_log_ei(mean, var, a->f0, &em, &ev);
    for (int j = 0; j < a->n_cont; j++) {
        int c = a->cont[j];
        g[j] = -(em * dm[c] + ev * dv[c]) / a->pre[j];
    }
    return -v;
}

/* Best value of discrete dimension c with the others fixed; updates f, *best. */
static bool search_discrete(const acq *a, int c, double *f, double *best)
{
    const rf_hp_dim *d = &a->space->dims[c];
    int count = rf_hp_dim_count(d), cur = discrete_index(d, f[c]), best_k = cur;
    double keep = f[c], bv = *best;
    if (d->kind == RF_HP_CATEGORICAL || count <= EXHAUSTIVE_MAX) {
        for (int k = 0; k < count; k++) {
            if (k == cur) continue;
            f[c] = discrete_feature(d, k);
            double v = acq_value(a, f);
            if (v > bv) bv = v, best_k = k;
        }
    } else {
        /* pattern search: unit steps, doubled while they keep improving */
        for (int round = 0; round < 64; round++) {
            int moved = 0;
            for (int dir = -1; dir <= 1 && !moved; dir += 2) {
                for (int step = 1;; step *= 2) {
                    int k = best_k + dir * step;
                    if (k < 0 || k >= count) break;
                    f[c] = discrete_feature(d, k);
                    double v = acq_value(a, f);
                    if (!(v > bv)) break;
                    bv = v, best_k = k, moved = 1;
                }
            }
            if (!moved) break;
        }
    }
    if (best_k == cur) {
        f[c] = keep;
        return false;
    }
    f[c] = discrete_feature(d, best_k);
    *best = bv;
    return true;
}

/* One local search from f (in place); returns its acquisition value. */
static double local_search(acq *a, double *f)
{
    const rf_hp_space *s = a->space;
    double best = acq_value(a, f);
    double z[RF_HP_MAX_DIMS], lo[RF_HP_MAX_DIMS], hi[RF_HP_MAX_DIMS];
    rf_lbfgs_opts opts = {.max_iter = 100, .gtol = 1e-6, .ftol = 1e-9};
    for (int round = 0; round < LOCAL_ROUNDS; round++) {
        bool moved = false;
        if (a->n_cont) {
            memcpy(a->base, f, sizeof *f * (size_t)s->n);
            for (int j = 0; j < a->n_cont; j++) {
                lo[j] = 0, hi[j] = a->pre[j];
                z[j] = f[a->cont[j]] * a->pre[j];
            }
            double nv;
            if (rf_lbfgs(a->n_cont, z, lo, hi, cont_fn, a, &opts, &nv) >= 0 && -nv > best) {
                for (int j = 0; j < a->n_cont; j++)
                    f[a->cont[j]] = fmin(fmax(z[j] / a->pre[j], 0), 1);
                best = acq_value(a, f);
                moved = true;
            }
        }
        for (int c = 0; c < s->n; c++)
            if (s->dims[c].kind != RF_HP_FLOAT && s->dims[c].kind != RF_HP_LOG_FLOAT &&
                search_discrete(a, c, f, &best))
                moved = true;
        if (!moved || (a->n_cont && a->n_cont == s->n)) break;
    }
    return best;
}

typedef struct obs {
    const rf_hp_trial *t;
    double g; /* the value, larger is better */
} obs;

static int cmp_better(const void *a, const void *b)
{
    const obs *x = a, *y = b;
    if (x->g != y->g) return (x->g < y->g) - (x->g > y->g);
    return x->t->number - y->t->number;
}

static int cmp_number(const void *a, const void *b)
{
    return ((const obs *)a)->t->number - ((const obs *)b)->t->number;
}

/* Past RF_HP_GP_MAX_POINTS completed trials, the GP keeps the best half of
 * that many and the most recent for the rest (in trial order): an exact GP
 * costs O(n³) per likelihood evaluation, and these are the trials that
 * shape the acquisition near the optimum and where the search is now. */
static int keep_points(obs *o, int n)
{
    if (n <= RF_HP_GP_MAX_POINTS) return n;
    qsort(o, (size_t)n, sizeof *o, cmp_better);
    int best = RF_HP_GP_MAX_POINTS / 2;
    qsort(o + best, (size_t)(n - best), sizeof *o, cmp_number);
    memmove(o + best, o + n - (RF_HP_GP_MAX_POINTS - best),
            sizeof *o * (size_t)(RF_HP_GP_MAX_POINTS - best));
    qsort(o, RF_HP_GP_MAX_POINTS, sizeof *o, cmp_number);
    return RF_HP_GP_MAX_POINTS;
}

int rf_hp_gp_ask(const rf_hp_space *space, const rf_hp_sampler_config *cfg,
                 const rf_hp_trial *trials, int n_trials, int number, double *x, rf_error *err)
{
    int d = space->n, rc = 0, m = n_trials > 0 ? n_trials : 1;
    int *order = malloc(sizeof *order * (size_t)m);
    obs *ob = malloc(sizeof *ob * (size_t)m), *pend = malloc(sizeof *pend * (size_t)m);
    double *cand = malloc(sizeof *cand * (size_t)RF_HP_GP_CANDIDATES * (size_t)d);
    double *cval = malloc(sizeof *cval * RF_HP_GP_CANDIDATES);
    rf_gp gp = {0};
    if (!order || !ob || !pend || !cand || !cval) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    rf_hp_trial_order(trials, n_trials, order);
    int n_obs = 0, n_pending = 0;
    for (int i = 0; i < n_trials; i++) {
        const rf_hp_trial *t = &trials[order[i]];
        /* failed trials and non-finite values say nothing a GP can fit; pruned
         * trials stopped early and are left out, as Optuna's GPSampler does */
        if (t->state == RF_HP_TRIAL_COMPLETE && isfinite(t->value))
            ob[n_obs++] = (obs){t, cfg->maximize ? t->value : -t->value};
        else if (t->state == RF_HP_TRIAL_RUNNING)
            pend[n_pending++] = (obs){t, 0};
    }
    int n_startup = cfg->n_startup >= 0 ? cfg->n_startup : rf_hp_gp_default_startup(d);
    if (n_obs < n_startup || n_obs == 0) {
        rf_hp_startup_point(space, cfg->seed, number, x);
        goto done;
    }
    n_obs = keep_points(ob, n_obs);
    if (n_pending > RF_HP_GP_MAX_PENDING) { /* the most recent ones */
        memmove(pend, pend + n_pending - RF_HP_GP_MAX_PENDING, sizeof *pend * RF_HP_GP_MAX_PENDING);
        n_pending = RF_HP_GP_MAX_PENDING;
    }

    /* Standardised values (numpy's population std, as Optuna). */
    double mean = 0, m2 = 0;
    for (int i = 0; i < n_obs; i++)
        mean += ob[i].g / n_obs;
    for (int i = 0; i < n_obs; i++)
        m2 += (ob[i].g - mean) * (ob[i].g - mean);
    double sd = sqrt(m2 / n_obs);
    if (!(sd >= 1e-10)) sd = 1e-10;
    bool cat[RF_HP_MAX_DIMS];
    for (int i = 0; i < d; i++)
        cat[i] = space->dims[i].kind == RF_HP_CATEGORICAL;
    if ((rc = rf_gp_init(&gp, d, cat, n_obs + n_pending))) {
        rc = rf_errorf(err, rc, "out of memory");
        goto fail;
    }
    double f[RF_HP_MAX_DIMS], best_f[RF_HP_MAX_DIMS], f0 = -INFINITY;
    for (int i = 0; i < n_obs; i++) {
        double y = (ob[i].g - mean) / sd;
        features(space, ob[i].t->x, f);
        rf_gp_add(&gp, f, y);
        if (y > f0) f0 = y, memcpy(best_f, f, sizeof f);
    }
    uint64_t st = rf_hp_stream(cfg->seed, RF_HP_STREAM_GP, number);
    if ((rc = rf_gp_fit(&gp, rf_splitmix64(&st), err))) goto fail;
    /* Constant liar: pending trials join as if they had scored the best value,
     * with the fitted kernel, so the acquisition is low around them and
     * parallel asks spread out. */
    if (n_pending) {
        for (int i = 0; i < n_pending; i++) {
            features(space, pend[i].t->x, f);
            rf_gp_add(&gp, f, f0);
        }
        double isl[RF_HP_MAX_DIMS];
        memcpy(isl, gp.isl, sizeof isl);
        if (rf_gp_set(&gp, isl, gp.scale, gp.noise)) {
            rc = rf_errorf(err, RF_EINTERNAL,
                           "the Gaussian process could not take the pending trials");
            goto fail;
        }
    }

    acq a = {.gp = &gp, .space = space, .f0 = f0};
    for (int i = 0; i < d; i++)
        if (!cat[i] &&
            (space->dims[i].kind == RF_HP_FLOAT || space->dims[i].kind == RF_HP_LOG_FLOAT)) {
            a.pre[a.n_cont] = sqrt(gp.isl[i]);
            a.cont[a.n_cont++] = i;
        }

    /* Candidates: scrambled Sobol points of this ask, snapped to the space. */
    rf_sobol sob;
    rf_sobol_init(&sob, d, true, rf_splitmix64(&st));
    int top = 0;
    for (int c = 0; c < RF_HP_GP_CANDIDATES; c++) {
        double u[RF_HP_MAX_DIMS];
        rf_sobol_point(&sob, (uint64_t)c, u);
        snap(space, u, cand + (size_t)c * d);
        cval[c] = acq_value(&a, cand + (size_t)c * d);
        if (cval[c] > cval[top]) top = c;
    }
    /* Starts: the best candidate, up to 9 more by roulette on exp(value - best)
     * without replacement, and the best trial so far. */
    int starts[RF_HP_GP_LOCAL_SEARCHES + 1], n_starts = 0;
    starts[n_starts++] = top;
    double vmax = cval[top];
    for (int c = 0; c < RF_HP_GP_CANDIDATES; c++)
        cval[c] = c == top ? 0 : exp(cval[c] - vmax); /* reuse as roulette weights */
    while (n_starts < RF_HP_GP_LOCAL_SEARCHES) {
        double total = 0;
        for (int c = 0; c < RF_HP_GP_CANDIDATES; c++)
            total += cval[c];
        if (!(total > 0)) break;
        double r = rf_unit53(rf_splitmix64(&st)) * total;
        int pick = 0;
        for (; pick < RF_HP_GP_CANDIDATES - 1; pick++) {
            r -= cval[pick];
            if (r < 0 && cval[pick] > 0) break;
        }
        if (!(cval[pick] > 0)) break;
        starts[n_starts++] = pick;
        cval[pick] = 0;
    }
    double best_v = -INFINITY, pick_f[RF_HP_MAX_DIMS];
    memcpy(pick_f, cand + (size_t)top * d, sizeof *pick_f * (size_t)d);
    for (int k = 0; k <= n_starts; k++) {
        if (k < n_starts)
            memcpy(f, cand + (size_t)starts[k] * d, sizeof *f * (size_t)d);
        else
            memcpy(f, best_f, sizeof *f * (size_t)d);
        double v = local_search(&a, f);
        if (v > best_v) best_v = v, memcpy(pick_f, f, sizeof f);
    }
    natural(space, pick_f, x);
done:
    rc = 0;
fail:
    rf_gp_free(&gp);
    free(order);
    free(ob);
    free(pend);
    free(cand);
    free(cval);
    return rc;
}
