#include "engine/hpo/trials.h"

#include <stdlib.h>

#include "engine/core/util.h"

uint64_t rf_hp_stream(uint64_t seed, int purpose, int64_t number)
{
    return rf_mix64(rf_mix64(seed ^ ((uint64_t)purpose << 56)) + (uint64_t)number);
}

typedef struct keyed {
    int number, i;
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->number != y->number) return (x->number > y->number) - (x->number < y->number);
    return x->i - y->i;
}

void rf_hp_trial_order(const rf_hp_trial *trials, int n_trials, int *order)
{
    keyed *k = malloc(sizeof *k * (size_t)(n_trials > 0 ? n_trials : 1));
    if (!k) { /* no memory: insertion sort in place, slower but the same order */
        for (int i = 0; i < n_trials; i++) {
            int j = i;
            while (j > 0 && trials[order[j - 1]].number > trials[i].number) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = i;
        }
        return;
    }
    for (int i = 0; i < n_trials; i++)
        k[i] = (keyed){trials[i].number, i};
    qsort(k, (size_t)n_trials, sizeof *k, cmp_keyed);
    for (int i = 0; i < n_trials; i++)
        order[i] = k[i].i;
    free(k);
}

void rf_hp_random_unit(int d, uint64_t seed, int number, double *u)
{
    uint64_t st = rf_hp_stream(seed, RF_HP_STREAM_RANDOM, number);
    for (int i = 0; i < d; i++)
        u[i] = rf_unit53(rf_splitmix64(&st));
}
