#include "engine/core/tensor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} g_dtypes[RF_DTYPE_COUNT] = {
    [RF_DTYPE_F32] = {"F32", 4},         [RF_DTYPE_F16] = {"F16", 2},
    [RF_DTYPE_BF16] = {"BF16", 2},       [RF_DTYPE_I32] = {"I32", 4},
    [RF_DTYPE_I64] = {"I64", 8},         [RF_DTYPE_U8] = {"U8", 1},
    [RF_DTYPE_I8] = {"I8", 1},           [RF_DTYPE_I16] = {"I16", 2},
    [RF_DTYPE_U16] = {"U16", 2},         [RF_DTYPE_U32] = {"U32", 4},
    [RF_DTYPE_U64] = {"U64", 8},         [RF_DTYPE_F64] = {"F64", 8},
    [RF_DTYPE_BOOL] = {"BOOL", 1},       [RF_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [RF_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};

size_t rf_dtype_size(rf_dtype dt)
{
    return (unsigned)dt < RF_DTYPE_COUNT ? g_dtypes[dt].size : 0;
}

const char *rf_dtype_name(rf_dtype dt)
{
    return (unsigned)dt < RF_DTYPE_COUNT ? g_dtypes[dt].name : "?";
}

int rf_dtype_parse(const char *name)
{
    for (int i = 0; i < RF_DTYPE_COUNT; i++)
        if (name && strcmp(name, g_dtypes[i].name) == 0) return i;
    return -1;
}

int64_t rf_tensor_numel(const rf_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t rf_tensor_nbytes(const rf_tensor *t)
{
    return (size_t)rf_tensor_numel(t) * rf_dtype_size(t->dtype);
}

void rf_tensor_view(rf_tensor *t, rf_dtype dt, int ndim, const int64_t *shape, void *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim && i < RF_TENSOR_MAX_DIMS; i++)
        t->shape[i] = shape[i];
    t->data = data;
    t->owned = false;
}

int rf_tensor_alloc(rf_tensor *t, rf_dtype dt, int ndim, const int64_t *shape, rf_error *err)
{
    if (ndim < 0 || ndim > RF_TENSOR_MAX_DIMS || rf_dtype_size(dt) == 0)
        return rf_errorf(err, RF_EINVAL, "tensor: bad dtype or %d dimensions", ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return rf_errorf(err, RF_EINVAL, "tensor: negative dimension");
    rf_tensor_view(t, dt, ndim, shape, NULL);
    size_t n = rf_tensor_nbytes(t);
    t->data = calloc(n ? n : 1, 1);
    if (!t->data) return rf_errorf(err, RF_ENOMEM, "tensor: cannot allocate %zu bytes", n);
    t->owned = true;
    return 0;
}

void rf_tensor_free(rf_tensor *t)
{
    if (!t) return;
    if (t->owned) free(t->data);
    t->data = NULL;
    t->owned = false;
}

bool rf_tensor_shape_is(const rf_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

const char *rf_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "[");
    for (int i = 0; i < ndim; i++)
        n +=
            (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%" PRId64, i ? ", " : "", shape[i]);
    snprintf(buf + n, n < cap ? cap - n : 0, "]");
    return buf;
}

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float rf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant · 2^-24, exact in f32 */
        float v = (float)mant * 0x1p-24f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t rf_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) /* Inf stays Inf; NaN stays NaN, forced quiet */
        return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 | ((a >> 13) & 0x3ff) : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* ≥ 65520 rounds to Inf */
    if (a < 0x38800000u) {
        /* Below the smallest normal (2^-14): adding 0.5 aligns the f16
         * subnormal's units with the f32 mantissa's last bits, and the FPU's
         * round-to-nearest-even does the rounding. */
        float v = bits_f32(a) + 0.5f;
        return (uint16_t)(sign | (f32_bits(v) - 0x3f000000u));
    }
    uint32_t odd = (a >> 13) & 1;
    a += ((uint32_t)(15 - 127) << 23) + 0xfff + odd; /* rebias, round half to even */
    return (uint16_t)(sign | (a >> 13));
}

float rf_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
}

uint16_t rf_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);                                           /* ties to even */
    return (uint16_t)(x >> 16);
}

int rf_to_f32(rf_dtype dt, const void *src, float *dst, size_t n)
{
    switch (dt) {
    case RF_DTYPE_F32:
        memcpy(dst, src, n * 4);
        return 0;
    case RF_DTYPE_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = bits_f32((uint32_t)s[i] << 16);
        return 0;
    }
    case RF_DTYPE_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = rf_f16_to_f32(s[i]);
        return 0;
    }
    default:
        return RF_EINVAL;
    }
}

int rf_from_f32(rf_dtype dt, const float *src, void *dst, size_t n)
{
    switch (dt) {
    case RF_DTYPE_F32:
        memcpy(dst, src, n * 4);
        return 0;
    case RF_DTYPE_BF16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = rf_f32_to_bf16(src[i]);
        return 0;
    }
    case RF_DTYPE_F16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = rf_f32_to_f16(src[i]);
        return 0;
    }
    default:
        return RF_EINVAL;
    }
}
