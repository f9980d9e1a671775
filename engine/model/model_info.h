/* What a Hugging Face checkpoint folder holds, checked before it is accepted:
 * config.json (a JSON object with model_type), safetensors weights (single, or
 * sharded with model.safetensors.index.json; every header validated), and a
 * tokenizer.json the engine can load. */
#ifndef RF_MODEL_INFO_H
#define RF_MODEL_INFO_H

#include <jansson.h>
#include <stdint.h>

#include "engine/core/error.h"

typedef struct rf_model_info {
    char architecture[64]; /* config.json model_type, e.g. "llama" */
    char dtype[16];        /* the floating dtype holding most bytes: float32, float16, bfloat16 */
    uint64_t parameters;   /* weights counted unpacked (a 4-bit GPTQ word holds 8) */
    uint64_t bytes;        /* the safetensors files: the weights as stored */
    json_t *quantization;  /* config.json quantization_config, or NULL */
} rf_model_info;

/* On failure err says which file and what is wrong. */
int rf_model_inspect(const char *dir, rf_model_info *info, rf_error *err);
void rf_model_info_clear(rf_model_info *info);

#endif
