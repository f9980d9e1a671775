/* bench/hpo: refinery's samplers on standard test functions, sequential
 * ask/tell, every (function, sampler, seed) run to the largest budget.
 * Prints one line per run:
 *   RUN <function> <sampler> <seed> <best after b1> <best after b2> … <ask seconds> <asks>
 * (best = the lowest value so far; the functions are minimised). The same
 * functions, bounds and budgets are in optuna_bench.py, the peer.
 * usage: hpo [--seeds N] [--budgets 16,32] [--samplers gp,tpe,random] [--functions a,b]
 *            [--startup N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/hpo/functions.h"
#include "engine/core/util.h"
#include "engine/hpo/sampler.h"

typedef struct fn {
    const char *name;
    const char *space;
    double (*f)(const double *x);
} fn;

/* Rosenbrock in 4 dimensions on [-5, 10]^4; minimum 0. */
static double rosenbrock4(const double *x)
{
    double s = 0;
    for (int i = 0; i < 3; i++)
        s += 100 * (x[i + 1] - x[i] * x[i]) * (x[i + 1] - x[i] * x[i]) + (1 - x[i]) * (1 - x[i]);
    return s;
}

/* Ackley in 5 dimensions on [-32.768, 32.768]^5; minimum 0. */
static double ackley5(const double *x)
{
    double s1 = 0, s2 = 0;
    for (int i = 0; i < 5; i++)
        s1 += x[i] * x[i], s2 += cos(2 * M_PI * x[i]);
    return -20 * exp(-0.2 * sqrt(s1 / 5)) - exp(s2 / 5) + 20 + M_E;
}

/* A mixed space shaped like a fine-tuning run: the best learning rate
 * depends on the optimiser; minimum 0 at opt=muon, lr=10^-2.5, r=24, depth=4, x=0.3. */
static double mixed(const double *x)
{
    static const double centre[3] = {-1.5, -3.3, -2.5}, offset[3] = {0.8, 0.1, 0};
    int opt = (int)x[3];
    double l = log10(x[0]) - centre[opt], r = (x[1] - 24) / 16, dep = log2(x[2]) - 2;
    return l * l + r * r + dep * dep / 4 + offset[opt] + 2 * (x[4] - 0.3) * (x[4] - 0.3);
}

static const fn FUNCTIONS[] = {
    {"branin",
     "{\"x1\": {\"type\": \"float\", \"low\": -5, \"high\": 10},"
     " \"x2\": {\"type\": \"float\", \"low\": 0, \"high\": 15}}",
     branin},
    {"hartmann6",
     "{\"x1\": {\"type\": \"float\", \"low\": 0, \"high\": 1}, \"x2\": {\"type\": \"float\", "
     "\"low\": 0, \"high\": 1}, \"x3\": {\"type\": \"float\", \"low\": 0, \"high\": 1}, \"x4\": "
     "{\"type\": \"float\", \"low\": 0, \"high\": 1}, \"x5\": {\"type\": \"float\", \"low\": 0, "
     "\"high\": 1}, \"x6\": {\"type\": \"float\", \"low\": 0, \"high\": 1}}",
     hartmann6},
    {"rosenbrock4",
     "{\"x1\": {\"type\": \"float\", \"low\": -5, \"high\": 10}, \"x2\": {\"type\": \"float\", "
     "\"low\": -5, \"high\": 10}, \"x3\": {\"type\": \"float\", \"low\": -5, \"high\": 10}, "
     "\"x4\": {\"type\": \"float\", \"low\": -5, \"high\": 10}}",
     rosenbrock4},
    {"ackley5",
     "{\"x1\": {\"type\": \"float\", \"low\": -32.768, \"high\": 32.768}, \"x2\": {\"type\": "
     "\"float\", \"low\": -32.768, \"high\": 32.768}, \"x3\": {\"type\": \"float\", \"low\": "
     "-32.768, \"high\": 32.768}, \"x4\": {\"type\": \"float\", \"low\": -32.768, \"high\": "
     "32.768}, \"x5\": {\"type\": \"float\", \"low\": -32.768, \"high\": 32.768}}",
     ackley5},
    {"mixed",
     "{\"lr\": {\"type\": \"log_float\", \"low\": 1e-5, \"high\": 1e-1}, \"r\": {\"type\": "
     "\"int\", \"low\": 4, \"high\": 64, \"step\": 4}, \"depth\": {\"type\": \"log_int\", "
     "\"low\": 1, \"high\": 32}, \"opt\": {\"type\": \"categorical\", \"choices\": [\"sgd\", "
     "\"adam\", \"muon\"]}, \"x\": {\"type\": \"float\", \"low\": 0, \"high\": 1}}",
     mixed},
};
#define N_FUNCTIONS (int)(sizeof FUNCTIONS / sizeof FUNCTIONS[0])

static bool listed(const char *list, const char *name)
{
    if (!list) return true;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

int main(int argc, char **argv)
{
    int seeds = 20, startup = -1, budgets[8] = {16, 32}, n_budgets = 2;
    const char *samplers = "gp,tpe,random", *functions = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seeds"))
            seeds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--samplers"))
            samplers = argv[i + 1];
        else if (!strcmp(argv[i], "--functions"))
            functions = argv[i + 1];
        else if (!strcmp(argv[i], "--startup"))
            startup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--budgets")) {
            n_budgets = 0;
            for (char *p = argv[i + 1]; *p && n_budgets < 8; p += strcspn(p, ","), p += !!*p)
                budgets[n_budgets++] = atoi(p);
        } else {
            fprintf(stderr, "hpo: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int max_budget = 0;
    for (int b = 0; b < n_budgets; b++)
        if (budgets[b] > max_budget) max_budget = budgets[b];
    const char *names[] = {"gp", "tpe", "random"};
    for (int fi = 0; fi < N_FUNCTIONS; fi++) {
        const fn *F = &FUNCTIONS[fi];
        if (!listed(functions, F->name)) continue;
        json_t *sj = json_loads(F->space, 0, NULL);
        rf_hp_space space;
        rf_error err;
        if (!sj || rf_hp_space_parse(sj, &space, &err)) {
            fprintf(stderr, "hpo: %s: bad space: %s\n", F->name, err.msg);
            return 1;
        }
        json_decref(sj);
        int d = space.n;
        double *xs = malloc(sizeof *xs * (size_t)max_budget * (size_t)d);
        rf_hp_trial *trials = malloc(sizeof *trials * (size_t)max_budget);
        for (int si = 0; si < 3; si++) {
            if (!listed(samplers, names[si])) continue;
            rf_hp_sampler_kind kind;
            rf_hp_sampler_parse(names[si], &kind, &err);
            for (int seed = 0; seed < seeds; seed++) {
                rf_hp_sampler_config cfg = {
                    .kind = kind, .n_startup = startup, .seed = (uint64_t)seed, .maximize = false};
                double best = INFINITY, secs = 0, at[8];
                for (int t = 0; t < max_budget; t++) {
                    double *x = xs + (size_t)t * d;
                    double t0 = rf_now_s();
                    if (rf_hp_ask(&space, &cfg, trials, t, t, x, &err)) {
                        fprintf(stderr, "hpo: %s %s: %s\n", F->name, names[si], err.msg);
                        return 1;
                    }
                    secs += rf_now_s() - t0;
                    double v = F->f(x);
                    trials[t] = (rf_hp_trial){.number = t,
                                              .state = RF_HP_TRIAL_COMPLETE,
                                              .x = x,
                                              .value = v,
                                              .has_value = true};
                    if (v < best) best = v;
                    for (int b = 0; b < n_budgets; b++)
                        if (budgets[b] == t + 1) at[b] = best;
                }
                printf("RUN %s %s %d", F->name, names[si], seed);
                for (int b = 0; b < n_budgets; b++)
                    printf(" %.10g", at[b]);
                printf(" %.6f %d\n", secs, max_budget);
                fflush(stdout);
            }
        }
        free(xs);
        free(trials);
        rf_hp_space_free(&space);
    }
    return 0;
}
