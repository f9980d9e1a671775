/* Cross-backend op harness in the manner of ggml's test-backend-ops: every
 * op of every backend's table against a plain double-precision loop, over
 * several shapes and weight dtypes, printing the max absolute and relative
 * error of each case. Relative error is max |got − ref| / max |ref|.
 * Backends today: the CPU table (SIMD kernels where the CPU has them) and
 * the same with portable kernels only; a CUDA table joins g_backends. */
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

static const rf_ops *g_backends[2];
static int g_nbackends;

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static double urand(void) /* uniform in [-1, 1) */
{
    g_rng ^= g_rng << 7;
    g_rng ^= g_rng >> 9;
    return (double)(g_rng >> 11) / (double)(1ull << 52) - 1.0;
}

static float *rand_f32(size_t n, double scale)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(urand() * scale);
    return p;
}

/* Compare and print one case; returns the relative error. */
static double report(const char *backend, const char *op, const char *what, const float *got,
                     const double *ref, size_t n, double tol)
{
    double mabs = 0, mref = 0;
    for (size_t i = 0; i < n; i++) {
        mabs = fmax(mabs, fabs(got[i] - ref[i]));
        mref = fmax(mref, fabs(ref[i]));
    }
    double rel = mabs / (mref > 0 ? mref : 1);
    printf("  %-11s %-10s %-34s max abs %.3e  max rel %.3e  %s\n", backend, op, what, mabs, rel,
           rel <= tol ? "OK" : "FAIL");
    assert_true(rel <= tol);
    return rel;
}

/* A [N, K] weight in dtype dt, and the f32 values it holds. */
static void make_weight(rf_tensor *w, rf_dtype dt, int N, int K, float **vals)
{
    rf_error err = {0};
    int64_t shape[2] = {N, K};
    float *src = rand_f32((size_t)N * K, 1.0);
    assert_int_equal(rf_tensor_alloc(w, dt, 2, shape, &err), 0);
    rf_from_f32(dt, src, w->data, (size_t)N * K);
    rf_to_f32(dt, w->data, src, (size_t)N * K); /* what the weight really holds */
    *vals = src;
}

static void test_matmul(void **state)
{
    const rf_dtype dts[] = {RF_DTYPE_F32, RF_DTYPE_F16, RF_DTYPE_BF16};
    const int Ms[] = {1, 3, 37};
    /* N = 300 spans several CPU tiles and a partial one; K = 100 leaves a
     * tail after the 16-wide SIMD loop */
    const int N = 300, Ks[] = {96, 100};
    for (int b = 0; b < g_nbackends; b++)
        for (size_t d = 0; d < 6; d++)
            for (size_t mi = 0; mi < 3; mi++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    int M = Ms[mi], K = Ks[d / 3];
                    rf_tensor w;
                    float *wv;
                    make_weight(&w, dts[d % 3], N, K, &wv);
                    float *x = rand_f32((size_t)M * K, 1.0),
                          *bias = with_bias ? rand_f32(N, 1.0) : NULL;
                    float *y = malloc(sizeof(float) * M * N);
                    size_t sn = rf_ops_matmul_scratch(K);
                    float *scratch = malloc(sizeof(float) * sn);
                    g_backends[b]->matmul(y, x, &w, bias, M, scratch, sn);
                    double *ref = malloc(sizeof(double) * M * N);
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < N; n++) {
                            double s = bias ? bias[n] : 0;
                            for (int k = 0; k < K; k++)
                                s += (double)x[m * K + k] * wv[(size_t)n * K + k];
                            ref[m * N + n] = s;
                        }
                    char what[64];
                    snprintf(what, sizeof what, "%s M=%d N=%d K=%d%s", rf_dtype_name(dts[d % 3]), M,
                             N, K, bias ? " +bias" : "");
                    report(g_backends[b]->name, "matmul", what, y, ref, (size_t)M * N, 1e-5);
                    free(ref), free(scratch), free(y), free(bias), free(x), free(wv);
                    rf_tensor_free(&w);
                }
}

/* W4A16: a random GPTQ layer (FORMATS.md layout) with contiguous groups,
 * one group, and act-order's shuffled g_idx; the reference is the double
 * product with the loaders' dequantized weights (rf_gptq_dequant). */
static void test_matmul_w4a16(void **state)
{
    const int N = 264, K = 256, Ms[] = {1, 3, 37};
    const int groups[] = {4, 1, 4}; /* group size 64, per channel, act-order */
    rf_error err = {0};
    for (int b = 0; b < g_nbackends; b++)
        for (int gi = 0; gi < 3; gi++)
            for (int mi = 0; mi < 3; mi++) {
                const int G = groups[gi], M = Ms[mi];
                rf_gptq_packed p;
                int64_t sq[2] = {K / 8, N}, sz[2] = {G, N / 8}, ss[2] = {G, N}, sg[1] = {K};
                assert_int_equal(rf_tensor_alloc(&p.qweight, RF_DTYPE_I32, 2, sq, &err), 0);
                assert_int_equal(rf_tensor_alloc(&p.qzeros, RF_DTYPE_I32, 2, sz, &err), 0);
                assert_int_equal(rf_tensor_alloc(&p.scales, RF_DTYPE_F16, 2, ss, &err), 0);
                assert_int_equal(rf_tensor_alloc(&p.g_idx, RF_DTYPE_I32, 1, sg, &err), 0);
                uint32_t *qw = p.qweight.data, *qz = p.qzeros.data;
                for (int i = 0; i < K / 8 * N; i++)
                    qw[i] = (uint32_t)(urand() * 2147483647.0) ^ (uint32_t)(urand() * 4e9);
                for (int i = 0; i < G * N / 8; i++)
                    qz[i] = (uint32_t)(urand() * 4e9);
                float *sc = rand_f32((size_t)G * N, 0.02);
                for (int i = 0; i < G * N; i++)
                    sc[i] = fabsf(sc[i]) + 1e-3f;
                rf_from_f32(RF_DTYPE_F16, sc, p.scales.data, (size_t)G * N);
                int32_t *g = p.g_idx.data;
                for (int k = 0; k < K; k++)
                    g[k] = k / (K / G);
                if (gi == 2) /* shuffle: act-order */
                    for (int k = K - 1; k > 0; k--) {
                        int j = (int)((urand() + 1) / 2 * (k + 1)) % (k + 1), t = g[k];
                        g[k] = g[j], g[j] = t;
                    }
                rf_gptq_weight w;
                assert_int_equal(rf_gptq_weight_view(&w, &p, "w", &err), 0);
                assert_int_equal(rf_gptq_weight_prepare(&w, &err), 0);
                assert_int_equal(w.monotonic, gi != 2);
                float *wv = malloc(sizeof(float) * N * K);
                rf_gptq_dequant(&w, wv);
                float *x = rand_f32((size_t)M * K, 1.0), *bias = rand_f32(N, 1.0);
                float *y = malloc(sizeof(float) * M * N);
                size_t sn = rf_ops_matmul_scratch(K);
                float *scratch = malloc(sizeof(float) * sn);
                g_backends[b]->matmul_w4a16(y, x, &w, bias, M, scratch, sn);
                double *ref = malloc(sizeof(double) * M * N);
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        double s = bias[n];
                        for (int k = 0; k < K; k++)
                            s += (double)x[m * K + k] * wv[(size_t)n * K + k];
                        ref[m * N + n] = s;
                    }
                char what[64];
                snprintf(what, sizeof what, "W4 G=%d%s M=%d N=%d K=%d +bias", G,
                         gi == 2 ? " act-order" : "", M, N, K);
                report(g_backends[b]->name, "w4a16", what, y, ref, (size_t)M * N, 1e-5);
                free(ref), free(scratch), free(y), free(bias), free(x), free(wv), free(sc);
                rf_gptq_weight_release(&w);
                rf_gptq_packed_free(&p);
            }
}

static void test_rmsnorm(void **state)
{
    const int M = 5, D = 96;
    const float eps = 1e-5f;
    for (int b = 0; b < g_nbackends; b++) {
        float *x = rand_f32((size_t)M * D, 3.0), *w = rand_f32(D, 1.0),
              *y = malloc(sizeof(float) * M * D);
        double *ref = malloc(sizeof(double) * M * D);
        g_backends[b]->rmsnorm(y, x, w, M, D, eps);
        for (int m = 0; m < M; m++) {
            double ss = 0;
            for (int i = 0; i < D; i++)
                ss += (double)x[m * D + i] * x[m * D + i];
            double r = 1 / sqrt(ss / D + eps);
            for (int i = 0; i < D; i++)
                ref[m * D + i] = x[m * D + i] * r * w[i];
        }
        report(g_backends[b]->name, "rmsnorm", "M=5 D=96", y, ref, (size_t)M * D, 1e-6);
        /* in place */
        g_backends[b]->rmsnorm(x, x, w, M, D, eps);
        report(g_backends[b]->name, "rmsnorm", "M=5 D=96 in place", x, ref, (size_t)M * D, 1e-6);
        free(x), free(w), free(y), free(ref);
    }
}

static void test_rope(void **state)
{
    const int M = 4, H = 3, hd = 16, pos[4] = {0, 1, 17, 1000};
    float inv[8];
    for (int i = 0; i < hd / 2; i++)
        inv[i] = (float)(1.0 / pow(10000.0, 2.0 * i / hd));
    for (int b = 0; b < g_nbackends; b++) {
        float *x = rand_f32((size_t)M * H * hd, 1.0);
        double *ref = malloc(sizeof(double) * M * H * hd);
        /* rotate-half: out = x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1] */
        for (int m = 0; m < M; m++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < hd; i++) {
                    const float *v = x + (m * H + h) * hd;
                    double ang = (double)pos[m] * inv[i % (hd / 2)];
                    double rot = i < hd / 2 ? -v[i + hd / 2] : v[i - hd / 2];
                    ref[(m * H + h) * hd + i] = v[i] * cos(ang) + rot * sin(ang);
                }
        g_backends[b]->rope(x, M, H, hd, pos, inv);
        report(g_backends[b]->name, "rope", "M=4 heads=3 hd=16 pos up to 1000", x, ref,
               (size_t)M * H * hd, 1e-6);
        free(x), free(ref);
    }
}

static void test_attention(void **state)
{
    /* short rows, and rows of more than one 64-key block of the CPU's
     * online softmax; no window, and a window cutting into the past */
    const int windows[] = {0, 4, 0, 100}, pos0s[] = {3, 3, 150, 150};
    const int T = 5, H = 4, KV = 2, hd = 16;
    for (int b = 0; b < g_nbackends; b++)
        for (int wi = 0; wi < 4; wi++) {
            const int pos0 = pos0s[wi], S = pos0 + T;
            float *q = rand_f32((size_t)T * H * hd, 2.0), *k = rand_f32((size_t)S * KV * hd, 2.0);
            float *v = rand_f32((size_t)S * KV * hd, 1.0),
                  *out = malloc(sizeof(float) * T * H * hd);
            double *ref = malloc(sizeof(double) * T * H * hd), sc[160];
            rf_attn_args a = {.T = T,
                              .pos0 = pos0,
                              .n_heads = H,
                              .n_kv_heads = KV,
                              .head_dim = hd,
                              .window = windows[wi],
                              .scale = 1.0f / sqrtf((float)hd),
                              .q = q,
                              .k = k,
                              .v = v,
                              .out = out};
            g_backends[b]->attention(&a);
            for (int t = 0; t < T; t++)
                for (int h = 0; h < H; h++) {
                    int i = pos0 + t, g = h / (H / KV);
                    double mx = -INFINITY, sum = 0;
                    for (int j = 0; j <= i; j++) {
                        sc[j] = -INFINITY;
                        if (windows[wi] && i - j >= windows[wi]) continue;
                        double s = 0;
                        for (int d = 0; d < hd; d++)
                            s += (double)q[(t * H + h) * hd + d] * k[(j * KV + g) * hd + d];
                        sc[j] = s / sqrt(hd);
                        mx = fmax(mx, sc[j]);
                    }
                    for (int j = 0; j <= i; j++)
                        sum += exp(sc[j] - mx);
                    for (int d = 0; d < hd; d++) {
                        double o = 0;
                        for (int j = 0; j <= i; j++)
                            o += exp(sc[j] - mx) / sum * v[(j * KV + g) * hd + d];
                        ref[(t * H + h) * hd + d] = o;
                    }
                }
            char what[64];
            snprintf(what, sizeof what, "T=5 pos0=%d H=4 KV=2 hd=16 window=%d", pos0, windows[wi]);
            report(g_backends[b]->name, "attention", what, out, ref, (size_t)T * H * hd, 1e-5);
            free(q), free(k), free(v), free(out), free(ref);
        }
}

static void test_swiglu_softmax_add(void **state)
{
    const size_t n = 10000;
    for (int b = 0; b < g_nbackends; b++) {
        const char *be = g_backends[b]->name;
        float *g = rand_f32(n, 8.0), *u = rand_f32(n, 2.0);
        double *ref = malloc(sizeof(double) * n);
        for (size_t i = 0; i < n; i++)
            ref[i] = g[i] / (1 + exp(-(double)g[i])) * u[i];
        g_backends[b]->swiglu(g, u, n);
        report(be, "swiglu", "n=10000", g, ref, n, 1e-6);

        const int M = 3, N = 257;
        float *x = rand_f32((size_t)M * N, 30.0);
        for (int m = 0; m < M; m++) {
            double mx = -INFINITY, s = 0;
            for (int i = 0; i < N; i++)
                mx = fmax(mx, x[m * N + i]);
            for (int i = 0; i < N; i++)
                s += exp(x[m * N + i] - mx);
            for (int i = 0; i < N; i++)
                ref[m * N + i] = exp(x[m * N + i] - mx) / s;
        }
        g_backends[b]->softmax(x, M, N);
        report(be, "softmax", "M=3 N=257 logits up to 30", x, ref, (size_t)M * N, 1e-6);

        float *y = rand_f32(n, 1.0);
        for (size_t i = 0; i < n; i++)
            ref[i] = (double)y[i] + u[i];
        g_backends[b]->add(y, u, n);
        report(be, "add", "n=10000", y, ref, n, 1e-7);
        free(g), free(u), free(ref), free(x), free(y);
    }
}

static void test_embedding(void **state)
{
    const rf_dtype dts[] = {RF_DTYPE_F32, RF_DTYPE_F16, RF_DTYPE_BF16};
    const int V = 50, D = 24, ids[5] = {0, 49, 7, 7, 23};
    for (int b = 0; b < g_nbackends; b++)
        for (int d = 0; d < 3; d++) {
            rf_tensor tab;
            float *vals, out[5 * 24];
            double ref[5 * 24];
            make_weight(&tab, dts[d], V, D, &vals);
            g_backends[b]->embedding(out, &tab, ids, 5);
            for (int m = 0; m < 5; m++)
                for (int i = 0; i < D; i++)
                    ref[m * D + i] = vals[ids[m] * D + i];
            char what[32];
            snprintf(what, sizeof what, "%s V=50 D=24", rf_dtype_name(dts[d]));
            report(g_backends[b]->name, "embedding", what, out, ref, 5 * D, 0);
            free(vals);
            rf_tensor_free(&tab);
        }
}

int main(void)
{
    g_backends[g_nbackends++] = rf_ops_cpu();
    g_backends[g_nbackends++] = rf_ops_cpu_generic();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_w4a16),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_swiglu_softmax_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
