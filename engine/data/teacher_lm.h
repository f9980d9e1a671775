/* The data teacher as a registered model run in-process on the inference
 * engine: each request's messages through the model's chat template, and
 * up to `batch` requests decoded together (each prompt prefilled into its
 * own KV slot, then one forward pass per step for all of them, every
 * sequence at its own position), stopping on the model's end-of-turn
 * tokens or max_tokens (finish_reason "stop" / "length"). Temperature 0
 * gives what rf_complete gives for each prompt alone. */
#ifndef RF_TEACHER_LM_H
#define RF_TEACHER_LM_H

#include "engine/data/teacher.h"

int rf_teacher_lm_new(const char *model_dir, const char *name, int batch, rf_teacher **out,
                      rf_error *err);

#endif
