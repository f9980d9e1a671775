/* The CPU backend's AVX-512 BF16 kernels: GEMM on packed panels for BF16
 * and GPTQ W4A16 weights (vdpbf16ps on bf16 pairs, or f32 FMAs on the same
 * operands widened, see rf_bf16_gemm_form), and the W4A16 product of
 * decode's few rows (vdpbf16ps). Chosen at run time by ops_cpu.c and ops_cpu_w4a16.c when the CPU
 * has avx512f/bw/vl and avx512_bf16 (rf_cpu_has_bf16); nothing here runs
 * otherwise.
 *
 * Activations enter as `terms` bf16 parts: 1 rounds x to bf16 (what a bf16
 * linear in PyTorch computes: the rf_ops_cpu_bf16 table); 2 writes x as
 * hi + lo, hi = bf16(x), lo = bf16(x − hi), so that |x − hi − lo| ≤ 2⁻¹⁷|x|
 * and the products, exact in f32, sum to the f32 result within f32 rounding
 * (the rf_ops_cpu table, whose contract is f32 activations). Weights enter
 * exactly: bf16 values as stored, W4A16 integers q as bf16 (exact for
 * 0..15; decode uses 1 + q/16, as exact) with the group's scale and zero
 * applied in f32 after each group,
 * y = Σ_g s_g · (Σ_{k∈g} x_k q_k − z_g Σ_{k∈g} x_k). Accumulation is f32.
 *
 * Every entry returns 0, or −1 without writing y when it cannot run here
 * (no AVX-512 BF16, scratch too small, a layout it does not take: act-order
 * g_idx, groups not a multiple of 8): the caller then runs its other
 * kernel. */
#ifndef RF_OPS_CPU_BF16_H
#define RF_OPS_CPU_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/gptq_weight.h"

/* 1 when the AVX-512 BF16 kernels can run on this CPU (and OS). */
int rf_cpu_has_bf16(void);

/* The GEMMs' (prefill's) micro-kernel: vdpbf16ps on bf16 pairs, or f32
 * FMAs on the same operands widened exactly (x as the sum of its terms,
 * the weights as the values they hold). Which runs faster differs by CPU
 * (Intel's recent cores issue vdpbf16ps at well under half the rate of
 * their FMAs, AMD's Zen 4 twice it), so the first use times both on one
 * core (about 0.2 ms) and takes the faster; results differ between the two
 * only by the order of f32 additions. */
typedef enum { RF_BF16_GEMM_AUTO, RF_BF16_GEMM_DP, RF_BF16_GEMM_FMA } rf_bf16_gemm_form;

/* The form the GEMMs use, and the measured per-core GFLOP/s of each (either
 * pointer may be NULL; 0 without AVX-512 BF16). */
rf_bf16_gemm_form rf_cpu_bf16_gemm_form(double *dp_gflops, double *fma_gflops);

/* Forces a form (tests, benchmarks); AUTO returns to the measured one. Not
 * safe while a GEMM runs. */
void rf_cpu_bf16_set_gemm_form(rf_bf16_gemm_form f);

/* y[M, N] = x[M, K] · Wᵀ for a row-major bf16 W [N, K]; bias not added. */
int rf_cpu_bf16_gemm(float *y, const float *x, const uint16_t *w, int M, int N, int K, int terms,
                     float *scratch, size_t scratch_n);

/* y[M, N] = x[M, K] · Ŵᵀ for a GPTQ weight (rf_gptq_weight_prepare'd),
 * GEMM-sized M (prefill): tiles of 64 output channels dequantized into
 * bf16 panels. */
int rf_cpu_bf16_gemm_w4(float *y, const float *x, const rf_gptq_weight *w, int M, int terms,
                        float *scratch, size_t scratch_n);

/* The same for few rows (decode, M ≤ 7): the packed words are dequantized
 * in registers and streamed once, threads splitting the groups (each its
 * own partial sums, added at the end) or, for wide layers, the channels. */
int rf_cpu_bf16_gemv_w4(float *y, const float *x, const rf_gptq_weight *w, int M, int terms,
                        float *scratch, size_t scratch_n);

#endif
