/* rf_ops: the op table a backend fills. The Llama forward pass calls only
 * these, so a CUDA backend replaces the table and nothing else. The CPU
 * table (rf_ops_cpu) is the reference every other backend is tested
 * against (tests/unit/test_ops.c).
 *
 * Activations are f32, row-major; weights are rf_tensors in their stored
 * dtype (F32, F16, BF16). */
#ifndef RF_OPS_H
#define RF_OPS_H

#include <stddef.h>

#include "engine/core/gptq_weight.h"
#include "engine/core/tensor.h"

/* Largest head_dim attention handles (its accumulator lives on the stack). */
#define RF_OPS_MAX_HEAD_DIM 512

/* Causal attention of one sequence against its KV cache. */
typedef struct rf_attn_args {
    int T;    /* new tokens (query rows) */
    int pos0; /* position of the first new token; keys 0..pos0+T-1 are cached */
    int n_heads, n_kv_heads, head_dim;
    /* Sliding window: key j visible from query i when i - j < window, as
     * transformers' sliding_window_overlay (kv_idx > q_idx - window); 0: none */
    int window;
    float scale;    /* 1/sqrt(head_dim) */
    const float *q; /* [T, n_heads·head_dim] */
    const float *k; /* [pos0+T, n_kv_heads·head_dim] */
    const float *v; /* same */
    float *out;     /* [T, n_heads·head_dim] */
} rf_attn_args;

typedef struct rf_ops {
    const char *name;
    /* y[M,N] = x[M,K] · Wᵀ (+ bias[N]) for W [N, K] of dtype F32/F16/BF16.
     * scratch (scratch_n floats, at least rf_ops_matmul_scratch(K)) holds
     * weight tiles converted to f32, so no f32 copy of the model exists. */
    void (*matmul)(float *y, const float *x, const rf_tensor *w, const float *bias, int M,
                   float *scratch, size_t scratch_n);
    /* The same product for a GPTQ 4-bit weight [N, K] (W4A16): dequantized
     * on the fly, tile by tile into scratch (same size rule as matmul) or in
     * registers; w must have been through rf_gptq_weight_prepare. */
    void (*matmul_w4a16)(float *y, const float *x, const rf_gptq_weight *w, const float *bias,
                         int M, float *scratch, size_t scratch_n);
    /* y = x / sqrt(mean(x²) + eps) · w, per row of D. y may alias x. */
    void (*rmsnorm)(float *y, const float *x, const float *w, int M, int D, float eps);
    /* Rotate-half RoPE in place on x [M, n_heads·head_dim]; row m is at
     * position pos[m]; inv_freq has head_dim/2 entries. */
    void (*rope)(float *x, int M, int n_heads, int head_dim, const int *pos, const float *inv_freq);
    void (*attention)(const rf_attn_args *a);
    /* gate[i] = silu(gate[i]) · up[i] */
    void (*swiglu)(float *gate, const float *up, size_t n);
    /* out[m] = table[ids[m]] converted to f32; table [V, D]. */
    void (*embedding)(float *out, const rf_tensor *table, const int *ids, int M);
    /* softmax in place per row of N */
    void (*softmax)(float *x, int M, int N);
    /* y += x */
    void (*add)(float *y, const float *x, size_t n);

    /* ---- backward, in the manner of llm.c: each accumulates (+=) into the
     * gradients it is given, so a value read twice (the residual stream,
     * a kv head shared by a GQA group) sums its gradients. NULL gradient
     * pointers are skipped. ---- */
    /* y = x·Wᵀ: dx[M,K] += dy[M,N]·W; dw[N,K] (f32) += dyᵀ·x; dbias[N] += Σ dy. */
    void (*matmul_backward)(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                            const rf_tensor *w, int M, float *scratch, size_t scratch_n);
    /* y = x·Ŵᵀ for a GPTQ weight Ŵ [N, K] (matmul_w4a16): dx[M,K] += dy[M,N]·Ŵ,
     * Ŵ dequantized a strip of input channels at a time into scratch (at
     * least N floats; rf_ops_matmul_scratch(N) lets every thread work), never
     * as a whole. No dŴ: a 4-bit base is frozen (QLoRA trains adapters on it). */
    void (*matmul_w4a16_backward)(float *dx, const float *dy, const rf_gptq_weight *w, int M,
                                  float *scratch, size_t scratch_n);
    /* y = x·r·w, r = 1/sqrt(mean(x²)+eps): dx += r·w·dy − x·r³/D·Σ(dy·w·x); dw += Σ_m dy·x·r */
    void (*rmsnorm_backward)(float *dx, float *dw, const float *dy, const float *x, const float *w,
                             int M, int D, float eps);
    /* RoPE is a rotation, so its backward rotates dx back (angle −θ), in place. */
    void (*rope_backward)(float *dx, int M, int n_heads, int head_dim, const int *pos,
                          const float *inv_freq);
    /* a->out must hold the forward output (a->q, k, v its inputs). dq
     * [T, n_heads·hd], dk and dv shaped like a->k (keys 0..pos0+T-1).
     * Probabilities are recomputed, not stored: no [T, T] buffer. */
    void (*attention_backward)(const rf_attn_args *a, const float *dout, float *dq, float *dk,
                               float *dv);
    /* h = silu(gate)·up, gate the pre-activation:
     * dgate += dh·up·silu'(gate), dup += dh·silu(gate) */
    void (*swiglu_backward)(float *dgate, float *dup, const float *dh, const float *gate,
                            const float *up, size_t n);
    /* dtable[ids[m]] += dy[m]; dtable [V, D] f32. */
    void (*embedding_backward)(float *dtable, const float *dy, const int *ids, int M, int D);
} rf_ops;

/* The CPU table. Its ops thread with OpenMP (OMP_NUM_THREADS), and on first
 * use it sets OpenBLAS to one thread, process-wide: GEMM tiles then run
 * inside the OpenMP threads instead of beside them (see ops_cpu.c). */
const rf_ops *rf_ops_cpu(void);
/* The same backend with portable C kernels only (what a CPU without AVX2 or
 * F16C runs): the op tests check it as a backend of its own. */
const rf_ops *rf_ops_cpu_generic(void);
/* The CPU table with mixed precision for inference: BF16 and W4A16 matmuls
 * take their activations rounded to bf16 (round to nearest even) and sum
 * the exact products in f32 — what a bf16 linear computes in PyTorch, and
 * what lets the AVX-512 BF16 dot products (vdpbf16ps) run at twice the f32
 * rate. F32 and F16 weights, and every other op, are as in rf_ops_cpu.
 * rf_ops_cpu keeps f32 activations everywhere (its W4A16 decode runs on
 * the same instructions with x split into three bf16 terms, exact to
 * 2^-26, below f32's own rounding). CPUs without AVX-512 BF16 round x and
 * run the f32 kernels, so the results agree across CPUs. */
const rf_ops *rf_ops_cpu_bf16(void);
/* Floats of scratch the CPU matmul needs for inner dimension K. */
size_t rf_ops_matmul_scratch(int K);

#endif
