/* The CPU backend: every op threads with OpenMP; GEMM tiles go to OpenBLAS
 * run single-threaded inside each OpenMP thread.
 *
 * Why not OpenBLAS's own threads for GEMM: its idle threads spin after each
 * call, and so do OpenMP's after each region, so alternating the two (GEMM,
 * then attention or a weight conversion) makes them fight for the cores. On
 * the 2-core development machine that cost 4x in prefill and 6x in decode
 * (bench/forward, f32: 106 vs 430 tok/s prefill, 5.6 vs 32.6 tok/s decode
 * with OMP_WAIT_POLICY=passive). One pool of threads avoids it.
 *
 * Weights in F16/BF16 are converted to f32 a tile at a time into per-thread
 * scratch, never as a whole; decode (few rows) instead dots the stored
 * weights directly, converting in registers (AVX2/F16C when the CPU has
 * them, chosen at run time).
 *
 * Three tables (ops.h): rf_ops_cpu and rf_ops_cpu_generic compute with f32
 * activations, the first with the SIMD kernels this CPU has, the second
 * with portable loops only (the reference the others are tested against,
 * tests/unit/test_ops_kernels.c); rf_ops_cpu_bf16 rounds the activations
 * of BF16 and W4A16 matmuls to bf16 and runs them on the AVX-512 BF16
 * GEMM (ops_cpu_bf16.c) at twice the f32 rate. Where the CPU has AVX-512,
 * attention, SwiGLU and RMSNorm run 16 lanes wide (ops_cpu_avx512.c) in
 * both SIMD tables; W4A16 is ops_cpu_w4a16.c. */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/ops.h"
#include "engine/backend/ops_cpu_backward.h"
#include "engine/backend/ops_cpu_avx512.h"
#include "engine/backend/ops_cpu_bf16.h"
#include "engine/backend/ops_cpu_w4a16.h"

/* Weight rows per GEMM tile of one thread. */
#define TILE_ROWS 128
/* Below this many activation rows the matmul is bandwidth-bound (decode):
 * each weight row is read once and dotted with every x row. */
#define SMALL_M 8

size_t rf_ops_matmul_scratch(int K)
{
    return (size_t)omp_get_max_threads() * TILE_ROWS * (size_t)K;
}

/* ---- dot products of a stored weight row with an f32 vector ---------------- */

static float dot_f32(const void *wv, const float *x, int n)
{
    const float *w = wv;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++)
        acc += w[i] * x[i];
    return acc;
}

static float dot_bf16(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    float acc = 0.0f;
    for (int i = 0; i < n; i++)
        acc += rf_bf16_to_f32(w[i]) * x[i];
    return acc;
}

static float dot_f16(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    float acc = 0.0f;
    for (int i = 0; i < n; i++)
        acc += rf_f16_to_f32(w[i]) * x[i];
    return acc;
}

__attribute__((target("avx2,fma"))) static float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const void *wv, const float *x, int n)
{
    const float *w = wv;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    float acc = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        acc += w[i] * x[i];
    return acc;
}

/* bf16 is the top half of an f32: widen to 32 bits and shift left 16. */
__attribute__((target("avx2,fma"))) static float dot_bf16_avx2(const void *wv, const float *x,
                                                               int n)
{
    const uint16_t *w = wv;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i lo = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256i hi = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(lo, 16)), _mm256_loadu_ps(x + i),
                             a0);
        a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(hi, 16)),
                             _mm256_loadu_ps(x + i + 8), a1);
    }
    float acc = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        acc += rf_bf16_to_f32(w[i]) * x[i];
    return acc;
}

__attribute__((target("avx2,fma,f16c"))) static float dot_f16_avx2(const void *wv, const float *x,
                                                                   int n)
{
    const uint16_t *w = wv;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        a0 = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + i + 8), a1);
    }
    float acc = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        acc += rf_f16_to_f32(w[i]) * x[i];
    return acc;
}

/* Row conversion for the GEMM tiles, vectorised the same way. */
__attribute__((target("avx2"))) static void cvt_bf16_avx2(const void *src, float *dst, size_t n)
{
    const uint16_t *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++)
        dst[i] = rf_bf16_to_f32(s[i]);
}

__attribute__((target("avx2,f16c"))) static void cvt_f16_avx2(const void *src, float *dst, size_t n)
{
    const uint16_t *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++)
        dst[i] = rf_f16_to_f32(s[i]);
}

static void cvt_bf16(const void *src, float *dst, size_t n)
{
    rf_to_f32(RF_DTYPE_BF16, src, dst, n);
}

static void cvt_f16(const void *src, float *dst, size_t n)
{
    rf_to_f32(RF_DTYPE_F16, src, dst, n);
}

typedef float (*dot_fn)(const void *w, const float *x, int n);
typedef void (*cvt_fn)(const void *src, float *dst, size_t n);
/* Kernels by weight dtype (F32, F16, BF16; cvt for F16, BF16 only). */
typedef struct kernels {
    dot_fn dot[3];
    cvt_fn cvt[3];
} kernels;
static kernels g_simd; /* the best this CPU has, chosen once */
static const kernels g_generic = {
    .dot = {[RF_DTYPE_F32] = dot_f32, [RF_DTYPE_F16] = dot_f16, [RF_DTYPE_BF16] = dot_bf16},
    .cvt = {[RF_DTYPE_F16] = cvt_f16, [RF_DTYPE_BF16] = cvt_bf16},
};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_avx512; /* the AVX-512 forward ops (ops_cpu_avx512.h) run here */

static void cpu_init(void)
{
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int f16c = avx2 && __builtin_cpu_supports("f16c");
    g_simd.dot[RF_DTYPE_F32] = avx2 ? dot_f32_avx2 : dot_f32;
    g_simd.dot[RF_DTYPE_F16] = f16c ? dot_f16_avx2 : dot_f16;
    g_simd.dot[RF_DTYPE_BF16] = avx2 ? dot_bf16_avx2 : dot_bf16;
    g_simd.cvt[RF_DTYPE_F16] = f16c ? cvt_f16_avx2 : cvt_f16;
    g_simd.cvt[RF_DTYPE_BF16] = avx2 ? cvt_bf16_avx2 : cvt_bf16;
    g_avx512 = rf_cpu_has_avx512();
    /* OpenBLAS runs inside our OpenMP threads, one thread each (see top). */
    openblas_set_num_threads(1);
}

static void add_bias(float *y, const float *bias, int M, int N)
{
    if (!bias) return;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            y[(size_t)m * N + n] += bias[n];
}

static void matmul_k(const kernels *kn, float *y, const float *x, const rf_tensor *w,
                     const float *bias, int M, float *scratch, size_t scratch_n)
{
    const int N = (int)w->shape[0], K = (int)w->shape[1];
    const size_t es = rf_dtype_size(w->dtype);
    const char *wb = w->data;
    /* Work is handed out in small pieces (dynamic schedule) rather than one
     * slice per thread: on a shared machine a thread that loses its core
     * then delays only its current piece, not half of the matmul. */
    if (M < SMALL_M && kn == &g_simd && g_avx512 &&
        rf_cpu_gemv_avx512(y, x, w->data, w->dtype, M, N, K) == 0) {
        add_bias(y, bias, M, N);
        return;
    }
    if (M < SMALL_M) {
        dot_fn dot = kn->dot[w->dtype];
#pragma omp parallel for schedule(dynamic, 32)
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++)
                y[(size_t)m * N + n] = dot(wb + (size_t)n * K * es, x + (size_t)m * K, K);
    } else {
        /* Tiles of output columns: a tile (converted to f32 into this
         * thread's part of scratch when the weight is not f32) and one
         * single-threaded GEMM on it. scratch holds rows_avail rows of K;
         * the team shrinks if it was sized for fewer threads than run now. */
        const size_t rows_avail = scratch_n / (size_t)K;
        int team = omp_get_max_threads();
        if ((size_t)team > rows_avail) team = rows_avail ? (int)rows_avail : 1;
        const int tile_cap = (int)(rows_avail / (size_t)team);
        const int tile = tile_cap < TILE_ROWS ? (tile_cap ? tile_cap : 1) : TILE_ROWS;
        const int ntiles = (N + tile - 1) / tile;
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
        for (int ti = 0; ti < ntiles; ti++) {
            const int a = ti * tile, nr = N - a < tile ? N - a : tile;
            const float *wt = (const float *)(wb + (size_t)a * K * es);
            if (w->dtype != RF_DTYPE_F32) {
                float *scr = scratch + (size_t)omp_get_thread_num() * (size_t)tile * K;
                kn->cvt[w->dtype](wb + (size_t)a * K * es, scr, (size_t)nr * K);
                wt = scr;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nr, K, 1.0f, x, K, wt, K, 0.0f,
                        y + a, N);
        }
    }
    add_bias(y, bias, M, N);
}

static void rmsnorm(float *y, const float *x, const float *w, int M, int D, float eps)
{
#pragma omp parallel for schedule(static) if (M > 1)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        float *yr = y + (size_t)m * D;
        /* Accumulate the mean square in double: D can be 8192 and the
         * reference computes it in f32 over a pairwise sum. */
        double ss = 0.0;
        for (int i = 0; i < D; i++)
            ss += (double)xr[i] * xr[i];
        float r = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = 0; i < D; i++)
            yr[i] = xr[i] * r * w[i];
    }
}

/* Hugging Face rotate-half: for i < d/2, the pair is (x_i, x_{i+d/2}),
 * x_i' = x_i cos − x_{i+d/2} sin, x_{i+d/2}' = x_{i+d/2} cos + x_i sin,
 * with angle pos · inv_freq_i (FORMATS.md "Llama checkpoints"). */
static void rope(float *x, int M, int n_heads, int head_dim, const int *pos, const float *inv_freq)
{
    const int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (M > 1)
    for (int m = 0; m < M; m++) {
        for (int i = 0; i < half; i++) {
            double ang = (double)pos[m] * inv_freq[i];
            float c = (float)cos(ang), s = (float)sin(ang);
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (size_t)m * n_heads * head_dim + (size_t)h * head_dim;
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

/* acc[d] += p · v[d]; acc[d] *= c — kept apart so that they vectorise. */
static void axpy(float *acc, float p, const float *v, int n)
{
#pragma omp simd
    for (int d = 0; d < n; d++)
        acc[d] += p * v[d];
}

static void scale(float *acc, float c, int n)
{
#pragma omp simd
    for (int d = 0; d < n; d++)
        acc[d] *= c;
}

/* Keys scored per block of the online softmax. */
#define ATT_BLOCK 64

/* One query row against its visible keys: softmax(q·kᵀ·scale)·v, computed
 * online (running max and sum, rescaled once per block of keys) so that no
 * score buffer of the sequence's length is needed. */
static void attend_row(const rf_attn_args *a, int t, int h, dot_fn dot)
{
    const int hd = a->head_dim, kvd = a->n_kv_heads * hd;
    const int kvh = h / (a->n_heads / a->n_kv_heads);
    const int i = a->pos0 + t;
    const int first = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;
    const float *q = a->q + (size_t)t * a->n_heads * hd + (size_t)h * hd;
    const float *kbase = a->k + (size_t)kvh * hd, *vbase = a->v + (size_t)kvh * hd;
    float *out = a->out + (size_t)t * a->n_heads * hd + (size_t)h * hd;
    float acc[RF_OPS_MAX_HEAD_DIM], sc[ATT_BLOCK];
    float mx = -INFINITY, sum = 0.0f;
    memset(acc, 0, sizeof(float) * (size_t)hd);
    for (int j0 = first; j0 <= i; j0 += ATT_BLOCK) {
        const int nb = i + 1 - j0 < ATT_BLOCK ? i + 1 - j0 : ATT_BLOCK;
        float bmx = mx;
        for (int j = 0; j < nb; j++) {
            sc[j] = dot(kbase + (size_t)(j0 + j) * kvd, q, hd) * a->scale;
            bmx = sc[j] > bmx ? sc[j] : bmx;
        }
        if (bmx > mx) { /* rescale what was summed under the old maximum */
            float c = expf(mx - bmx);
            sum *= c;
            scale(acc, c, hd);
            mx = bmx;
        }
        for (int j = 0; j < nb; j++) {
            float p = expf(sc[j] - mx);
            sum += p;
            axpy(acc, p, vbase + (size_t)(j0 + j) * kvd, hd);
        }
    }
    scale(acc, 1.0f / sum, hd);
    memcpy(out, acc, sizeof(float) * (size_t)hd);
}

static void attention_k(const kernels *kn, const rf_attn_args *a)
{
    const dot_fn dot = kn->dot[RF_DTYPE_F32];
    /* Short decode steps are cheaper alone than a parallel region (whose
     * barrier is what hurts when the cores are shared). */
    const long work = (long)a->T * a->n_heads * (a->pos0 + a->T) * a->head_dim;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > (1L << 18))
    for (int t = 0; t < a->T; t++)
        for (int h = 0; h < a->n_heads; h++)
            attend_row(a, t, h, dot);
}

static void swiglu(float *gate, const float *up, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 4096)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void embedding(float *out, const rf_tensor *table, const int *ids, int M)
{
    const size_t D = (size_t)table->shape[1], es = rf_dtype_size(table->dtype);
    for (int m = 0; m < M; m++)
        rf_to_f32(table->dtype, (const char *)table->data + (size_t)ids[m] * D * es,
                  out + (size_t)m * D, D);
}

static void softmax(float *x, int M, int N)
{
    for (int m = 0; m < M; m++) {
        float *r = x + (size_t)m * N, mx = -INFINITY;
        for (int i = 0; i < N; i++)
            mx = r[i] > mx ? r[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < N; i++) {
            r[i] = expf(r[i] - mx);
            sum += r[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < N; i++)
            r[i] *= inv;
    }
}

static void add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* The exact products of this table on x rounded to bf16, rows in chunks
 * through the top half of scratch (the product keeps the rest): what the
 * bf16 table computes where no AVX-512 BF16 kernel runs. */
typedef void (*exact_fn)(float *y, const float *x, const void *w, const float *bias, int M,
                         float *scratch, size_t scratch_n);

static void on_rounded_x(exact_fn f, const void *w, int N, int K, float *y, const float *x,
                         const float *bias, int M, float *scratch, size_t scratch_n)
{
    size_t rows = scratch_n / 2 / (size_t)K;
    float *own = NULL, *xr;
    if (rows == 0) { /* below the scratch contract: still correct */
        rows = 1;
        xr = own = malloc(sizeof(float) * (size_t)K);
        if (!own) return;
    } else {
        if (rows > (size_t)M) rows = (size_t)M;
        xr = scratch + scratch_n - rows * (size_t)K;
        scratch_n -= rows * (size_t)K;
    }
    for (int m0 = 0; m0 < M; m0 += (int)rows) {
        const int n = M - m0 < (int)rows ? M - m0 : (int)rows;
        const float *xs = x + (size_t)m0 * K;
        for (size_t i = 0; i < (size_t)n * K; i++)
            xr[i] = rf_bf16_to_f32(rf_f32_to_bf16(xs[i]));
        f(y + (size_t)m0 * N, xr, w, bias, n, scratch, scratch_n);
    }
    free(own);
}

static void matmul_exact(float *y, const float *x, const void *w, const float *bias, int M,
                         float *scratch, size_t scratch_n)
{
    matmul_k(&g_simd, y, x, w, bias, M, scratch, scratch_n);
}

static void matmul(float *y, const float *x, const rf_tensor *w, const float *bias, int M,
                   float *scratch, size_t scratch_n)
{
    pthread_once(&g_once, cpu_init);
    matmul_k(&g_simd, y, x, w, bias, M, scratch, scratch_n);
}

/* BF16 weights on bf16 activations: the vdpbf16ps GEMM for prefill,
 * decode's dot products on the rounded rows. */
static void matmul_bf16(float *y, const float *x, const rf_tensor *w, const float *bias, int M,
                        float *scratch, size_t scratch_n)
{
    pthread_once(&g_once, cpu_init);
    const int N = (int)w->shape[0], K = (int)w->shape[1];
    if (w->dtype != RF_DTYPE_BF16) {
        matmul_k(&g_simd, y, x, w, bias, M, scratch, scratch_n);
        return;
    }
    if (M >= SMALL_M && rf_cpu_bf16_gemm(y, x, w->data, M, N, K, 1, scratch, scratch_n) == 0) {
        add_bias(y, bias, M, N);
        return;
    }
    if (M < SMALL_M && rf_cpu_has_bf16() &&
        rf_cpu_gemv_bf16_dp(y, x, w->data, M, N, K, scratch, scratch_n) == 0) {
        add_bias(y, bias, M, N);
        return;
    }
    on_rounded_x(matmul_exact, w, N, K, y, x, bias, M, scratch, scratch_n);
}

static void matmul_generic(float *y, const float *x, const rf_tensor *w, const float *bias, int M,
                           float *scratch, size_t scratch_n)
{
    pthread_once(&g_once, cpu_init);
    matmul_k(&g_generic, y, x, w, bias, M, scratch, scratch_n);
}

static void w4a16_exact(float *y, const float *x, const void *w, const float *bias, int M,
                        float *scratch, size_t scratch_n)
{
    rf_cpu_matmul_w4a16(y, x, w, bias, M, scratch, scratch_n);
}

/* Decode on the vdpbf16ps kernel with x as three bf16 terms (exact to
 * 2^-26, below f32's own rounding); prefill on f32 tiles and OpenBLAS. */
static void w4a16(float *y, const float *x, const rf_gptq_weight *w, const float *bias, int M,
                  float *scratch, size_t scratch_n)
{
    pthread_once(&g_once, cpu_init);
    if (M < SMALL_M && rf_cpu_matmul_w4a16_bf16(y, x, w, bias, M, 3, scratch, scratch_n) == 0)
        return;
    rf_cpu_matmul_w4a16(y, x, w, bias, M, scratch, scratch_n);
}

static void w4a16_bf16(float *y, const float *x, const rf_gptq_weight *w, const float *bias, int M,
                       float *scratch, size_t scratch_n)
{
    pthread_once(&g_once, cpu_init);
    if (rf_cpu_matmul_w4a16_bf16(y, x, w, bias, M, 1, scratch, scratch_n) == 0) return;
    on_rounded_x(w4a16_exact, w, w->N, w->K, y, x, bias, M, scratch, scratch_n);
}

static void w4a16_generic(float *y, const float *x, const rf_gptq_weight *w, const float *bias,
                          int M, float *scratch, size_t scratch_n)
{
    pthread_once(&g_once, cpu_init);
    rf_cpu_matmul_w4a16_generic(y, x, w, bias, M, scratch, scratch_n);
}

static void w4a16_backward(float *dx, const float *dy, const rf_gptq_weight *w, int M,
                           float *scratch, size_t scratch_n)
{
    pthread_once(&g_once, cpu_init);
    rf_cpu_matmul_w4a16_backward(dx, dy, w, M, scratch, scratch_n);
}

static void attention(const rf_attn_args *a)
{
    pthread_once(&g_once, cpu_init);
    if (g_avx512 && rf_cpu_attention_avx512(a) == 0) return;
    attention_k(&g_simd, a);
}

static void rmsnorm_simd(float *y, const float *x, const float *w, int M, int D, float eps)
{
    pthread_once(&g_once, cpu_init);
    if (g_avx512)
        rf_cpu_rmsnorm_avx512(y, x, w, M, D, eps);
    else
        rmsnorm(y, x, w, M, D, eps);
}

static void swiglu_simd(float *gate, const float *up, size_t n)
{
    pthread_once(&g_once, cpu_init);
    if (g_avx512)
        rf_cpu_swiglu_avx512(gate, up, n);
    else
        swiglu(gate, up, n);
}

static void attention_generic(const rf_attn_args *a)
{
    attention_k(&g_generic, a);
}

static const rf_ops g_cpu = {
    .name = "cpu",
    .matmul = matmul,
    .matmul_w4a16 = w4a16,
    .rmsnorm = rmsnorm_simd,
    .rope = rope,
    .attention = attention,
    .swiglu = swiglu_simd,
    .embedding = embedding,
    .softmax = softmax,
    .add = add,
    .matmul_backward = rf_cpu_matmul_backward,
    .matmul_w4a16_backward = w4a16_backward,
    .rmsnorm_backward = rf_cpu_rmsnorm_backward,
    .rope_backward = rf_cpu_rope_backward,
    .attention_backward = rf_cpu_attention_backward,
    .swiglu_backward = rf_cpu_swiglu_backward,
    .embedding_backward = rf_cpu_embedding_backward,
};

static const rf_ops g_cpu_generic = {
    .name = "cpu-generic",
    .matmul = matmul_generic,
    .matmul_w4a16 = w4a16_generic,
    .rmsnorm = rmsnorm,
    .rope = rope,
    .attention = attention_generic,
    .swiglu = swiglu,
    .embedding = embedding,
    .softmax = softmax,
    .add = add,
    .matmul_backward = rf_cpu_matmul_backward,
    .matmul_w4a16_backward = w4a16_backward,
    .rmsnorm_backward = rf_cpu_rmsnorm_backward,
    .rope_backward = rf_cpu_rope_backward,
    .attention_backward = rf_cpu_attention_backward,
    .swiglu_backward = rf_cpu_swiglu_backward,
    .embedding_backward = rf_cpu_embedding_backward,
};

/* The same ops with BF16 and W4A16 matmuls on activations rounded to bf16
 * (see rf_ops_cpu_bf16 in ops.h). */
static const rf_ops g_cpu_bf16 = {
    .name = "cpu-bf16",
    .matmul = matmul_bf16,
    .matmul_w4a16 = w4a16_bf16,
    .rmsnorm = rmsnorm_simd,
    .rope = rope,
    .attention = attention,
    .swiglu = swiglu_simd,
    .embedding = embedding,
    .softmax = softmax,
    .add = add,
    .matmul_backward = rf_cpu_matmul_backward,
    .matmul_w4a16_backward = w4a16_backward,
    .rmsnorm_backward = rf_cpu_rmsnorm_backward,
    .rope_backward = rf_cpu_rope_backward,
    .attention_backward = rf_cpu_attention_backward,
    .swiglu_backward = rf_cpu_swiglu_backward,
    .embedding_backward = rf_cpu_embedding_backward,
};

const rf_ops *rf_ops_cpu(void)
{
    return &g_cpu;
}

const rf_ops *rf_ops_cpu_generic(void)
{
    return &g_cpu_generic;
}

const rf_ops *rf_ops_cpu_bf16(void)
{
    return &g_cpu_bf16;
}
