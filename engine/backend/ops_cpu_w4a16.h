/* The CPU backend's W4A16 matmul: activations f32, weights in the GPTQ
 * layout (engine/gptq_pack.h), dequantized on the fly — a tile at a time
 * into per-thread scratch for GEMM-sized batches, in registers for decode.
 * Entry points of the op table in ops_cpu.c. */
#ifndef RF_OPS_CPU_W4A16_H
#define RF_OPS_CPU_W4A16_H

#include <stddef.h>

#include "engine/core/gptq_weight.h"

/* SIMD kernels where the CPU has AVX2/FMA, portable C otherwise. */
void rf_cpu_matmul_w4a16(float *y, const float *x, const rf_gptq_weight *w, const float *bias,
                         int M, float *scratch, size_t scratch_n);
/* The AVX-512 BF16 kernels (ops_cpu_bf16.h) with x in `terms` bf16 parts,
 * bias added: 0, or −1 (nothing written) where they cannot run. */
int rf_cpu_matmul_w4a16_bf16(float *y, const float *x, const rf_gptq_weight *w, const float *bias,
                             int M, int terms, float *scratch, size_t scratch_n);
/* Portable C only. */
void rf_cpu_matmul_w4a16_generic(float *y, const float *x, const rf_gptq_weight *w,
                                 const float *bias, int M, float *scratch, size_t scratch_n);

/* dx += dy·Ŵ (rf_ops.matmul_w4a16_backward); one implementation for both tables. */
void rf_cpu_matmul_w4a16_backward(float *dx, const float *dy, const rf_gptq_weight *w, int M,
                                  float *scratch, size_t scratch_n);

#endif
