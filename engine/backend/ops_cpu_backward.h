/* Backward ops of the CPU table (rf_ops_cpu, rf_ops_cpu_generic): kept
 * apart from the forward kernels of ops_cpu.c so each file reads in one
 * sitting. Contracts are in engine/ops.h. */
#ifndef RF_OPS_CPU_BACKWARD_H
#define RF_OPS_CPU_BACKWARD_H

#include <stddef.h>

#include "engine/backend/ops.h"

void rf_cpu_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                            const rf_tensor *w, int M, float *scratch, size_t scratch_n);
void rf_cpu_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                             int M, int D, float eps);
void rf_cpu_rope_backward(float *dx, int M, int n_heads, int head_dim, const int *pos,
                          const float *inv_freq);
void rf_cpu_attention_backward(const rf_attn_args *a, const float *dout, float *dq, float *dk,
                               float *dv);
void rf_cpu_swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate,
                            const float *up, size_t n);
void rf_cpu_embedding_backward(float *dtable, const float *dy, const int *ids, int M, int D);

#endif
