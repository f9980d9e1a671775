/* bench/gptq: seconds to GPTQ one 4096x4096 layer (sym, group 128, block
 * 128) with calibration activations of SEQS sequences x SEQLEN tokens
 * (default 128 x 2048): the Hessian accumulation (rf_hessian_add, cblas
 * ssyrk) and the quantization (rf_gptq_quantize) timed apart. Activation
 * generation is not timed. Writes W, H and our integers to OUT so that the
 * torch reference (bench/gptq/gptq_torch.py) quantizes the same layer.
 * usage: gptq OUT.safetensors [N K SEQS SEQLEN] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/quant/gptq.h"
#include "engine/backend/blas_core.h"
#include "engine/core/safetensors.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t g_s = 0x2545F4914F6CDD1Dull;
static float frand(void) /* roughly unit-variance, symmetric */
{
    g_s ^= g_s << 13;
    g_s ^= g_s >> 7;
    g_s ^= g_s << 17;
    return ((float)(g_s >> 40) / (float)(1 << 24) - 0.5f) * 3.46f;
}

int main(int argc, char **argv)
{
    rf_blas_core_reexec(argv);
    if (argc < 2) {
        fprintf(stderr, "usage: gptq OUT.safetensors [N K SEQS SEQLEN]\n");
        return 2;
    }
    const int N = argc > 2 ? atoi(argv[2]) : 4096, K = argc > 3 ? atoi(argv[3]) : 4096;
    const int seqs = argc > 4 ? atoi(argv[4]) : 128, len = argc > 5 ? atoi(argv[5]) : 2048;
    rf_error err = {0};
    float *W = malloc(sizeof(float) * (size_t)N * K), *X = malloc(sizeof(float) * (size_t)len * K);
    float *chan = malloc(sizeof(float) * K);
    for (size_t i = 0; i < (size_t)N * K; i++)
        W[i] = frand() * 0.02f;
    for (int k = 0; k < K; k++) /* a few outlier channels, as real activations have */
        chan[k] = k % 97 == 0 ? 20.0f : 1.0f;
    rf_hessian h;
    if (rf_hessian_init(&h, K, &err)) return 1;
    double th = 0;
    for (int s = 0; s < seqs; s++) {
        for (size_t i = 0; i < (size_t)len * K; i++)
            X[i] = frand() * chan[i % K];
        double t0 = now();
        rf_hessian_add(&h, X, len, 1);
        th += now() - t0;
    }
    double t0 = now();
    rf_hessian_finish(&h);
    th += now() - t0;
    rf_gptq_opts o;
    rf_gptq_opts_default(&o);
    rf_qlayer q;
    rf_gptq_stats st;
    t0 = now();
    if (rf_gptq_quantize(W, N, K, h.H, &o, NULL, NULL, &q, &st, &err)) {
        fprintf(stderr, "gptq: %s\n", err.msg);
        return 1;
    }
    double tq = now() - t0;
    printf("refinery  hessian %.2f s  gptq %.2f s  total %.2f s  (N=%d K=%d, %d x %d tokens)\n", th,
           tq, th + tq, N, K, seqs, len);
    int64_t sw[2] = {N, K}, sh[2] = {K, K}, sq[2] = {N, K}, st1[1] = {2};
    rf_tensor tw, th_, tq_, tt;
    rf_tensor_view(&tw, RF_DTYPE_F32, 2, sw, W);
    rf_tensor_view(&th_, RF_DTYPE_F32, 2, sh, h.H);
    rf_tensor_view(&tq_, RF_DTYPE_U8, 2, sq, q.q);
    float times[2] = {(float)th, (float)tq};
    rf_tensor_view(&tt, RF_DTYPE_F32, 1, st1, times);
    rf_st_item items[4] = {{"W", &tw}, {"H", &th_}, {"q", &tq_}, {"seconds", &tt}};
    if (rf_st_write(argv[1], items, 4, &err)) {
        fprintf(stderr, "gptq: %s\n", err.msg);
        return 1;
    }
    rf_qlayer_free(&q);
    rf_hessian_free(&h);
    free(W), free(X), free(chan);
    return 0;
}
