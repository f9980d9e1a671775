/* The transformer block, once: rf_block_forward is what inference (prefill
 * and decode through a KV cache), evaluation, GPTQ calibration (observing
 * each stage's input) and training (every activation kept) all run, and
 * rf_block_backward its explicit backward, in the manner of llm.c:
 *
 *   xn1 = rmsnorm(x_in)·attn_norm
 *   q, k, v = rope(q_proj(xn1)), rope(k_proj(xn1)), v_proj(xn1)
 *   att = softmax(q·kᵀ/√d + causal [window] mask)·v   (GQA: a kv head per group)
 *   x_mid = x_in + o_proj(att)
 *   xn2 = rmsnorm(x_mid)·ffn_norm
 *   h = silu(gate_proj(xn2)) · up_proj(xn2)
 *   x_out = x_mid + down_proj(h)
 *
 * Each linear goes through rf_linear_forward (dense or GPTQ, bias, LoRA).
 * Where the activations live is the caller's: rf_block_acts names a buffer
 * for each, and a caller that needs no backward points several at one
 * buffer (the residual stream updated in place). */
#ifndef RF_BLOCK_H
#define RF_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/llama.h"
#include "engine/model/lora.h"

/* A block's activations, [R, ·] each (R = B·T rows). In-place layouts
 * allowed: x_mid and x_out may be x_in, xn2 may be xn1, h may be gate. A
 * backward needs them all distinct (what the forward left there). */
typedef struct rf_block_acts {
    float *x_in;             /* [R, dim] residual stream entering the block */
    float *xn1;              /* [R, dim] attention RMSNorm output */
    float *q, *k, *v;        /* [R, qd], [R, kvd] ×2; q and k after RoPE */
    float *att;              /* [R, qd] attention output (o_proj input) */
    float *x_mid;            /* [R, dim] residual after the attention half */
    float *xn2;              /* [R, dim] MLP RMSNorm output */
    float *gate, *up;        /* [R, hidden] pre-activations */
    float *h;                /* [R, hidden] silu(gate)·up (down_proj input) */
    float *x_out;            /* [R, dim] the block's output */
    float *lu[RF_LIN_COUNT]; /* [R, r] s·drop(x)·Aᵀ of each adapter (with LoRA) */
} rf_block_acts;

/* What one call runs on, besides the weights and the activations. */
typedef struct rf_block_io {
    int B, T;        /* B sequences of T rows each */
    const int *pos;  /* [B·T] position of each row (RoPE) */
    const int *pos0; /* [B] position of each sequence's first row; NULL: all 0 */
    /* This layer's KV cache: sequence b's position p at kcache + b·cache_stride
     * + p·kvd. The new keys and values are written there and attention reads
     * every cached position. NULL: no cache, attention reads k and v of this
     * call (sequences start at position 0); what a backward needs. */
    float *kcache, *vcache;
    size_t cache_stride;
    float *scratch; /* the matmul scratch (rf_ops_matmul_scratch) */
    size_t scratch_n;
    float *tmp; /* [R, dim]: a projection before its residual add, for in-place layouts */
    /* Adapters (NULL: none): the forward count that seeds their dropout
     * masks, and two work buffers [R, max(dim, qd, hidden)]. */
    const rf_lora *lora;
    uint64_t step;
    float *lora_x, *lora_y;
    /* Calibration: observe (may be NULL) sees each stage's input; the block
     * stops right after stage `stop` (4: runs to the end). */
    rf_llama_observe_fn observe;
    void *user;
    int stop;
} rf_block_io;

/* Block l of m with the weights L (the model's own, or a trainer's f32
 * copies of them). */
void rf_block_forward(const rf_llama_model *m, const rf_llama_layer *L, int l,
                      const rf_block_io *io, const rf_block_acts *a);

/* Gradients of a block's own weights (full-parameter training), f32, each
 * NULL when not trained; LoRA gradients go to the adapters themselves. */
typedef struct rf_block_grads {
    float *attn_norm, *ffn_norm;
    float *w[RF_LIN_COUNT], *bias[RF_LIN_COUNT];
} rf_block_grads;

/* Work buffers of the backward, [R, ·] like the activations they mirror. */
typedef struct rf_block_bufs {
    float *dres;             /* [R, dim] in: ∂L/∂x_out; out: ∂L/∂x_in */
    float *dxn;              /* [R, dim] */
    float *dq, *datt;        /* [R, qd] */
    float *dk, *dv;          /* [R, kvd] */
    float *dh, *dgate, *dup; /* [R, hidden] */
} rf_block_bufs;

/* The backward of rf_block_forward with the same m, L, l and io (no KV
 * cache, io->step as the forward had it), from the activations the forward
 * left in a. Accumulates into g and the adapters' gradients. */
void rf_block_backward(const rf_llama_model *m, const rf_llama_layer *L, int l,
                       const rf_block_io *io, const rf_block_acts *a, const rf_block_grads *g,
                       const rf_block_bufs *b);

#endif
