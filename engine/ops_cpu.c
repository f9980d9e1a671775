/* The CPU backend: OpenBLAS for GEMM (with its own threads), OpenMP for the
 * rest. Weights in F16/BF16 are converted to f32 a tile at a time into the
 * caller's scratch, never as a whole. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "engine/ops.h"

/* Rows of weights converted per GEMM tile in the prefill path. */
#define TILE_ROWS 256
/* Below this many activation rows the matmul is bandwidth-bound (decode):
 * each thread converts one weight row and dots it with every x row. */
#define SMALL_M 8

size_t rf_ops_matmul_scratch(int K)
{
    size_t threads = (size_t)omp_get_max_threads();
    size_t tile = (size_t)TILE_ROWS * (size_t)K;
    return tile > threads * (size_t)K ? tile : threads * (size_t)K;
}

static inline float dot(const float *a, const float *b, int n)
{
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

static void add_bias(float *y, const float *bias, int M, int N)
{
    if (!bias) return;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) y[(size_t)m * N + n] += bias[n];
}

static void matmul(float *y, const float *x, const rf_tensor *w, const float *bias, int M, float *scratch,
                   size_t scratch_n)
{
    const int N = (int)w->shape[0], K = (int)w->shape[1];
    const size_t es = rf_dtype_size(w->dtype);
    const char *wb = w->data;
    if (w->dtype == RF_DTYPE_F32) {
        if (M == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, (const float *)wb, K, x, 1, 0.0f, y, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, (const float *)wb, K, 0.0f,
                        y, N);
    } else if (M < SMALL_M) {
#pragma omp parallel
        {
            float *row = scratch + (size_t)omp_get_thread_num() * K;
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) {
                rf_to_f32(w->dtype, wb + (size_t)n * K * es, row, (size_t)K);
                for (int m = 0; m < M; m++) y[(size_t)m * N + n] = dot(x + (size_t)m * K, row, K);
            }
        }
    } else {
        int tile = (int)(scratch_n / (size_t)K);
        if (tile > N) tile = N;
        for (int n0 = 0; n0 < N; n0 += tile) {
            int nt = N - n0 < tile ? N - n0 : tile;
#pragma omp parallel for schedule(static)
            for (int r = 0; r < nt; r++)
                rf_to_f32(w->dtype, wb + (size_t)(n0 + r) * K * es, scratch + (size_t)r * K, (size_t)K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nt, K, 1.0f, x, K, scratch, K, 0.0f, y + n0,
                        N);
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
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        float r = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = 0; i < D; i++) yr[i] = xr[i] * r * w[i];
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

/* One query row against keys 0..last, online softmax (running max and
 * sum) so that no score buffer is needed. */
static void attend_row(const rf_attn_args *a, int t, int h)
{
    const int hd = a->head_dim, kvd = a->n_kv_heads * hd;
    const int kvh = h / (a->n_heads / a->n_kv_heads);
    const int i = a->pos0 + t;
    const int first = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;
    const float *q = a->q + (size_t)t * a->n_heads * hd + (size_t)h * hd;
    float *out = a->out + (size_t)t * a->n_heads * hd + (size_t)h * hd;
    float acc[RF_OPS_MAX_HEAD_DIM];
    float mx = -INFINITY, sum = 0.0f;
    memset(acc, 0, sizeof(float) * (size_t)hd);
    for (int j = first; j <= i; j++) {
        const float *k = a->k + (size_t)j * kvd + (size_t)kvh * hd;
        const float *v = a->v + (size_t)j * kvd + (size_t)kvh * hd;
        float s = dot(q, k, hd) * a->scale;
        if (s > mx) {
            float corr = expf(mx - s);
            sum *= corr;
            for (int d = 0; d < hd; d++) acc[d] *= corr;
            mx = s;
        }
        float p = expf(s - mx);
        sum += p;
        for (int d = 0; d < hd; d++) acc[d] += p * v[d];
    }
    for (int d = 0; d < hd; d++) out[d] = acc[d] / sum;
}

static void attention(const rf_attn_args *a)
{
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int t = 0; t < a->T; t++)
        for (int h = 0; h < a->n_heads; h++) attend_row(a, t, h);
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
        rf_to_f32(table->dtype, (const char *)table->data + (size_t)ids[m] * D * es, out + (size_t)m * D, D);
}

static void softmax(float *x, int M, int N)
{
    for (int m = 0; m < M; m++) {
        float *r = x + (size_t)m * N, mx = -INFINITY;
        for (int i = 0; i < N; i++) mx = r[i] > mx ? r[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < N; i++) {
            r[i] = expf(r[i] - mx);
            sum += r[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < N; i++) r[i] *= inv;
    }
}

static void add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static const rf_ops g_cpu = {
    .name = "cpu",
    .matmul = matmul,
    .rmsnorm = rmsnorm,
    .rope = rope,
    .attention = attention,
    .swiglu = swiglu,
    .embedding = embedding,
    .softmax = softmax,
    .add = add,
};

const rf_ops *rf_ops_cpu(void)
{
    return &g_cpu;
}
