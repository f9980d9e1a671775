/* bench/w4a16: batch-1 matrix-vector products y = W x on Llama-sized
 * weights, W4A16 (GPTQ layout, group 128, through the op table) beside F32
 * through OpenBLAS (cblas_sgemv) in the same run, and BF16 through the
 * engine's own matmul (AVX2 dot products converting in registers): Debian's
 * OpenBLAS 0.3.21 is built without BUILD_BFLOAT16, so cblas_sbgemv is
 * declared in cblas.h but absent from the library.
 * Prints the median time of each, the achieved weight bandwidth (weight
 * bytes / time) and the ratios. OpenBLAS runs with every OpenMP thread for
 * its own products (the op table drops it to one thread, see ops_cpu.c). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/quant/gptq_pack.h"
#include "engine/backend/ops.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)g_rng;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over 7 timings, each of enough calls to take ~50 ms. */
#define TIME(out, stmt)                                                                            \
    do {                                                                                           \
        stmt;                                                                                      \
        int reps_ = 1;                                                                             \
        double t0_ = now();                                                                        \
        stmt;                                                                                      \
        double one_ = now() - t0_;                                                                 \
        reps_ = one_ > 0 ? (int)(0.05 / one_) + 1 : 100;                                           \
        double ts_[7];                                                                             \
        for (int r_ = 0; r_ < 7; r_++) {                                                           \
            t0_ = now();                                                                           \
            for (int i_ = 0; i_ < reps_; i_++)                                                     \
                stmt;                                                                              \
            ts_[r_] = (now() - t0_) / reps_;                                                       \
        }                                                                                          \
        qsort(ts_, 7, sizeof(double), cmp);                                                        \
        out = ts_[3];                                                                              \
    } while (0)

static void run(int N, int K)
{
    const int G = K / 128, threads = omp_get_max_threads();
    float *wf = malloc(sizeof(float) * (size_t)N * K), *x = malloc(sizeof(float) * K);
    uint16_t *wb = malloc(2 * (size_t)N * K);
    float *y = malloc(sizeof(float) * N), *y4 = malloc(sizeof(float) * N);
    for (size_t i = 0; i < (size_t)N * K; i++)
        wf[i] = ((int)(rnd() % 2001) - 1000) * 1e-5f;
    for (int i = 0; i < K; i++)
        x[i] = ((int)(rnd() % 2001) - 1000) * 1e-3f;
    rf_from_f32(RF_DTYPE_BF16, wf, wb, (size_t)N * K);
    rf_gptq_packed p;
    rf_error err = {0};
    int64_t sq[2] = {K / 8, N}, sz[2] = {G, N / 8}, ss[2] = {G, N}, sg[1] = {K};
    rf_tensor_alloc(&p.qweight, RF_DTYPE_I32, 2, sq, &err);
    rf_tensor_alloc(&p.qzeros, RF_DTYPE_I32, 2, sz, &err);
    rf_tensor_alloc(&p.scales, RF_DTYPE_F16, 2, ss, &err);
    rf_tensor_alloc(&p.g_idx, RF_DTYPE_I32, 1, sg, &err);
    uint32_t *qw = p.qweight.data, *qz = p.qzeros.data;
    uint16_t *sc = p.scales.data;
    int32_t *gi = p.g_idx.data;
    for (size_t i = 0; i < (size_t)K / 8 * N; i++)
        qw[i] = rnd();
    for (size_t i = 0; i < (size_t)G * N / 8; i++)
        qz[i] = 0x77777777u;
    for (size_t i = 0; i < (size_t)G * N; i++)
        sc[i] = rf_f32_to_f16(1e-3f);
    for (int k = 0; k < K; k++)
        gi[k] = k / 128;
    rf_gptq_weight w;
    if (rf_gptq_weight_view(&w, &p, "bench", &err) || rf_gptq_weight_prepare(&w, &err)) {
        fprintf(stderr, "bench/w4a16: %s\n", err.msg);
        exit(1);
    }
    const rf_ops *ops = rf_ops_cpu();
    size_t sn = rf_ops_matmul_scratch(K);
    float *scratch = malloc(sizeof(float) * sn);

    double tf, tb, t4;
    openblas_set_num_threads(threads);
    TIME(tf, cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, wf, K, x, 1, 0.0f, y, 1));
    rf_tensor wbt;
    int64_t wshape[2] = {N, K};
    rf_tensor_view(&wbt, RF_DTYPE_BF16, 2, wshape, wb);
    TIME(tb, ops->matmul(y, x, &wbt, NULL, 1, scratch, sn));
    TIME(t4, ops->matmul_w4a16(y4, x, &w, NULL, 1, scratch, sn));
    /* bytes each kernel must read: the weight (W4A16 also its f32 scales and zeros) */
    double bf = 4.0 * N * K, bb = 2.0 * N * K, b4 = 0.5 * N * K + 8.0 * G * N;
    printf("  [%5d x %5d] F32 sgemv  %8.3f ms %6.1f GB/s\n", N, K, tf * 1e3, bf / tf * 1e-9);
    printf("  [%5d x %5d] BF16 engine %7.3f ms %6.1f GB/s\n", N, K, tb * 1e3, bb / tb * 1e-9);
    printf(
        "  [%5d x %5d] W4A16      %8.3f ms %6.1f GB/s   %.2fx F32, %.2fx BF16 (target >= 3x F32)\n",
        N, K, t4 * 1e3, b4 / t4 * 1e-9, tf / t4, tb / t4);
    rf_gptq_weight_release(&w);
    rf_gptq_packed_free(&p);
    free(wf), free(x), free(wb), free(y), free(y4), free(scratch);
}

int main(void)
{
    printf("== bench/w4a16: batch-1 mat-vec, %d threads\n", omp_get_max_threads());
    run(4096, 4096);
    run(14336, 4096);
    run(4096, 14336);
    return 0;
}
