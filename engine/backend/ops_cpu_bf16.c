/* AVX-512 BF16 kernels: see ops_cpu_bf16.h for what they compute.
 *
 * vdpbf16ps multiplies pairs: lane i of dst += a[2i]·b[2i] + a[2i+1]·b[2i+1]
 * (Intel SDM, VDPBF16PS), the products exact in f32. A GEMM y = x·Wᵀ then
 * runs on two packed operands:
 *   - a row of x as dwords of two bf16, one dword per pair of k (the "A"
 *     rows, broadcast to every lane);
 *   - a panel of 64 output channels: for each pair of k, 4 zmm of 16
 *     channels × that pair (the "B" panel, 64 bytes per 16 channels).
 * The micro-kernel keeps 6 rows × 64 channels of sums in 24 zmm registers
 * and issues 24 vdpbf16ps per pair of k against 4 panel loads (register
 * blocking in the manner of GotoBLAS); a panel is packed once per tile and
 * reused by every block of rows, from L2 (dense) or L1 (one W4A16 group).
 *
 * Which two k share a dword is free, as long as x and W agree. Dense bf16
 * rows pair (2p, 2p+1). A GPTQ word holds k = 8r..8r+7 of one channel, in
 * nibbles 0..7 (FORMATS.md "GPTQ W4A16 checkpoint"); its low 16 bits carry
 * nibbles 0..3 and its high 16 bits nibbles 4..7, so the word shifted right
 * by 4b has nibble b at the bottom of its low half and nibble b + 4 at the
 * bottom of its high half. vpermw, which reads only the low 5 bits of each
 * 16-bit index, turns both into bf16 at once through a 32-entry table
 * holding bf16(i & 15): two instructions per 32 weights, pairs
 * (8r + b, 8r + b + 4), and x is packed in that order to match. That is how
 * prefill packs its panels; decode, which dequantizes every weight once per
 * token, moves the same nibbles under the mantissa of 1.0 instead (one
 * shift and one vpternlogd, no table: see row_pass), giving 1 + q/16. */
#include "engine/backend/ops_cpu_bf16.h"

#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))

#define MR 6         /* rows of x per micro-kernel call */
#define NV 4         /* zmm of 16 channels in a panel */
#define NR (16 * NV) /* output channels per panel */
#define ALIGN 64
/* Pairs of k per pass of a dense tile: 16 KiB of panel, resident in L1
 * while every block of rows runs over it (one W4A16 group of 128 is the
 * same size). */
#define SEG 64
/* Channels per work item of the decode kernel when threads split the
 * channels: its partial sums (M × CH floats) stay in L1 for one row. */
#define CH 2048
/* Rows of words fetched ahead while a W4A16 panel is packed. */
#define PF_ROWS 16
/* k per panel of the f32 FMA form (32 KiB: the panel, one block of rows of
 * A and of y stay in a 48 KiB L1), and the most for one W4A16 group. */
#define SEGF 128
#define SEGW 256

enum { PAIR_DENSE, PAIR_W4 };

int rf_cpu_has_bf16(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Carve n bytes, 64-byte aligned, from *p (which advances). */
static void *carve(char **p, size_t n)
{
    char *q = (char *)round_up((size_t)*p, ALIGN);
    *p = q + round_up(n, ALIGN);
    return q;
}

static uint16_t bf16_bits_of_int(int i)
{
    float f = (float)i;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16); /* small integers are exact in bf16 */
}

/* 32 bf16 → the f32 values they hold, low and high 16. */
INLINE BF16_TARGET __m512 bf16_lo_f32(__m512i v)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16));
}

INLINE BF16_TARGET __m512 bf16_hi_f32(__m512i v)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16));
}

static __mmask16 mask16(int n)
{
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/* One row of x (K floats) into A: term t's pair p at a[t·p16 + p]. For
 * PAIR_W4 also xs[g] = Σ_{k∈g} (the value the terms hold), per group of gs
 * (xs NULL otherwise). The last chunk may write up to p16 dwords per term. */
BF16_TARGET static void pack_row(const float *x, int K, int mode, int terms, uint32_t *a,
                                 size_t p16, int gs, float *xs)
{
    /* within each 8 values, bf16 order 0,4,1,5,2,6,3,7: dwords (b, b+4) */
    uint16_t idx[32];
    for (int i = 0; i < 32; i++) {
        int j = i % 8;
        idx[i] = (uint16_t)(i / 8 * 8 + (j % 2 ? 4 + j / 2 : j / 2));
    }
    const __m512i perm = _mm512_loadu_si512(idx);
    if (xs) memset(xs, 0, sizeof(float) * (size_t)(K / gs));
    for (int k0 = 0; k0 < K; k0 += 32) {
        const int n = K - k0 < 32 ? K - k0 : 32;
        const __m512 x0 = _mm512_maskz_loadu_ps(mask16(n), x + k0),
                     x1 = _mm512_maskz_loadu_ps(mask16(n - 16), x + k0 + 16);
        /* term t rounds what the terms before it left: r − bf16(r) is exact */
        __m512 r0 = x0, r1 = x1, s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (int t = 0; t < terms; t++) {
            __m512i b = (__m512i)_mm512_cvtne2ps_pbh(r1, r0);
            const __m512 b0 = bf16_lo_f32(b), b1 = bf16_hi_f32(b);
            r0 = _mm512_sub_ps(r0, b0), r1 = _mm512_sub_ps(r1, b1);
            s0 = _mm512_add_ps(s0, b0), s1 = _mm512_add_ps(s1, b1);
            if (mode == PAIR_W4) b = _mm512_permutexvar_epi16(perm, b);
            _mm512_storeu_si512(a + (size_t)t * p16 + k0 / 2, b);
        }
        if (!xs) continue;
        if (gs % 32 == 0) {
            xs[k0 / gs] += _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
        } else {
            float v[32];
            _mm512_storeu_ps(v, s0);
            _mm512_storeu_ps(v + 16, s1);
            for (int i = 0; i < n; i++)
                xs[(k0 + i) / gs] += v[i];
        }
    }
}

/* 16 × 16 dwords transposed in registers (unpack 32, unpack 64, then two
 * rounds of 128-bit lane shuffles). */
INLINE BF16_TARGET void transpose16(__m512i r[16])
{
    __m512i t[16], u[16], v[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        v[i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x88);
        v[4 + i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xdd);
        v[8 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x88);
        v[12 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(v[i], v[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_i32x4(v[i], v[8 + i], 0xdd);
    }
}

/* Channels [n0, n0 + nr) of a row-major bf16 W [N, K] as a panel of P
 * pairs (columns past nr and k past K are zero). */
BF16_TARGET static void pack_panel_dense(const uint16_t *w, int K, int n0, int nr, int P,
                                         __m512i *panel)
{
    for (int v = 0; v < NV; v++) {
        if (16 * v >= nr) {
            for (int p = 0; p < P; p++)
                panel[(size_t)p * NV + v] = _mm512_setzero_si512();
            continue;
        }
        for (int p0 = 0; p0 < P; p0 += 16) {
            const int ke = K - 2 * p0;
            const __mmask32 mk = ke >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << ke) - 1);
            __m512i r[16];
            for (int j = 0; j < 16; j++) {
                const uint16_t *src = w + (size_t)(n0 + 16 * v + j) * K + 2 * p0;
                /* 16 rows read side by side: fetch each one's next lines
                 * ahead, the hardware prefetcher does not follow 16 streams */
                if (16 * v + j < nr && 2 * p0 + 128 < K)
                    _mm_prefetch((const char *)(src + 128), _MM_HINT_T0);
                r[j] = 16 * v + j < nr ? _mm512_maskz_loadu_epi16(mk, src) : _mm512_setzero_si512();
            }
            transpose16(r);
            for (int i = 0; i < 16 && p0 + i < P; i++)
                panel[(size_t)(p0 + i) * NV + v] = r[i];
        }
    }
}

/* Channels [n0, n0 + nr) of a GPTQ weight as a panel of K/2 pairs, the
 * integers q as bf16 (nr a multiple of 8, as N is). */
BF16_TARGET static void pack_panel_w4(const rf_gptq_weight *w, int n0, int nr, __m512i *panel)
{
    uint16_t t[32];
    for (int i = 0; i < 32; i++)
        t[i] = bf16_bits_of_int(i & 15);
    const __m512i tab = _mm512_loadu_si512(t);
    __mmask16 mk[NV];
    for (int v = 0; v < NV; v++)
        mk[v] = mask16(nr - 16 * v);
    const int N = w->N, R = w->K / 8;
    for (int r = 0; r < R; r++) {
        const int32_t *row = w->qweight + (size_t)r * N + n0;
        /* the tile's rows of words are 256 bytes each, N·4 apart: a new
         * page every few rows, where the hardware prefetchers stop, so the
         * rows PF_ROWS ahead are fetched here */
        if (r + PF_ROWS < R)
            for (int v = 0; v < NV && 16 * v < nr; v++)
                _mm_prefetch((const char *)(row + (size_t)PF_ROWS * N + 16 * v), _MM_HINT_T0);
        __m512i *out = panel + (size_t)4 * r * NV;
        for (int v = 0; v < NV; v++) {
            const __m512i wd = _mm512_maskz_loadu_epi32(mk[v], row + 16 * v);
            out[v] = _mm512_permutexvar_epi16(wd, tab);
            out[NV + v] = _mm512_permutexvar_epi16(_mm512_srli_epi32(wd, 4), tab);
            out[2 * NV + v] = _mm512_permutexvar_epi16(_mm512_srli_epi32(wd, 8), tab);
            out[3 * NV + v] = _mm512_permutexvar_epi16(_mm512_srli_epi32(wd, 12), tab);
        }
    }
}

/* acc[m][v] = Σ_{p0 ≤ p < p1} Σ_t A_t[m, p] · panel[p, v] for mr rows; mr
 * and nt are constants where this is inlined, so the loops unroll and the
 * 24 sums stay in registers. */
INLINE BF16_TARGET void kern(const int mr, const int nt, const uint32_t *a, size_t lda, size_t p16,
                             const __m512i *panel, int p0, int p1, __m512 acc[MR][NV])
{
#pragma GCC unroll 8
    for (int m = 0; m < mr; m++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[m][v] = _mm512_setzero_ps();
    for (int p = p0; p < p1; p++) {
        __m512bh b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            b[v] = (__m512bh)_mm512_load_si512(panel + (size_t)p * NV + v);
#pragma GCC unroll 8
        for (int m = 0; m < mr; m++)
#pragma GCC unroll 2
            for (int t = 0; t < nt; t++) {
                const __m512bh av =
                    (__m512bh)_mm512_set1_epi32((int)a[(size_t)m * lda + (size_t)t * p16 + p]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    acc[m][v] = _mm512_dpbf16_ps(acc[m][v], av, b[v]);
            }
    }
}

/* Operands of one tile's micro-kernel calls. */
typedef struct tile_args {
    const uint32_t *a; /* first row of the block */
    size_t lda, p16;
    const __m512i *panel;
    const float *af; /* the f32 form's A (at the segment's first k) and panel */
    const __m512 *pf;
    float *c; /* y at (first row, n0) */
    size_t ldc;
    __mmask16 mk[NV]; /* valid channels of each vector */
    /* W4A16: group g's scales and zeros at n0 ([G, N] f32), xs [rows, G] */
    const float *s, *z, *xs;
    int G;
} tile_args;

/* Pairs [p0, p1) of a dense tile: c = Σ, or c += Σ when not first. */
INLINE BF16_TARGET void store_dense(const int mr, const tile_args *ta, __m512 acc[MR][NV],
                                    int first)
{
#pragma GCC unroll 8
    for (int m = 0; m < mr; m++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *c = ta->c + (size_t)m * ta->ldc + 16 * v;
            const __m512 o =
                first ? acc[m][v] : _mm512_add_ps(acc[m][v], _mm512_maskz_loadu_ps(ta->mk[v], c));
            _mm512_mask_storeu_ps(c, ta->mk[v], o);
        }
}

INLINE BF16_TARGET void block_dense(const int mr, const int nt, const tile_args *ta, int p0, int p1,
                                    int first)
{
    __m512 acc[MR][NV];
    kern(mr, nt, ta->a, ta->lda, ta->p16, ta->panel, p0, p1, acc);
    store_dense(mr, ta, acc, first);
}

/* Group g of a W4A16 tile: c += s · (Σ x q − z · Σ x), or c = … when
 * first; xs at column j of its rows (the group's, or the segment's). */
INLINE BF16_TARGET void store_w4(const int mr, const tile_args *ta, __m512 acc[MR][NV], int j,
                                 int first)
{
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        const __m512 s = _mm512_maskz_loadu_ps(ta->mk[v], ta->s + 16 * v),
                     z = _mm512_maskz_loadu_ps(ta->mk[v], ta->z + 16 * v);
#pragma GCC unroll 8
        for (int m = 0; m < mr; m++) {
            float *c = ta->c + (size_t)m * ta->ldc + 16 * v;
            const __m512 t =
                _mm512_fnmadd_ps(z, _mm512_set1_ps(ta->xs[(size_t)m * ta->G + j]), acc[m][v]);
            const __m512 o = first ? _mm512_mul_ps(s, t)
                                   : _mm512_fmadd_ps(s, t, _mm512_maskz_loadu_ps(ta->mk[v], c));
            _mm512_mask_storeu_ps(c, ta->mk[v], o);
        }
    }
}

INLINE BF16_TARGET void block_w4(const int mr, const int nt, const tile_args *ta, int g, int pps,
                                 int first)
{
    __m512 acc[MR][NV];
    kern(mr, nt, ta->a, ta->lda, ta->p16, ta->panel, g * pps, (g + 1) * pps, acc);
    store_w4(mr, ta, acc, g, first);
}

#define CASE(mr, nt, call)                                                                         \
    case (mr)*4 + (nt):                                                                            \
        call;                                                                                      \
        break;
#define CASES(f, ...)                                                                              \
    CASE(1, 1, f(1, 1, __VA_ARGS__))                                                               \
    CASE(2, 1, f(2, 1, __VA_ARGS__))                                                               \
    CASE(3, 1, f(3, 1, __VA_ARGS__))                                                               \
    CASE(4, 1, f(4, 1, __VA_ARGS__))                                                               \
    CASE(5, 1, f(5, 1, __VA_ARGS__))                                                               \
    CASE(6, 1, f(6, 1, __VA_ARGS__))                                                               \
    CASE(1, 2, f(1, 2, __VA_ARGS__))                                                               \
    CASE(2, 2, f(2, 2, __VA_ARGS__))                                                               \
    CASE(3, 2, f(3, 2, __VA_ARGS__))                                                               \
    CASE(4, 2, f(4, 2, __VA_ARGS__))                                                               \
    CASE(5, 2, f(5, 2, __VA_ARGS__))                                                               \
    CASE(6, 2, f(6, 2, __VA_ARGS__))

BF16_TARGET static void run_dense(int mr, int nt, const tile_args *ta, int p0, int p1, int first)
{
    switch (mr * 4 + nt) {
        CASES(block_dense, ta, p0, p1, first)
    }
}

BF16_TARGET static void run_w4(int mr, int nt, const tile_args *ta, int g, int pps, int first)
{
    switch (mr * 4 + nt) {
        CASES(block_w4, ta, g, pps, first)
    }
}

/* Threads and rows of x a chunk for a GEMM of ntiles tiles whose threads
 * each hold a panel of panel_bytes and whose packed rows take row_bytes:
 * fewer threads when scratch cannot hold a panel each beside MR rows, and
 * -1 when it cannot for one. */
static int plan(int M, int ntiles, size_t panel_bytes, size_t row_bytes, size_t scratch_n,
                int *team, int *Mc)
{
    int t = omp_get_max_threads();
    if (t > ntiles) t = ntiles;
    const size_t have = scratch_n * sizeof(float), slack = 4 * ALIGN;
    while (t > 1 && (size_t)t * panel_bytes + MR * row_bytes + slack > have)
        t--;
    if ((size_t)t * panel_bytes + MR * row_bytes + slack > have) return -1;
    const size_t mc_cap = (have - slack - (size_t)t * panel_bytes) / row_bytes;
    *team = t;
    *Mc = mc_cap >= (size_t)M ? M : (int)(mc_cap / MR * MR);
    return 0;
}

/* ---- the f32 FMA form ------------------------------------------------------ */

/* Where vdpbf16ps issues slower than f32 FMAs do their work (measured here:
 * an Intel family 6 model 207 core runs 1.1 G vdpbf16ps/s, 72 GFLOP/s,
 * beside 5.4 G 16-wide FMA/s, 174 GFLOP/s; AMD Zen 4 the other way round),
 * the GEMMs take the same operands in f32: x as its terms sum (hi, or
 * hi + lo, exact in f32), the weights widened exactly (bf16 by a shift,
 * W4A16 integers by a conversion), one FMA a k. The products are those of
 * the vdpbf16ps form; only the order of the f32 additions differs. The
 * panel holds one segment of k (a W4A16 group, or a part of one) and is
 * packed just before the rows run over it, so it stays in L1. */

/* One row of x (K floats) into A as the f32 sum of its terms (a[k], k
 * padded with zeros to a multiple of 16), and xs[j] = Σ over segment j of
 * seg k when xs is not NULL. */
BF16_TARGET static void pack_row_f32(const float *x, int K, int terms, float *a, int seg, float *xs)
{
    if (xs) memset(xs, 0, sizeof(float) * (size_t)(K / seg));
    __m512 part = _mm512_setzero_ps(); /* the segment's sums so far (seg % 16 == 0) */
    for (int k0 = 0; k0 < K; k0 += 16) {
        const int n = K - k0 < 16 ? K - k0 : 16;
        __m512 r = _mm512_maskz_loadu_ps(mask16(n), x + k0), sum = _mm512_setzero_ps();
        for (int t = 0; t < terms; t++) {
            const __m512 b = _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(r)), 16));
            r = _mm512_sub_ps(r, b);
            sum = _mm512_add_ps(sum, b);
        }
        _mm512_storeu_ps(a + k0, sum);
        if (!xs) continue;
        if (seg % 16 == 0) {
            part = _mm512_add_ps(part, sum);
            if ((k0 + 16) % seg == 0 || k0 + 16 >= K) {
                xs[k0 / seg] = _mm512_reduce_add_ps(part);
                part = _mm512_setzero_ps();
            }
        } else {
            for (int i = 0; i < n; i++)
                xs[(k0 + i) / seg] += a[k0 + i];
        }
    }
}

/* k [k0, k0 + kk) of channels [n0, n0 + nr) of a row-major bf16 W [N, K]
 * as f32: panel[k·NV + v] (channels past nr and k past K are zero). */
BF16_TARGET static void pack_seg_dense(const uint16_t *w, int K, int n0, int nr, int k0, int kk,
                                       __m512 *panel)
{
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000u);
    for (int v = 0; v < NV; v++)
        for (int c = 0; c < kk; c += 32) {
            const int ke = K - k0 - c;
            const __mmask32 mk = ke >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << ke) - 1);
            __m512i r[16];
            for (int j = 0; j < 16; j++) {
                const int in = 16 * v + j < nr;
                const uint16_t *src = w + (size_t)(n0 + 16 * v + j) * K + k0 + c;
                if (in && k0 + c + 128 < K) _mm_prefetch((const char *)(src + 128), _MM_HINT_T0);
                r[j] = in ? _mm512_maskz_loadu_epi16(mk, src) : _mm512_setzero_si512();
            }
            transpose16(r); /* r[i]: the 16 channels' k = c + 2i (low), c + 2i + 1 (high) */
            for (int i = 0; i < 16; i++) {
                panel[(size_t)(c + 2 * i) * NV + v] =
                    _mm512_castsi512_ps(_mm512_slli_epi32(r[i], 16));
                panel[(size_t)(c + 2 * i + 1) * NV + v] =
                    _mm512_castsi512_ps(_mm512_and_si512(r[i], hi));
            }
        }
}

/* k [k0, k0 + kk) of channels [n0, n0 + nr) of a GPTQ weight, the integers
 * q as f32 (k0 and kk multiples of 8, within one group). */
BF16_TARGET static void pack_seg_w4(const rf_gptq_weight *w, int n0, int nr, int k0, int kk,
                                    __m512 *panel)
{
    const int N = w->N, R = w->K / 8;
    const __m512i f = _mm512_set1_epi32(15);
    __mmask16 mk[NV];
    for (int v = 0; v < NV; v++)
        mk[v] = mask16(nr - 16 * v);
    /* a tile's first segment has had nothing fetched ahead: ask for all
     * of its first rows at once, so that their misses overlap */
    if (k0 == 0)
        for (int r = 0; r < kk / 8 && r < PF_ROWS; r++)
            for (int v = 0; v < NV && 16 * v < nr; v++)
                _mm_prefetch((const char *)(w->qweight + (size_t)r * N + n0 + 16 * v), _MM_HINT_T0);
    for (int r = k0 / 8; r < (k0 + kk) / 8; r++) {
        const int32_t *row = w->qweight + (size_t)r * N + n0;
        /* rows N·4 bytes apart, a new page every few: see pack_panel_w4 */
        if (r + PF_ROWS < R)
            for (int v = 0; v < NV && 16 * v < nr; v++)
                _mm_prefetch((const char *)(row + (size_t)PF_ROWS * N + 16 * v), _MM_HINT_T0);
        __m512 *out = panel + (size_t)(8 * r - k0) * NV;
        for (int v = 0; v < NV; v++) {
            const __m512i wd = _mm512_maskz_loadu_epi32(mk[v], row + 16 * v);
#pragma GCC unroll 8
            for (int b = 0; b < 8; b++)
                out[b * NV + v] =
                    _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(wd, 4 * b), f));
        }
    }
}

/* acc[m][v] = Σ_{k < kk} a[m, k] · panel[k, v] for mr rows. */
INLINE BF16_TARGET void kern_f32(const int mr, const float *a, size_t lda, const __m512 *panel,
                                 int kk, __m512 acc[MR][NV])
{
#pragma GCC unroll 8
    for (int m = 0; m < mr; m++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[m][v] = _mm512_setzero_ps();
    for (int k = 0; k < kk; k++) {
        __m512 b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            b[v] = _mm512_load_ps(panel + (size_t)k * NV + v);
#pragma GCC unroll 8
        for (int m = 0; m < mr; m++) {
            const __m512 av = _mm512_set1_ps(a[(size_t)m * lda + k]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[m][v] = _mm512_fmadd_ps(av, b[v], acc[m][v]);
        }
    }
}

INLINE BF16_TARGET void block_dense_f32(const int mr, const tile_args *ta, int kk, int first)
{
    __m512 acc[MR][NV];
    kern_f32(mr, ta->af, ta->lda, ta->pf, kk, acc);
    store_dense(mr, ta, acc, first);
}

INLINE BF16_TARGET void block_w4_f32(const int mr, const tile_args *ta, int j, int kk, int first)
{
    __m512 acc[MR][NV];
    kern_f32(mr, ta->af, ta->lda, ta->pf, kk, acc);
    store_w4(mr, ta, acc, j, first);
}

#define CASE_F(mr, call)                                                                           \
    case mr:                                                                                       \
        call;                                                                                      \
        break;
#define CASES_F(f, ...)                                                                            \
    CASE_F(1, f(1, __VA_ARGS__))                                                                   \
    CASE_F(2, f(2, __VA_ARGS__))                                                                   \
    CASE_F(3, f(3, __VA_ARGS__))                                                                   \
    CASE_F(4, f(4, __VA_ARGS__))                                                                   \
    CASE_F(5, f(5, __VA_ARGS__))                                                                   \
    CASE_F(6, f(6, __VA_ARGS__))

BF16_TARGET static void run_dense_f32(int mr, const tile_args *ta, int kk, int first)
{
    switch (mr) {
        CASES_F(block_dense_f32, ta, kk, first)
    }
}

BF16_TARGET static void run_w4_f32(int mr, const tile_args *ta, int j, int kk, int first)
{
    switch (mr) {
        CASES_F(block_w4_f32, ta, j, kk, first)
    }
}

/* k per W4A16 segment: the group, or the largest multiple of 8 dividing
 * it that is at most SEGW (the epilogue is linear in the segment's sums). */
static int w4_seg(int gs)
{
    if (gs <= SEGW) return gs;
    for (int s = SEGW; s >= 8; s -= 8)
        if (gs % s == 0) return s;
    return 8;
}

/* ---- the GEMM driver ------------------------------------------------------ */

typedef struct gemm_op {
    int mode; /* PAIR_DENSE (wd) or PAIR_W4 (w4) */
    const uint16_t *wd;
    const rf_gptq_weight *w4;
    int M, N, K, nt;
    const float *x;
    float *y;
} gemm_op;

/* Rows of x in chunks that fit the scratch beside one panel per thread:
 * each chunk packed once (threads split its rows), then the threads take
 * tiles of 64 channels: pack the tile's panel, run every block of rows. */
BF16_TARGET static int gemm(const gemm_op *op, float *scratch, size_t scratch_n)
{
    const int M = op->M, N = op->N, K = op->K, nt = op->nt;
    const int P = (K + 1) / 2, G = op->mode == PAIR_W4 ? op->w4->G : 0;
    const int gs = G ? K / G : 0, pps = G ? gs / 2 : 0;
    const size_t p16 = round_up((size_t)P, 16);
    const size_t lda = round_up((size_t)nt * p16, 16); /* dwords per packed row */
    const size_t row_bytes = lda * 4 + sizeof(float) * G;
    const size_t panel_bytes = p16 * NV * 64;
    const int ntiles = (N + NR - 1) / NR;
    int team, Mc;
    if (plan(M, ntiles, panel_bytes, row_bytes, scratch_n, &team, &Mc)) return -1;

    char *p = (char *)scratch;
    __m512i *panels = carve(&p, (size_t)team * panel_bytes);
    uint32_t *A = carve(&p, (size_t)Mc * lda * 4);
    float *xs = carve(&p, (size_t)Mc * G * sizeof(float));

#pragma omp parallel num_threads(team)
    {
        __m512i *panel = panels + (size_t)omp_get_thread_num() * (panel_bytes / 64);
        for (int c0 = 0; c0 < M; c0 += Mc) {
            const int mc = M - c0 < Mc ? M - c0 : Mc;
#pragma omp for schedule(static)
            for (int m = 0; m < mc; m++)
                pack_row(op->x + (size_t)(c0 + m) * K, K, op->mode, nt, A + (size_t)m * lda, p16,
                         gs, G ? xs + (size_t)m * G : NULL);
#pragma omp for schedule(dynamic, 1)
            for (int ti = 0; ti < ntiles; ti++) {
                const int n0 = ti * NR, nr = N - n0 < NR ? N - n0 : NR;
                tile_args ta = {.lda = lda, .p16 = p16, .panel = panel, .ldc = (size_t)N, .G = G};
                for (int v = 0; v < NV; v++)
                    ta.mk[v] = mask16(nr - 16 * v);
                if (op->mode == PAIR_DENSE) {
                    pack_panel_dense(op->wd, K, n0, nr, P, panel);
                    /* segment-outer, as below: a segment of the panel stays in L1 */
                    for (int p0 = 0; p0 < P; p0 += SEG)
                        for (int mb = 0; mb < mc; mb += MR) {
                            ta.a = A + (size_t)mb * lda;
                            ta.c = op->y + (size_t)(c0 + mb) * N + n0;
                            run_dense(mc - mb < MR ? mc - mb : MR, nt, &ta, p0,
                                      P - p0 < SEG ? P : p0 + SEG, p0 == 0);
                        }
                } else {
                    pack_panel_w4(op->w4, n0, nr, panel);
                    /* group-outer: the group's part of the panel stays in L1 */
                    for (int g = 0; g < G; g++) {
                        ta.s = op->w4->sf + (size_t)g * N + n0;
                        ta.z = op->w4->zf + (size_t)g * N + n0;
                        for (int mb = 0; mb < mc; mb += MR) {
                            ta.a = A + (size_t)mb * lda;
                            ta.xs = xs + (size_t)mb * G;
                            ta.c = op->y + (size_t)(c0 + mb) * N + n0;
                            run_w4(mc - mb < MR ? mc - mb : MR, nt, &ta, g, pps, g == 0);
                        }
                    }
                }
            }
        }
    }
    return 0;
}

/* The f32 form of gemm(): the same split (chunks of rows packed once,
 * threads taking tiles of 64 channels), each tile's panel packed one
 * segment of k at a time, every block of rows run over it. */
BF16_TARGET static int gemm_f32(const gemm_op *op, float *scratch, size_t scratch_n)
{
    const int M = op->M, N = op->N, K = op->K, w4 = op->mode == PAIR_W4;
    const int gs = w4 ? K / op->w4->G : 0, seg = w4 ? w4_seg(gs) : SEGF;
    const int S = w4 ? K / seg : 0; /* segments a row, each with its Σ x */
    const size_t lda = round_up((size_t)K, 16);
    const size_t row_bytes = lda * 4 + sizeof(float) * S;
    const size_t panel_bytes = round_up((size_t)seg, 32) * NV * 64;
    const int ntiles = (N + NR - 1) / NR;
    int team, Mc;
    if (plan(M, ntiles, panel_bytes, row_bytes, scratch_n, &team, &Mc)) return -1;

    char *p = (char *)scratch;
    __m512 *panels = carve(&p, (size_t)team * panel_bytes);
    float *A = carve(&p, (size_t)Mc * lda * 4);
    float *xs = carve(&p, (size_t)Mc * S * sizeof(float));

#pragma omp parallel num_threads(team)
    {
        __m512 *panel = panels + (size_t)omp_get_thread_num() * (panel_bytes / 64);
        for (int c0 = 0; c0 < M; c0 += Mc) {
            const int mc = M - c0 < Mc ? M - c0 : Mc;
#pragma omp for schedule(static)
            for (int m = 0; m < mc; m++)
                pack_row_f32(op->x + (size_t)(c0 + m) * K, K, op->nt, A + (size_t)m * lda, seg,
                             S ? xs + (size_t)m * S : NULL);
#pragma omp for schedule(dynamic, 1)
            for (int ti = 0; ti < ntiles; ti++) {
                const int n0 = ti * NR, nr = N - n0 < NR ? N - n0 : NR;
                tile_args ta = {.lda = lda, .pf = panel, .ldc = (size_t)N, .G = S};
                for (int v = 0; v < NV; v++)
                    ta.mk[v] = mask16(nr - 16 * v);
                for (int k0 = 0; k0 < K; k0 += seg) {
                    const int kk = K - k0 < seg ? K - k0 : seg, j = k0 / seg;
                    if (w4) {
                        const int g = k0 / gs;
                        pack_seg_w4(op->w4, n0, nr, k0, kk, panel);
                        ta.s = op->w4->sf + (size_t)g * N + n0;
                        ta.z = op->w4->zf + (size_t)g * N + n0;
                    } else {
                        pack_seg_dense(op->wd, K, n0, nr, k0, kk, panel);
                    }
                    for (int mb = 0; mb < mc; mb += MR) {
                        const int mr = mc - mb < MR ? mc - mb : MR;
                        ta.af = A + (size_t)mb * lda + k0;
                        ta.c = op->y + (size_t)(c0 + mb) * N + n0;
                        if (w4) {
                            ta.xs = xs + (size_t)mb * S;
                            run_w4_f32(mr, &ta, j, kk, k0 == 0);
                        } else {
                            run_dense_f32(mr, &ta, kk, k0 == 0);
                        }
                    }
                }
            }
        }
    }
    return 0;
}

/* ---- which form ------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* GFLOP/s of one core issuing independent vdpbf16ps (fma = 0) or f32 FMAs
 * (fma = 1), 12 chains as the micro-kernels keep. Written in assembly so
 * that what is timed is the instruction, at any optimisation level (a
 * sanitizer build would otherwise time its spills). */
#define CHAINS12(op)                                                                               \
    op " %%zmm12, %%zmm13, %%zmm0\n\t" op " %%zmm12, %%zmm13, %%zmm1\n\t" op                       \
       " %%zmm12, %%zmm13, %%zmm2\n\t" op " %%zmm12, %%zmm13, %%zmm3\n\t" op                       \
       " %%zmm12, %%zmm13, %%zmm4\n\t" op " %%zmm12, %%zmm13, %%zmm5\n\t" op                       \
       " %%zmm12, %%zmm13, %%zmm6\n\t" op " %%zmm12, %%zmm13, %%zmm7\n\t" op                       \
       " %%zmm12, %%zmm13, %%zmm8\n\t" op " %%zmm12, %%zmm13, %%zmm9\n\t" op                       \
       " %%zmm12, %%zmm13, %%zmm10\n\t" op " %%zmm12, %%zmm13, %%zmm11\n\t"
#define ZMM_CLOBBERS                                                                               \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",       \
        "xmm11", "xmm12", "xmm13", "cc"

BF16_TARGET static double issue_rate(int fma)
{
    long n = 2000;
    const double t0 = now_s();
    if (fma)
        __asm__ volatile("vpxord %%zmm12, %%zmm12, %%zmm12\n\tvpxord %%zmm13, %%zmm13, %%zmm13\n"
                         "1:\n\t" CHAINS12("vfmadd231ps") "dec %0\n\tjnz 1b"
                         : "+r"(n)
                         :
                         : ZMM_CLOBBERS);
    else
        __asm__ volatile("vpxord %%zmm12, %%zmm12, %%zmm12\n\tvpxord %%zmm13, %%zmm13, %%zmm13\n"
                         "1:\n\t" CHAINS12("vdpbf16ps") "dec %0\n\tjnz 1b"
                         : "+r"(n)
                         :
                         : ZMM_CLOBBERS);
    const double t = now_s() - t0;
    return 2000.0 * 12 * (fma ? 32 : 64) / (t > 0 ? t : 1e-9) * 1e-9;
}

static rf_bf16_gemm_form g_measured = RF_BF16_GEMM_DP; /* the faster here */
static rf_bf16_gemm_form g_forced = RF_BF16_GEMM_AUTO; /* rf_cpu_bf16_set_gemm_form's */
static double g_rate[2];
static pthread_once_t g_form_once = PTHREAD_ONCE_INIT;

/* The faster of the two on this core, best of 5 interleaved trials (the
 * gap where it matters is 2× either way, far above the noise). */
static void measure_form(void)
{
    if (!rf_cpu_has_bf16()) return;
    for (int t = 0; t < 5; t++)
        for (int f = 0; f < 2; f++) {
            const double r = issue_rate(f);
            if (r > g_rate[f]) g_rate[f] = r;
        }
    g_measured = g_rate[1] > g_rate[0] ? RF_BF16_GEMM_FMA : RF_BF16_GEMM_DP;
}

rf_bf16_gemm_form rf_cpu_bf16_gemm_form(double *dp_gflops, double *fma_gflops)
{
    pthread_once(&g_form_once, measure_form);
    if (dp_gflops) *dp_gflops = g_rate[0];
    if (fma_gflops) *fma_gflops = g_rate[1];
    return g_forced == RF_BF16_GEMM_AUTO ? g_measured : g_forced;
}

void rf_cpu_bf16_set_gemm_form(rf_bf16_gemm_form f)
{
    g_forced = f;
}

static int run_gemm(const gemm_op *op, float *scratch, size_t scratch_n)
{
    return rf_cpu_bf16_gemm_form(NULL, NULL) == RF_BF16_GEMM_FMA ? gemm_f32(op, scratch, scratch_n)
                                                                 : gemm(op, scratch, scratch_n);
}

int rf_cpu_bf16_gemm(float *y, const float *x, const uint16_t *w, int M, int N, int K, int terms,
                     float *scratch, size_t scratch_n)
{
    if (!rf_cpu_has_bf16() || M < 1 || N < 1 || K < 1 || (terms != 1 && terms != 2)) return -1;
    const gemm_op op = {
        .mode = PAIR_DENSE, .wd = w, .M = M, .N = N, .K = K, .nt = terms, .x = x, .y = y};
    return run_gemm(&op, scratch, scratch_n);
}

static int w4_takes(const rf_gptq_weight *w)
{
    return w->monotonic && w->K % w->G == 0 && (w->K / w->G) % 8 == 0;
}

int rf_cpu_bf16_gemm_w4(float *y, const float *x, const rf_gptq_weight *w, int M, int terms,
                        float *scratch, size_t scratch_n)
{
    if (!rf_cpu_has_bf16() || M < 1 || !w4_takes(w) || (terms != 1 && terms != 2)) return -1;
    const gemm_op op = {
        .mode = PAIR_W4, .w4 = w, .M = M, .N = w->N, .K = w->K, .nt = terms, .x = x, .y = y};
    return run_gemm(&op, scratch, scratch_n);
}

/* ---- few rows (decode) ------------------------------------------------------ */

/* part[0, len) += Σ_b x pairs · q pairs over one row of words (w0, channels
 * along it) for one row of x, whose 4·nt pairs for this row of words are
 * xb[4t + b]. The decode loop: one row of the packed layout at a time, so
 * the weights arrive as one sequential stream (walking 4 or 16 rows side by
 * side, with the sums in registers, measured slower: the prefetchers keep
 * one stream full, not many), the partial sums staying in L1. */
INLINE BF16_TARGET void row_pass(const int nt, const int32_t *w0, int len, size_t next,
                                 const __m512bh *xb, float *part)
{
    /* nibble b of each half moved to mantissa bits 3..6 (b = 0: left 3,
     * else right 4b − 3), then (· & 0x0078) | 0x3F80 in one vpternlogd */
    const __m512i keep = _mm512_set1_epi32(0x00780078), one = _mm512_set1_epi32(0x3F803F80);
    for (int c = 0; c < len; c += 16) {
        const __mmask16 mk = mask16(len - c);
        const __m512i q = _mm512_maskz_loadu_epi32(mk, w0 + c);
        /* the same channels of the next row of words (for a whole-width
         * pass, simply the bytes that follow) */
        _mm_prefetch((const char *)(w0 + next + c), _MM_HINT_T0);
        __m512 a0 = _mm512_maskz_loadu_ps(mk, part + c), a1 = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) {
            const __m512i sh = b == 0 ? _mm512_slli_epi32(q, 3) : _mm512_srli_epi32(q, 4 * b - 3);
            const __m512bh d = (__m512bh)_mm512_ternarylogic_epi32(sh, keep, one, 0xEA);
#pragma GCC unroll 3
            for (int t = 0; t < nt; t++)
                if (b % 2)
                    a1 = _mm512_dpbf16_ps(a1, xb[4 * t + b], d);
                else
                    a0 = _mm512_dpbf16_ps(a0, xb[4 * t + b], d);
        }
        _mm512_mask_storeu_ps(part + c, mk, _mm512_add_ps(a0, a1));
    }
}

/* Group g, channels [n0, n1) of the few-rows product: part[m] = Σ_{k∈g}
 * x_k (1 + q_k/16), rows of words streamed in order (each a contiguous run
 * of the packed layout), then out[m][n] += 16 s · (part − (1 + z/16) · xs),
 * which is s · Σ x (q − z). The offset of 1 costs about 1.5 bits of the f32
 * sums (part is at most 2× what Σ x q/16 alone would be). */
INLINE BF16_TARGET void piece(const int nt, const rf_gptq_weight *w, int M, const uint32_t *A,
                              size_t lda, size_t p16, const float *xs, int g, int n0, int n1,
                              float *part, float *out, size_t ldo)
{
    const int N = w->N, G = w->G, gs = w->K / G, r0 = g * gs / 8, r1 = (g + 1) * gs / 8;
    const int len = n1 - n0;
    memset(part, 0, sizeof(float) * (size_t)M * len);
    for (int m = 0; m < M; m++) {
        const uint32_t *am = A + (size_t)m * lda;
        float *pm = part + (size_t)m * len;
        for (int r = r0; r < r1; r++) {
            __m512bh xb[12];
            for (int t = 0; t < nt; t++)
                for (int b = 0; b < 4; b++)
                    xb[4 * t + b] = (__m512bh)_mm512_set1_epi32((int)am[t * p16 + 4 * r + b]);
            row_pass(nt, w->qweight + (size_t)r * N + n0, len, (size_t)N, xb, pm);
        }
    }
    /* the group's scales and zeros as stored (f16, and nibbles of zero − 1
     * packed along N): 2.5 bytes a channel where the f32 copies take 8 */
    const uint16_t *sh = w->scales + (size_t)g * N + n0;
    const int32_t *zq = w->qzeros + (size_t)g * (N / 8) + n0 / 8;
    const __m512i zsh = _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i zsel = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int c = 0; c < len; c += 16) {
        const __mmask16 mk = mask16(len - c);
        const __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, sh + c));
        const __m512i zw =
            _mm512_permutexvar_epi32(zsel, _mm512_castsi128_si512(_mm_maskz_loadu_epi32(
                                               (__mmask8)(len - c > 8 ? 3 : 1), zq + c / 8)));
        /* part holds Σ x·(1 + q/16): Σ x (q − z) = 16 (part − (1 + z/16) Σ x),
         * z = stored + 1; 1 + z/16 and 16 s are exact */
        const __m512 zv = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(zw, zsh), _mm512_set1_epi32(15))),
            _mm512_set1_ps(0.0625f), _mm512_set1_ps(1.0625f));
        const __m512 sv16 = _mm512_mul_ps(sv, _mm512_set1_ps(16.0f));
        for (int m = 0; m < M; m++) {
            const float *pc = part + (size_t)m * len + c;
            float *oc = out + (size_t)m * ldo + n0 + c;
            const __m512 t = _mm512_fnmadd_ps(zv, _mm512_set1_ps(xs[(size_t)m * G + g]),
                                              _mm512_maskz_loadu_ps(mk, pc));
            _mm512_mask_storeu_ps(oc, mk, _mm512_fmadd_ps(sv16, t, _mm512_maskz_loadu_ps(mk, oc)));
        }
    }
}

BF16_TARGET static void gemv_piece(const rf_gptq_weight *w, int M, int nt, const uint32_t *A,
                                   size_t lda, size_t p16, const float *xs, int g, int n0, int n1,
                                   float *part, float *out, size_t ldo)
{
    if (nt == 1)
        piece(1, w, M, A, lda, p16, xs, g, n0, n1, part, out, ldo);
    else if (nt == 2)
        piece(2, w, M, A, lda, p16, xs, g, n0, n1, part, out, ldo);
    else
        piece(3, w, M, A, lda, p16, xs, g, n0, n1, part, out, ldo);
}

/* Threads split the groups (k) when the layer is narrow: each group's rows
 * of words are one contiguous block, each thread sums into its own [M, N]
 * and the partial sums are added at the end. Wide layers (the head) split
 * the channels instead, CH at a time, and write y directly. */
BF16_TARGET static int gemv(float *y, const float *x, const rf_gptq_weight *w, int M, int nt,
                            float *scratch, size_t scratch_n)
{
    const int N = w->N, K = w->K, G = w->G, gs = K / G;
    const size_t p16 = round_up((size_t)K / 2, 16), lda = round_up((size_t)nt * p16, 16);
    const int nchunk = (N + CH - 1) / CH;
    int team = omp_get_max_threads();
    int ksplit = G > 1 && nchunk < 2 * team;
    const size_t have = scratch_n * sizeof(float), slack = 8 * ALIGN;
    const size_t base = (size_t)M * lda * 4 + sizeof(float) * (size_t)M * G;
    size_t per = ksplit ? 2 * sizeof(float) * (size_t)M * N + 2 * ALIGN
                        : sizeof(float) * (size_t)M * (N < CH ? N : CH) + ALIGN;
    if (ksplit && base + per + slack > have) {
        ksplit = 0;
        per = sizeof(float) * (size_t)M * (N < CH ? N : CH) + ALIGN;
    }
    if (ksplit && team > G) team = G;
    if (!ksplit && team > nchunk) team = nchunk;
    while (team > 1 && base + (size_t)team * per + slack > have)
        team--;
    if (base + per + slack > have) return -1;
    char *p = (char *)scratch;
    uint32_t *A = carve(&p, (size_t)M * lda * 4);
    float *xs = carve(&p, sizeof(float) * (size_t)M * G);
    for (int m = 0; m < M; m++)
        pack_row(x + (size_t)m * K, K, PAIR_W4, nt, A + (size_t)m * lda, p16, gs,
                 xs + (size_t)m * G);
    float *parts = carve(&p, 0);
    const size_t per_f = round_up(per, ALIGN) / sizeof(float);
#pragma omp parallel num_threads(team)
    {
        const int tid = omp_get_thread_num();
        float *part = parts + (size_t)tid * per_f;
        if (ksplit) {
            float *acc = part + (size_t)M * N;
            memset(acc, 0, sizeof(float) * (size_t)M * N);
#pragma omp for schedule(dynamic, 1)
            for (int g = 0; g < G; g++)
                gemv_piece(w, M, nt, A, lda, p16, xs, g, 0, N, part, acc, (size_t)N);
#pragma omp for schedule(static)
            for (int n = 0; n < N; n += 16)
                for (int m = 0; m < M; m++) {
                    const __mmask16 mk = mask16(N - n);
                    __m512 s = _mm512_setzero_ps();
                    for (int t = 0; t < team; t++)
                        s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mk, parts + (size_t)t * per_f +
                                                                           (size_t)M * N +
                                                                           (size_t)m * N + n));
                    _mm512_mask_storeu_ps(y + (size_t)m * N + n, mk, s);
                }
        } else {
#pragma omp for schedule(dynamic, 1)
            for (int ci = 0; ci < nchunk; ci++) {
                const int n0 = ci * CH, n1 = n0 + CH < N ? n0 + CH : N;
                for (int m = 0; m < M; m++)
                    memset(y + (size_t)m * N + n0, 0, sizeof(float) * (size_t)(n1 - n0));
                for (int g = 0; g < G; g++)
                    gemv_piece(w, M, nt, A, lda, p16, xs, g, n0, n1, part, y, (size_t)N);
            }
        }
    }
    return 0;
}

int rf_cpu_bf16_gemv_w4(float *y, const float *x, const rf_gptq_weight *w, int M, int terms,
                        float *scratch, size_t scratch_n)
{
    if (!rf_cpu_has_bf16() || M < 1 || M > 7 || !w4_takes(w) || terms < 1 || terms > 3) return -1;
    return gemv(y, x, w, M, terms, scratch, scratch_n);
}
