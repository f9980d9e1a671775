/* The Llama-family model (llama, mistral, qwen2) in the manner of llama2.c:
 * a config, the weights (borrowed from the mmapped safetensors, in their
 * stored dtype, dense or GPTQ), and the activations of one inference run,
 * allocated once per (batch, sequence length). Batched prefill and
 * incremental decode share one function; the KV cache lives in the
 * activations. Every block runs through rf_block_forward
 * (engine/model/block.h), the one forward that evaluation, GPTQ calibration
 * and training call too. */
#ifndef RF_LLAMA_H
#define RF_LLAMA_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/core/error.h"
#include "engine/core/util.h"
#include "engine/model/linear.h"
#include "engine/model/llama_config.h"
#include "engine/backend/ops.h"
#include "engine/core/safetensors.h"
#include "engine/core/tensor.h"

typedef struct rf_llama_layer {
    const float *attn_norm, *ffn_norm; /* [dim], f32 */
    /* q, k, v, o, gate, up, down (engine/model/linear.h): each dense in its
     * stored dtype or GPTQ W4A16 (a checkpoint's qweight/qzeros/scales/g_idx),
     * with its bias when the config has one */
    rf_linear lin[RF_LIN_COUNT];
} rf_llama_layer;

typedef struct rf_llama_weights {
    rf_tensor embed; /* [vocab, dim] */
    rf_llama_layer *layers;
    const float *norm; /* [dim] */
    /* [vocab, dim]: the embedding itself when tied, GPTQ when quantize_lm_head */
    rf_linear lm_head;
    /* Norm weights and biases converted to f32, in one block: they are a few
     * KiB per layer, and converting them keeps every op f32 on activations. */
    float *small;
} rf_llama_weights;

typedef struct rf_llama_model {
    rf_llama_config config;
    rf_llama_weights w;
    rf_st_model st;
    const rf_ops *ops;
    float *inv_freq;     /* [head_dim/2] */
    size_t weight_bytes; /* bytes of mapped tensor data (resident once touched) */
    int n_gptq;          /* linear layers loaded in the GPTQ layout */
} rf_llama_model;

typedef struct rf_llama_acts {
    int max_batch;   /* sequences, each with its own KV cache slot */
    int max_seq;     /* positions per slot */
    int max_tokens;  /* new tokens per sequence in one forward call */
    float *x;        /* [rows, dim] residual stream; rows = max_batch·max_tokens */
    float *xb;       /* [rows, max(dim, q_dim)] normed input / projection output */
    float *q;        /* [rows, n_heads·head_dim] */
    float *k, *v;    /* [rows, n_kv_heads·head_dim] */
    float *att;      /* [rows, n_heads·head_dim] attention output */
    float *hb, *hb2; /* [rows, hidden_dim] SwiGLU */
    /* [n_layers, max_batch, max_seq, kv_dim], f32: 4·2·layers·kv_dim bytes per
     * position (940 MiB for Llama-3.2-3B at 4096 positions) */
    float *key_cache;
    float *value_cache;
    float *scratch; /* weight tiles converted to f32 (see rf_ops.matmul) */
    size_t scratch_n;
    float *logits; /* [max_batch, vocab] last-position logits of the last call */
    int *pos;      /* [rows] position of each row */
    float *arena;  /* everything above, one allocation */
    size_t bytes;
} rf_llama_acts;

/* Threads: a loaded model is read-only, so any number of threads may run it
 * at once, each with its own rf_llama_acts. */

/* Load dir (config.json + model.safetensors or its index). ops NULL means
 * the CPU table. */
int rf_llama_load(rf_llama_model *m, const char *dir, const rf_ops *ops, rf_error *err);
void rf_llama_free(rf_llama_model *m);
/* Bytes the loaded weights occupy once touched: the mapped tensors plus
 * what loading made beside them (a GPTQ layer's scales and zeros as f32,
 * 8 bytes per group and channel). What "resident bytes" means in results. */
size_t rf_llama_resident_bytes(const rf_llama_model *m);

int rf_llama_acts_init(rf_llama_acts *a, const rf_llama_config *c, int max_batch, int max_seq,
                       int max_tokens, rf_error *err);
void rf_llama_acts_free(rf_llama_acts *a);

/* Run B sequences (slots 0..B-1) of T new tokens each: ids [B, T], sequence
 * b's tokens at positions pos0[b]..pos0[b]+T-1 (its cache must already hold
 * positions 0..pos0[b]-1). Logits go to logits_out: [B, T, vocab] when
 * all_logits, else [B, vocab] for each sequence's last token; logits_out may
 * be NULL (then only a->logits is filled, with the last tokens'). */
int rf_llama_forward(const rf_llama_model *m, rf_llama_acts *a, int B, int T, const int *ids,
                     const int *pos0, float *logits_out, bool all_logits, rf_error *err);

/* The inputs of a block's linear layers, by stage: 0 the normed input of
 * q/k/v_proj [rows, dim], 1 the attention output that o_proj reads
 * [rows, n_heads·head_dim], 2 the normed input of gate/up_proj [rows, dim],
 * 3 the SwiGLU output that down_proj reads [rows, hidden_dim]. */
typedef void (*rf_llama_observe_fn)(void *user, int stage, const float *x, int rows, int cols);

/* One block alone, for quantization (each block fed the outputs of the
 * already-quantized ones): sequence slot 0, T tokens at positions 0..T-1,
 * input and output in a->x [T, dim]. observe (may be NULL) sees each
 * stage's input; the block stops after stage `stop` (4: runs it all, a->x
 * then holds the block's output). */
int rf_llama_layer_forward(const rf_llama_model *m, rf_llama_acts *a, int l, int T, int stop,
                           rf_llama_observe_fn observe, void *user, rf_error *err);

/* Copy the KV cache of positions [0, n_pos) from slot `from` to slot `to`
 * (a shared prompt, prefilled once). */
void rf_llama_copy_slot(const rf_llama_model *m, rf_llama_acts *a, int from, int to, int n_pos);

/* Greedy decoding in slot 0: prefill prompt (in chunks of max_tokens), then
 * n_new tokens written to out. Stops early at an EOS only if stop_at_eos;
 * returns the number of tokens generated, or a negative RF_E… code. */
int rf_llama_generate_greedy(const rf_llama_model *m, rf_llama_acts *a, const int *prompt,
                             int n_prompt, int n_new, bool stop_at_eos, int *out, rf_error *err);

/* Score a sequence in slot 0: *logprob_sum = Σ log p(ids[i] | ids[<i]) over
 * i in [start, n), and *all_greedy whether each of those tokens was also the
 * argmax (lm-evaluation-harness's is_greedy). The basis of perplexity and of
 * multiple-choice log-likelihood. Runs in chunks of a->max_tokens;
 * logits_scratch holds [max_tokens, vocab] floats. all_greedy may be NULL. */
int rf_llama_score(const rf_llama_model *m, rf_llama_acts *a, const int *ids, int n, int start,
                   float *logits_scratch, double *logprob_sum, bool *all_greedy, rf_error *err);

#endif
