/* LoRA adapters in PEFT's layout (FORMATS.md "PEFT LoRA adapter"): for a
 * targeted linear W [out, in], y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ with
 * A [r, in], B [out, r], s = lora_alpha/r (rsLoRA: lora_alpha/√r); the
 * term itself is computed by rf_linear_forward (engine/model/linear.h), over
 * a dense or a GPTQ base alike. Every A and B (and their gradients) live in
 * one f32 block each. */
#ifndef RF_LORA_H
#define RF_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/model/llama.h"

/* Targets are the block's linears (engine/model/linear.h, RF_LIN_*), one
 * bit each; their names are the table's. */
#define RF_LORA_ALL ((1u << RF_LIN_COUNT) - 1)

/* Parse a PEFT target_modules name, "q_proj" (or "q"); -1 when unknown. */
int rf_lora_target_parse(const char *name);

typedef struct rf_lora_config {
    int r;
    float alpha;
    float dropout; /* probability in [0, 1) */
    bool rslora;
    unsigned targets; /* bit per RF_LIN_*; RF_LORA_ALL by default */
    uint64_t seed;    /* initialisation and dropout masks */
} rf_lora_config;

typedef struct rf_lora {
    rf_lora_config cfg;
    int n_layers;
    float scale;         /* s */
    rf_lora_pair *pairs; /* [n_layers][RF_LIN_COUNT] (engine/model/linear.h) */
    float *params, *grads;
    size_t n_params;
} rf_lora;

/* Shapes from the model config; A Kaiming-uniform as PEFT
 * (kaiming_uniform_(a=√5): U(−1/√in, 1/√in)), B zero, from cfg->seed. */
int rf_lora_init(rf_lora *lo, const rf_llama_config *c, const rf_lora_config *cfg, rf_error *err);
void rf_lora_free(rf_lora *lo);
rf_lora_pair *rf_lora_at(const rf_lora *lo, int layer, int target);

/* The seed of the dropout mask of (step, layer, target): element i keeps
 * rf_lin_keep(seed, p, i), 0 or 1/(1−p), a counter-based hash so the
 * backward recomputes the mask. */
uint64_t rf_lora_mask_seed(const rf_lora *lo, uint64_t step, int layer, int target);

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
 * config and tokenizer files copied from base_dir. A GPTQ base is refused
 * (RF_EUNSUPPORTED, field "export"): 4-bit codes cannot hold W + s·B·A, and
 * PEFT itself keeps the adapter beside a GPTQ base rather than merging. */
int rf_lora_export_merged(const rf_lora *lo, const rf_llama_model *base, const char *base_dir,
                          const char *out_dir, rf_error *err);
/* Copy config.json, generation_config.json and the tokenizer files that
 * exist in src_dir to out_dir (created): what a checkpoint needs beside
 * its weights. */
int rf_copy_model_files(const char *src_dir, const char *out_dir, rf_error *err);

#endif
