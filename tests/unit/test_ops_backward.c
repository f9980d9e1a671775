/* The backward ops of every backend's table (engine/ops.h), two ways each:
 * against the gradient written out in double-precision loops, and against
 * central finite differences of the backend's own forward op, with the scalar
 * L = Σ dy·y (dy random) so that ∂L/∂input is exactly what backward returns.
 * Gradients accumulate: each starts from non-zero values, which are
 * subtracted before comparing. Prints the max errors of every case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/loss.h"
#include "engine/backend/ops.h"
#include "engine/core/gptq_weight.h"

static const rf_ops *g_backends[2];
static int g_nbackends;
static const rf_ops *g_op; /* backend under test, for the forward closures */

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
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

static float *copy_f32(const float *x, size_t n)
{
    float *p = malloc(sizeof(float) * n);
    memcpy(p, x, sizeof(float) * n);
    return p;
}

/* got − base against ref; relative to max |ref|. */
static void check(const char *op, const char *what, const float *got, const float *base,
                  const double *ref, size_t n, double tol)
{
    double mabs = 0, mref = 0;
    for (size_t i = 0; i < n; i++) {
        double g = (double)got[i] - (base ? base[i] : 0);
        mabs = fmax(mabs, fabs(g - ref[i]));
        mref = fmax(mref, fabs(ref[i]));
    }
    double rel = mabs / (mref > 0 ? mref : 1);
    printf("  %-11s %-20s %-30s max abs %.3e  max rel %.3e  %s\n", g_op->name, op, what, mabs, rel,
           rel <= tol ? "OK" : "FAIL");
    assert_true(mref > 0); /* a zero gradient would compare trivially */
    assert_true(rel <= tol);
}

/* Finite differences: forward(ctx) returns L = Σ dy·y (double). For up to
 * nprobe evenly spread elements of x, (L(x+h) − L(x−h)) / 2h against the
 * analytic gradient grad − base. */
typedef double (*loss_fn)(void *ctx);
static void check_fd(const char *op, const char *what, float *x, size_t n, const float *grad,
                     const float *base, loss_fn f, void *ctx, double h, double tol)
{
    const size_t nprobe = 24, stride = n > nprobe ? n / nprobe : 1;
    double mabs = 0, mref = 0;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + (float)h;
        double lp = f(ctx);
        x[i] = keep - (float)h;
        double lm = f(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2 * h), an = (double)grad[i] - (base ? base[i] : 0);
        mabs = fmax(mabs, fabs(fd - an));
        mref = fmax(mref, fabs(an));
    }
    double rel = mabs / (mref > 0 ? mref : 1);
    printf("  %-11s %-20s %-30s finite diff max abs %.3e  rel %.3e  %s\n", g_op->name, op, what,
           mabs, rel, rel <= tol ? "OK" : "FAIL");
    assert_true(mref > 0);
    assert_true(rel <= tol);
}

static double dot_dy(const float *y, const float *dy, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * dy[i];
    return s;
}

/* ---- matmul (linear layers and the LM head) ---- */
typedef struct mm_ctx {
    float *x, *y, *dy, *bias, *scratch;
    rf_tensor *w;
    int M, N;
    size_t sn;
} mm_ctx;
static double mm_loss(void *p)
{
    mm_ctx *c = p;
    g_op->matmul(c->y, c->x, c->w, c->bias, c->M, c->scratch, c->sn);
    return dot_dy(c->y, c->dy, (size_t)c->M * c->N);
}

static void test_matmul_backward(void **state)
{
    const rf_dtype dts[] = {RF_DTYPE_F32, RF_DTYPE_BF16};
    const int M = 9, N = 300, K = 40; /* N spans several 128-row tiles */
    for (int b = 0; b < g_nbackends; b++)
        for (int d = 0; d < 2; d++) {
            g_op = g_backends[b];
            rf_error err = {0};
            rf_tensor w;
            int64_t shape[2] = {N, K};
            assert_int_equal(rf_tensor_alloc(&w, dts[d], 2, shape, &err), 0);
            float *wv = rand_f32((size_t)N * K, 1.0);
            rf_from_f32(dts[d], wv, w.data, (size_t)N * K);
            rf_to_f32(dts[d], w.data, wv, (size_t)N * K);
            float *x = rand_f32((size_t)M * K, 1.0), *dy = rand_f32((size_t)M * N, 1.0);
            float *bias = rand_f32(N, 1.0), *y = malloc(sizeof(float) * M * N);
            float *dx0 = rand_f32((size_t)M * K, 1.0), *dw0 = rand_f32((size_t)N * K, 1.0),
                  *db0 = rand_f32(N, 1.0);
            float *dx = copy_f32(dx0, (size_t)M * K), *dw = copy_f32(dw0, (size_t)N * K),
                  *db = copy_f32(db0, N);
            size_t sn = rf_ops_matmul_scratch(K);
            float *scratch = malloc(sizeof(float) * sn);
            g_op->matmul_backward(dx, dw, db, dy, x, &w, M, scratch, sn);
            double *rx = calloc((size_t)M * K, sizeof(double)),
                   *rw = calloc((size_t)N * K, sizeof(double)), *rb = calloc(N, sizeof(double));
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double g = dy[m * N + n];
                    rb[n] += g;
                    for (int k = 0; k < K; k++) {
                        rx[m * K + k] += g * wv[(size_t)n * K + k];
                        rw[(size_t)n * K + k] += g * x[m * K + k];
                    }
                }
            char what[48];
            snprintf(what, sizeof what, "%s M=%d N=%d K=%d", rf_dtype_name(dts[d]), M, N, K);
            check("matmul dx", what, dx, dx0, rx, (size_t)M * K, 1e-5);
            check("matmul dW", what, dw, dw0, rw, (size_t)N * K, 1e-5);
            check("matmul dbias", what, db, db0, rb, N, 1e-5);
            mm_ctx c = {x, y, dy, bias, scratch, &w, M, N, sn};
            check_fd("matmul dx", what, x, (size_t)M * K, dx, dx0, mm_loss, &c, 1e-2, 1e-2);
            if (dts[d] == RF_DTYPE_F32)
                check_fd("matmul dW", what, w.data, (size_t)N * K, dw, dw0, mm_loss, &c, 1e-2,
                         1e-2);
            free(rx), free(rw), free(rb), free(scratch), free(dx), free(dw), free(db);
            free(dx0), free(dw0), free(db0), free(x), free(dy), free(bias), free(y), free(wv);
            rf_tensor_free(&w);
        }
}

/* ---- W4A16 matmul (a frozen GPTQ base: the input gradient only) ---- */
typedef struct w4_ctx {
    float *x, *y, *dy, *scratch;
    const rf_gptq_weight *w;
    int M;
    size_t sn;
} w4_ctx;
static double w4_loss(void *p)
{
    w4_ctx *c = p;
    g_op->matmul_w4a16(c->y, c->x, c->w, NULL, c->M, c->scratch, c->sn);
    return dot_dy(c->y, c->dy, (size_t)c->M * c->w->N);
}

static uint32_t word(void) /* 32 random bits: 8 nibbles */
{
    return (uint32_t)((urand() + 1) * 0x80000000u);
}

/* A random GPTQ layer [N, K], G groups: g_idx by blocks (monotonic) or a
 * random assignment (act-order), random nibbles, zeros and f16 scales. */
static void make_gptq(rf_gptq_packed *p, rf_gptq_weight *w, int N, int K, int G, bool act)
{
    rf_error err = {0};
    assert_int_equal(rf_tensor_alloc(&p->qweight, RF_DTYPE_I32, 2, (int64_t[]){K / 8, N}, &err), 0);
    assert_int_equal(rf_tensor_alloc(&p->qzeros, RF_DTYPE_I32, 2, (int64_t[]){G, N / 8}, &err), 0);
    assert_int_equal(rf_tensor_alloc(&p->scales, RF_DTYPE_F16, 2, (int64_t[]){G, N}, &err), 0);
    assert_int_equal(rf_tensor_alloc(&p->g_idx, RF_DTYPE_I32, 1, (int64_t[]){K}, &err), 0);
    uint32_t *qw = p->qweight.data, *qz = p->qzeros.data;
    for (size_t i = 0; i < (size_t)K / 8 * N; i++)
        qw[i] = word();
    for (size_t i = 0; i < (size_t)G * N / 8; i++)
        qz[i] = word();
    float *sc = rand_f32((size_t)G * N, 0.05);
    for (size_t i = 0; i < (size_t)G * N; i++)
        sc[i] = fabsf(sc[i]) + 0.01f;
    rf_from_f32(RF_DTYPE_F16, sc, p->scales.data, (size_t)G * N);
    int32_t *gi = p->g_idx.data;
    for (int k = 0; k < K; k++)
        gi[k] = act ? (int)((urand() + 1) / 2 * G) % G : k / (K / G);
    free(sc);
    assert_int_equal(rf_gptq_weight_view(w, p, "test", &err), 0);
    assert_int_equal(rf_gptq_weight_prepare(w, &err), 0);
    assert_int_equal(w->monotonic, !act);
}

static void test_w4a16_backward(void **state)
{
    const int M = 9, N = 264, K = 64, G = 4;
    for (int b = 0; b < g_nbackends; b++)
        for (int act = 0; act < 2; act++)
            for (int sc = 0; sc < 3; sc++) {
                g_op = g_backends[b];
                rf_gptq_packed p;
                rf_gptq_weight w;
                make_gptq(&p, &w, N, K, G, act);
                /* Ŵ[n, k] = scale[g, n] · (q[k, n] − (stored zero[g, n] + 1)), g = g_idx[k],
                 * read from the packed words here (FORMATS.md), in double */
                const uint32_t *qw = p.qweight.data, *qz = p.qzeros.data;
                const int32_t *gi = p.g_idx.data;
                double *W = malloc(sizeof(double) * N * K);
                for (int n = 0; n < N; n++)
                    for (int k = 0; k < K; k++) {
                        int q = (int)(qw[(size_t)(k / 8) * N + n] >> (4 * (k % 8)) & 0xF);
                        int z =
                            (int)(qz[(size_t)gi[k] * (N / 8) + n / 8] >> (4 * (n % 8)) & 0xF) + 1;
                        double s = rf_f16_to_f32(((const uint16_t *)p.scales.data)[gi[k] * N + n]);
                        W[(size_t)n * K + k] = s * (q - z);
                    }
                float *x = rand_f32((size_t)M * K, 1.0), *dy = rand_f32((size_t)M * N, 1.0);
                float *y = malloc(sizeof(float) * M * N), *dx0 = rand_f32((size_t)M * K, 1.0);
                float *dx = copy_f32(dx0, (size_t)M * K);
                /* the full scratch, one strip of 8 channels per thread, and less than
                 * one strip (the no-scratch path) */
                const size_t full = rf_ops_matmul_scratch(N > K ? N : K);
                const size_t sn = sc == 0 ? full : sc == 1 ? (size_t)8 * N : (size_t)N - 1;
                float *scratch = malloc(sizeof(float) * full);
                g_op->matmul_w4a16_backward(dx, dy, &w, M, scratch, sn);
                double *rx = calloc((size_t)M * K, sizeof(double));
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++)
                        for (int k = 0; k < K; k++)
                            rx[m * K + k] += (double)dy[m * N + n] * W[(size_t)n * K + k];
                char what[64];
                snprintf(what, sizeof what, "%s N=%d K=%d G=%d scratch %s",
                         act ? "act-order" : "grouped", N, K, G,
                         sc == 0   ? "full"
                         : sc == 1 ? "8·N"
                                   : "<N");
                check("w4a16 dx", what, dx, dx0, rx, (size_t)M * K, 1e-5);
                w4_ctx c = {x, y, dy, scratch, &w, M, full};
                check_fd("w4a16 dx", what, x, (size_t)M * K, dx, dx0, w4_loss, &c, 1e-2, 1e-2);
                free(W), free(x), free(dy), free(y), free(dx0), free(dx), free(scratch), free(rx);
                rf_gptq_weight_release(&w);
                rf_gptq_packed_free(&p);
            }
}

/* ---- RMSNorm ---- */
typedef struct rms_ctx {
    float *x, *w, *y, *dy;
    int M, D;
    float eps;
} rms_ctx;
static double rms_loss(void *p)
{
    rms_ctx *c = p;
    g_op->rmsnorm(c->y, c->x, c->w, c->M, c->D, c->eps);
    return dot_dy(c->y, c->dy, (size_t)c->M * c->D);
}

static void test_rmsnorm_backward(void **state)
{
    const int M = 6, D = 48;
    const float eps = 1e-5f;
    for (int b = 0; b < g_nbackends; b++) {
        g_op = g_backends[b];
        float *x = rand_f32((size_t)M * D, 2.0), *w = rand_f32(D, 1.0),
              *dy = rand_f32((size_t)M * D, 1.0), *y = malloc(sizeof(float) * M * D);
        float *dx0 = rand_f32((size_t)M * D, 1.0), *dw0 = rand_f32(D, 1.0);
        float *dx = copy_f32(dx0, (size_t)M * D), *dw = copy_f32(dw0, D);
        g_op->rmsnorm_backward(dx, dw, dy, x, w, M, D, eps);
        double *rx = calloc((size_t)M * D, sizeof(double)), *rw = calloc(D, sizeof(double));
        for (int m = 0; m < M; m++) {
            const float *xr = x + m * D, *g = dy + m * D;
            double ss = 0, dot = 0;
            for (int i = 0; i < D; i++)
                ss += (double)xr[i] * xr[i], dot += (double)g[i] * w[i] * xr[i];
            double r = 1 / sqrt(ss / D + eps);
            for (int i = 0; i < D; i++) {
                rx[m * D + i] = r * w[i] * g[i] - xr[i] * r * r * r * dot / D;
                rw[i] += g[i] * xr[i] * r;
            }
        }
        check("rmsnorm dx", "M=6 D=48", dx, dx0, rx, (size_t)M * D, 1e-5);
        check("rmsnorm dw", "M=6 D=48", dw, dw0, rw, D, 1e-5);
        rms_ctx c = {x, w, y, dy, M, D, eps};
        check_fd("rmsnorm dx", "M=6 D=48", x, (size_t)M * D, dx, dx0, rms_loss, &c, 1e-2, 1e-2);
        check_fd("rmsnorm dw", "M=6 D=48", w, D, dw, dw0, rms_loss, &c, 1e-2, 1e-2);
        free(x), free(w), free(dy), free(y), free(dx0), free(dw0), free(dx), free(dw), free(rx),
            free(rw);
    }
}

/* ---- RoPE ---- */
typedef struct rope_ctx {
    float *x, *y, *dy;
    int M, H, hd;
    const int *pos;
    const float *inv;
} rope_ctx;
static double rope_loss(void *p)
{
    rope_ctx *c = p;
    size_t n = (size_t)c->M * c->H * c->hd;
    memcpy(c->y, c->x, sizeof(float) * n);
    g_op->rope(c->y, c->M, c->H, c->hd, c->pos, c->inv);
    return dot_dy(c->y, c->dy, n);
}

static void test_rope_backward(void **state)
{
    const int M = 4, H = 3, hd = 16, pos[4] = {0, 1, 17, 300};
    const size_t n = (size_t)M * H * hd;
    float inv[8];
    for (int i = 0; i < hd / 2; i++)
        inv[i] = (float)(1.0 / pow(10000.0, 2.0 * i / hd));
    for (int b = 0; b < g_nbackends; b++) {
        g_op = g_backends[b];
        float *x = rand_f32(n, 1.0), *dy = rand_f32(n, 1.0), *y = malloc(sizeof(float) * n);
        float *dx = copy_f32(dy, n);
        g_op->rope_backward(dx, M, H, hd, pos, inv);
        double *ref = malloc(sizeof(double) * n);
        /* transpose of out_i = x_i cos + rot_i sin, rot = [−x2, x1] */
        for (int m = 0; m < M; m++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < hd; i++) {
                    const float *g = dy + (m * H + h) * hd;
                    double ang = (double)pos[m] * inv[i % (hd / 2)];
                    double rot = i < hd / 2 ? g[i + hd / 2] : -g[i - hd / 2];
                    ref[(m * H + h) * hd + i] = g[i] * cos(ang) + rot * sin(ang);
                }
        check("rope dx", "M=4 H=3 hd=16", dx, NULL, ref, n, 1e-5);
        rope_ctx c = {x, y, dy, M, H, hd, pos, inv};
        check_fd("rope dx", "M=4 H=3 hd=16", x, n, dx, NULL, rope_loss, &c, 1e-2, 1e-2);
        free(x), free(dy), free(y), free(dx), free(ref);
    }
}

/* ---- causal GQA attention ---- */
typedef struct att_ctx {
    rf_attn_args a;
    float *out, *dy;
} att_ctx;
static double att_loss(void *p)
{
    att_ctx *c = p;
    g_op->attention(&c->a);
    return dot_dy(c->out, c->dy, (size_t)c->a.T * c->a.n_heads * c->a.head_dim);
}

static void test_attention_backward(void **state)
{
    const int T = 7, H = 4, KV = 2, hd = 8, windows[2] = {0, 3};
    const int qd = H * hd, kvd = KV * hd;
    for (int b = 0; b < g_nbackends; b++)
        for (int wi = 0; wi < 2; wi++) {
            g_op = g_backends[b];
            float *q = rand_f32((size_t)T * qd, 1.5), *k = rand_f32((size_t)T * kvd, 1.5),
                  *v = rand_f32((size_t)T * kvd, 1.0), *dy = rand_f32((size_t)T * qd, 1.0),
                  *out = malloc(sizeof(float) * T * qd);
            float *dq0 = rand_f32((size_t)T * qd, 1.0), *dk0 = rand_f32((size_t)T * kvd, 1.0),
                  *dv0 = rand_f32((size_t)T * kvd, 1.0);
            float *dq = copy_f32(dq0, (size_t)T * qd), *dk = copy_f32(dk0, (size_t)T * kvd),
                  *dv = copy_f32(dv0, (size_t)T * kvd);
            att_ctx c = {.a = {.T = T,
                               .pos0 = 0,
                               .n_heads = H,
                               .n_kv_heads = KV,
                               .head_dim = hd,
                               .window = windows[wi],
                               .scale = 1.0f / sqrtf((float)hd),
                               .q = q,
                               .k = k,
                               .v = v,
                               .out = out},
                         .out = out,
                         .dy = dy};
            g_op->attention(&c.a);
            g_op->attention_backward(&c.a, dy, dq, dk, dv);
            double *rq = calloc((size_t)T * qd, sizeof(double)),
                   *rk = calloc((size_t)T * kvd, sizeof(double)),
                   *rv = calloc((size_t)T * kvd, sizeof(double));
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++) {
                    int g = h / (H / KV);
                    double p[16], dp[16], mx = -INFINITY, sum = 0, pdp = 0;
                    for (int j = 0; j <= i; j++) {
                        p[j] = -INFINITY;
                        if (windows[wi] && i - j >= windows[wi]) continue;
                        double s = 0;
                        for (int d = 0; d < hd; d++)
                            s += (double)q[i * qd + h * hd + d] * k[j * kvd + g * hd + d];
                        p[j] = s / sqrt(hd);
                        mx = fmax(mx, p[j]);
                    }
                    for (int j = 0; j <= i; j++)
                        sum += (p[j] = exp(p[j] - mx));
                    for (int j = 0; j <= i; j++) {
                        p[j] /= sum;
                        dp[j] = 0;
                        for (int d = 0; d < hd; d++)
                            dp[j] += (double)dy[i * qd + h * hd + d] * v[j * kvd + g * hd + d];
                        pdp += p[j] * dp[j];
                    }
                    for (int j = 0; j <= i; j++) {
                        double ds = p[j] * (dp[j] - pdp) / sqrt(hd);
                        for (int d = 0; d < hd; d++) {
                            rq[i * qd + h * hd + d] += ds * k[j * kvd + g * hd + d];
                            rk[j * kvd + g * hd + d] += ds * q[i * qd + h * hd + d];
                            rv[j * kvd + g * hd + d] += p[j] * dy[i * qd + h * hd + d];
                        }
                    }
                }
            char what[48];
            snprintf(what, sizeof what, "T=7 H=4 KV=2 hd=8 window=%d", windows[wi]);
            check("attention dq", what, dq, dq0, rq, (size_t)T * qd, 1e-5);
            check("attention dk", what, dk, dk0, rk, (size_t)T * kvd, 1e-5);
            check("attention dv", what, dv, dv0, rv, (size_t)T * kvd, 1e-5);
            check_fd("attention dq", what, q, (size_t)T * qd, dq, dq0, att_loss, &c, 1e-2, 1e-2);
            check_fd("attention dk", what, k, (size_t)T * kvd, dk, dk0, att_loss, &c, 1e-2, 1e-2);
            check_fd("attention dv", what, v, (size_t)T * kvd, dv, dv0, att_loss, &c, 1e-2, 1e-2);
            free(q), free(k), free(v), free(dy), free(out), free(dq0), free(dk0), free(dv0);
            free(dq), free(dk), free(dv), free(rq), free(rk), free(rv);
        }
}

/* ---- SwiGLU ---- */
typedef struct swi_ctx {
    float *g, *u, *y, *dy;
    size_t n;
} swi_ctx;
static double swi_loss(void *p)
{
    swi_ctx *c = p;
    memcpy(c->y, c->g, sizeof(float) * c->n);
    g_op->swiglu(c->y, c->u, c->n);
    return dot_dy(c->y, c->dy, c->n);
}

static void test_swiglu_backward(void **state)
{
    const size_t n = 500;
    for (int b = 0; b < g_nbackends; b++) {
        g_op = g_backends[b];
        float *g = rand_f32(n, 6.0), *u = rand_f32(n, 2.0), *dy = rand_f32(n, 1.0),
              *y = malloc(sizeof(float) * n);
        float *dg0 = rand_f32(n, 1.0), *du0 = rand_f32(n, 1.0);
        float *dg = copy_f32(dg0, n), *du = copy_f32(du0, n);
        g_op->swiglu_backward(dg, du, dy, g, u, n);
        double *rg = malloc(sizeof(double) * n), *ru = malloc(sizeof(double) * n);
        for (size_t i = 0; i < n; i++) {
            double s = 1 / (1 + exp(-(double)g[i]));
            rg[i] = dy[i] * u[i] * (s + g[i] * s * (1 - s));
            ru[i] = dy[i] * g[i] * s;
        }
        check("swiglu dgate", "n=500", dg, dg0, rg, n, 1e-5);
        check("swiglu dup", "n=500", du, du0, ru, n, 1e-5);
        swi_ctx c = {g, u, y, dy, n};
        check_fd("swiglu dgate", "n=500", g, n, dg, dg0, swi_loss, &c, 1e-2, 1e-2);
        check_fd("swiglu dup", "n=500", u, n, du, du0, swi_loss, &c, 1e-2, 1e-2);
        free(g), free(u), free(dy), free(y), free(dg0), free(du0), free(dg), free(du), free(rg),
            free(ru);
    }
}

/* ---- embedding ---- */
typedef struct emb_ctx {
    rf_tensor *tab;
    float *y, *dy;
    const int *ids;
    int M, D;
} emb_ctx;
static double emb_loss(void *p)
{
    emb_ctx *c = p;
    g_op->embedding(c->y, c->tab, c->ids, c->M);
    return dot_dy(c->y, c->dy, (size_t)c->M * c->D);
}

static void test_embedding_backward(void **state)
{
    const int V = 20, D = 12, M = 6, ids[6] = {3, 19, 3, 0, 7, 3}; /* 3 repeats: sums */
    for (int b = 0; b < g_nbackends; b++) {
        g_op = g_backends[b];
        rf_error err = {0};
        rf_tensor tab;
        int64_t shape[2] = {V, D};
        assert_int_equal(rf_tensor_alloc(&tab, RF_DTYPE_F32, 2, shape, &err), 0);
        float *init = rand_f32((size_t)V * D, 1.0);
        memcpy(tab.data, init, sizeof(float) * V * D);
        float *dy = rand_f32((size_t)M * D, 1.0), *y = malloc(sizeof(float) * M * D);
        float *dt0 = rand_f32((size_t)V * D, 1.0), *dt = copy_f32(dt0, (size_t)V * D);
        g_op->embedding_backward(dt, dy, ids, M, D);
        double *ref = calloc((size_t)V * D, sizeof(double));
        for (int m = 0; m < M; m++)
            for (int i = 0; i < D; i++)
                ref[ids[m] * D + i] += dy[m * D + i];
        check("embedding dtable", "V=20 D=12 repeated ids", dt, dt0, ref, (size_t)V * D, 1e-6);
        emb_ctx c = {&tab, y, dy, ids, M, D};
        check_fd("embedding dtable", "V=20 D=12 repeated ids", tab.data, (size_t)V * D, dt, dt0,
                 emb_loss, &c, 1e-2, 1e-2);
        free(init), free(dy), free(y), free(dt0), free(dt), free(ref);
        rf_tensor_free(&tab);
    }
}

/* ---- losses: CE, KD (dense teacher) and the top-k teacher, with the LM
 * head's logits as input (CPU functions shared by every backend) ---- */
typedef struct loss_ctx {
    float *zs, *zt, *tmp;
    const int *ids;
    const float *logp;
    int V, k, target;
    rf_loss_config cfg;
} loss_ctx;
static double loss_value(void *p)
{
    loss_ctx *c = p;
    rf_loss_row r;
    memcpy(c->tmp, c->zs, sizeof(float) * c->V);
    if (c->ids)
        rf_loss_topk(c->tmp, c->V, c->ids, c->logp, c->k, c->target, &c->cfg, 1, false, &r);
    else
        rf_loss_dense(c->tmp, c->zt, c->V, c->target, &c->cfg, 1, false, &r);
    const double T = c->cfg.temperature, a = c->zt || c->ids ? c->cfg.alpha : 0;
    return a * T * T * r.kl + (1 - a) * r.ce;
}

static void test_loss_backward(void **state)
{
    g_op = g_backends[0];
    const int V = 50, ids[5] = {3, 17, 41, 0, 9};
    const float alphas[] = {0.0f, 0.5f, 1.0f};
    float *zs = rand_f32(V, 4.0), *zt = rand_f32(V, 4.0), *g = malloc(sizeof(float) * V),
          *tmp = malloc(sizeof(float) * V), logp[5];
    double *ref = malloc(sizeof(double) * V);
    for (int j = 0; j < 5; j++) /* a teacher's top-5, as log-probabilities */
        logp[j] = (float)log(0.5 / (j + 1.5));
    for (int ai = 0; ai < 3; ai++) {
        rf_loss_config cfg = {.alpha = alphas[ai], .temperature = 2.0f};
        rf_loss_row r;
        memcpy(g, zs, sizeof(float) * V);
        rf_loss_dense(g, zt, V, 7, &cfg, 1, true, &r);
        /* ∂/∂z [(1−α)·CE + α·T²·KL] = (1−α)(softmax(z) − onehot) + α·T·(p_T − q_T) */
        double m1 = -INFINITY, mT = -INFINITY, mq = -INFINITY, s1 = 0, sT = 0, sq = 0;
        for (int i = 0; i < V; i++)
            m1 = fmax(m1, zs[i]), mT = fmax(mT, zs[i] / 2.0), mq = fmax(mq, zt[i] / 2.0);
        for (int i = 0; i < V; i++)
            s1 += exp(zs[i] - m1), sT += exp(zs[i] / 2.0 - mT), sq += exp(zt[i] / 2.0 - mq);
        for (int i = 0; i < V; i++)
            ref[i] = (1 - alphas[ai]) * (exp(zs[i] - m1) / s1 - (i == 7)) +
                     alphas[ai] * 2.0 * (exp(zs[i] / 2.0 - mT) / sT - exp(zt[i] / 2.0 - mq) / sq);
        char what[48];
        snprintf(what, sizeof what, "V=50 T=2 alpha=%.1f", alphas[ai]);
        check("loss dense dz", what, g, NULL, ref, V, 1e-5);
        loss_ctx c = {zs, zt, tmp, NULL, NULL, V, 0, 7, cfg};
        check_fd("loss dense dz", what, zs, V, g, NULL, loss_value, &c, 1e-2, 1e-2);
    }
    for (int mode = 0; mode < 2; mode++) {
        rf_loss_config cfg = {.alpha = 0.7f, .temperature = 2.0f, .topk_mode = mode};
        rf_loss_row r;
        memcpy(g, zs, sizeof(float) * V);
        rf_loss_topk(g, V, ids, logp, 5, 7, &cfg, 1, true, &r);
        loss_ctx c = {zs, NULL, tmp, ids, logp, V, 5, 7, cfg};
        check_fd("loss top-5 dz", mode ? "V=50 T=2 alpha=0.7 bucket" : "V=50 T=2 alpha=0.7 ignore",
                 zs, V, g, NULL, loss_value, &c, 1e-2, 1e-2);
    }
    free(zs), free(zt), free(g), free(tmp), free(ref);
}

int main(void)
{
    g_backends[g_nbackends++] = rf_ops_cpu();
    g_backends[g_nbackends++] = rf_ops_cpu_generic();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_backward),    cmocka_unit_test(test_w4a16_backward),
        cmocka_unit_test(test_rmsnorm_backward),   cmocka_unit_test(test_rope_backward),
        cmocka_unit_test(test_attention_backward), cmocka_unit_test(test_swiglu_backward),
        cmocka_unit_test(test_embedding_backward), cmocka_unit_test(test_loss_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
