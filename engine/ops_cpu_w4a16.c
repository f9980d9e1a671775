/* W4A16 matmul on the CPU: y[M, N] = x[M, K] · Ŵᵀ (+ bias) with
 * Ŵ[n, k] = scale[g_idx[k], n] · (q[k, n] − zero[g_idx[k], n]) read from the
 * GPTQ layout (FORMATS.md "GPTQ W4A16 checkpoint"). No dequantized copy of
 * the layer exists: see rf_ops.matmul_w4a16.
 *
 * Few rows (decode): when groups are contiguous runs of k (g_idx monotonic,
 * the case without act-order or with static groups) the sum factors per
 * group, y[n] = Σ_g s_gn · (Σ_{k∈g} x_k q_kn − z_gn Σ_{k∈g} x_k), so the
 * inner loop is unpack, convert, multiply-add on 8 output channels at once.
 * With act-order (g_idx not monotonic) each weight is dequantized before
 * its multiply-add. Many rows (prefill): tiles of 128 output channels
 * dequantized into scratch as [K, 128] and one single-threaded GEMM each,
 * as the dense matmul does (ops_cpu.c says why one thread per GEMM). */
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "engine/ops_cpu_w4a16.h"

#define SMALL_M 8
#define TILE 128
#define CHUNK 64 /* output channels per work item in the few-rows path */

static inline float nibf(int32_t word, int b)
{
    return (float)(((uint32_t)word >> (4 * b)) & 0xF);
}

/* Channels [n0, n1) of the few-rows product, portable C. */
static void small_generic(float *y, const float *x, const rf_gptq_weight *w, int M, int n0,
                          int n1)
{
    const int N = w->N, K = w->K;
    float acc[SMALL_M][CHUNK];
    memset(acc, 0, sizeof acc);
    if (w->monotonic && (K / w->G) % 8 == 0) {
        const int gs = K / w->G;
        float part[SMALL_M][CHUNK];
        for (int g = 0; g < w->G; g++) {
            memset(part, 0, sizeof part);
            float xs[SMALL_M] = {0};
            for (int k = g * gs; k < (g + 1) * gs; k++) {
                const int32_t *row = w->qweight + (size_t)(k / 8) * N;
                for (int m = 0; m < M; m++) {
                    float xk = x[(size_t)m * K + k];
                    xs[m] += xk;
                    for (int n = n0; n < n1; n++)
                        part[m][n - n0] += xk * nibf(row[n], k % 8);
                }
            }
            const float *s = w->sf + (size_t)g * N, *z = w->zf + (size_t)g * N;
            for (int m = 0; m < M; m++)
                for (int n = n0; n < n1; n++)
                    acc[m][n - n0] += s[n] * (part[m][n - n0] - z[n] * xs[m]);
        }
    } else {
        for (int k = 0; k < K; k++) {
            const int32_t *row = w->qweight + (size_t)(k / 8) * N;
            const float *s = w->sf + (size_t)w->g_idx[k] * N, *z = w->zf + (size_t)w->g_idx[k] * N;
            for (int n = n0; n < n1; n++) {
                float wv = s[n] * (nibf(row[n], k % 8) - z[n]);
                for (int m = 0; m < M; m++)
                    acc[m][n - n0] += x[(size_t)m * K + k] * wv;
            }
        }
    }
    for (int m = 0; m < M; m++)
        memcpy(y + (size_t)m * N + n0, acc[m], sizeof(float) * (n1 - n0));
}

/* The same with AVX2/FMA, 8 channels a vector; n1 − n0 a multiple of 8. */
__attribute__((target("avx2,fma"))) static void small_avx2(float *y, const float *x,
                                                          const rf_gptq_weight *w, int M, int n0,
                                                          int n1)
{
    const int N = w->N, K = w->K;
    const __m256i mask = _mm256_set1_epi32(0xF);
    if (w->monotonic && (K / w->G) % 8 == 0) {
        const int gs = K / w->G;
        for (int n = n0; n < n1; n += 8) {
            __m256 out[SMALL_M];
            for (int m = 0; m < M; m++)
                out[m] = _mm256_setzero_ps();
            for (int g = 0; g < w->G; g++) {
                __m256 part[SMALL_M];
                float xs[SMALL_M] = {0};
                for (int m = 0; m < M; m++)
                    part[m] = _mm256_setzero_ps();
                for (int r = g * gs / 8; r < (g + 1) * gs / 8; r++) {
                    __m256i wd = _mm256_loadu_si256((const __m256i *)(w->qweight + (size_t)r * N + n));
                    for (int b = 0; b < 8; b++) {
                        __m256 q = _mm256_cvtepi32_ps(
                            _mm256_and_si256(_mm256_srl_epi32(wd, _mm_cvtsi32_si128(4 * b)), mask));
                        for (int m = 0; m < M; m++) {
                            float xk = x[(size_t)m * K + 8 * r + b];
                            xs[m] += xk;
                            part[m] = _mm256_fmadd_ps(q, _mm256_set1_ps(xk), part[m]);
                        }
                    }
                }
                __m256 s = _mm256_loadu_ps(w->sf + (size_t)g * N + n);
                __m256 z = _mm256_loadu_ps(w->zf + (size_t)g * N + n);
                for (int m = 0; m < M; m++)
                    out[m] = _mm256_fmadd_ps(
                        s, _mm256_fnmadd_ps(z, _mm256_set1_ps(xs[m]), part[m]), out[m]);
            }
            for (int m = 0; m < M; m++)
                _mm256_storeu_ps(y + (size_t)m * N + n, out[m]);
        }
        return;
    }
    for (int n = n0; n < n1; n += 8) {
        __m256 out[SMALL_M];
        for (int m = 0; m < M; m++)
            out[m] = _mm256_setzero_ps();
        for (int r = 0; r < K / 8; r++) {
            __m256i wd = _mm256_loadu_si256((const __m256i *)(w->qweight + (size_t)r * N + n));
            for (int b = 0; b < 8; b++) {
                int g = w->g_idx[8 * r + b];
                __m256 q = _mm256_cvtepi32_ps(
                    _mm256_and_si256(_mm256_srl_epi32(wd, _mm_cvtsi32_si128(4 * b)), mask));
                __m256 wv = _mm256_mul_ps(_mm256_loadu_ps(w->sf + (size_t)g * N + n),
                                          _mm256_sub_ps(q, _mm256_loadu_ps(w->zf + (size_t)g * N + n)));
                for (int m = 0; m < M; m++)
                    out[m] = _mm256_fmadd_ps(wv, _mm256_set1_ps(x[(size_t)m * K + 8 * r + b]), out[m]);
            }
        }
        for (int m = 0; m < M; m++)
            _mm256_storeu_ps(y + (size_t)m * N + n, out[m]);
    }
}

typedef void (*small_fn)(float *, const float *, const rf_gptq_weight *, int, int, int);

/* Channels [a, a + nr) dequantized into t as [K, nr]: exactly the values
 * rf_gptq_dequant gives, s · (q − z) in f32. */
static void dequant_tile(const rf_gptq_weight *w, int a, int nr, float *t)
{
    const int N = w->N;
    for (int k = 0; k < w->K; k++) {
        const int32_t *row = w->qweight + (size_t)(k / 8) * N + a;
        const float *s = w->sf + (size_t)w->g_idx[k] * N + a, *z = w->zf + (size_t)w->g_idx[k] * N + a;
        float *tk = t + (size_t)k * nr;
        for (int n = 0; n < nr; n++)
            tk[n] = s[n] * (nibf(row[n], k % 8) - z[n]);
    }
}

static void matmul_k(small_fn small, float *y, const float *x, const rf_gptq_weight *w,
                     const float *bias, int M, float *scratch, size_t scratch_n)
{
    const int N = w->N, K = w->K;
    if (M < SMALL_M) {
        const int nch = (N + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic, 4)
        for (int c = 0; c < nch; c++) {
            int n0 = c * CHUNK, n1 = n0 + CHUNK < N ? n0 + CHUNK : N;
            small(y, x, w, M, n0, n1);
        }
    } else {
        const size_t rows_avail = scratch_n / (size_t)K;
        int team = omp_get_max_threads();
        if ((size_t)team > rows_avail) team = rows_avail ? (int)rows_avail : 1;
        const int cap = (int)(rows_avail / (size_t)team);
        const int tile = cap < TILE ? (cap ? cap : 1) : TILE;
        const int ntiles = (N + tile - 1) / tile;
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
        for (int ti = 0; ti < ntiles; ti++) {
            const int a = ti * tile, nr = N - a < tile ? N - a : tile;
            float *t = scratch + (size_t)omp_get_thread_num() * (size_t)tile * K;
            dequant_tile(w, a, nr, t);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, nr, K, 1.0f, x, K, t, nr,
                        0.0f, y + a, N);
        }
    }
    if (bias)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                y[(size_t)m * N + n] += bias[n];
}

void rf_cpu_matmul_w4a16(float *y, const float *x, const rf_gptq_weight *w, const float *bias,
                         int M, float *scratch, size_t scratch_n)
{
    /* N is a multiple of 8 in the layout (qzeros packs along it), so every
     * CHUNK-sized or tail range is whole vectors */
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    matmul_k(avx2 ? small_avx2 : small_generic, y, x, w, bias, M, scratch, scratch_n);
}

void rf_cpu_matmul_w4a16_generic(float *y, const float *x, const rf_gptq_weight *w,
                                 const float *bias, int M, float *scratch, size_t scratch_n)
{
    matmul_k(small_generic, y, x, w, bias, M, scratch, scratch_n);
}
