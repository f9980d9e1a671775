/* rf_llama_config: the Hugging Face config.json of a Llama-family model
 * (model_type llama, mistral, qwen2), validated, with the defaults the
 * reference configuration classes use for fields a file leaves out. */
#ifndef RF_LLAMA_CONFIG_H
#define RF_LLAMA_CONFIG_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/backend/ops.h"

#define RF_LLAMA_MAX_EOS 8

typedef enum rf_llama_arch { RF_ARCH_LLAMA, RF_ARCH_MISTRAL, RF_ARCH_QWEN2 } rf_llama_arch;

typedef struct rf_llama_config {
    rf_llama_arch arch;
    int dim;        /* hidden_size */
    int hidden_dim; /* intermediate_size (SwiGLU width) */
    int n_layers;
    int n_heads;
    int n_kv_heads; /* GQA: each kv head serves n_heads / n_kv_heads query heads */
    int head_dim;   /* head_dim, or hidden_size / num_attention_heads */
    int vocab_size;
    int max_pos; /* max_position_embeddings */
    double rms_eps;
    double rope_theta;
    /* rope_scaling {"rope_type": "llama3", …}: FORMATS.md "Llama checkpoints" */
    bool rope_llama3;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_max_pos;
    bool tie_embeddings;
    bool qkv_bias;      /* qwen2, or llama with attention_bias */
    bool o_bias;        /* llama with attention_bias */
    int sliding_window; /* mistral; 0 when attention sees the whole past */
    bool gptq;          /* quantization_config says GPTQ W4A16 (the linears are 4-bit) */
    int bos_id;         /* -1 when unknown */
    int eos_ids[RF_LLAMA_MAX_EOS];
    int n_eos;
} rf_llama_config;

/* Parse a config.json object. Unsupported architectures or fields give
 * RF_EUNSUPPORTED, invalid values RF_EINVAL; err->field names the field. */
int rf_llama_config_parse(rf_llama_config *c, const json_t *root, rf_error *err);
/* Read and parse dir/config.json. */
int rf_llama_config_load(rf_llama_config *c, const char *dir, rf_error *err);
/* The inverse RoPE frequencies, head_dim/2 of them, llama3 rescaling
 * applied when configured. */
void rf_llama_rope_inv_freq(const rf_llama_config *c, float *inv_freq);

#endif
