/* View, prepare and dequantize GPTQ-packed weights: FORMATS.md "GPTQ W4A16
 * checkpoint". */
#include "engine/core/gptq_weight.h"

#include <stdlib.h>
#include <string.h>

void rf_gptq_packed_free(rf_gptq_packed *p)
{
    rf_tensor_free(&p->qweight);
    rf_tensor_free(&p->qzeros);
    rf_tensor_free(&p->scales);
    rf_tensor_free(&p->g_idx);
}

int rf_gptq_weight_view(rf_gptq_weight *w, const rf_gptq_packed *p, const char *name, rf_error *err)
{
    memset(w, 0, sizeof *w);
    const rf_tensor *qw = &p->qweight, *qz = &p->qzeros, *sc = &p->scales, *gi = &p->g_idx;
    if (qw->dtype != RF_DTYPE_I32 || qw->ndim != 2)
        return rf_errorf(err, RF_EINVAL, "%s.qweight must be a 2-D int32 tensor", name);
    int64_t K = qw->shape[0] * 8, N = qw->shape[1];
    if (sc->dtype != RF_DTYPE_F16 || sc->ndim != 2 || sc->shape[1] != N)
        return rf_errorf(err, RF_EINVAL, "%s.scales must be float16 [G, %lld]", name, (long long)N);
    int64_t G = sc->shape[0];
    if (G < 1 || N % 8)
        return rf_errorf(err, RF_EINVAL, "%s: bad GPTQ shapes (G %lld, N %lld)", name, (long long)G,
                         (long long)N);
    int64_t zshape[2] = {G, N / 8}, gshape[1] = {K};
    if (qz->dtype != RF_DTYPE_I32 || !rf_tensor_shape_is(qz, 2, zshape))
        return rf_errorf(err, RF_EINVAL, "%s.qzeros must be int32 [%lld, %lld]", name, (long long)G,
                         (long long)N / 8);
    if (gi->dtype != RF_DTYPE_I32 || !rf_tensor_shape_is(gi, 1, gshape))
        return rf_errorf(err, RF_EINVAL, "%s.g_idx must be int32 [%lld]", name, (long long)K);
    const int32_t *g = gi->data;
    int monotonic = K % G == 0;
    for (int64_t k = 0; k < K; k++) {
        if (g[k] < 0 || g[k] >= G)
            return rf_errorf(err, RF_EINVAL, "%s.g_idx[%lld] = %d is not a group in [0, %lld)",
                             name, (long long)k, g[k], (long long)G);
        if (monotonic && g[k] != k / (K / G)) monotonic = 0;
    }
    w->N = (int)N;
    w->K = (int)K;
    w->G = (int)G;
    w->qweight = qw->data;
    w->qzeros = qz->data;
    w->scales = sc->data;
    w->g_idx = g;
    w->monotonic = monotonic;
    return 0;
}

int rf_gptq_weight_prepare(rf_gptq_weight *w, rf_error *err)
{
    const size_t n = (size_t)w->G * w->N;
    w->sf = malloc(sizeof(float) * n);
    w->zf = malloc(sizeof(float) * n);
    if (!w->sf || !w->zf) {
        rf_gptq_weight_release(w);
        return rf_errorf(err, RF_ENOMEM, "out of memory for GPTQ scales");
    }
    rf_to_f32(RF_DTYPE_F16, w->scales, w->sf, n);
    for (int g = 0; g < w->G; g++)
        for (int c = 0; c < w->N; c++)
            w->zf[(size_t)g * w->N + c] =
                (float)(rf_gptq_nib(w->qzeros[(size_t)g * (w->N / 8) + c / 8], c % 8) + 1);
    return 0;
}

void rf_gptq_weight_release(rf_gptq_weight *w)
{
    free(w->sf);
    free(w->zf);
    w->sf = w->zf = NULL;
}

void rf_gptq_dequant(const rf_gptq_weight *w, float *W)
{
    const int N = w->N, K = w->K;
    for (int k = 0; k < K; k++) {
        int g = w->g_idx[k];
        for (int n = 0; n < N; n++) {
            int q = rf_gptq_nib(w->qweight[(size_t)(k / 8) * N + n], k % 8);
            int z = rf_gptq_nib(w->qzeros[(size_t)g * (N / 8) + n / 8], n % 8) + 1;
            float s = rf_f16_to_f32(w->scales[(size_t)g * N + n]);
            W[(size_t)n * K + k] = s * (float)(q - z);
        }
    }
}
