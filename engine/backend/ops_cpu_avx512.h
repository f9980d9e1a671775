/* AVX-512 versions of the CPU backend's non-GEMM forward ops (attention,
 * SwiGLU, RMSNorm): the same formulas as ops_cpu.c's portable loops, in
 * f32 (RMSNorm's mean square in double, as there), vectorised 16 lanes
 * wide with an exp accurate to about 1 ulp. ops_cpu.c calls them when the
 * CPU has AVX-512F; each returns 0, or −1 (nothing done) for a shape it
 * does not take, and the caller runs its own loop. */
#ifndef RF_OPS_CPU_AVX512_H
#define RF_OPS_CPU_AVX512_H

#include <stddef.h>

#include "engine/backend/ops.h"

int rf_cpu_has_avx512(void);

/* rf_ops.attention for head_dim a multiple of 16, at most 128. */
int rf_cpu_attention_avx512(const rf_attn_args *a);
/* rf_ops.swiglu */
void rf_cpu_swiglu_avx512(float *gate, const float *up, size_t n);
/* rf_ops.rmsnorm */
void rf_cpu_rmsnorm_avx512(float *y, const float *x, const float *w, int M, int D, float eps);

#endif
