/* GPTQ for one linear layer, and round-to-nearest with the same grouping as
 * the baseline: FORMATS.md "GPTQ algorithm". The output is integers, scales,
 * true zero points and g_idx in the original channel order; packing into the
 * checkpoint layout is engine/gptq_pack.h.
 *
 * W is [N = out, K = in], row-major, fp32. The Hessian is [K, K] fp32. */
#ifndef RF_GPTQ_H
#define RF_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/core/error.h"

typedef struct rf_gptq_opts {
    int bits;           /* 2..8; the checkpoint layout takes 4 */
    int group_size;     /* 128 by default; -1: one group per output channel */
    bool sym;           /* symmetric (zero = 2^(bits-1)) or asymmetric min/max */
    bool desc_act;      /* act-order: columns by descending diag(H) */
    bool static_groups; /* group parameters fixed from the unquantized weights */
    double percdamp;    /* dampening, a fraction of mean(diag H); 0.01 */
    int block_size;     /* columns per lazy-batch block; 128 */
} rf_gptq_opts;

void rf_gptq_opts_default(rf_gptq_opts *o);
/* Checks the options against a layer of input dimension K: group size
 * dividing K, bits, percdamp. err->field names the option at fault. */
int rf_gptq_opts_check(const rf_gptq_opts *o, int K, rf_error *err);

/* A quantized layer before packing. */
typedef struct rf_qlayer {
    int N, K, G, group_size; /* group_size here is K when the option was -1 */
    int bits;
    uint8_t *q;     /* [N, K] integers in [0, 2^bits), original column order */
    float *scales;  /* [G, N] */
    int32_t *zeros; /* [G, N] true zero points (not the stored zero − 1) */
    int32_t *g_idx; /* [K] group of each input channel */
} rf_qlayer;

int rf_qlayer_alloc(rf_qlayer *l, int N, int K, int group_size, int bits, rf_error *err);
void rf_qlayer_free(rf_qlayer *l);
/* w[n, k] = scales[g_idx[k], n] · (q[n, k] − zeros[g_idx[k], n]) in fp32 —
 * the weights GPTQ itself measured its error against. */
void rf_qlayer_dequant(const rf_qlayer *l, float *W);

/* What happened while quantizing one layer. */
typedef struct rf_gptq_stats {
    double percdamp_used; /* > percdamp when Cholesky failed and dampening rose */
    int damp_raises;      /* how many times it rose */
    int dead_columns;     /* inputs whose H[i,i] was 0 */
    double loss;          /* Σ (w − q)² / Hinv[i,i]² / 2, the reference's "error" */
    double seconds;
} rf_gptq_stats;

/* Called each time dampening is raised after a failed Cholesky (the job logs
 * an event); may be NULL. */
typedef void (*rf_gptq_damp_fn)(void *user, double from, double to);

/* GPTQ: W [N, K] and H [K, K] (symmetric, as rf_hessian_finish leaves it)
 * are only read. Works on a copy of H (K² floats) and a transposed copy of
 * W. RF_EINVAL for bad options; RF_EINTERNAL if Cholesky fails even at
 * percdamp 1. */
int rf_gptq_quantize(const float *W, int N, int K, const float *H, const rf_gptq_opts *o,
                     rf_gptq_damp_fn on_damp, void *user, rf_qlayer *out, rf_gptq_stats *st,
                     rf_error *err);

/* Round-to-nearest with the same quantizer and grouping (no act-order). */
int rf_rtn_quantize(const float *W, int N, int K, const rf_gptq_opts *o, rf_qlayer *out,
                    rf_error *err);

/* Hessian accumulation, FORMATS.md step 1: H = (2/n) Σ x xᵀ. As in the
 * reference, n counts calibration sequences (the batch dimension), not
 * tokens; GPTQ's result does not depend on H's scale (dampening is relative
 * to mean diag H), so this only matters when comparing Hessians. */
typedef struct rf_hessian {
    int K;
    long n;   /* sequences added */
    float *H; /* [K, K]; Σ x xᵀ (upper triangle) until finished */
} rf_hessian;

int rf_hessian_init(rf_hessian *h, int K, rf_error *err);
/* Add the rows x [rows, K] of nseq sequences. */
void rf_hessian_add(rf_hessian *h, const float *x, int rows, int nseq);
/* Scale by 2/n and fill the lower triangle. */
void rf_hessian_finish(rf_hessian *h);
void rf_hessian_free(rf_hessian *h);

/* ‖(W − Ŵ) X‖² expressed through H (up to H's scale): Σ_r Δ_r H Δ_rᵀ, and
 * the same for W, so *rel = err / ‖W X‖². Uses N·K scratch floats. */
int rf_gptq_recon_error(const float *W, const float *What, int N, int K, const float *H,
                        double *abs_err, double *rel_err, rf_error *err);

#endif
