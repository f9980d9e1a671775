#include "engine/hpo/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hpo/gp_sampler.h"
#include "engine/hpo/tpe.h"
#include "engine/hpo/trials.h"

int rf_hp_sampler_parse(const char *name, rf_hp_sampler_kind *kind, rf_error *err)
{
    if (!name || !strcmp(name, "gp")) {
        *kind = RF_HP_SAMPLER_GP;
    } else if (!strcmp(name, "tpe")) {
        *kind = RF_HP_SAMPLER_TPE;
    } else if (!strcmp(name, "random")) {
        *kind = RF_HP_SAMPLER_RANDOM;
    } else {
        return rf_error_field(err, RF_EINVAL, "sampler.name",
                              "'sampler.name' must be one of 'gp', 'tpe', 'random'");
    }
    return 0;
}

int rf_hp_ask(const rf_hp_space *space, const rf_hp_sampler_config *cfg, const rf_hp_trial *trials,
              int n_trials, int number, double *x, rf_error *err)
{
    if (!space || space->n < 1 || space->n > RF_HP_MAX_DIMS || !cfg || !x || number < 0 ||
        n_trials < 0 || (n_trials > 0 && !trials))
        return rf_errorf(err, RF_EINTERNAL, "rf_hp_ask: bad arguments");
    for (int i = 0; i < n_trials; i++)
        if (trials[i].state != RF_HP_TRIAL_FAILED && !trials[i].x)
            return rf_errorf(err, RF_EINTERNAL, "rf_hp_ask: trial %d has no point",
                             trials[i].number);
    double u[RF_HP_MAX_DIMS];
    switch (cfg->kind) {
    case RF_HP_SAMPLER_RANDOM:
        rf_hp_random_unit(space->n, cfg->seed, number, u);
        rf_hp_from_unit(space, u, x);
        return 0;
    case RF_HP_SAMPLER_GP:
        return rf_hp_gp_ask(space, cfg, trials, n_trials, number, x, err);
    case RF_HP_SAMPLER_TPE:
        return rf_hp_tpe_ask(space, cfg, trials, n_trials, number, x, err);
    }
    return rf_errorf(err, RF_EINTERNAL, "rf_hp_ask: unknown sampler %d", (int)cfg->kind);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Optuna's MedianPruner (PercentilePruner at 50, interval_steps 1,
 * n_min_trials 1): the trial's best value over every step it reported
 * against the median of the completed trials' values at its latest step
 * (np.nanpercentile, linear between the two middle values). */
bool rf_hp_median_should_prune(const rf_hp_reports *self, const rf_hp_reports *history,
                               int n_history, int n_startup, int warmup_steps, bool maximize)
{
    if (!self || self->n < 1) return false;
    int n_complete = 0;
    for (int i = 0; i < n_history; i++)
        n_complete += history[i].complete;
    if (n_complete == 0 || n_complete < n_startup) return false;
    int step = self->steps[self->n - 1];
    if (step < warmup_steps) return false;

    double best = NAN;
    for (int i = 0; i < self->n; i++) {
        double v = self->values[i];
        if (isnan(v)) continue;
        if (isnan(best) || (maximize ? v > best : v < best)) best = v;
    }
    if (isnan(best)) return true; /* every report NaN: Optuna prunes */

    double *at = malloc(sizeof *at * (size_t)(n_history > 0 ? n_history : 1));
    if (!at) return false;
    int m = 0;
    for (int i = 0; i < n_history; i++) {
        if (!history[i].complete) continue;
        for (int k = history[i].n - 1; k >= 0; k--)
            if (history[i].steps[k] == step) {
                if (!isnan(history[i].values[k])) at[m++] = history[i].values[k];
                break;
            }
    }
    bool prune = false;
    if (m > 0) {
        qsort(at, (size_t)m, sizeof *at, cmp_double);
        double median = m % 2 ? at[m / 2] : 0.5 * (at[m / 2 - 1] + at[m / 2]);
        prune = maximize ? best < median : best > median;
    }
    free(at);
    return prune;
}
