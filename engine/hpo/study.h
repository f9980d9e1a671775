/* A study as data (DESIGN.md "Studies"): its definition as POST /v1/studies
 * takes it, checked and with its defaults filled in, and the decisions made
 * over its trials — the next point, whether a running trial should stop,
 * the best one. No storage here: the service keeps studies in PostgreSQL,
 * `refinery run` in a file, and both hand the trials over as JSON:
 *   [{"number", "state": "running"|"complete"|"pruned"|"failed", "params",
 *     "value" (number or null), "intermediate": [{"step", "value"}, …]}, …]
 * in any order. */
#ifndef RF_HPO_STUDY_H
#define RF_HPO_STUDY_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/hpo/sampler.h"
#include "engine/hpo/space.h"

typedef struct rf_study_def {
    rf_hp_space space;
    rf_hp_sampler_config sampler;
    bool maximize;
    bool prune;        /* pruner "median" (the default) rather than "none" */
    int prune_startup; /* completed trials before the pruner prunes (Optuna: 5) */
    int prune_warmup;  /* steps below this are never pruned */
    int max_trials;    /* asks refused past this many trials; 0: no limit */
    /* The definition as stored and shown, defaults filled: {"name",
     * "direction", "space", "sampler": {"name", "n_startup", "seed"},
     * "pruner": {"name", "n_startup_trials", "warmup_steps"}, "max_trials",
     * "job_report"?}. */
    json_t *json;
} rf_study_def;

/* body: {"name", "direction"? (minimize), "space", "sampler"? {"name"? (gp),
 * "n_startup"?, "seed"?}, "pruner"? {"name"? (median), "n_startup_trials"?
 * (5), "warmup_steps"? (0)}, "max_trials"?, "job_report"? {"event", "field",
 * "step"? ("step"), "result"?}}. default_seed is the sampler's seed when the body gives
 * none (the caller picks it: random, or derived from an idempotency key).
 * err->field names the field at fault ("space.lr.low", "sampler.name"). */
int rf_study_def_parse(const json_t *body, uint64_t default_seed, rf_study_def *d, rf_error *err);
void rf_study_def_free(rf_study_def *d);

/* The point for trial `number` given the other trials (running ones are
 * pending), as {"dim": value, …} into *params. */
int rf_study_ask(const rf_study_def *d, const json_t *trials, int number, json_t **params,
                 rf_error *err);

/* A point a client chose itself: every dimension, inside the space. */
int rf_study_check_point(const rf_study_def *d, const json_t *params, rf_error *err);

/* The median pruner's verdict on running trial `number` after its latest
 * report; false with the pruner "none". */
bool rf_study_should_prune(const rf_study_def *d, const json_t *trials, int number);

/* The index in trials of the best complete trial (ties: the lower number),
 * -1 when none is complete. */
int rf_study_best(const rf_study_def *d, const json_t *trials);

/* obj at a dotted path ("eval.ce"), or NULL. */
const json_t *rf_study_json_path(const json_t *obj, const char *path);

/* A told value: a finite number. */
int rf_study_check_value(const json_t *v, const char *field, rf_error *err);

#endif
