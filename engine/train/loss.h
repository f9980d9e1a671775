/* Training losses on one row of logits at a time (FORMATS.md "Knowledge
 * distillation loss"): cross-entropy on the answer token, and the
 * temperature-T KL from a teacher, combined as
 *     L = α·T²·KL(softmax(z_T/T) ‖ softmax(z_S/T)) + (1−α)·CE,
 * in fp32 with double accumulators. The trainer feeds rows in chunks
 * (engine/train.c), so the logits of a whole sequence never exist at once;
 * each call overwrites the student row with dL/dz (times a weight), ready
 * for the LM head's backward. */
#ifndef RF_LOSS_H
#define RF_LOSS_H

#include <stdbool.h>

/* Largest vocabulary the top-k loss handles (a bitmap on the stack). */
#define RF_LOSS_MAX_VOCAB (1 << 18)

/* How the top-k teacher (a teacher cache) treats the probability mass
 * outside its k tokens. */
typedef enum rf_topk_mode {
    RF_TOPK_IGNORE = 0, /* renormalise the teacher over its k tokens */
    RF_TOPK_BUCKET = 1, /* the rest is one more bucket, on both sides */
} rf_topk_mode;

typedef struct rf_loss_config {
    float alpha;       /* weight of the KL term; 0: CE only */
    float temperature; /* T > 0 */
    rf_topk_mode topk_mode;
} rf_loss_config;

/* Per-row results, unweighted: ce and kl (KL without the T² factor). */
typedef struct rf_loss_row {
    double ce, kl;
} rf_loss_row;

/* Dense teacher: zs [V] student logits, zt [V] teacher logits or NULL (then
 * the KL term is absent whatever alpha says), target the answer token.
 * On return zs holds weight·∂L/∂zs where L = α·T²·kl + (1−α)·ce (with no
 * teacher: L = ce); if !grad, zs is left as it was. */
void rf_loss_dense(float *zs, const float *zt, int V, int target, const rf_loss_config *cfg,
                   float weight, bool grad, rf_loss_row *out);

/* Sparse teacher: k token ids and their log-probabilities at temperature 1
 * (what a teacher cache stores). The teacher at temperature T is
 * q_i ∝ exp(logp_i / T) over the k tokens (mode IGNORE) or over the k tokens
 * and one bucket of log-probability log(1 − Σ exp(logp_i)) (mode BUCKET,
 * where the student's side of the bucket is its mass outside the k tokens). */
void rf_loss_topk(float *zs, int V, const int *ids, const float *logp, int k, int target,
                  const rf_loss_config *cfg, float weight, bool grad, rf_loss_row *out);

#endif
