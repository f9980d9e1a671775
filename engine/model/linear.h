/* A block's linear layers as an indexed array (q, k, v, o, gate, up, down),
 * in the manner of llm.c, with the one table of their Hugging Face names
 * that loading, LoRA (PEFT target_modules and tensor names), the GPTQ
 * export and the full-parameter save all read.
 *
 * A linear is y = x·Wᵀ (+ bias) + s·(drop(x)·Aᵀ)·Bᵀ, where W is either a
 * dense tensor in its stored dtype or a GPTQ W4A16 weight (FORMATS.md
 * "GPTQ W4A16 checkpoint"), the bias is optional, and the LoRA term
 * (FORMATS.md "PEFT LoRA adapter") is present when the call is given an
 * adapter. rf_linear_forward / rf_linear_backward are the one place that
 * handles each combination. */
#ifndef RF_LINEAR_H
#define RF_LINEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend/ops.h"
#include "engine/core/gptq_weight.h"
#include "engine/core/tensor.h"
#include "engine/core/util.h"
#include "engine/model/llama_config.h"

/* The seven linear layers of a block, in model order. */
enum { RF_LIN_Q, RF_LIN_K, RF_LIN_V, RF_LIN_O, RF_LIN_GATE, RF_LIN_UP, RF_LIN_DOWN, RF_LIN_COUNT };

typedef struct rf_lin_info {
    const char *path; /* module under model.layers.{l}: "self_attn.q_proj" */
    const char *name; /* PEFT's target_modules name: "q_proj" */
    /* The input it reads, as rf_llama_observe_fn numbers them: 0 the normed
     * attention input, 1 the attention output, 2 the normed MLP input, 3 the
     * SwiGLU output. GPTQ calibrates the linears of one stage together. */
    int stage;
} rf_lin_info;

/* Entry i of the table (0 <= i < RF_LIN_COUNT). */
const rf_lin_info *rf_lin(int i);
/* [out, in] of linear i for a config. */
void rf_lin_shape(const rf_llama_config *c, int i, int *out, int *in);
/* Whether linear i has a bias for a config (qwen2's q/k/v, attention_bias). */
bool rf_lin_has_bias(const rf_llama_config *c, int i);
/* "self_attn.q_proj.weight" → RF_LIN_Q with *is_bias false,
 * "self_attn.q_proj.bias" → RF_LIN_Q with *is_bias true; -1 when rest names
 * no linear's weight or bias. */
int rf_lin_parse_tensor(const char *rest, bool *is_bias);

typedef struct rf_linear {
    int out, in;
    rf_tensor w;       /* dense [out, in] in its stored dtype; empty when q is set */
    rf_gptq_weight q;  /* GPTQ W4A16 when q.qweight is set (frozen: no gradient) */
    const float *bias; /* [out] f32, NULL when absent */
} rf_linear;

static inline bool rf_linear_is_gptq(const rf_linear *l)
{
    return l->q.qweight != NULL;
}

/* One LoRA pair in PEFT's layout: A [r, in], B [out, r], both NULL when the
 * module is not a target; gradients of the same shapes. The set of pairs,
 * their initialisation and files: engine/model/lora.h. */
typedef struct rf_lora_pair {
    float *A, *B;
    float *dA, *dB;
    int in, out;
} rf_lora_pair;

/* An adapter as one call sees it. The forward keeps u = s·drop(x)·Aᵀ for
 * the backward; x_tmp [R, in] and y_tmp [R, max(out, r)] are work space. */
typedef struct rf_lin_lora {
    const rf_lora_pair *p;
    int r;
    float scale;   /* s = lora_alpha / r (rsLoRA: / √r) */
    float dropout; /* p in [0, 1) */
    uint64_t seed; /* of this (step, layer, module)'s dropout mask */
    float *u;      /* [R, r] */
    float *x_tmp, *y_tmp;
} rf_lin_lora;

/* Inverted dropout keep-scale of input element i: 0 with probability p,
 * else 1/(1 − p). Counter-based (hash of seed and i) so the backward
 * recomputes the mask instead of storing it. */
static inline float rf_lin_keep(uint64_t seed, float p, size_t i)
{
    return rf_unit53(rf_mix64(seed ^ i)) < p ? 0.0f : 1.0f / (1.0f - p);
}

/* y[R, out] = x[R, in]·Wᵀ (+ bias) (+ the LoRA term when lo). scratch as
 * rf_ops.matmul wants it (rf_ops_matmul_scratch of the largest in). */
void rf_linear_forward(const rf_ops *ops, const rf_linear *l, const rf_lin_lora *lo, float *y,
                       const float *x, int R, float *scratch, size_t scratch_n);

/* The backward of rf_linear_forward with the same l, lo and x (lo->u as
 * the forward left it): dx += ∂/∂x (NULL: skipped), dw [out, in] f32 and
 * dbias [out] += their gradients (NULL: not trained; a GPTQ weight takes
 * none), lo->p->dA, dB += the adapter's. scratch as for the forward, and
 * at least out floats (the W4A16 backward dequantizes strips of out). */
void rf_linear_backward(const rf_ops *ops, const rf_linear *l, const rf_lin_lora *lo, float *dx,
                        float *dw, float *dbias, const float *dy, const float *x, int R,
                        float *scratch, size_t scratch_n);

#endif
