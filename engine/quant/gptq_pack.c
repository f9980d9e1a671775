/* Pack and unpack GPTQ layers: FORMATS.md "GPTQ W4A16
 * checkpoint". Words are built as uint32_t and stored in int32 tensors, so
 * no shift ever touches a sign bit. */
#include <stdlib.h>
#include <string.h>

#include "engine/quant/gptq_pack.h"

int rf_gptq_pack(const rf_qlayer *l, rf_gptq_packed *p, rf_error *err)
{
    memset(p, 0, sizeof *p);
    if (l->bits != 4)
        return rf_error_field(err, RF_EUNSUPPORTED, "bits",
                              "the GPTQ checkpoint layout is written for 4 bits, not %d", l->bits);
    if (l->K % 8 || l->N % 8)
        return rf_errorf(err, RF_EINVAL,
                         "a %dx%d layer cannot be packed: both dimensions must be multiples of 8",
                         l->N, l->K);
    const int N = l->N, K = l->K, G = l->G;
    int64_t sq[2] = {K / 8, N}, sz[2] = {G, N / 8}, ss[2] = {G, N}, sg[1] = {K};
    int rc;
    if ((rc = rf_tensor_alloc(&p->qweight, RF_DTYPE_I32, 2, sq, err)) ||
        (rc = rf_tensor_alloc(&p->qzeros, RF_DTYPE_I32, 2, sz, err)) ||
        (rc = rf_tensor_alloc(&p->scales, RF_DTYPE_F16, 2, ss, err)) ||
        (rc = rf_tensor_alloc(&p->g_idx, RF_DTYPE_I32, 1, sg, err))) {
        rf_gptq_packed_free(p);
        return rc;
    }
    uint32_t *qw = p->qweight.data, *qz = p->qzeros.data;
    for (int r = 0; r < K / 8; r++)
        for (int n = 0; n < N; n++) {
            uint32_t word = 0;
            for (int b = 0; b < 8; b++)
                word |= (uint32_t)(l->q[(size_t)n * K + 8 * r + b] & 0xF) << (4 * b);
            qw[(size_t)r * N + n] = word;
        }
    for (int g = 0; g < G; g++)
        for (int c = 0; c < N / 8; c++) {
            uint32_t word = 0;
            for (int b = 0; b < 8; b++)
                word |= (uint32_t)((l->zeros[(size_t)g * N + 8 * c + b] - 1) & 0xF) << (4 * b);
            qz[(size_t)g * (N / 8) + c] = word;
        }
    rf_from_f32(RF_DTYPE_F16, l->scales, p->scales.data, (size_t)G * N);
    memcpy(p->g_idx.data, l->g_idx, sizeof(int32_t) * K);
    return 0;
}

int rf_gptq_unpack(const rf_gptq_weight *w, rf_qlayer *l, rf_error *err)
{
    int rc = rf_qlayer_alloc(l, w->N, w->K, w->K / w->G, 4, err);
    if (rc) return rc;
    l->G = w->G;
    const int N = w->N, K = w->K;
    for (int r = 0; r < K / 8; r++)
        for (int n = 0; n < N; n++)
            for (int b = 0; b < 8; b++)
                l->q[(size_t)n * K + 8 * r + b] =
                    (uint8_t)rf_gptq_nib(w->qweight[(size_t)r * N + n], b);
    for (int g = 0; g < w->G; g++)
        for (int n = 0; n < N; n++)
            l->zeros[(size_t)g * N + n] =
                rf_gptq_nib(w->qzeros[(size_t)g * (N / 8) + n / 8], n % 8) + 1;
    rf_to_f32(RF_DTYPE_F16, w->scales, l->scales, (size_t)w->G * N);
    memcpy(l->g_idx, w->g_idx, sizeof(int32_t) * K);
    return 0;
}
