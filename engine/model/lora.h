/* LoRA adapters in PEFT's layout (FORMATS.md "PEFT LoRA adapter"): for a
 * targeted linear W [out, in], y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ with
 * A [r, in], B [out, r], s = lora_alpha/r (rsLoRA: lora_alpha/√r).
 * Every A and B (and their gradients) live in one f32 block each. */
#ifndef RF_LORA_H
#define RF_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/model/llama.h"

typedef enum rf_lora_target {
    RF_LORA_Q = 0,
    RF_LORA_K,
    RF_LORA_V,
    RF_LORA_O,
    RF_LORA_GATE,
    RF_LORA_UP,
    RF_LORA_DOWN,
    RF_LORA_NTARGETS
} rf_lora_target;
#define RF_LORA_ALL ((1u << RF_LORA_NTARGETS) - 1)

/* "q_proj", … "down_proj": PEFT's target_modules names. */
const char *rf_lora_target_name(int t);
/* Its module path under a layer: "self_attn.q_proj", "mlp.down_proj". */
const char *rf_lora_target_path(int t);
/* Parse "q_proj" (or "q"); -1 when unknown. */
int rf_lora_target_parse(const char *name);

typedef struct rf_lora_config {
    int r;
    float alpha;
    float dropout; /* probability in [0, 1) */
    bool rslora;
    unsigned targets; /* bit per rf_lora_target; RF_LORA_ALL by default */
    uint64_t seed;    /* initialisation and dropout masks */
} rf_lora_config;

typedef struct rf_lora_pair {
    float *A, *B;   /* [r, in], [out, r]; NULL when the module is not a target */
    float *dA, *dB; /* gradients, same shapes */
    int in, out;
} rf_lora_pair;

typedef struct rf_lora {
    rf_lora_config cfg;
    int n_layers;
    float scale;         /* s */
    rf_lora_pair *pairs; /* [n_layers][RF_LORA_NTARGETS] */
    float *params, *grads;
    size_t n_params;
} rf_lora;

/* Shapes from the model config; A Kaiming-uniform as PEFT
 * (kaiming_uniform_(a=√5): U(−1/√in, 1/√in)), B zero, from cfg->seed. */
int rf_lora_init(rf_lora *lo, const rf_llama_config *c, const rf_lora_config *cfg, rf_error *err);
void rf_lora_free(rf_lora *lo);
rf_lora_pair *rf_lora_at(const rf_lora *lo, int layer, int target);
/* The base weight a target adapts. */
const rf_tensor *rf_lora_base_weight(const rf_llama_weights *w, int layer, int target);

/* Dropout keep-mask scale of element i of (step, layer, target): 0 or
 * 1/(1−p), from a counter-based hash so backward recomputes it. */
float rf_lora_dropout(const rf_lora *lo, uint64_t step, int layer, int target, size_t i);

/* W ← W + sign·s·B·A in place (sign +1 merge, −1 unmerge) on a writable
 * tensor of dtype F32, F16 or BF16 (converted row by row). */
int rf_lora_merge_into(const rf_lora *lo, int layer, int target, rf_tensor *w, int sign,
                       rf_error *err);

/* PEFT export: dir/adapter_config.json and dir/adapter_model.safetensors
 * (base_model.model.model.layers.{i}.<path>.lora_A.weight [r, in],
 * .lora_B.weight [out, r], f32). */
int rf_lora_save_peft(const rf_lora *lo, const char *dir, const char *base_model, rf_error *err);
/* PEFT import: reads the config (r, lora_alpha, use_rslora, lora_dropout,
 * target_modules) and the tensors, checking shapes against c. */
int rf_lora_load_peft(rf_lora *lo, const rf_llama_config *c, const char *dir, rf_error *err);
/* Merged checkpoint in Hugging Face layout: every tensor of base (read from
 * base_dir) in its stored dtype, targeted weights replaced by W + s·B·A;
 * config and tokenizer files copied from base_dir. */
int rf_lora_export_merged(const rf_lora *lo, const rf_llama_model *base, const char *base_dir,
                          const char *out_dir, rf_error *err);
/* Copy config.json, generation_config.json and the tokenizer files that
 * exist in src_dir to out_dir (created): what a checkpoint needs beside
 * its weights. */
int rf_copy_model_files(const char *src_dir, const char *out_dir, rf_error *err);

#endif
