/* CPU backward ops, llm.c style: one explicit function per forward op,
 * each accumulating into the gradients it is handed (engine/ops.h). */
#include "engine/backend/ops_cpu_backward.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Weight rows (dW) or input columns (dX) per thread's GEMM piece. */
#define BW_TILE 128

void rf_cpu_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                            const rf_tensor *w, int M, float *scratch, size_t scratch_n)
{
    const int N = (int)w->shape[0], K = (int)w->shape[1];
    if (dbias)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                dbias[n] += dy[(size_t)m * N + n];
    if (dw) {
        /* dW[a:a+nr, :] += dy[:, a:a+nr]ᵀ · x: rows of dW are independent. */
        const int nt = (N + BW_TILE - 1) / BW_TILE;
#pragma omp parallel for schedule(dynamic, 1)
        for (int ti = 0; ti < nt; ti++) {
            const int a = ti * BW_TILE, nr = N - a < BW_TILE ? N - a : BW_TILE;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nr, K, M, 1.0f, dy + a, N, x, K,
                        1.0f, dw + (size_t)a * K, K);
        }
    }
    if (!dx) return;
    if (w->dtype == RF_DTYPE_F32) {
        /* dx[:, k0:k0+kc] += dy · W[:, k0:k0+kc]: columns of dx are independent. */
        const float *W = w->data;
        const int kt = (K + BW_TILE - 1) / BW_TILE;
#pragma omp parallel for schedule(dynamic, 1)
        for (int ti = 0; ti < kt; ti++) {
            const int k0 = ti * BW_TILE, kc = K - k0 < BW_TILE ? K - k0 : BW_TILE;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, kc, N, 1.0f, dy, N, W + k0, K,
                        1.0f, dx + k0, K);
        }
        return;
    }
    /* F16/BF16: convert tiles of weight rows into scratch (no f32 copy of
     * the model) and accumulate dx += dy[:, a:a+nr] · tile, one tile at a time. */
    int tile = (int)(scratch_n / (size_t)K);
    if (tile > N) tile = N;
    if (tile < 1) tile = 1;
    const size_t es = rf_dtype_size(w->dtype);
    for (int a = 0; a < N; a += tile) {
        const int nr = N - a < tile ? N - a : tile;
        rf_to_f32(w->dtype, (const char *)w->data + (size_t)a * K * es, scratch, (size_t)nr * K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, nr, 1.0f, dy + a, N, scratch,
                    K, 1.0f, dx, K);
    }
}

void rf_cpu_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                             int M, int D, float eps)
{
    /* r = (mean(x²)+eps)^(-1/2), y_i = x_i·r·w_i:
     * ∂L/∂x_j = r·w_j·dy_j − x_j·r³/D·Σ_i dy_i·w_i·x_i. Rows in parallel for
     * dx; dw (summed over rows) in a second pass over columns, r recomputed. */
#pragma omp parallel for schedule(static) if (M > 1)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D, *g = dy + (size_t)m * D;
        double ss = 0.0, dot = 0.0;
        for (int i = 0; i < D; i++) {
            ss += (double)xr[i] * xr[i];
            dot += (double)g[i] * w[i] * xr[i];
        }
        const double r = 1.0 / sqrt(ss / D + eps);
        const float c = (float)(r * r * r * dot / D);
        if (dx) {
            float *o = dx + (size_t)m * D;
            for (int i = 0; i < D; i++)
                o[i] += (float)r * w[i] * g[i] - xr[i] * c;
        }
    }
    if (!dw) return;
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D, *g = dy + (size_t)m * D;
        double ss = 0.0;
        for (int i = 0; i < D; i++)
            ss += (double)xr[i] * xr[i];
        const float r = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = 0; i < D; i++)
            dw[i] += g[i] * xr[i] * r;
    }
}

void rf_cpu_rope_backward(float *dx, int M, int n_heads, int head_dim, const int *pos,
                          const float *inv_freq)
{
    /* The forward is y = R(θ)x per pair (x_i, x_{i+d/2}); R is orthogonal,
     * so dx = R(θ)ᵀ dy = R(−θ) dy. */
    const int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (M > 1)
    for (int m = 0; m < M; m++)
        for (int i = 0; i < half; i++) {
            double ang = (double)pos[m] * inv_freq[i];
            float c = (float)cos(ang), s = (float)sin(ang);
            for (int h = 0; h < n_heads; h++) {
                float *v = dx + (size_t)m * n_heads * head_dim + (size_t)h * head_dim;
                float a = v[i], b = v[i + half];
                v[i] = a * c + b * s;
                v[i + half] = b * c - a * s;
            }
        }
}

static float dotf(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpyf(float *y, float a, const float *x, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

void rf_cpu_attention_backward(const rf_attn_args *a, const float *dout, float *dq, float *dk,
                               float *dv)
{
    /* Per query row i, with p = softmax(s), s_j = scale·q·k_j, o = Σ p_j v_j:
     *   dv_j += p_j·do,  dp_j = do·v_j,
     *   ds_j = p_j·(dp_j − Σ_l p_l dp_l) = p_j·(dp_j − do·o)   (o from the forward),
     *   dq += scale·Σ ds_j k_j,  dk_j += scale·ds_j·q.
     * Pass one finds the row's max and sum, pass two recomputes p_j (no score
     * buffer). The heads of one GQA group write the same dk/dv rows, so the
     * threads split over kv heads. */
    const int hd = a->head_dim, kvd = a->n_kv_heads * hd, qd = a->n_heads * hd;
    const int group = a->n_heads / a->n_kv_heads;
#pragma omp parallel for schedule(dynamic, 1)
    for (int g = 0; g < a->n_kv_heads; g++)
        for (int hh = 0; hh < group; hh++) {
            const int h = g * group + hh;
            for (int t = 0; t < a->T; t++) {
                const int i = a->pos0 + t;
                const int first = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;
                const float *q = a->q + (size_t)t * qd + (size_t)h * hd;
                const float *o = a->out + (size_t)t * qd + (size_t)h * hd;
                const float *go = dout + (size_t)t * qd + (size_t)h * hd;
                float mx = -INFINITY;
                for (int j = first; j <= i; j++) {
                    float s = dotf(q, a->k + (size_t)j * kvd + (size_t)g * hd, hd) * a->scale;
                    mx = s > mx ? s : mx;
                }
                double sum = 0.0;
                for (int j = first; j <= i; j++)
                    sum +=
                        expf(dotf(q, a->k + (size_t)j * kvd + (size_t)g * hd, hd) * a->scale - mx);
                const float inv = (float)(1.0 / sum), Dv = dotf(go, o, hd);
                float *gq = dq ? dq + (size_t)t * qd + (size_t)h * hd : NULL;
                for (int j = first; j <= i; j++) {
                    const float *kj = a->k + (size_t)j * kvd + (size_t)g * hd;
                    const float *vj = a->v + (size_t)j * kvd + (size_t)g * hd;
                    const float p = expf(dotf(q, kj, hd) * a->scale - mx) * inv;
                    const float ds = p * (dotf(go, vj, hd) - Dv) * a->scale;
                    if (dv) axpyf(dv + (size_t)j * kvd + (size_t)g * hd, p, go, hd);
                    if (dk) axpyf(dk + (size_t)j * kvd + (size_t)g * hd, ds, q, hd);
                    if (gq) axpyf(gq, ds, kj, hd);
                }
            }
        }
}

void rf_cpu_swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate,
                            const float *up, size_t n)
{
    /* silu(g) = g·σ(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g))) */
#pragma omp parallel for schedule(static) if (n > 4096)
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i], sg = 1.0f / (1.0f + expf(-g));
        if (dgate) dgate[i] += dh[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        if (dup) dup[i] += dh[i] * g * sg;
    }
}

void rf_cpu_embedding_backward(float *dtable, const float *dy, const int *ids, int M, int D)
{
    /* Serial: two rows with the same id add into one table row. */
    for (int m = 0; m < M; m++) {
        float *row = dtable + (size_t)ids[m] * D;
        const float *g = dy + (size_t)m * D;
        for (int i = 0; i < D; i++)
            row[i] += g[i];
    }
}
