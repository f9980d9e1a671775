/* The dataset job's params: the table (checked at POST, read by the runner,
 * published by GET /v1/job-types), the checks a table cannot say (a teacher
 * is a model reference or an endpoint object; endpoints only under the
 * allowed URL prefixes; api_key_env set; templates' placeholders), and the
 * process configuration they depend on. */
#ifndef RF_DATASET_PARAMS_H
#define RF_DATASET_PARAMS_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/core/params.h"
#include "engine/data/filters.h"
#include "engine/data/teacher.h"

extern const rf_param rf_dataset_params[];

/* REFINERY_TEACHER_URLS (comma-separated prefixes; NULL or "" refuses every
 * endpoint) and whether this process runs the workers that will read
 * api_key_env (then a missing variable is refused at POST). Called once at
 * start, before any request or worker. */
void rf_dataset_configure(const char *teacher_urls, bool check_keys);

int rf_dataset_validate(const json_t *params, rf_error *err);

/* A teacher from a param value (string: a model, resolved by the caller to
 * model_dir; object: an endpoint). field names it in errors. */
int rf_dataset_teacher(const json_t *v, const char *model_dir, int concurrency, const char *field,
                       rf_teacher **out, rf_error *err);

typedef struct rf_dataset_opts {
    const char *task, *description, *name;
    const json_t *seeds; /* array of strings */
    int target, subtopics_per_seed, pairs_per_call, concurrency;
    long long max_requests;
    bool mc;
    rf_teacher_sampling sampling;
    const char *rubric;
    double min_score, rouge_l, val_frac, test_frac;
    rf_filter_opts filters;
    const char *t_subtopics, *t_pairs, *t_judge;
    unsigned long long seed;
} rf_dataset_opts;

/* The options of checked params (strings point into params; blacklist into
 * *bl, malloc'd, free it after). */
void rf_dataset_options(const json_t *params, rf_dataset_opts *o, const char ***bl);

#endif
