/* AVX-512 forward ops: see ops_cpu_avx512.h. */
#include "engine/backend/ops_cpu_avx512.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,avx512dq")))
#define INLINE static inline __attribute__((always_inline))

int rf_cpu_has_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

static __mmask16 mask16(long n)
{
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/* e^x: x = n ln2 + r (Cody–Waite, ln2 in two parts so n·ln2_hi is exact),
 * e^r by its Taylor series to r^7 (|r| ≤ ln2/2: truncation below 5e-9),
 * scaled by 2^n. Inputs are clamped to [−104, 88.7], where e^x is 0 (below
 * the smallest denormal) or finite: −inf gives 0. About 1 ulp. */
INLINE AVX512 __m512 exp512(__m512 x)
{
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* r[j] = Σ_i v[j][i]: the 16 horizontal sums at once, adding while
 * transposing (unpack 32, unpack 64, then 128-bit blocks twice): 45
 * instructions where 16 reductions take about 100. */
INLINE AVX512 __m512 hsum16(const __m512 v[16])
{
    __m512 u[8], w[4];
    for (int i = 0; i < 8; i++)
        u[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(u[2 * i]), b = _mm512_castps_pd(u[2 * i + 1]);
        w[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    const __m512 y0 = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88),
                                    _mm512_shuffle_f32x4(w[0], w[1], 0xdd)),
                 y1 = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], 0x88),
                                    _mm512_shuffle_f32x4(w[2], w[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y0, y1, 0x88), _mm512_shuffle_f32x4(y0, y1, 0xdd));
}

/* Keys scored per block of the online softmax (as in ops_cpu.c). */
#define ATT_BLOCK 64

/* Query row t of ng heads h0..h0+ng−1 that share one kv head, against
 * their visible keys: softmax(q·kᵀ·scale)·v with a running maximum and sum
 * per head, rescaled once per block of keys (as ops_cpu.c). Each block of
 * keys and values is read once for the ng heads (GQA: ng query heads per
 * kv head): the scores of 16 keys per head come out of one hsum16, the
 * keys staying in L1 for the next head, and each value row is loaded once
 * and added into every head's output. nvd = head_dim / 16 and ng are
 * constants where this is inlined (ng · nvd ≤ 16), so the ng outputs stay
 * in registers. */
INLINE AVX512 void attend_group(const int nvd, const int ng, const rf_attn_args *a, int t, int h0)
{
    const int hd = a->head_dim, kvd = a->n_kv_heads * hd;
    const int kvh = h0 / (a->n_heads / a->n_kv_heads);
    const int i = a->pos0 + t;
    const int first = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;
    const float *q = a->q + (size_t)t * a->n_heads * hd + (size_t)h0 * hd;
    const float *kbase = a->k + (size_t)kvh * hd, *vbase = a->v + (size_t)kvh * hd;
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++)
#pragma GCC unroll 8
        for (int d = 0; d < nvd; d++)
            acc[g][d] = _mm512_setzero_ps();
    const __m512 scale = _mm512_set1_ps(a->scale), ninf = _mm512_set1_ps(-INFINITY);
    float mx[4], sum[4];
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++)
        mx[g] = -INFINITY, sum[g] = 0.0f;
    float sc[4][ATT_BLOCK];
    for (int j0 = first; j0 <= i; j0 += ATT_BLOCK) {
        const int nb = i + 1 - j0 < ATT_BLOCK ? i + 1 - j0 : ATT_BLOCK;
#pragma GCC unroll 4
        for (int g = 0; g < ng; g++) {
            const float *qg = q + (size_t)g * hd;
            __m512 bm = ninf;
            for (int jb = 0; jb < nb; jb += 16) {
                __m512 part[16];
#pragma GCC unroll 16
                for (int jj = 0; jj < 16; jj++) {
                    part[jj] = _mm512_setzero_ps();
                    if (jb + jj >= nb) continue;
                    const float *kr = kbase + (size_t)(j0 + jb + jj) * kvd;
                    /* the cache was evicted by the weights since the last
                     * token: fetch 16 keys ahead (rows kvd apart) */
                    if (g == 0)
#pragma GCC unroll 8
                        for (int d = 0; d < nvd; d++)
                            _mm_prefetch((const char *)(kr + 16 * (size_t)kvd + 16 * d),
                                         _MM_HINT_T0);
                    __m512 s = _mm512_mul_ps(_mm512_loadu_ps(qg), _mm512_loadu_ps(kr));
#pragma GCC unroll 8
                    for (int d = 1; d < nvd; d++)
                        s = _mm512_fmadd_ps(_mm512_loadu_ps(qg + 16 * d),
                                            _mm512_loadu_ps(kr + 16 * d), s);
                    part[jj] = s;
                }
                const __m512 s =
                    _mm512_mask_mov_ps(ninf, mask16(nb - jb), _mm512_mul_ps(hsum16(part), scale));
                _mm512_storeu_ps(sc[g] + jb, s);
                bm = _mm512_max_ps(bm, s);
            }
            const float bmx = _mm512_reduce_max_ps(bm);
            if (bmx > mx[g]) { /* rescale what was summed under the old maximum */
                const float c = expf(mx[g] - bmx);
                sum[g] *= c;
#pragma GCC unroll 8
                for (int d = 0; d < nvd; d++)
                    acc[g][d] = _mm512_mul_ps(acc[g][d], _mm512_set1_ps(c));
                mx[g] = bmx;
            }
            __m512 ps = _mm512_setzero_ps();
            for (int jb = 0; jb < nb; jb += 16) {
                const __m512 p =
                    exp512(_mm512_sub_ps(_mm512_loadu_ps(sc[g] + jb), _mm512_set1_ps(mx[g])));
                _mm512_storeu_ps(sc[g] + jb, p);
                ps = _mm512_add_ps(ps, p);
            }
            sum[g] += _mm512_reduce_add_ps(ps);
        }
        for (int j = 0; j < nb; j++) {
            const float *vr = vbase + (size_t)(j0 + j) * kvd;
#pragma GCC unroll 8
            for (int d = 0; d < nvd; d++)
                _mm_prefetch((const char *)(vr + 16 * (size_t)kvd + 16 * d), _MM_HINT_T0);
#pragma GCC unroll 8
            for (int d = 0; d < nvd; d++) {
                const __m512 v = _mm512_loadu_ps(vr + 16 * d);
#pragma GCC unroll 4
                for (int g = 0; g < ng; g++)
                    acc[g][d] = _mm512_fmadd_ps(_mm512_set1_ps(sc[g][j]), v, acc[g][d]);
            }
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++) {
        float *out = a->out + (size_t)t * a->n_heads * hd + (size_t)(h0 + g) * hd;
        const __m512 inv = _mm512_set1_ps(1.0f / sum[g]);
#pragma GCC unroll 8
        for (int d = 0; d < nvd; d++)
            _mm512_storeu_ps(out + 16 * d, _mm512_mul_ps(acc[g][d], inv));
    }
}

/* Heads per task for head_dim / 16 = nvd: outputs in at most 16 zmm. */
static int group_width(int nvd, int gq)
{
    int w = 16 / nvd < 4 ? 16 / nvd : 4;
    return w < gq ? w : gq;
}

#define GCASE(nvd, ng) attend_group(nvd, ng, a, t, h0)
AVX512 static void attend(const rf_attn_args *a, int t, int h0, int ng)
{
    const int nvd = a->head_dim / 16;
    switch (nvd * 8 + ng) {
    case 1 * 8 + 1:
        GCASE(1, 1);
        break;
    case 1 * 8 + 2:
        GCASE(1, 2);
        break;
    case 1 * 8 + 3:
        GCASE(1, 3);
        break;
    case 1 * 8 + 4:
        GCASE(1, 4);
        break;
    case 2 * 8 + 1:
        GCASE(2, 1);
        break;
    case 2 * 8 + 2:
        GCASE(2, 2);
        break;
    case 2 * 8 + 3:
        GCASE(2, 3);
        break;
    case 2 * 8 + 4:
        GCASE(2, 4);
        break;
    case 3 * 8 + 1:
        GCASE(3, 1);
        break;
    case 3 * 8 + 2:
        GCASE(3, 2);
        break;
    case 3 * 8 + 3:
        GCASE(3, 3);
        break;
    case 3 * 8 + 4:
        GCASE(3, 4);
        break;
    case 4 * 8 + 1:
        GCASE(4, 1);
        break;
    case 4 * 8 + 2:
        GCASE(4, 2);
        break;
    case 4 * 8 + 3:
        GCASE(4, 3);
        break;
    case 4 * 8 + 4:
        GCASE(4, 4);
        break;
    case 5 * 8 + 1:
        GCASE(5, 1);
        break;
    case 5 * 8 + 2:
        GCASE(5, 2);
        break;
    case 5 * 8 + 3:
        GCASE(5, 3);
        break;
    case 6 * 8 + 1:
        GCASE(6, 1);
        break;
    case 6 * 8 + 2:
        GCASE(6, 2);
        break;
    case 7 * 8 + 1:
        GCASE(7, 1);
        break;
    case 7 * 8 + 2:
        GCASE(7, 2);
        break;
    case 8 * 8 + 1:
        GCASE(8, 1);
        break;
    default:
        GCASE(8, 2);
        break;
    }
}
#undef GCASE

int rf_cpu_attention_avx512(const rf_attn_args *a)
{
    if (!rf_cpu_has_avx512() || a->head_dim % 16 || a->head_dim > 128 || a->head_dim < 16)
        return -1;
    const int gq = a->n_heads / a->n_kv_heads, gw = group_width(a->head_dim / 16, gq);
    const int per_kv = (gq + gw - 1) / gw, tasks = a->n_kv_heads * per_kv;
    /* only the shortest steps are cheaper alone than a parallel region (a
     * decode step at 128 positions of a 12-head model is ~40 us here, and
     * its KV cache comes from memory: two threads fetch it faster) */
    const int par = (long)a->T * a->n_heads * (a->pos0 + a->T) * a->head_dim > (1L << 14);
    (void)par; /* unused where OpenMP is off (the fuzz build) */
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (par)
    for (int t = 0; t < a->T; t++)
        for (int k = 0; k < tasks; k++) {
            const int kvh = k / per_kv, sub = k % per_kv, h0 = kvh * gq + sub * gw;
            const int ng = gq - sub * gw < gw ? gq - sub * gw : gw;
            attend(a, t, h0, ng);
        }
    return 0;
}

/* gate[i] = gate[i] / (1 + e^−gate[i]) · up[i] on [i0, i1) */
AVX512 static void swiglu_part(float *gate, const float *up, size_t i0, size_t i1)
{
    for (size_t i = i0; i < i1; i += 16) {
        const __mmask16 mk = mask16((long)(i1 - i));
        const __m512 g = _mm512_maskz_loadu_ps(mk, gate + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        const __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_mask_storeu_ps(gate + i, mk, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mk, up + i)));
    }
}

void rf_cpu_swiglu_avx512(float *gate, const float *up, size_t n)
{
    const size_t chunk = 4096, nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > 4096)
    for (size_t c = 0; c < nc; c++)
        swiglu_part(gate, up, c * chunk, (c + 1) * chunk < n ? (c + 1) * chunk : n);
}

/* One row: the mean square accumulated in double (as ops_cpu.c), then
 * y = x · r · w in f32. */
AVX512 static void rmsnorm_row(float *yr, const float *xr, const float *w, int D, float eps)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < D; i += 16) {
        const __m512 x = _mm512_maskz_loadu_ps(mask16(D - i), xr + i);
        const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x)),
                      hi = _mm512_cvtps_pd(
                          _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    const double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    const __m512 r = _mm512_set1_ps((float)(1.0 / sqrt(ss / D + eps)));
    for (int i = 0; i < D; i += 16) {
        const __mmask16 mk = mask16(D - i);
        _mm512_mask_storeu_ps(yr + i, mk,
                              _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, xr + i), r),
                                            _mm512_maskz_loadu_ps(mk, w + i)));
    }
}

void rf_cpu_rmsnorm_avx512(float *y, const float *x, const float *w, int M, int D, float eps)
{
#pragma omp parallel for schedule(static) if (M > 1)
    for (int m = 0; m < M; m++)
        rmsnorm_row(y + (size_t)m * D, x + (size_t)m * D, w, D, eps);
}

/* ---- decode's dense products ------------------------------------------------
 * y[m, n] = W[n, :] · x[m, :] for few rows of x, 16 rows of W at a time: a
 * row's products summed in two zmm chains, the 16 rows' sums reduced
 * together by one hsum16 and stored as one vector. Rows n..n+15 are
 * adjacent in memory, so the weights arrive as one sequential stream. */

/* 16 weights at w[i] as f32: F32 as stored, F16 through vcvtph2ps, BF16
 * widened (bf16 is the top half of an f32). */
INLINE AVX512 __m512 load16(const int dt, const void *w, size_t i)
{
    if (dt == RF_DTYPE_F32) return _mm512_loadu_ps((const float *)w + i);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
    if (dt == RF_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INLINE AVX512 void gemv_block(const int dt, float *y, const float *x, const void *w, int M, int N,
                              int K, int n0)
{
    const size_t es = dt == RF_DTYPE_F32 ? 4 : 2;
    const int nr = N - n0 < 16 ? N - n0 : 16;
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * K;
        __m512 acc[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            acc[j] = _mm512_setzero_ps();
            if (j >= nr) continue;
            const char *row = (const char *)w + (size_t)(n0 + j) * K * es;
            __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
            int k = 0;
            for (; k + 32 <= K; k += 32) {
                a = _mm512_fmadd_ps(load16(dt, row, k), _mm512_loadu_ps(xm + k), a);
                b = _mm512_fmadd_ps(load16(dt, row, k + 16), _mm512_loadu_ps(xm + k + 16), b);
            }
            if (k < K) a = _mm512_fmadd_ps(load16(dt, row, k), _mm512_loadu_ps(xm + k), a);
            acc[j] = _mm512_add_ps(a, b);
        }
        _mm512_mask_storeu_ps(y + (size_t)m * N + n0, mask16(nr), hsum16(acc));
    }
}

AVX512 static void gemv_f32(float *y, const float *x, const void *w, int M, int N, int K, int n0)
{
    gemv_block(RF_DTYPE_F32, y, x, w, M, N, K, n0);
}

AVX512 static void gemv_f16(float *y, const float *x, const void *w, int M, int N, int K, int n0)
{
    gemv_block(RF_DTYPE_F16, y, x, w, M, N, K, n0);
}

AVX512 static void gemv_bf16(float *y, const float *x, const void *w, int M, int N, int K, int n0)
{
    gemv_block(RF_DTYPE_BF16, y, x, w, M, N, K, n0);
}

int rf_cpu_gemv_avx512(float *y, const float *x, const void *w, rf_dtype dt, int M, int N, int K)
{
    if (K % 16 || (dt != RF_DTYPE_F32 && dt != RF_DTYPE_F16 && dt != RF_DTYPE_BF16)) return -1;
    void (*f)(float *, const float *, const void *, int, int, int, int) =
        dt == RF_DTYPE_F32   ? gemv_f32
        : dt == RF_DTYPE_F16 ? gemv_f16
                             : gemv_bf16;
    /* blocks of 4 × 16 rows handed out dynamically (see ops_cpu.c) */
#pragma omp parallel for schedule(dynamic, 4)
    for (int n0 = 0; n0 < N; n0 += 16)
        f(y, x, w, M, N, K, n0);
    return 0;
}

/* The bf16 table's BF16 × bf16 decode: x rounded to bf16 (nearest even),
 * packed once; each row's pairs meet x's with vdpbf16ps, whose products
 * are exact in f32 (the f32 sums of the exact products, as rf_ops_cpu_bf16
 * promises), 32 weights an instruction and no conversion of the weights. */
#define BF16_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16")))

BF16_TARGET static void gemv_dp(float *y, const uint16_t *xb, const uint16_t *w, int M, int N,
                                int K, int n0)
{
    const int nr = N - n0 < 16 ? N - n0 : 16;
    for (int m = 0; m < M; m++) {
        const uint16_t *xm = xb + (size_t)m * K;
        __m512 acc[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            acc[j] = _mm512_setzero_ps();
            if (j >= nr) continue;
            const uint16_t *row = w + (size_t)(n0 + j) * K;
            __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
            int k = 0;
            for (; k + 64 <= K; k += 64) {
                a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(row + k),
                                     (__m512bh)_mm512_loadu_si512(xm + k));
                b = _mm512_dpbf16_ps(b, (__m512bh)_mm512_loadu_si512(row + k + 32),
                                     (__m512bh)_mm512_loadu_si512(xm + k + 32));
            }
            if (k < K)
                a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(row + k),
                                     (__m512bh)_mm512_loadu_si512(xm + k));
            acc[j] = _mm512_add_ps(a, b);
        }
        _mm512_mask_storeu_ps(y + (size_t)m * N + n0, mask16(nr), hsum16(acc));
    }
}

BF16_TARGET static void round_rows(const float *x, size_t n, uint16_t *xb)
{
    for (size_t i = 0; i < n; i += 32) /* n a multiple of 32 */
        _mm512_storeu_si512(xb + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16),
                                                                 _mm512_loadu_ps(x + i)));
}

int rf_cpu_gemv_bf16_dp(float *y, const float *x, const uint16_t *w, int M, int N, int K,
                        float *scratch, size_t scratch_n)
{
    if (K % 32 || (size_t)M * K / 2 > scratch_n) return -1;
    uint16_t *xb = (uint16_t *)scratch;
    round_rows(x, (size_t)M * K, xb);
#pragma omp parallel for schedule(dynamic, 4)
    for (int n0 = 0; n0 < N; n0 += 16)
        gemv_dp(y, xb, w, M, N, K, n0);
    return 0;
}
