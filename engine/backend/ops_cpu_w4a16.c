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

#include "engine/backend/ops_cpu_w4a16.h"

#include "engine/backend/ops_cpu_bf16.h"

#define SMALL_M 8
#define TILE 128
/* Output channels per work item in the few-rows path: each qweight row is
 * then read as one 8 KiB run, long enough for the hardware prefetcher (512
 * channels measured 2.1x F32 on 14336x4096, runs of 2 KiB with a 56 KiB
 * stride between them). */
#define CHUNK 2048
#define GCHUNK 64 /* the portable kernel's accumulator width */

static inline float nibf(int32_t word, int b)
{
    return (float)(((uint32_t)word >> (4 * b)) & 0xF);
}

/* Channels [n0, n1) (at most GCHUNK) of the few-rows product, portable C. */
static void small_generic_part(float *y, const float *x, const rf_gptq_weight *w, int M, int n0,
                               int n1)
{
    const int N = w->N, K = w->K;
    float acc[SMALL_M][GCHUNK];
    memset(acc, 0, sizeof acc);
    if (w->monotonic && (K / w->G) % 8 == 0) {
        const int gs = K / w->G;
        float part[SMALL_M][GCHUNK];
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

static void small_generic(float *y, const float *x, const rf_gptq_weight *w, int M, int n0, int n1)
{
    for (int a = n0; a < n1; a += GCHUNK)
        small_generic_part(y, x, w, M, a, a + GCHUNK < n1 ? a + GCHUNK : n1);
}

/* part[0..32) += Σ_b x[b] · q[b, 0..32) for one row of words (32 channels,
 * 4 vectors). Nibble b is masked in place (0xF << 4b) and converted, which
 * gives q·16^b exactly; x is pre-scaled by 16^−b to match, saving a shift.
 * Nibble 7 is shifted down instead (q·2^28 would not fit a signed int). */
__attribute__((target("avx2,fma"))) static inline void row32(const int32_t *qw, const float *xs16,
                                                             float *part)
{
    __m256 a0 = _mm256_loadu_ps(part), a1 = _mm256_loadu_ps(part + 8),
           a2 = _mm256_loadu_ps(part + 16), a3 = _mm256_loadu_ps(part + 24);
    __m256i w0 = _mm256_loadu_si256((const __m256i *)qw),
            w1 = _mm256_loadu_si256((const __m256i *)(qw + 8)),
            w2 = _mm256_loadu_si256((const __m256i *)(qw + 16)),
            w3 = _mm256_loadu_si256((const __m256i *)(qw + 24));
    for (int b = 0; b < 7; b++) {
        const __m256i m = _mm256_set1_epi32(0xF << (4 * b));
        const __m256 xb = _mm256_set1_ps(xs16[b]);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(w0, m)), xb, a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(w1, m)), xb, a1);
        a2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(w2, m)), xb, a2);
        a3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(w3, m)), xb, a3);
    }
    const __m256 x7 = _mm256_set1_ps(xs16[7]);
    a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w0, 28)), x7, a0);
    a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w1, 28)), x7, a1);
    a2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w2, 28)), x7, a2);
    a3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w3, 28)), x7, a3);
    _mm256_storeu_ps(part, a0);
    _mm256_storeu_ps(part + 8, a1);
    _mm256_storeu_ps(part + 16, a2);
    _mm256_storeu_ps(part + 24, a3);
}

/* The same for 8 channels (the tail of a chunk). */
__attribute__((target("avx2,fma"))) static inline void row8(const int32_t *qw, const float *xs16,
                                                            float *part)
{
    __m256 a = _mm256_loadu_ps(part);
    __m256i w = _mm256_loadu_si256((const __m256i *)qw);
    for (int b = 0; b < 7; b++)
        a = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(0xF << (4 * b)))),
            _mm256_set1_ps(xs16[b]), a);
    a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w, 28)), _mm256_set1_ps(xs16[7]), a);
    _mm256_storeu_ps(part, a);
}

/* The few-rows product with AVX2/FMA; n1 − n0 a multiple of 8 (N is). */
__attribute__((target("avx2,fma"))) static void
small_avx2(float *y, const float *x, const rf_gptq_weight *w, int M, int n0, int n1)
{
    const int N = w->N, K = w->K;
    if (!(w->monotonic && (K / w->G) % 8 == 0)) {
        const __m256i mask = _mm256_set1_epi32(0xF);
        for (int m = 0; m < M; m++)
            for (int n = n0; n < n1; n += 8) {
                __m256 out0 = _mm256_setzero_ps(), out1 = _mm256_setzero_ps();
                const float *xm = x + (size_t)m * K;
                for (int r = 0; r < K / 8; r++) {
                    __m256i wd =
                        _mm256_loadu_si256((const __m256i *)(w->qweight + (size_t)r * N + n));
                    for (int b = 0; b < 8; b++) {
                        size_t g = (size_t)w->g_idx[8 * r + b] * N + n;
                        __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(wd, mask));
                        __m256 wv = _mm256_mul_ps(_mm256_loadu_ps(w->sf + g),
                                                  _mm256_sub_ps(q, _mm256_loadu_ps(w->zf + g)));
                        if (b & 1)
                            out1 = _mm256_fmadd_ps(wv, _mm256_set1_ps(xm[8 * r + b]), out1);
                        else
                            out0 = _mm256_fmadd_ps(wv, _mm256_set1_ps(xm[8 * r + b]), out0);
                        wd = _mm256_srli_epi32(wd, 4);
                    }
                }
                _mm256_storeu_ps(y + (size_t)m * N + n, _mm256_add_ps(out0, out1));
            }
        return;
    }
    /* rows of qweight are read along N (contiguous) across the whole chunk:
     * walking down a narrow column strip would touch a new page per row */
    static const float inv16[8] = {1.0f,     0x1p-4f,  0x1p-8f,  0x1p-12f,
                                   0x1p-16f, 0x1p-20f, 0x1p-24f, 1.0f};
    const int gs = K / w->G, len = n1 - n0;
    float part[CHUNK];
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * K;
        float *ym = y + (size_t)m * N;
        memset(ym + n0, 0, sizeof(float) * len);
        for (int g = 0; g < w->G; g++) {
            float xs = 0;
            for (int k = g * gs; k < (g + 1) * gs; k++)
                xs += xm[k];
            memset(part, 0, sizeof(float) * len);
            for (int r = g * gs / 8; r < (g + 1) * gs / 8; r++) {
                float x16[8];
                for (int b = 0; b < 8; b++)
                    x16[b] = xm[8 * r + b] * inv16[b];
                const int32_t *row = w->qweight + (size_t)r * N + n0;
                int c = 0;
                for (; c + 32 <= len; c += 32)
                    row32(row + c, x16, part + c);
                for (; c < len; c += 8)
                    row8(row + c, x16, part + c);
            }
            const __m256 xsv = _mm256_set1_ps(xs);
            const float *s = w->sf + (size_t)g * N + n0, *z = w->zf + (size_t)g * N + n0;
            for (int c = 0; c < len; c += 8) {
                __m256 t = _mm256_fnmadd_ps(_mm256_loadu_ps(z + c), xsv, _mm256_loadu_ps(part + c));
                _mm256_storeu_ps(ym + n0 + c, _mm256_fmadd_ps(_mm256_loadu_ps(s + c), t,
                                                              _mm256_loadu_ps(ym + n0 + c)));
            }
        }
    }
}

typedef void (*small_fn)(float *, const float *, const rf_gptq_weight *, int, int, int);
typedef void (*tile_fn)(const rf_gptq_weight *w, int a, int nr, float *t);

/* Channels [a, a + nr) dequantized into t as [K, nr]: exactly the values
 * rf_gptq_dequant gives, s · (q − z) in f32. */
static void dequant_tile(const rf_gptq_weight *w, int a, int nr, float *t)
{
    const int N = w->N;
    for (int k = 0; k < w->K; k++) {
        const int32_t *row = w->qweight + (size_t)(k / 8) * N + a;
        const float *s = w->sf + (size_t)w->g_idx[k] * N + a,
                    *z = w->zf + (size_t)w->g_idx[k] * N + a;
        float *tk = t + (size_t)k * nr;
        for (int n = 0; n < nr; n++)
            tk[n] = s[n] * (nibf(row[n], k % 8) - z[n]);
    }
}

/* The same, 8 channels at a time (the same f32 operations, so the same
 * values). */
__attribute__((target("avx2,fma"))) static void dequant_tile_avx2(const rf_gptq_weight *w, int a,
                                                                  int nr, float *t)
{
    const int N = w->N;
    const __m256i mask = _mm256_set1_epi32(0xF);
    for (int k = 0; k < w->K; k++) {
        const int32_t *row = w->qweight + (size_t)(k / 8) * N + a;
        const float *s = w->sf + (size_t)w->g_idx[k] * N + a,
                    *z = w->zf + (size_t)w->g_idx[k] * N + a;
        const __m128i sh = _mm_cvtsi32_si128(4 * (k % 8));
        float *tk = t + (size_t)k * nr;
        int n = 0;
        for (; n + 8 <= nr; n += 8) {
            __m256i q = _mm256_and_si256(
                _mm256_srl_epi32(_mm256_loadu_si256((const __m256i *)(row + n)), sh), mask);
            __m256 d = _mm256_sub_ps(_mm256_cvtepi32_ps(q), _mm256_loadu_ps(z + n));
            _mm256_storeu_ps(tk + n, _mm256_mul_ps(_mm256_loadu_ps(s + n), d));
        }
        for (; n < nr; n++)
            tk[n] = s[n] * (nibf(row[n], k % 8) - z[n]);
    }
}

static void matmul_k(small_fn small, tile_fn tile_f, float *y, const float *x,
                     const rf_gptq_weight *w, const float *bias, int M, float *scratch,
                     size_t scratch_n)
{
    const int N = w->N, K = w->K;
    if (M < SMALL_M) {
        const int nch = (N + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic, 1)
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
            tile_f(w, a, nr, t);
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
    matmul_k(avx2 ? small_avx2 : small_generic, avx2 ? dequant_tile_avx2 : dequant_tile, y, x, w,
             bias, M, scratch, scratch_n);
}

int rf_cpu_matmul_w4a16_bf16(float *y, const float *x, const rf_gptq_weight *w, const float *bias,
                             int M, int terms, float *scratch, size_t scratch_n)
{
    int rc = M < SMALL_M ? rf_cpu_bf16_gemv_w4(y, x, w, M, terms, scratch, scratch_n)
                         : rf_cpu_bf16_gemm_w4(y, x, w, M, terms, scratch, scratch_n);
    if (rc < 0) return rc;
    if (bias)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < w->N; n++)
                y[(size_t)m * w->N + n] += bias[n];
    return 0;
}

void rf_cpu_matmul_w4a16_generic(float *y, const float *x, const rf_gptq_weight *w,
                                 const float *bias, int M, float *scratch, size_t scratch_n)
{
    matmul_k(small_generic, dequant_tile, y, x, w, bias, M, scratch, scratch_n);
}

/* ---- backward: dx[M, K] += dy[M, N] · Ŵ -------------------------------------
 * A strip of input channels k ∈ [k0, k0 + kc) of Ŵ is, channel by channel,
 * one row of qweight (words along N) read at nibble k % 8, so the strip
 * dequantized as t [kc, N] (t[j, n] = Ŵ[n, k0 + j]) comes out of the packed
 * layout in order, and dx[:, k0:k0+kc] += dy · tᵀ is one GEMM. Strips write
 * disjoint columns of dx: threads split over them, each GEMM single-threaded
 * as in the forward. Only strips exist at any time, never the dense Ŵ. */
static void dequant_strip(const rf_gptq_weight *w, int k0, int kc, float *t)
{
    const int N = w->N;
    for (int j = 0; j < kc; j++) {
        const int k = k0 + j, b = k % 8;
        const int32_t *row = w->qweight + (size_t)(k / 8) * N;
        const float *s = w->sf + (size_t)w->g_idx[k] * N, *z = w->zf + (size_t)w->g_idx[k] * N;
        float *tj = t + (size_t)j * N;
        for (int n = 0; n < N; n++)
            tj[n] = s[n] * (nibf(row[n], b) - z[n]);
    }
}

void rf_cpu_matmul_w4a16_backward(float *dx, const float *dy, const rf_gptq_weight *w, int M,
                                  float *scratch, size_t scratch_n)
{
    const int N = w->N, K = w->K;
    const size_t rows_avail = scratch_n / (size_t)N;
    if (rows_avail == 0) {
        /* Scratch below one strip (the contract asks for N floats): still
         * correct, one weight at a time. */
        for (int k = 0; k < K; k++) {
            const int32_t *row = w->qweight + (size_t)(k / 8) * N;
            const float *s = w->sf + (size_t)w->g_idx[k] * N, *z = w->zf + (size_t)w->g_idx[k] * N;
            for (int n = 0; n < N; n++) {
                const float wv = s[n] * (nibf(row[n], k % 8) - z[n]);
                for (int m = 0; m < M; m++)
                    dx[(size_t)m * K + k] += dy[(size_t)m * N + n] * wv;
            }
        }
        return;
    }
    int team = omp_get_max_threads();
    if ((size_t)team > rows_avail) team = (int)rows_avail;
    int strip = (int)(rows_avail / (size_t)team);
    if (strip > TILE) strip = TILE;
    const int ns = (K + strip - 1) / strip;
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
    for (int si = 0; si < ns; si++) {
        const int k0 = si * strip, kc = K - k0 < strip ? K - k0 : strip;
        float *t = scratch + (size_t)omp_get_thread_num() * (size_t)strip * N;
        dequant_strip(w, k0, kc, t);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, kc, N, 1.0f, dy, N, t, N, 1.0f,
                    dx + k0, K);
    }
}
