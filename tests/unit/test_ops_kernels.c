/* The CPU backend's SIMD matmul kernels against its portable C table
 * (rf_ops_cpu_generic) on shapes chosen to hit their edges: rows below and
 * above the decode/GEMM switch and not a multiple of the 6-row micro-kernel,
 * channels not a multiple of the 64-channel panel or of 16, odd and short
 * K, W4A16 group sizes that do and do not fill a 32-value chunk, one group,
 * act-order, layers wide enough for the decode kernel to split channels,
 * unaligned x and y, and scratch too small for one pass (the GEMM then
 * works in chunks of rows or falls back); and the AVX-512 attention, SwiGLU
 * and RMSNorm on head sizes, GQA groups, windows and lengths with tails.
 *
 *   rf_ops_cpu       must equal generic(x)        within 1e-5 of max |ref|
 *   rf_ops_cpu_bf16  must equal generic(bf16(x))  within 1e-5 (BF16, W4A16)
 *
 * where bf16(x) rounds to nearest even (rf_f32_to_bf16). On a CPU without
 * AVX-512 BF16 the same comparisons check the AVX2 kernels and the
 * rounding fallback. The dense and W4A16 cases run under both GEMM forms
 * (vdpbf16ps, and f32 FMAs on the widened operands), whichever this CPU
 * would pick. Each case prints its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/ops.h"
#include "engine/backend/ops_cpu_bf16.h"

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static double urand(void) /* uniform in [-1, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / (double)(1ull << 52) - 1.0;
}

static uint32_t u32(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 17);
}

/* n floats one past a 64-byte boundary (misaligned on purpose), filled. */
static float *odd_alloc(size_t n, float **base, double scale)
{
    *base = malloc(sizeof(float) * (n + 17));
    float *p = *base + 1;
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(urand() * scale);
    return p;
}

static void rounded(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = rf_bf16_to_f32(rf_f32_to_bf16(src[i]));
}

static int g_failures;

static void check(const char *table, const char *what, const float *got, const float *ref, size_t n)
{
    double mabs = 0, mref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        mabs = isnan(d) ? INFINITY : fmax(mabs, d);
        mref = fmax(mref, fabs(ref[i]));
    }
    double rel = mabs / (mref > 0 ? mref : 1);
    int ok = rel <= 1e-5;
    if (!ok || getenv("RF_TEST_VERBOSE"))
        printf("  %-9s %-52s max rel %.2e  %s\n", table, what, rel, ok ? "OK" : "FAIL");
    g_failures += !ok;
}

/* Run one product through the three tables. scratch_div > 1 gives the
 * kernels a fraction of the contract's scratch. */
static void run_dense(rf_dtype dt, int M, int N, int K, int scratch_div, int with_bias)
{
    rf_error err = {0};
    rf_tensor w;
    int64_t shape[2] = {N, K};
    float *xb, *yb, *x = odd_alloc((size_t)M * K, &xb, 1.0);
    float *wv = malloc(sizeof(float) * (size_t)N * K), *xr = malloc(sizeof(float) * (size_t)M * K);
    for (size_t i = 0; i < (size_t)N * K; i++)
        wv[i] = (float)urand();
    assert_int_equal(rf_tensor_alloc(&w, dt, 2, shape, &err), 0);
    rf_from_f32(dt, wv, w.data, (size_t)N * K);
    float *bias = with_bias ? malloc(sizeof(float) * N) : NULL;
    for (int n = 0; bias && n < N; n++)
        bias[n] = (float)urand();
    float *y = odd_alloc((size_t)M * N, &yb, 0), *ref = malloc(sizeof(float) * (size_t)M * N);
    size_t sn = rf_ops_matmul_scratch(K) / (size_t)scratch_div;
    float *scratch = malloc(sizeof(float) * (sn + 1));
    size_t full = rf_ops_matmul_scratch(K);
    float *gscratch = malloc(sizeof(float) * full);
    char what[96];
    snprintf(what, sizeof what, "%s M=%d N=%d K=%d%s%s", rf_dtype_name(dt), M, N, K,
             scratch_div > 1 ? " small scratch" : "", bias ? " +bias" : "");

    rf_ops_cpu_generic()->matmul(ref, x, &w, bias, M, gscratch, full);
    rf_ops_cpu()->matmul(y, x, &w, bias, M, scratch, sn);
    check("cpu", what, y, ref, (size_t)M * N);

    if (dt == RF_DTYPE_BF16) {
        rounded(xr, x, (size_t)M * K);
        rf_ops_cpu_generic()->matmul(ref, xr, &w, bias, M, gscratch, full);
    }
    rf_ops_cpu_bf16()->matmul(y, x, &w, bias, M, scratch, sn);
    check("cpu-bf16", what, y, ref, (size_t)M * N);
    free(xb), free(yb), free(wv), free(xr), free(bias), free(ref), free(scratch), free(gscratch);
    rf_tensor_free(&w);
}

static void test_dense(void **state)
{
    const int Ms[] = {1, 2, 7, 8, 9, 13, 64, 131};
    const struct {
        int N, K;
    } s[] = {{1, 1},
             {17, 31},
             {64, 64},
             {200, 257},
             {130, 100},
             {48, 2},
             /* decode's AVX-512 products: K a multiple of 16 (of 32 for vdpbf16ps), N not of 16 */
             {37, 48},
             {50, 96},
             {300, 160}};
    const rf_dtype dts[] = {RF_DTYPE_BF16, RF_DTYPE_F32, RF_DTYPE_F16};
    for (size_t d = 0; d < 3; d++)
        for (size_t i = 0; i < sizeof s / sizeof *s; i++)
            for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
                run_dense(dts[d], Ms[m], s[i].N, s[i].K, 1, (int)(m % 2));
    /* scratch for a few rows at a time (and below one panel) */
    run_dense(RF_DTYPE_BF16, 131, 200, 257, 16, 1);
    run_dense(RF_DTYPE_BF16, 131, 200, 257, 200, 0);
    run_dense(RF_DTYPE_BF16, 40, 64, 512, 64, 0);
    assert_int_equal(g_failures, 0);
}

/* A random GPTQ layer [N, K] with G groups (act-order: g_idx shuffled). */
typedef struct layer {
    rf_gptq_packed p;
    rf_gptq_weight w;
} layer;

static void make_layer(layer *L, int N, int K, int G, int act_order)
{
    rf_error err = {0};
    int64_t sq[2] = {K / 8, N}, sz[2] = {G, N / 8}, ss[2] = {G, N}, sg[1] = {K};
    assert_int_equal(rf_tensor_alloc(&L->p.qweight, RF_DTYPE_I32, 2, sq, &err), 0);
    assert_int_equal(rf_tensor_alloc(&L->p.qzeros, RF_DTYPE_I32, 2, sz, &err), 0);
    assert_int_equal(rf_tensor_alloc(&L->p.scales, RF_DTYPE_F16, 2, ss, &err), 0);
    assert_int_equal(rf_tensor_alloc(&L->p.g_idx, RF_DTYPE_I32, 1, sg, &err), 0);
    uint32_t *qw = L->p.qweight.data, *qz = L->p.qzeros.data;
    for (size_t i = 0; i < (size_t)K / 8 * N; i++)
        qw[i] = u32() ^ (u32() << 15);
    for (size_t i = 0; i < (size_t)G * N / 8; i++)
        qz[i] = u32() ^ (u32() << 15); /* every stored zero, 15 (true zero 16) too */
    uint16_t *sc = L->p.scales.data;
    for (size_t i = 0; i < (size_t)G * N; i++)
        sc[i] = rf_f32_to_f16((float)(fabs(urand()) * 0.02 + 1e-3));
    int32_t *g = L->p.g_idx.data;
    for (int k = 0; k < K; k++)
        g[k] = k / (K / G);
    if (act_order)
        for (int k = K - 1; k > 0; k--) {
            int j = (int)(u32() % (uint32_t)(k + 1)), t = g[k];
            g[k] = g[j], g[j] = t;
        }
    assert_int_equal(rf_gptq_weight_view(&L->w, &L->p, "w", &err), 0);
    assert_int_equal(rf_gptq_weight_prepare(&L->w, &err), 0);
}

static void free_layer(layer *L)
{
    rf_gptq_weight_release(&L->w);
    rf_gptq_packed_free(&L->p);
}

static void run_w4(layer *L, int M, int scratch_div, const char *kind)
{
    const int N = L->w.N, K = L->w.K;
    float *xb, *yb, *x = odd_alloc((size_t)M * K, &xb, 2.0);
    float *xr = malloc(sizeof(float) * (size_t)M * K), *bias = malloc(sizeof(float) * N);
    for (int n = 0; n < N; n++)
        bias[n] = (float)urand();
    float *y = odd_alloc((size_t)M * N, &yb, 0), *ref = malloc(sizeof(float) * (size_t)M * N);
    size_t full = rf_ops_matmul_scratch(K), sn = full / (size_t)scratch_div;
    float *scratch = malloc(sizeof(float) * (sn + 1)), *gscratch = malloc(sizeof(float) * full);
    char what[96];
    snprintf(what, sizeof what, "W4 %s M=%d N=%d K=%d G=%d%s", kind, M, N, K, L->w.G,
             scratch_div > 1 ? " small scratch" : "");
    rf_ops_cpu_generic()->matmul_w4a16(ref, x, &L->w, bias, M, gscratch, full);
    rf_ops_cpu()->matmul_w4a16(y, x, &L->w, bias, M, scratch, sn);
    check("cpu", what, y, ref, (size_t)M * N);
    rounded(xr, x, (size_t)M * K);
    rf_ops_cpu_generic()->matmul_w4a16(ref, xr, &L->w, bias, M, gscratch, full);
    rf_ops_cpu_bf16()->matmul_w4a16(y, x, &L->w, bias, M, scratch, sn);
    check("cpu-bf16", what, y, ref, (size_t)M * N);
    free(xb), free(yb), free(xr), free(bias), free(ref), free(scratch), free(gscratch);
}

static void test_w4a16(void **state)
{
    const int Ms[] = {1, 2, 7, 8, 9, 37, 130};
    const struct {
        int N, K, gs, act;
        const char *kind;
    } s[] = {
        {8, 64, 32, 0, "g32"},          {72, 256, 128, 0, "g128"},
        {264, 384, 64, 0, "g64"},       {136, 192, 192, 0, "one group"},
        {40, 96, 8, 0, "g8"},           {56, 144, 24, 0, "g24"},
        {264, 256, 64, 1, "act-order"}, {200, 2048, 128, 0, "g128 long K"},
    };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        layer L;
        make_layer(&L, s[i].N, s[i].K, s[i].K / s[i].gs, s[i].act);
        for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
            run_w4(&L, Ms[m], 1, s[i].kind);
        free_layer(&L);
    }
    /* wide enough that decode splits channels (2048 at a time), with a tail */
    layer L;
    make_layer(&L, 8200, 64, 2, 0);
    run_w4(&L, 1, 1, "wide");
    run_w4(&L, 3, 1, "wide");
    free_layer(&L);
    make_layer(&L, 264, 512, 4, 0);
    run_w4(&L, 130, 16, "g128");
    run_w4(&L, 130, 200, "g128");
    run_w4(&L, 2, 200, "g128");
    free_layer(&L);
    assert_int_equal(g_failures, 0);
}

/* Attention: head sizes the AVX-512 kernel takes (16..128 in 16s) and one
 * it leaves to the loop (80 is taken, 72 is not), GQA groups that fit one
 * task and that split into several (8 heads a kv head; 3 at head size 96),
 * rows short of one 16-key block and past two 64-key blocks, windows. */
static void test_attention(void **state)
{
    const struct {
        int hd, H, KV, T, pos0, window;
    } s[] = {
        {16, 4, 2, 5, 3, 0},    {64, 12, 4, 70, 0, 0},   {64, 12, 4, 1, 150, 0},
        {64, 12, 4, 3, 150, 7}, {128, 4, 1, 9, 30, 0},   {80, 3, 3, 17, 5, 0},
        {72, 2, 1, 4, 20, 0},   {32, 8, 8, 33, 100, 40}, {48, 6, 2, 1, 0, 0},
        {64, 16, 2, 5, 40, 0},  {128, 8, 2, 3, 20, 0},   {96, 9, 3, 2, 10, 0},
    };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        const int S = s[i].pos0 + s[i].T, qd = s[i].H * s[i].hd, kvd = s[i].KV * s[i].hd;
        float *qb, *kb, *vb, *ob;
        float *q = odd_alloc((size_t)s[i].T * qd, &qb, 2.0),
              *k = odd_alloc((size_t)S * kvd, &kb, 2.0);
        float *v = odd_alloc((size_t)S * kvd, &vb, 1.0),
              *out = odd_alloc((size_t)s[i].T * qd, &ob, 0);
        float *ref = malloc(sizeof(float) * (size_t)s[i].T * qd);
        rf_attn_args a = {.T = s[i].T,
                          .pos0 = s[i].pos0,
                          .n_heads = s[i].H,
                          .n_kv_heads = s[i].KV,
                          .head_dim = s[i].hd,
                          .window = s[i].window,
                          .scale = 1.0f / sqrtf((float)s[i].hd),
                          .q = q,
                          .k = k,
                          .v = v,
                          .out = ref};
        rf_ops_cpu_generic()->attention(&a);
        char what[96];
        snprintf(what, sizeof what, "attention hd=%d H=%d KV=%d T=%d pos0=%d window=%d", s[i].hd,
                 s[i].H, s[i].KV, s[i].T, s[i].pos0, s[i].window);
        const rf_ops *t[2] = {rf_ops_cpu(), rf_ops_cpu_bf16()};
        for (int b = 0; b < 2; b++) {
            a.out = out;
            t[b]->attention(&a);
            check(t[b]->name, what, out, ref, (size_t)s[i].T * qd);
        }
        free(qb), free(kb), free(vb), free(ob), free(ref);
    }
    assert_int_equal(g_failures, 0);
}

static void test_swiglu_rmsnorm(void **state)
{
    const size_t ns[] = {1, 15, 17, 4097, 100003};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        float *gb, *ub, *g = odd_alloc(ns[i], &gb, 30.0), *u = odd_alloc(ns[i], &ub, 2.0);
        float *ref = malloc(sizeof(float) * ns[i]), *got = malloc(sizeof(float) * ns[i]);
        memcpy(ref, g, sizeof(float) * ns[i]);
        memcpy(got, g, sizeof(float) * ns[i]);
        rf_ops_cpu_generic()->swiglu(ref, u, ns[i]);
        rf_ops_cpu()->swiglu(got, u, ns[i]);
        char what[64];
        snprintf(what, sizeof what, "swiglu n=%zu gate in [-30, 30]", ns[i]);
        check("cpu", what, got, ref, ns[i]);
        free(gb), free(ub), free(ref), free(got);
    }
    const int Ds[] = {1, 15, 96, 770}, Ms[] = {1, 3};
    for (int d = 0; d < 4; d++)
        for (int m = 0; m < 2; m++) {
            const size_t n = (size_t)Ds[d] * Ms[m];
            float *xb, *wb, *x = odd_alloc(n, &xb, 5.0), *w = odd_alloc((size_t)Ds[d], &wb, 1.0);
            float *ref = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
            rf_ops_cpu_generic()->rmsnorm(ref, x, w, Ms[m], Ds[d], 1e-5f);
            rf_ops_cpu()->rmsnorm(got, x, w, Ms[m], Ds[d], 1e-5f);
            char what[64];
            snprintf(what, sizeof what, "rmsnorm M=%d D=%d", Ms[m], Ds[d]);
            check("cpu", what, got, ref, n);
            free(xb), free(wb), free(ref), free(got);
        }
    assert_int_equal(g_failures, 0);
}

static int form_dp(void **state)
{
    rf_cpu_bf16_set_gemm_form(RF_BF16_GEMM_DP);
    return 0;
}

static int form_fma(void **state)
{
    rf_cpu_bf16_set_gemm_form(RF_BF16_GEMM_FMA);
    return 0;
}

int main(void)
{
    double dp, fma;
    rf_bf16_gemm_form f = rf_cpu_bf16_gemm_form(&dp, &fma);
    printf("GEMM form here: %s (vdpbf16ps %.1f, f32 FMA %.1f GFLOP/s a core)\n",
           f == RF_BF16_GEMM_FMA ? "fma" : "vdpbf16ps", dp, fma);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_dense, form_dp),
        cmocka_unit_test_setup(test_w4a16, form_dp),
        cmocka_unit_test_setup(test_dense, form_fma),
        cmocka_unit_test_setup(test_w4a16, form_fma),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_swiglu_rmsnorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
