/* The pipeline job's plan: its params (the table GET /v1/job-types shows),
 * and the params of each stage's child job built from them, so that POST
 * checks every stage the pipeline will run before any of it starts and the
 * runner submits exactly what was checked.
 *
 * Stages (child keys): dataset (Self-Instruct, when a task is given) → hpo
 * (unless false) → train-muon and train-adamw (compare.adamw) → quantize-muon,
 * quantize-adamw, quantize-base (compare.gptq_only: the "GPTQ alone"
 * baseline) → eval-<variant>-<i> for every variant (base, base-gptq, muon,
 * muon-gptq, adamw, adamw-gptq, teacher) on the task's test split (i = 0)
 * and each evaluation dataset. */
#ifndef RF_JOBS_PIPELINE_PLAN_H
#define RF_JOBS_PIPELINE_PLAN_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/core/params.h"

extern const rf_param rf_pipeline_params[];

enum {
    RF_PV_BASE,
    RF_PV_BASE_GPTQ,
    RF_PV_MUON,
    RF_PV_MUON_GPTQ,
    RF_PV_ADAMW,
    RF_PV_ADAMW_GPTQ,
    RF_PV_TEACHER,
    RF_PV_COUNT
};

typedef struct rf_pipeline_opts {
    const json_t *p;               /* the params (borrowed) */
    const char *student, *teacher; /* references as given */
    const json_t *data_teacher;    /* a model reference or an endpoint object */
    const json_t *task;            /* or NULL when dataset is given */
    const char *dataset;           /* given, or NULL */
    bool hpo, adamw, gptq_only;
    const json_t *eval_datasets; /* array of dataset references (may be empty) */
    long long seed;
} rf_pipeline_opts;

/* params has passed the table check. */
int rf_pipeline_opts_parse(const json_t *params, rf_pipeline_opts *o, rf_error *err);

/* Whether a variant is part of this pipeline. */
bool rf_pipeline_variant_on(const rf_pipeline_opts *o, int variant);
const char *rf_pipeline_variant_key(int variant);   /* "base", "muon-gptq", … */
const char *rf_pipeline_variant_label(int variant); /* "refined + GPTQ (Muon)", … */

/* Child params (new references; NULL out of memory). ds: the task's dataset
 * (its id, or a placeholder when checking before it exists). */
json_t *rf_pipeline_dataset_params(const rf_pipeline_opts *o, const char *job_id);
json_t *rf_pipeline_base_train(const rf_pipeline_opts *o, const char *ds);
json_t *rf_pipeline_hpo_params(const rf_pipeline_opts *o, const char *ds);
/* The final training of one optimizer ("muon" | "adamw") from the train
 * params the search chose (or the base ones): adapter and merged exported. */
json_t *rf_pipeline_final_train(const json_t *train, const char *optimizer);
json_t *rf_pipeline_quantize_params(const rf_pipeline_opts *o, const char *ds,
                                    const char *adapter_job);
json_t *rf_pipeline_eval_params(const char *model, const char *dataset, const char *split,
                                bool task, bool chat);

/* The stage a child error belongs to, as the pipeline's own field: a field
 * of the train child is train.<field> unless it is one the pipeline passed
 * through (student, teacher, dataset). Rewrites err->field in place. */
void rf_pipeline_map_field(const char *stage, rf_error *err);

#endif
