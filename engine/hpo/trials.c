#include "engine/hpo/trials.h"

#include "engine/core/util.h"

uint64_t rf_hp_stream(uint64_t seed, int purpose, int64_t number)
{
    return rf_mix64(rf_mix64(seed ^ ((uint64_t)purpose << 56)) + (uint64_t)number);
}

void rf_hp_trial_order(const rf_hp_trial *trials, int n_trials, int *order)
{
    /* Insertion sort: studies hold tens to a few thousand trials, and it is stable. */
    for (int i = 0; i < n_trials; i++) {
        int j = i;
        while (j > 0 && trials[order[j - 1]].number > trials[i].number) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

void rf_hp_random_unit(int d, uint64_t seed, int number, double *u)
{
    uint64_t st = rf_hp_stream(seed, RF_HP_STREAM_RANDOM, number);
    for (int i = 0; i < d; i++)
        u[i] = rf_unit53(rf_splitmix64(&st));
}
