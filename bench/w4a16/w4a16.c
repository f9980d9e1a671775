/* bench/w4a16: batch-1 matrix-vector products y = W x on Llama-sized
 * weights, as decode runs them: each call reads a different copy of the
 * weight, in rotation over enough copies that the set exceeds the last-level
 * cache several times (decode streams every layer once per token; timing
 * one matrix back to back would time the cache, and a 4-bit matrix fits in
 * it where an f32 one does not). In the same run:
 *   - F32 through OpenBLAS (cblas_sgemv, every OpenMP thread);
 *   - BF16 through the engine's matmul, both op tables (Debian's OpenBLAS
 *     0.3.21 has no cblas_sbgemv: it is built without BUILD_BFLOAT16);
 *   - W4A16 (GPTQ layout, group 128) through both op tables: rf_ops_cpu
 *     (f32 activations) and rf_ops_cpu_bf16 (activations rounded to bf16).
 * Prints the median time of each, the achieved weight bandwidth (bytes it
 * must read / time) beside a streaming read measured here, and the ratios. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/quant/gptq_pack.h"
#include "engine/backend/ops.h"
#include "engine/backend/blas_core.h"

/* copies of each format rotate until their bytes pass this (3x a 32 MiB L3) */
#define ROTATE_BYTES ((size_t)96 << 20)

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

static int copies_for(size_t bytes)
{
    return bytes >= ROTATE_BYTES ? 1 : (int)((ROTATE_BYTES + bytes - 1) / bytes);
}

/* Median over 7 timings, each of enough calls (rotating over the copies,
 * c_ the copy) to take ~50 ms. */
#define TIME(out, ncopies, stmt)                                                                   \
    do {                                                                                           \
        int c_;                                                                                    \
        for (c_ = 0; c_ < (ncopies); c_++) /* touch every copy once */                             \
            stmt;                                                                                  \
        double t0_ = now();                                                                        \
        for (c_ = 0; c_ < (ncopies); c_++)                                                         \
            stmt;                                                                                  \
        double one_ = (now() - t0_) / (ncopies);                                                   \
        int reps_ = one_ > 0 ? (int)(0.05 / one_) + 1 : 100;                                       \
        double ts_[7];                                                                             \
        for (int r_ = 0; r_ < 7; r_++) {                                                           \
            t0_ = now();                                                                           \
            for (int i_ = 0; i_ < reps_; i_++) {                                                   \
                c_ = i_ % (ncopies);                                                               \
                stmt;                                                                              \
            }                                                                                      \
            ts_[r_] = (now() - t0_) / reps_;                                                       \
        }                                                                                          \
        qsort(ts_, 7, sizeof(double), cmp);                                                        \
        out = ts_[3];                                                                              \
    } while (0)

/* A streaming read with every thread, GB/s (best of 5): each thread
 * memchr's its slice for a byte that is not there (glibc's vectorised
 * memchr reads at the memory's pace). The most decode's weights can be read
 * at. */
static double read_bandwidth(void)
{
    const size_t n = (size_t)256 << 20;
    char *a = malloc(n);
    memset(a, 1, n);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        int found = 0;
#pragma omp parallel reduction(+ : found)
        {
            const size_t nt = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
            const size_t chunk = n / nt, off = chunk * id;
            found += memchr(a + off, 2, id + 1 == nt ? n - off : chunk) != NULL;
        }
        double bw = n / (now() - t0) * 1e-9;
        best = bw > best && !found ? bw : best;
    }
    free(a);
    return best;
}

static void run(int N, int K, double rbw)
{
    const int G = K / 128, threads = omp_get_max_threads();
    const size_t nk = (size_t)N * K;
    const int nf = copies_for(4 * nk), nb = copies_for(2 * nk), n4 = copies_for(nk / 2 + 8 * G * N);
    float **wf = malloc(sizeof(float *) * nf), *x = malloc(sizeof(float) * K);
    uint16_t **wb = malloc(sizeof(uint16_t *) * nb);
    float *y = malloc(sizeof(float) * N);
    wf[0] = malloc(sizeof(float) * nk);
    for (size_t i = 0; i < nk; i++)
        wf[0][i] = ((int)(rnd() % 2001) - 1000) * 1e-5f;
    for (int i = 0; i < K; i++)
        x[i] = ((int)(rnd() % 2001) - 1000) * 1e-3f;
    for (int c = 0; c < nb; c++) {
        wb[c] = malloc(2 * nk);
        rf_from_f32(RF_DTYPE_BF16, wf[0], wb[c], nk);
    }
    for (int c = 1; c < nf; c++)
        wf[c] = malloc(sizeof(float) * nk), memcpy(wf[c], wf[0], sizeof(float) * nk);
    rf_gptq_packed *p = calloc((size_t)n4, sizeof *p);
    rf_gptq_weight *w = calloc((size_t)n4, sizeof *w);
    rf_tensor *wbt = calloc((size_t)nb, sizeof *wbt);
    rf_error err = {0};
    int64_t sq[2] = {K / 8, N}, sz[2] = {G, N / 8}, ss[2] = {G, N}, sg[1] = {K}, wsh[2] = {N, K};
    for (int c = 0; c < n4; c++) {
        rf_tensor_alloc(&p[c].qweight, RF_DTYPE_I32, 2, sq, &err);
        rf_tensor_alloc(&p[c].qzeros, RF_DTYPE_I32, 2, sz, &err);
        rf_tensor_alloc(&p[c].scales, RF_DTYPE_F16, 2, ss, &err);
        rf_tensor_alloc(&p[c].g_idx, RF_DTYPE_I32, 1, sg, &err);
        uint32_t *qw = p[c].qweight.data, *qz = p[c].qzeros.data;
        uint16_t *sc = p[c].scales.data;
        int32_t *gi = p[c].g_idx.data;
        for (size_t i = 0; i < (size_t)K / 8 * N; i++)
            qw[i] = rnd();
        for (size_t i = 0; i < (size_t)G * N / 8; i++)
            qz[i] = 0x77777777u;
        for (size_t i = 0; i < (size_t)G * N; i++)
            sc[i] = rf_f32_to_f16(1e-3f);
        for (int k = 0; k < K; k++)
            gi[k] = k / 128;
        if (rf_gptq_weight_view(&w[c], &p[c], "bench", &err) ||
            rf_gptq_weight_prepare(&w[c], &err)) {
            fprintf(stderr, "bench/w4a16: %s\n", err.msg);
            exit(1);
        }
    }
    for (int c = 0; c < nb; c++)
        rf_tensor_view(&wbt[c], RF_DTYPE_BF16, 2, wsh, wb[c]);
    const rf_ops *ex = rf_ops_cpu(), *bf = rf_ops_cpu_bf16();
    size_t sn = rf_ops_matmul_scratch(K);
    float *scratch = malloc(sizeof(float) * sn);

    double tf, tb, tbb, t4, t4b;
    openblas_set_num_threads(threads);
    TIME(tf, nf, cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, wf[c_], K, x, 1, 0.0f, y, 1));
    TIME(tb, nb, ex->matmul(y, x, &wbt[c_], NULL, 1, scratch, sn));
    TIME(tbb, nb, bf->matmul(y, x, &wbt[c_], NULL, 1, scratch, sn));
    TIME(t4, n4, ex->matmul_w4a16(y, x, &w[c_], NULL, 1, scratch, sn));
    TIME(t4b, n4, bf->matmul_w4a16(y, x, &w[c_], NULL, 1, scratch, sn));
    /* bytes each kernel must read: the weight; W4A16 also its f16 scales
     * and packed zeros (the kernels read those, not the f32 copies) */
    const double bf_ = 4.0 * nk, bb = 2.0 * nk, b4 = 0.5 * nk + 2.5 * G * N;
    printf("  [%5d x %5d] F32 sgemv          %8.3f ms %6.1f GB/s (%d copies)\n", N, K, tf * 1e3,
           bf_ / tf * 1e-9, nf);
    printf("  [%5d x %5d] BF16 cpu           %8.3f ms %6.1f GB/s (%d copies)\n", N, K, tb * 1e3,
           bb / tb * 1e-9, nb);
    printf("  [%5d x %5d] BF16 cpu-bf16      %8.3f ms %6.1f GB/s\n", N, K, tbb * 1e3,
           bb / tbb * 1e-9);
    printf("  [%5d x %5d] W4A16 cpu          %8.3f ms %6.1f GB/s (%d copies) %.2fx F32, %.2fx "
           "BF16\n",
           N, K, t4 * 1e3, b4 / t4 * 1e-9, n4, tf / t4, tb / t4);
    printf("  [%5d x %5d] W4A16 cpu-bf16     %8.3f ms %6.1f GB/s (%.0f%% of the read bandwidth "
           "%.1f GB/s) %.2fx F32, %.2fx BF16\n",
           N, K, t4b * 1e3, b4 / t4b * 1e-9, 100 * b4 / t4b * 1e-9 / rbw, rbw, tf / t4b, tbb / t4b);
    for (int c = 0; c < n4; c++)
        rf_gptq_weight_release(&w[c]), rf_gptq_packed_free(&p[c]);
    for (int c = 0; c < nf; c++)
        free(wf[c]);
    for (int c = 0; c < nb; c++)
        free(wb[c]);
    free(wf), free(wb), free(p), free(w), free(wbt), free(x), free(y), free(scratch);
}

int main(int argc, char **argv)
{
    (void)argc;
    rf_blas_core_reexec(argv);
    const double rbw = read_bandwidth();
    printf("== bench/w4a16: batch-1 mat-vec, %d threads, weights rotating over >= %zu MiB "
           "per format\n",
           omp_get_max_threads(), ROTATE_BYTES >> 20);
    run(4096, 4096, rbw);
    run(14336, 4096, rbw);
    run(4096, 14336, rbw);
    return 0;
}
