#include "engine/hpo/tpe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/hpo/normal.h"
#include "engine/hpo/trials.h"

#define HALF_LOG_2PI 0.91893853320467274178

static bool is_log(const rf_hp_dim *d)
{
    return d->kind == RF_HP_LOG_FLOAT || d->kind == RF_HP_LOG_INT;
}

/* Optuna's default_weights(n): ones below 25, else linspace(1/n, 1, n - 25) then 25 ones. */
static void default_weights(int n, double *w)
{
    if (n < 25) {
        for (int i = 0; i < n; i++)
            w[i] = 1;
        return;
    }
    int ramp = n - 25;
    for (int i = 0; i < ramp; i++)
        w[i] = ramp == 1 ? 1.0 / n : 1.0 / n + (1 - 1.0 / n) * i / (ramp - 1);
    for (int i = ramp; i < n; i++)
        w[i] = 1;
}

typedef struct centre {
    double mu;
    int i;
} centre;

static int cmp_centre(const void *a, const void *b)
{
    const centre *x = a, *y = b;
    if (x->mu != y->mu) return (x->mu > y->mu) - (x->mu < y->mu);
    return x->i - y->i; /* stable, as numpy's argsort(kind="stable") */
}

void rf_parzen_free(rf_parzen *p)
{
    free(p->w);
    free(p->mu);
    free(p->sigma);
    free(p->cw);
    memset(p, 0, sizeof *p);
}

int rf_parzen_build(rf_parzen *p, const rf_hp_dim *dim, const double *obs, int n_obs)
{
    memset(p, 0, sizeof *p);
    p->dim = dim;
    int n = p->n = n_obs + 1; /* consider_prior: always */
    p->w = malloc(sizeof *p->w * (size_t)n);
    if (!p->w) goto nomem;
    default_weights(n_obs, p->w);
    p->w[n_obs] = 1; /* prior_weight */
    double total = 0;
    for (int i = 0; i < n; i++)
        total += p->w[i];
    for (int i = 0; i < n; i++)
        p->w[i] /= total;

    if (dim->kind == RF_HP_CATEGORICAL) {
        int k = dim->n_choices;
        p->cw = malloc(sizeof *p->cw * (size_t)n * (size_t)k);
        if (!p->cw) goto nomem;
        double base = 1.0 / n; /* prior_weight / (n_obs + 1) */
        for (int i = 0; i < n; i++) {
            double row = 0;
            for (int c = 0; c < k; c++)
                row += p->cw[(size_t)i * k + c] = base + (i < n_obs && (int)obs[i] == c);
            for (int c = 0; c < k; c++)
                p->cw[(size_t)i * k + c] /= row;
        }
        return 0;
    }

    double top = rf_hp_dim_top(dim);
    switch (dim->kind) {
    case RF_HP_FLOAT:
        p->low = dim->low, p->high = dim->high;
        break;
    case RF_HP_LOG_FLOAT:
        p->low = log(dim->low), p->high = log(dim->high);
        break;
    case RF_HP_INT:
        p->q = dim->step;
        p->low = dim->low - 0.5 * dim->step, p->high = top + 0.5 * dim->step;
        break;
    default: /* log_int: a continuous density in log space */
        p->low = log(dim->low - 0.5), p->high = log(top + 0.5);
    }
    p->mu = malloc(sizeof *p->mu * (size_t)n);
    p->sigma = malloc(sizeof *p->sigma * (size_t)n);
    centre *cs = malloc(sizeof *cs * (size_t)n);
    double *sorted = malloc(sizeof *sorted * (size_t)(n + 2));
    if (!p->mu || !p->sigma || !cs || !sorted) {
        free(cs);
        free(sorted);
        goto nomem;
    }
    for (int i = 0; i < n_obs; i++)
        p->mu[i] = is_log(dim) ? log(obs[i]) : obs[i];
    p->mu[n_obs] = 0.5 * (p->low + p->high);
    for (int i = 0; i < n; i++)
        cs[i] = (centre){p->mu[i], i};
    qsort(cs, (size_t)n, sizeof *cs, cmp_centre);
    sorted[0] = p->low;
    for (int i = 0; i < n; i++)
        sorted[i + 1] = cs[i].mu;
    sorted[n + 1] = p->high;
    double range = p->high - p->low, lo_clip = range / fmin(100.0, 1.0 + n);
    for (int i = 0; i < n; i++) {
        double s = fmax(sorted[i + 1] - sorted[i], sorted[i + 2] - sorted[i + 1]);
        if (n >= 2 && i == 0) s = sorted[2] - sorted[1];
        if (n >= 2 && i == n - 1) s = sorted[n] - sorted[n - 1];
        p->sigma[cs[i].i] = fmin(fmax(s, lo_clip), range);
    }
    p->sigma[n_obs] = range;
    free(cs);
    free(sorted);
    return 0;
nomem:
    rf_parzen_free(p);
    return RF_ENOMEM;
}

double rf_parzen_log_pdf(const rf_parzen *p, double x)
{
    int n = p->n;
    if (p->dim->kind == RF_HP_CATEGORICAL) {
        int k = p->dim->n_choices, c = (int)x;
        double s = 0;
        for (int i = 0; i < n; i++)
            s += p->w[i] * p->cw[(size_t)i * k + c];
        return log(s);
    }
    /* log Σ_i w_i k_i(x), max-shifted */
    double best = -INFINITY, sum = 0;
    double *lw = malloc(sizeof *lw * (size_t)n);
    if (!lw) return NAN;
    double t = is_log(p->dim) ? log(x) : x;
    for (int i = 0; i < n; i++) {
        double mu = p->mu[i], sg = p->sigma[i];
        double norm = rf_log_gauss_mass((p->low - mu) / sg, (p->high - mu) / sg), v;
        if (p->q > 0) {
            double a = fmax(t - 0.5 * p->q, p->low), b = fmin(t + 0.5 * p->q, p->high);
            v = rf_log_gauss_mass((a - mu) / sg, (b - mu) / sg) - norm;
        } else {
            double z = (t - mu) / sg;
            v = -0.5 * z * z - HALF_LOG_2PI - log(sg) - norm;
        }
        lw[i] = v + log(p->w[i]);
        if (lw[i] > best) best = lw[i];
    }
    for (int i = 0; i < n; i++)
        sum += exp(lw[i] - best);
    free(lw);
    return best + log(sum);
}

/* A standard normal draw (Box–Muller on two uniforms). */
static double gauss(uint64_t *rng)
{
    double u1 = rf_unit53(rf_splitmix64(rng)), u2 = rf_unit53(rf_splitmix64(rng));
    return sqrt(-2 * log1p(-u1)) * cos(2 * M_PI * u2);
}

static int pick(const double *w, int n, uint64_t *rng)
{
    double u = rf_unit53(rf_splitmix64(rng)), c = 0;
    for (int i = 0; i < n; i++) {
        c += w[i];
        if (u < c) return i;
    }
    return n - 1;
}

double rf_parzen_sample(const rf_parzen *p, uint64_t *rng)
{
    int i = pick(p->w, p->n, rng);
    if (p->dim->kind == RF_HP_CATEGORICAL) {
        int k = p->dim->n_choices;
        return pick(p->cw + (size_t)i * k, k, rng);
    }
    /* Truncated normal by rejection: μ lies in [low, high] and σ ≤ high - low,
     * so at least Φ(1) - Φ(0) ≈ 0.34 of the mass is inside; 200 tries leave a
     * failure chance below 1e-35, and the uniform fallback keeps it bounded. */
    double mu = p->mu[i], sg = p->sigma[i], t = NAN;
    for (int r = 0; r < 200; r++) {
        double v = mu + sg * gauss(rng);
        if (v >= p->low && v <= p->high) {
            t = v;
            break;
        }
    }
    if (isnan(t)) t = p->low + (p->high - p->low) * rf_unit53(rf_splitmix64(rng));
    const rf_hp_dim *d = p->dim;
    double top = rf_hp_dim_top(d);
    switch (d->kind) {
    case RF_HP_FLOAT:
        return t;
    case RF_HP_LOG_FLOAT:
        return fmin(fmax(exp(t), d->low), d->high);
    case RF_HP_INT:
        return fmin(fmax(d->low + round((t - d->low) / d->step) * d->step, d->low), top);
    default:
        return fmin(fmax(round(exp(t)), d->low), top);
    }
}

/* Ranking of an observation (lower is better): completed trials first by
 * value, then pruned ones by their last value, then pruned ones without. */
typedef struct ranked {
    int cls;
    double score;
    int pos; /* chronological position */
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->cls != y->cls) return x->cls - y->cls;
    if (x->score != y->score) return (x->score > y->score) - (x->score < y->score);
    return x->pos - y->pos;
}

static int cmp_pos(const void *a, const void *b)
{
    return ((const ranked *)a)->pos - ((const ranked *)b)->pos;
}

int rf_hp_tpe_ask(const rf_hp_space *space, const rf_hp_sampler_config *cfg,
                  const rf_hp_trial *trials, int n_trials, int number, double *x, rf_error *err)
{
    int rc = 0, n = 0;
    int *order = malloc(sizeof *order * (size_t)(n_trials > 0 ? n_trials : 1));
    ranked *r = malloc(sizeof *r * (size_t)(n_trials > 0 ? n_trials : 1));
    double *vals = malloc(sizeof *vals * (size_t)(n_trials > 0 ? n_trials : 1));
    const rf_hp_trial **obs = malloc(sizeof *obs * (size_t)(n_trials > 0 ? n_trials : 1));
    rf_parzen below = {0}, above = {0};
    if (!order || !r || !vals || !obs) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto done;
    }
    rf_hp_trial_order(trials, n_trials, order);
    double sign = cfg->maximize ? -1 : 1;
    for (int i = 0; i < n_trials; i++) {
        const rf_hp_trial *t = &trials[order[i]];
        if (t->state == RF_HP_TRIAL_COMPLETE) {
            /* a NaN ranks last among the completed, as Optuna's inf for NaN */
            r[n] = (ranked){0, isnan(t->value) ? INFINITY : sign * t->value, n};
        } else if (t->state == RF_HP_TRIAL_PRUNED) {
            bool v = t->has_value && !isnan(t->value);
            r[n] = (ranked){v ? 1 : 2, v ? sign * t->value : 0, n};
        } else {
            continue;
        }
        obs[n++] = t;
    }
    int n_startup = cfg->n_startup >= 0 ? cfg->n_startup : RF_HP_TPE_STARTUP;
    if (n < n_startup || n == 0) {
        double u[RF_HP_MAX_DIMS];
        rf_hp_random_unit(space->n, cfg->seed, number, u);
        rf_hp_from_unit(space, u, x);
        goto done;
    }
    int n_below = (int)ceil(0.1 * n);
    if (n_below > 25) n_below = 25;
    qsort(r, (size_t)n, sizeof *r, cmp_ranked);
    /* each side back in chronological order: the weights ramp by age */
    qsort(r, (size_t)n_below, sizeof *r, cmp_pos);
    qsort(r + n_below, (size_t)(n - n_below), sizeof *r, cmp_pos);

    uint64_t rng = rf_hp_stream(cfg->seed, RF_HP_STREAM_TPE, number);
    for (int dmi = 0; dmi < space->n; dmi++) {
        const rf_hp_dim *dim = &space->dims[dmi];
        for (int i = 0; i < n; i++)
            vals[i] = obs[r[i].pos]->x[dmi];
        if ((rc = rf_parzen_build(&below, dim, vals, n_below)) ||
            (rc = rf_parzen_build(&above, dim, vals + n_below, n - n_below))) {
            rc = rf_errorf(err, rc, "out of memory");
            goto done;
        }
        double best = -INFINITY, pick_x = 0;
        for (int c = 0; c < RF_HP_TPE_CANDIDATES; c++) {
            double cand = rf_parzen_sample(&below, &rng);
            double score = rf_parzen_log_pdf(&below, cand) - rf_parzen_log_pdf(&above, cand);
            if (c == 0 || score > best) best = score, pick_x = cand;
        }
        x[dmi] = pick_x;
        rf_parzen_free(&below);
        rf_parzen_free(&above);
    }
done:
    rf_parzen_free(&below);
    rf_parzen_free(&above);
    free(order);
    free(r);
    free(vals);
    free(obs);
    return rc;
}
