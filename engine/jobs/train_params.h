/* Parameters of the `train` job (issue 5), parsed and validated in one
 * place so that POST refuses a bad request naming the field
 * ("optimizer.lr", "lora.target_modules[2]") and the runner reads a struct.
 * Paths (student, teacher, dataset) are what the service resolved from ids. */
#ifndef RF_JOBS_TRAIN_PARAMS_H
#define RF_JOBS_TRAIN_PARAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/params.h"
#include "engine/model/lora.h"
#include "engine/train/loss.h"
#include "engine/train/optim.h"

typedef struct rf_train_job_params {
    const char *student;       /* checkpoint folder */
    const char *teacher;       /* checkpoint folder, or NULL */
    const char *teacher_cache; /* a teacher-cache job's file, or NULL */
    const char *dataset;       /* JSONL file */
    const char *chat_template; /* family name, or NULL: detected */
    const json_t *config;      /* from scratch (method full): a config.json object */
    const char *tokenizer;     /* with config: folder with the tokenizer files */
    bool full;                 /* method "full" (else "lora") */
    rf_lora_config lora;
    rf_loss_config loss;
    rf_optim_config optim;
    int grad_accum, epochs, batch, seq_len, eval_every, checkpoint_every, max_steps;
    uint64_t seed;
    bool export_adapter, export_merged;
} rf_train_job_params;

/* The params table (engine/core/params.h) of the train job. */
extern const rf_param rf_train_params[];

/* The table check, then the rules between fields; strings point into
 * params (keep it alive). */
int rf_train_params_parse(const json_t *params, rf_train_job_params *out, rf_error *err);

#endif
