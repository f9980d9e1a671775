/* AVX-512 versions of the CPU backend's non-GEMM forward ops (attention,
 * SwiGLU, RMSNorm) and of decode's dense matmuls: the same formulas as
 * ops_cpu.c's portable loops, in f32 (RMSNorm's mean square in double, as
 * there), vectorised 16 lanes
 * wide with an exp accurate to about 1 ulp. ops_cpu.c calls them when the
 * CPU has AVX-512F; each returns 0, or −1 (nothing done) for a shape it
 * does not take, and the caller runs its own loop. */
#ifndef RF_OPS_CPU_AVX512_H
#define RF_OPS_CPU_AVX512_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend/ops.h"
#include "engine/core/tensor.h"

int rf_cpu_has_avx512(void);

/* rf_ops.attention for head_dim a multiple of 16, at most 128. */
int rf_cpu_attention_avx512(const rf_attn_args *a);
/* rf_ops.swiglu */
void rf_cpu_swiglu_avx512(float *gate, const float *up, size_t n);
/* rf_ops.rmsnorm */
void rf_cpu_rmsnorm_avx512(float *y, const float *x, const float *w, int M, int D, float eps);

/* y[M, N] = x[M, K] · Wᵀ for few rows (decode) of a row-major F32, F16 or
 * BF16 W [N, K], in f32 (K a multiple of 16); bias not added. Threads
 * split the rows of W. */
int rf_cpu_gemv_avx512(float *y, const float *x, const void *w, rf_dtype dt, int M, int N, int K);
/* The same for BF16 W on x rounded to bf16 (the rf_ops_cpu_bf16 product),
 * on vdpbf16ps: only where rf_cpu_has_bf16() (ops_cpu_bf16.h); K a
 * multiple of 32, M·K/2 floats of scratch. */
int rf_cpu_gemv_bf16_dp(float *y, const float *x, const uint16_t *w, int M, int N, int K,
                        float *scratch, size_t scratch_n);

#endif
