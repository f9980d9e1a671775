/* rf_tensor: a dtype, a shape of up to four dimensions and a data pointer.
 *
 * The engine keeps weights in the dtype the checkpoint stores (F32, F16 or
 * BF16, see FORMATS.md "safetensors") and borrows them from the mmapped file;
 * only activations and scratch are owned. Row-major and contiguous: the only
 * layout safetensors and the Llama ops use, so no strides. */
#ifndef RF_TENSOR_H
#define RF_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

#define RF_TENSOR_MAX_DIMS 4

typedef enum rf_dtype {
    RF_DTYPE_F32 = 0,
    RF_DTYPE_F16,
    RF_DTYPE_BF16,
    RF_DTYPE_I32,
    /* Storage-only dtypes: the rest of what safetensors files may hold
     * (token ids, masks, fp8 scales); they are read and written, no op
     * computes on them. */
    RF_DTYPE_I64,
    RF_DTYPE_U8,
    RF_DTYPE_I8,
    RF_DTYPE_I16,
    RF_DTYPE_U16,
    RF_DTYPE_U32,
    RF_DTYPE_U64,
    RF_DTYPE_F64,
    RF_DTYPE_BOOL,
    RF_DTYPE_F8_E4M3,
    RF_DTYPE_F8_E5M2,
    RF_DTYPE_COUNT
} rf_dtype;

typedef struct rf_tensor {
    rf_dtype dtype;
    int ndim;
    int64_t shape[RF_TENSOR_MAX_DIMS];
    void *data;
    bool owned; /* data was malloc'ed by rf_tensor_alloc; else borrowed (mmap) */
} rf_tensor;

/* Bytes per element, 0 for an invalid dtype. */
size_t rf_dtype_size(rf_dtype dt);
/* safetensors spelling ("F32", "BF16", …). */
const char *rf_dtype_name(rf_dtype dt);
/* Parse the safetensors spelling; -1 when unknown. */
int rf_dtype_parse(const char *name);

int64_t rf_tensor_numel(const rf_tensor *t);
size_t rf_tensor_nbytes(const rf_tensor *t);
/* Allocate an owned, zeroed tensor. */
int rf_tensor_alloc(rf_tensor *t, rf_dtype dt, int ndim, const int64_t *shape, rf_error *err);
/* A borrowed view of data (the caller keeps data alive). */
void rf_tensor_view(rf_tensor *t, rf_dtype dt, int ndim, const int64_t *shape, void *data);
void rf_tensor_free(rf_tensor *t);
/* True when t has exactly this shape. */
bool rf_tensor_shape_is(const rf_tensor *t, int ndim, const int64_t *shape);
/* "[4, 64]" into buf. */
const char *rf_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* IEEE 754 binary16 and bfloat16 conversions. To f32 is exact; from f32
 * rounds to nearest, ties to even, keeps NaN a (quiet) NaN of the same sign,
 * and overflows to ±Inf. */
float rf_f16_to_f32(uint16_t h);
uint16_t rf_f32_to_f16(float f);
float rf_bf16_to_f32(uint16_t b);
uint16_t rf_f32_to_bf16(float f);

/* Convert n elements of src (F32, F16 or BF16) to f32; RF_EINVAL otherwise. */
int rf_to_f32(rf_dtype dt, const void *src, float *dst, size_t n);
/* Convert n f32 values into dst of dtype F32, F16 or BF16. */
int rf_from_f32(rf_dtype dt, const float *src, void *dst, size_t n);

#endif
