/* GPTQ for one linear layer: FORMATS.md "GPTQ algorithm", following the
 * GPTQ paper's own implementation (gptq.py, fasterquant) step by step, so
 * that the integers match a torch port of it (tests/reference/gptq_reference.py).
 *
 * Where FORMATS.md is loose, the reference decides (recorded here):
 *  - Group parameters at a group boundary come from the layer's weights as
 *    updated by the previous blocks' GEMMs, not by the in-block rank-1
 *    updates of the current block (the reference reads W, not its block copy
 *    W1). With group size = block size (128, the default) the two agree.
 *  - Per-channel (group_size −1) parameters are taken once, before dead
 *    columns are zeroed; static groups after.
 *  - Symmetric min/max: xmin becomes −xmax only where xmin < 0.
 *  - Rounding is half to even (torch.round); nearbyintf in the default mode.
 *
 * Layout: the working copy of W is transposed, Wt [K, N], so that a column of
 * W — what every step of GPTQ touches — is a contiguous row, and rows of W
 * (output channels, independent of each other in GPTQ) split across threads. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/quant/gptq.h"
#include "engine/core/util.h"

/* Output channels per thread chunk in the column loop and the block GEMM. */
#define CHUNK_N 256
/* Hessian rows per GEMM band when the Hessian is tiled over threads. */
#define HESS_BAND 256

/* Whether BLAS calls should be tiled over OpenMP threads: when OpenBLAS
 * runs one thread (the op table sets that process-wide, see ops_cpu.c, so
 * it is the case inside a job that ran a forward pass) and OpenMP has more. */
static int omp_tiles(void)
{
    return openblas_get_num_threads() == 1 && omp_get_max_threads() > 1;
}

void rf_gptq_opts_default(rf_gptq_opts *o)
{
    o->bits = 4;
    o->group_size = 128;
    o->sym = true;
    o->desc_act = false;
    o->static_groups = false;
    o->percdamp = 0.01;
    o->block_size = 128;
}

int rf_gptq_opts_check(const rf_gptq_opts *o, int K, rf_error *err)
{
    if (o->bits < 2 || o->bits > 8)
        return rf_error_field(err, RF_EINVAL, "bits", "bits must be between 2 and 8, got %d",
                              o->bits);
    if (o->group_size == 0 || o->group_size < -1)
        return rf_error_field(err, RF_EINVAL, "group_size",
                              "group_size must be positive or -1 (per channel), got %d",
                              o->group_size);
    if (o->group_size > 0 && K % o->group_size != 0)
        return rf_error_field(err, RF_EINVAL, "group_size",
                              "group_size %d does not divide the input dimension %d", o->group_size,
                              K);
    if (!(o->percdamp > 0 && o->percdamp <= 1))
        return rf_error_field(err, RF_EINVAL, "damp_percent",
                              "damp_percent must be in (0, 1], got %g", o->percdamp);
    if (o->block_size <= 0)
        return rf_error_field(err, RF_EINVAL, "block_size", "block_size must be positive");
    return 0;
}

int rf_qlayer_alloc(rf_qlayer *l, int N, int K, int group_size, int bits, rf_error *err)
{
    memset(l, 0, sizeof *l);
    int gs = group_size > 0 ? group_size : K;
    l->N = N;
    l->K = K;
    l->group_size = gs;
    l->G = (K + gs - 1) / gs;
    l->bits = bits;
    l->q = malloc((size_t)N * K);
    l->scales = malloc(sizeof(float) * (size_t)l->G * N);
    l->zeros = malloc(sizeof(int32_t) * (size_t)l->G * N);
    l->g_idx = malloc(sizeof(int32_t) * (size_t)K);
    if (!l->q || !l->scales || !l->zeros || !l->g_idx) {
        rf_qlayer_free(l);
        return rf_errorf(err, RF_ENOMEM, "out of memory for a %dx%d quantized layer", N, K);
    }
    return 0;
}

void rf_qlayer_free(rf_qlayer *l)
{
    free(l->q);
    free(l->scales);
    free(l->zeros);
    free(l->g_idx);
    memset(l, 0, sizeof *l);
}

void rf_qlayer_dequant(const rf_qlayer *l, float *W)
{
    for (int n = 0; n < l->N; n++)
        for (int k = 0; k < l->K; k++) {
            size_t gi = (size_t)l->g_idx[k] * l->N + n;
            W[(size_t)n * l->K + k] =
                l->scales[gi] * (float)((int)l->q[(size_t)n * l->K + k] - l->zeros[gi]);
        }
}

/* Min/max quantizer parameters (FORMATS.md step 7) for channels [n0, n1) of
 * the len rows of Wt starting at rows (each of ld floats). */
static void find_params(const float *rows, int len, size_t ld, int n0, int n1, bool sym, int maxq,
                        float *scale, float *zero)
{
    for (int n = n0; n < n1; n++) {
        float xmin = 0.0f, xmax = 0.0f; /* min(min x, 0), max(max x, 0) */
        for (int j = 0; j < len; j++) {
            float v = rows[(size_t)j * ld + n];
            xmin = v < xmin ? v : xmin;
            xmax = v > xmax ? v : xmax;
        }
        if (sym) {
            xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
            if (xmin < 0) xmin = -xmax;
        }
        if (xmin == 0 && xmax == 0) {
            xmin = -1.0f;
            xmax = 1.0f;
        }
        scale[n] = (xmax - xmin) / (float)maxq;
        zero[n] = sym ? (float)((maxq + 1) / 2) : nearbyintf(-xmin / scale[n]);
    }
}

static inline float quant(float x, float s, float z, int maxq)
{
    float q = nearbyintf(x / s) + z;
    return q < 0 ? 0 : (q > (float)maxq ? (float)maxq : q);
}

typedef struct {
    int idx;
    float v;
} keyed;

/* Descending diag(H), ties by index: the same order as a stable descending
 * sort (the reference port sorts stably). */
static int cmp_desc(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->idx - y->idx;
}

/* Upper Cholesky factor of H⁻¹ (FORMATS.md step 5) in Hp, row-major.
 *
 * The reference factors H, inverts, and factors H⁻¹ again (4/3 K³ flops).
 * The same factor comes from one factorisation and one triangular inverse
 * (2/3 K³): with J the order-reversing permutation and JHJ = L Lᵀ,
 * H⁻¹ = J L⁻ᵀ L⁻¹ J = (J L⁻¹ J)ᵀ (J L⁻¹ J), and J L⁻¹ J is upper triangular
 * with a positive diagonal — by uniqueness, the factor the reference gets.
 * LAPACKE spotrf and strtri do the work, called column-major on the
 * row-major buffer (its row-major lower triangle is their upper one), so
 * LAPACKE makes no transposed copies.
 *
 * On entry Hp's strict lower triangle holds H (permuted) and diag0 its
 * diagonal. JHJ's strict upper triangle is kept as the backup from which
 * each attempt rebuilds the lower one, so a failed factorisation is retried
 * with more dampening. */
static int hinv_chol(float *Hp, const float *diag0, int K, const rf_gptq_opts *o,
                     rf_gptq_damp_fn on_damp, void *user, rf_gptq_stats *st, rf_error *err)
{
    double mean = 0;
    for (int i = 0; i < K; i++)
        mean += diag0[i];
    mean /= K;
    /* (JHJ)[i][j] = H[K−1−i][K−1−j]: for i < j that is in H's lower part */
    for (int i = 0; i < K; i++)
        for (int j = i + 1; j < K; j++)
            Hp[(size_t)i * K + j] = Hp[(size_t)(K - 1 - i) * K + (K - 1 - j)];
    double pd = o->percdamp;
    for (;;) {
        float damp = (float)(pd * mean);
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < i; j++)
                Hp[(size_t)i * K + j] = Hp[(size_t)j * K + i];
            Hp[(size_t)i * K + i] = diag0[K - 1 - i] + damp;
        }
        int rc = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', K, Hp, K);
        if (rc == 0) rc = LAPACKE_strtri(LAPACK_COL_MAJOR, 'U', 'N', K, Hp, K);
        if (rc == 0) break;
        if (rc < 0) return rf_errorf(err, RF_EINTERNAL, "LAPACKE rejected argument %d", -rc);
        if (pd >= 1.0)
            return rf_errorf(err, RF_EINTERNAL,
                             "the Hessian is not positive definite even with damp_percent 1 "
                             "(calibration activations degenerate?)");
        double next = pd * 2 > 1.0 ? 1.0 : pd * 2;
        if (on_damp) on_damp(user, pd, next);
        st->damp_raises++;
        pd = next;
    }
    st->percdamp_used = pd;
    /* the row-major lower triangle holds M = L⁻¹; Hinv = J M J */
    for (int i = 0; i < K; i++)
        for (int j = i + 1; j < K; j++)
            Hp[(size_t)i * K + j] = Hp[(size_t)(K - 1 - i) * K + (K - 1 - j)];
    for (int i = 0; i < K / 2; i++) {
        float t = Hp[(size_t)i * K + i];
        Hp[(size_t)i * K + i] = Hp[(size_t)(K - 1 - i) * K + (K - 1 - i)];
        Hp[(size_t)(K - 1 - i) * K + (K - 1 - i)] = t;
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < i; j++)
            Hp[(size_t)i * K + j] = 0.0f;
    return 0;
}

/* Everything one block of columns [i1, i2) does for output channels
 * [n0, n1): FORMATS.md step 6. W1 and Err1 are [cnt, N] block buffers. */
typedef struct {
    const rf_gptq_opts *o;
    int N, K, gs, maxq;
    bool per_channel;
    float *Wt;         /* [K, N], permuted when desc_act */
    const float *Hinv; /* [K, K] upper */
    const int *perm;   /* permuted position → original column */
    float *W1, *Err1;
    float *scale, *zero;         /* [N] current group's parameters */
    const float *sscale, *szero; /* static or per-channel: [G, N] */
    rf_qlayer *out;
} gptq_ctx;

static double block_chunk(gptq_ctx *c, int i1, int i2, int n0, int n1)
{
    const int N = c->N, K = c->K, gs = c->gs, cnt = i2 - i1;
    double loss = 0;
    for (int i = 0; i < cnt; i++) {
        int col = i1 + i;
        const float *s = c->scale, *z = c->zero;
        if (c->per_channel) {
            s = c->sscale;
            z = c->szero;
        } else if (c->o->static_groups) {
            size_t g = (size_t)(c->perm[col] / gs);
            s = c->sscale + g * N;
            z = c->szero + g * N;
        } else if (col % gs == 0) {
            int len = gs < K - col ? gs : K - col;
            find_params(c->Wt + (size_t)col * N, len, (size_t)N, n0, n1, c->o->sym, c->maxq,
                        c->scale, c->zero);
            size_t g = (size_t)(col / gs);
            memcpy(c->out->scales + g * N + n0, c->scale + n0, sizeof(float) * (n1 - n0));
            for (int n = n0; n < n1; n++)
                c->out->zeros[g * N + n] = (int32_t)c->zero[n];
        }
        float *w = c->W1 + (size_t)i * N, *e = c->Err1 + (size_t)i * N;
        float d = c->Hinv[(size_t)col * K + col];
        int orig = c->perm[col];
        for (int n = n0; n < n1; n++) {
            float qi = quant(w[n], s[n], z[n], c->maxq);
            float qv = s[n] * (qi - z[n]);
            c->out->q[(size_t)n * K + orig] = (uint8_t)qi;
            float r = w[n] - qv;
            loss += (double)r * r / ((double)d * d);
            e[n] = r / d;
        }
        /* in-block: W1[:, j] −= err · Hinv[col, j] for the rest of the block */
        for (int j = i + 1; j < cnt; j++) {
            float h = c->Hinv[(size_t)col * K + i1 + j];
            float *wj = c->W1 + (size_t)j * N;
            for (int n = n0; n < n1; n++)
                wj[n] -= e[n] * h;
        }
    }
    return loss;
}

int rf_gptq_quantize(const float *W, int N, int K, const float *H, const rf_gptq_opts *o,
                     rf_gptq_damp_fn on_damp, void *user, rf_qlayer *out, rf_gptq_stats *st,
                     rf_error *err)
{
    double t0 = rf_now_s();
    rf_gptq_stats st0 = {0};
    if (!st) st = &st0;
    memset(st, 0, sizeof *st);
    int rc = rf_gptq_opts_check(o, K, err);
    if (rc) return rc;
    rc = rf_qlayer_alloc(out, N, K, o->group_size, o->bits, err);
    if (rc) return rc;
    const int gs = out->group_size, G = out->G, maxq = (1 << o->bits) - 1;
    const bool per_channel = o->group_size == -1;
    float *Wt = malloc(sizeof(float) * (size_t)K * N);
    float *Hp = malloc(sizeof(float) * (size_t)K * K);
    float *diag0 = malloc(sizeof(float) * K);
    int *perm = malloc(sizeof(int) * K);
    keyed *keys = malloc(sizeof(keyed) * K);
    int bs = o->block_size < K ? o->block_size : K;
    float *W1 = malloc(sizeof(float) * (size_t)bs * N);
    float *Err1 = malloc(sizeof(float) * (size_t)bs * N);
    float *scale = malloc(sizeof(float) * N), *zero = malloc(sizeof(float) * N);
    float *sscale = malloc(sizeof(float) * (size_t)G * N);
    float *szero = malloc(sizeof(float) * (size_t)G * N);
    if (!Wt || !Hp || !diag0 || !perm || !keys || !W1 || !Err1 || !scale || !zero || !sscale ||
        !szero) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory for GPTQ of a %dx%d layer", N, K);
        goto fail;
    }

    /* Wt = Wᵀ in the original order, for the steps before the permutation */
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            Wt[(size_t)k * N + n] = W[(size_t)n * K + k];
    if (per_channel) find_params(Wt, K, (size_t)N, 0, N, o->sym, maxq, sscale, szero);
    /* step 2: dead inputs */
    for (int k = 0; k < K; k++) {
        diag0[k] = H[(size_t)k * K + k];
        if (diag0[k] == 0) {
            diag0[k] = 1.0f;
            memset(Wt + (size_t)k * N, 0, sizeof(float) * N);
            st->dead_columns++;
        }
    }
    if (o->static_groups && !per_channel)
        for (int g = 0; g < G; g++)
            find_params(Wt + (size_t)g * gs * N, gs, (size_t)N, 0, N, o->sym, maxq,
                        sscale + (size_t)g * N, szero + (size_t)g * N);
    /* step 3: act-order */
    for (int k = 0; k < K; k++) {
        keys[k].idx = k;
        keys[k].v = diag0[k];
    }
    if (o->desc_act) qsort(keys, K, sizeof *keys, cmp_desc);
    for (int k = 0; k < K; k++)
        perm[k] = keys[k].idx;
    if (o->desc_act) {
        /* permute Wt's rows in place through the W1 buffer would need K·N
         * more floats anyway; reuse Hp's space is not possible (it holds H
         * next), so gather into a fresh array */
        float *Wp = malloc(sizeof(float) * (size_t)K * N);
        if (!Wp) {
            rc = rf_errorf(err, RF_ENOMEM, "out of memory for GPTQ of a %dx%d layer", N, K);
            goto fail;
        }
        for (int k = 0; k < K; k++)
            memcpy(Wp + (size_t)k * N, Wt + (size_t)perm[k] * N, sizeof(float) * N);
        free(Wt);
        Wt = Wp;
        for (int k = 0; k < K; k++)
            keys[k].v = diag0[perm[k]];
        for (int k = 0; k < K; k++)
            diag0[k] = keys[k].v;
    }
    /* Hp = H[perm][:, perm]; only the strict lower triangle is kept, the
     * diagonal and upper triangle are rebuilt from it per attempt */
    for (int i = 0; i < K; i++)
        for (int j = 0; j < i; j++)
            Hp[(size_t)i * K + j] = H[(size_t)perm[i] * K + perm[j]];
    rc = hinv_chol(Hp, diag0, K, o, on_damp, user, st, err);
    if (rc) goto fail;

    /* g_idx: group of each original channel (FORMATS.md: non-monotonic
     * with act-order unless groups are static) */
    for (int j = 0; j < K; j++)
        out->g_idx[perm[j]] = per_channel ? 0 : (o->static_groups ? perm[j] / gs : j / gs);
    if (per_channel || o->static_groups)
        for (size_t i = 0; i < (size_t)G * N; i++) {
            out->scales[i] = sscale[i];
            out->zeros[i] = (int32_t)szero[i];
        }

    gptq_ctx c = {o,    N,  K,    gs,    maxq, per_channel, Wt,    Hp,
                  perm, W1, Err1, scale, zero, sscale,      szero, out};
    double loss = 0;
    int nchunks = (N + CHUNK_N - 1) / CHUNK_N;
    for (int i1 = 0; i1 < K; i1 += bs) {
        int i2 = i1 + bs < K ? i1 + bs : K;
        memcpy(W1, Wt + (size_t)i1 * N, sizeof(float) * (size_t)(i2 - i1) * N);
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : loss)
        for (int ch = 0; ch < nchunks; ch++) {
            int n0 = ch * CHUNK_N, n1 = n0 + CHUNK_N < N ? n0 + CHUNK_N : N;
            loss += block_chunk(&c, i1, i2, n0, n1);
        }
        /* the block's errors reach the remaining columns in one GEMM:
         * Wt[i2:, :] −= Hinv[i1:i2, i2:]ᵀ · Err1 */
        if (i2 < K && !omp_tiles()) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K - i2, N, i2 - i1, -1.0f,
                        Hp + (size_t)i1 * K + i2, K, Err1, N, 1.0f, Wt + (size_t)i2 * N, N);
        } else if (i2 < K) {
#pragma omp parallel for schedule(dynamic, 1)
            for (int ch = 0; ch < nchunks; ch++) {
                int n0 = ch * CHUNK_N, nc = n0 + CHUNK_N < N ? CHUNK_N : N - n0;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K - i2, nc, i2 - i1, -1.0f,
                            Hp + (size_t)i1 * K + i2, K, Err1 + n0, N, 1.0f,
                            Wt + (size_t)i2 * N + n0, N);
            }
        }
    }
    st->loss = loss / 2;
    st->seconds = rf_now_s() - t0;
    rc = 0;
fail:
    if (rc) rf_qlayer_free(out);
    free(Wt);
    free(Hp);
    free(diag0);
    free(perm);
    free(keys);
    free(W1);
    free(Err1);
    free(scale);
    free(zero);
    free(sscale);
    free(szero);
    return rc;
}

int rf_rtn_quantize(const float *W, int N, int K, const rf_gptq_opts *o, rf_qlayer *out,
                    rf_error *err)
{
    int rc = rf_gptq_opts_check(o, K, err);
    if (rc) return rc;
    rc = rf_qlayer_alloc(out, N, K, o->group_size, o->bits, err);
    if (rc) return rc;
    const int gs = out->group_size, maxq = (1 << o->bits) - 1;
    float *Wt = malloc(sizeof(float) * (size_t)K * N);
    if (!Wt) {
        rf_qlayer_free(out);
        return rf_errorf(err, RF_ENOMEM, "out of memory for RTN of a %dx%d layer", N, K);
    }
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            Wt[(size_t)k * N + n] = W[(size_t)n * K + k];
    float *zf = malloc(sizeof(float) * (size_t)(N > 0 ? N : 1));
    if (!zf) {
        free(Wt);
        rf_qlayer_free(out);
        return rf_errorf(err, RF_ENOMEM, "out of memory for RTN of a %dx%d layer", N, K);
    }
    for (int g = 0; g < out->G; g++) {
        float *s = out->scales + (size_t)g * N;
        find_params(Wt + (size_t)g * gs * N, gs, (size_t)N, 0, N, o->sym, maxq, s, zf);
        for (int n = 0; n < N; n++)
            out->zeros[(size_t)g * N + n] = (int32_t)zf[n];
        for (int k = g * gs; k < (g + 1) * gs; k++) {
            out->g_idx[k] = g;
            for (int n = 0; n < N; n++)
                out->q[(size_t)n * K + k] =
                    (uint8_t)quant(Wt[(size_t)k * N + n], s[n], zf[n], maxq);
        }
    }
    free(zf);
    free(Wt);
    return 0;
}

int rf_hessian_init(rf_hessian *h, int K, rf_error *err)
{
    h->K = K;
    h->n = 0;
    h->H = calloc((size_t)K * K, sizeof(float));
    if (!h->H) return rf_errorf(err, RF_ENOMEM, "out of memory for a %dx%d Hessian", K, K);
    return 0;
}

void rf_hessian_add(rf_hessian *h, const float *x, int rows, int nseq)
{
    const int K = h->K;
    h->n += nseq;
    if (rows <= 0) return;
    if (!omp_tiles()) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K, rows, 1.0f, x, K, 1.0f, h->H, K);
        return;
    }
    /* rows [i0, i1) of the upper triangle, from the diagonal on, one GEMM
     * per band (the band's diagonal block is computed whole; its lower part
     * is overwritten by rf_hessian_finish) */
    const int nb = (K + HESS_BAND - 1) / HESS_BAND;
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
        int i0 = b * HESS_BAND, i1 = i0 + HESS_BAND < K ? i0 + HESS_BAND : K;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1 - i0, K - i0, rows, 1.0f, x + i0, K,
                    x + i0, K, 1.0f, h->H + (size_t)i0 * K + i0, K);
    }
}

void rf_hessian_finish(rf_hessian *h)
{
    const int K = h->K;
    float c = h->n > 0 ? 2.0f / (float)h->n : 0.0f;
    for (int i = 0; i < K; i++)
        for (int j = i; j < K; j++) {
            float v = h->H[(size_t)i * K + j] * c;
            h->H[(size_t)i * K + j] = v;
            h->H[(size_t)j * K + i] = v;
        }
}

void rf_hessian_free(rf_hessian *h)
{
    free(h->H);
    h->H = NULL;
}

/* Σ_r a_r H a_rᵀ for the rows of A [N, K]. */
static double quad_form(const float *A, int N, int K, const float *H, float *P)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K, K, 1.0f, A, K, H, K, 0.0f, P, K);
    double s = 0;
    for (size_t i = 0; i < (size_t)N * K; i++)
        s += (double)A[i] * P[i];
    return s;
}

int rf_gptq_recon_error(const float *W, const float *What, int N, int K, const float *H,
                        double *abs_err, double *rel_err, rf_error *err)
{
    float *D = malloc(sizeof(float) * (size_t)N * K);
    float *P = malloc(sizeof(float) * (size_t)N * K);
    if (!D || !P) {
        free(D);
        free(P);
        return rf_errorf(err, RF_ENOMEM, "out of memory for the reconstruction error");
    }
    for (size_t i = 0; i < (size_t)N * K; i++)
        D[i] = W[i] - What[i];
    double e = quad_form(D, N, K, H, P);
    double base = quad_form(W, N, K, H, P);
    free(D);
    free(P);
    if (abs_err) *abs_err = e;
    if (rel_err) *rel_err = base > 0 ? e / base : 0;
    return 0;
}
