#include "engine/train/loss.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* max and log Σ exp((z_i − max)/T)·… : log-sum-exp of z/T, in double. */
static double lse(const float *z, int V, double inv_t)
{
    double mx = -INFINITY, s = 0.0;
    for (int i = 0; i < V; i++)
        mx = fmax(mx, z[i] * inv_t);
    for (int i = 0; i < V; i++)
        s += exp(z[i] * inv_t - mx);
    return mx + log(s);
}

void rf_loss_dense(float *zs, const float *zt, int V, int target, const rf_loss_config *cfg,
                   float weight, bool grad, rf_loss_row *out)
{
    const bool kd = zt && cfg->alpha > 0;
    const double T = cfg->temperature, it = 1.0 / T, a = kd ? cfg->alpha : 0.0;
    const double ls1 = lse(zs, V, 1.0);
    const double lsT = kd ? lse(zs, V, it) : 0, ltT = kd ? lse(zt, V, it) : 0;
    out->ce = ls1 - zs[target];
    /* KL(q‖p) = Σ q (log q − log p), q = softmax(zt/T), p = softmax(zs/T) */
    double kl = 0.0;
    if (kd)
        for (int i = 0; i < V; i++) {
            double lq = zt[i] * it - ltT, lp = zs[i] * it - lsT;
            kl += exp(lq) * (lq - lp);
        }
    out->kl = kl;
    if (!grad) return;
    /* ∂CE/∂z = softmax(z) − onehot; ∂(T²·KL)/∂z = T·(p − q) */
    for (int i = 0; i < V; i++) {
        double g = (1.0 - a) * (exp(zs[i] - ls1) - (i == target));
        if (kd) g += a * T * (exp(zs[i] * it - lsT) - exp(zt[i] * it - ltT));
        zs[i] = (float)(weight * g);
    }
}

void rf_loss_topk(float *zs, int V, const int *ids, const float *logp, int k, int target,
                  const rf_loss_config *cfg, float weight, bool grad, rf_loss_row *out)
{
    const double T = cfg->temperature, it = 1.0 / T, a = cfg->alpha;
    const bool bucket = cfg->topk_mode == RF_TOPK_BUCKET;
    const double ls1 = lse(zs, V, 1.0), lsT = lse(zs, V, it);
    out->ce = ls1 - zs[target];
    /* Teacher at temperature T over k tokens (+ the bucket). */
    double mass = 0.0, lmx = -INFINITY;
    for (int j = 0; j < k; j++) {
        mass += exp(logp[j]);
        lmx = fmax(lmx, logp[j] * it);
    }
    double rest = bucket ? fmax(1.0 - mass, 0.0) : 0.0;
    double lrest = rest > 0 ? log(rest) * it : -INFINITY;
    lmx = fmax(lmx, lrest);
    double zq = 0.0;
    for (int j = 0; j < k; j++)
        zq += exp(logp[j] * it - lmx);
    if (rest > 0) zq += exp(lrest - lmx);
    const double lzq = lmx + log(zq);
    /* Student at temperature T: its mass on the k tokens, and outside them. */
    double p_in = 0.0, kl = 0.0, q_in = 0.0;
    for (int j = 0; j < k; j++) {
        double lq = logp[j] * it - lzq, lp = zs[ids[j]] * it - lsT;
        kl += exp(lq) * (lq - lp);
        q_in += exp(lq);
        p_in += exp(lp);
    }
    const double q_rest = rest > 0 ? exp(lrest - lzq) : 0.0, p_rest = fmax(1.0 - p_in, 1e-30);
    if (q_rest > 0) kl += q_rest * (log(q_rest) - log(p_rest));
    out->kl = kl;
    if (!grad) return;
    /* ∂KL/∂z_j = (1/T)·(p_j·(Σq_in + q_rest) − q_j·[j∈K] − q_rest·p_j/p_rest·[j∉K]):
     * from ∂log p_i/∂z_j = (δ_ij − p_j)/T and
     * ∂log p_rest/∂z_j = ([j∉K]·p_j/p_rest − p_j)/T. With the rest ignored
     * Σq_in = 1 and q_rest = 0. A bitmap marks K (on the stack: no
     * allocation in a step), the −q_j terms follow the dense pass. */
    uint64_t in_k[RF_LOSS_MAX_VOCAB / 64];
    memset(in_k, 0, sizeof(uint64_t) * (size_t)((V + 63) / 64));
    for (int j = 0; j < k; j++)
        in_k[ids[j] >> 6] |= 1ull << (ids[j] & 63);
    for (int i = 0; i < V; i++) {
        double p = exp(zs[i] * it - lsT);
        double g = (1.0 - a) * (exp(zs[i] - ls1) - (i == target));
        double dkl = p * (q_in + q_rest);
        if (q_rest > 0 && !(in_k[i >> 6] >> (i & 63) & 1)) dkl -= q_rest * p / p_rest;
        zs[i] = (float)(weight * (g + a * T * dkl));
    }
    for (int j = 0; j < k; j++)
        zs[ids[j]] -= (float)(weight * a * T * exp(logp[j] * it - lzq));
}
