/* A Llama checkpoint of random weights from a config.json object: how the
 * project trains small models from scratch (the `train` job's method
 * "full" with a config instead of a student). Weights f32, drawn as
 * transformers' LlamaPreTrainedModel does: normal(0, initializer_range,
 * default 0.02) for embeddings and linear layers, ones for the norms, zero
 * biases. */
#ifndef RF_LLAMA_INIT_H
#define RF_LLAMA_INIT_H

#include <jansson.h>
#include <stdint.h>

#include "engine/core/error.h"

/* Validate config (rf_llama_config_parse; err->field names "config.<key>"),
 * then write dir/config.json and dir/model.safetensors. */
int rf_llama_init_random(const char *dir, const json_t *config, uint64_t seed, rf_error *err);

#endif
