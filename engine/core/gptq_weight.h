/* The GPTQ W4A16 weight as the engine reads it (FORMATS.md "GPTQ W4A16
 * checkpoint"): qweight int32 [K/8, N] packed along K, qzeros int32 [G, N/8]
 * packed along N storing zero − 1 ("v1", checkpoint_format "gptq"), scales
 * float16 [G, N], g_idx int32 [K]. Nibble b of a word (bits 4b..4b+3) is
 * element 8r + b. A weight format like rf_tensor, so it sits in core: the
 * backends compute with it, the model loads it, the quantizer writes it
 * (engine/quant/gptq_pack.h). */
#ifndef RF_GPTQ_WEIGHT_H
#define RF_GPTQ_WEIGHT_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

/* A packed layer: four owned tensors (pack) or views of a checkpoint. */
typedef struct rf_gptq_packed {
    rf_tensor qweight, qzeros, scales, g_idx;
} rf_gptq_packed;

/* A validated view of a packed layer, what the W4A16 matmul reads. */
typedef struct rf_gptq_weight {
    int N, K, G;
    const int32_t *qweight; /* [K/8, N] */
    const int32_t *qzeros;  /* [G, N/8] */
    const uint16_t *scales; /* [G, N] float16 */
    const int32_t *g_idx;   /* [K] */
    int monotonic;          /* g_idx[k] == k / (K/G): groups are contiguous runs */
    /* Scales and true zeros as f32, [G, N] each (rf_gptq_weight_prepare):
     * 1/16 of the packed weight for group 128, what the W4A16 matmul reads
     * instead of converting f16 and unpacking zeros in its inner loop. */
    float *sf, *zf;
} rf_gptq_weight;

void rf_gptq_packed_free(rf_gptq_packed *p);
/* Check dtypes, shapes and g_idx values of the four tensors (borrowed) and
 * fill a view. name says which layer in errors. */
int rf_gptq_weight_view(rf_gptq_weight *w, const rf_gptq_packed *p, const char *name,
                        rf_error *err);
/* Fill w->sf and w->zf (owned); rf_gptq_weight_release frees them. */
int rf_gptq_weight_prepare(rf_gptq_weight *w, rf_error *err);
void rf_gptq_weight_release(rf_gptq_weight *w);
/* The loaders' dequantization: W[n, k] = scales[g_idx[k], n] ·
 * (q − (stored_zero + 1)), fp32, each nibble masked with & 0xF. */
void rf_gptq_dequant(const rf_gptq_weight *w, float *W);

/* Nibble b of a packed word, masked before use (a stored −1 would otherwise
 * corrupt its neighbours). */
static inline int rf_gptq_nib(int32_t word, int b)
{
    return (int)(((uint32_t)word >> (4 * b)) & 0xF);
}

#endif
