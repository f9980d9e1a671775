/* Optimisers (FORMATS.md "Muon"): AdamW (bias-corrected, decoupled weight
 * decay) and Muon (Nesterov momentum, five Newton–Schulz steps), with the
 * schedule (linear warm-up, then cosine or linear decay), global-norm
 * clipping, and the state a checkpoint saves.
 *
 * The optimiser holds a list of parameters, each a pointer to its values
 * and its gradient (f32) and a shape; 2-D parameters flagged for Muon use
 * it, everything else AdamW, as the reference does. */
#ifndef RF_OPTIM_H
#define RF_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

typedef enum rf_optim_kind { RF_OPT_ADAMW = 0, RF_OPT_MUON = 1 } rf_optim_kind;
typedef enum rf_muon_scale { RF_MUON_ORIGINAL = 0, RF_MUON_MATCH_RMS_ADAMW = 1 } rf_muon_scale;
typedef enum rf_sched_kind {
    RF_SCHED_COSINE = 0,
    RF_SCHED_LINEAR = 1,
    RF_SCHED_CONSTANT = 2
} rf_sched_kind;

typedef struct rf_optim_config {
    rf_optim_kind kind;
    float lr, weight_decay;
    float beta1, beta2, eps; /* AdamW (and Muon's AdamW fallback) */
    float momentum;          /* Muon, 0.95 */
    rf_muon_scale muon_scale;
    float adamw_lr; /* lr of Muon's AdamW fallback; 0: lr */
    /* schedule */
    rf_sched_kind sched;
    int warmup_steps, total_steps;
    float min_lr_ratio; /* final lr / lr */
    float clip_norm;    /* 0: no clipping */
} rf_optim_config;

/* Defaults: AdamW betas (0.9, 0.999), eps 1e-8, momentum 0.95, scale
 * original, cosine, no warm-up, no clipping, wd 0. */
void rf_optim_config_default(rf_optim_config *c);

typedef struct rf_optim_param {
    float *data, *grad;
    int rows, cols; /* cols 0: not a matrix */
    bool muon;      /* use Muon when the optimiser is Muon (2-D, not embedding/head) */
    float *m, *v;   /* state: first and second moments (Muon: m only) */
} rf_optim_param;

typedef struct rf_optim {
    rf_optim_config cfg;
    int n, cap;
    rf_optim_param *p;
    long step;      /* updates done */
    float *state;   /* every m and v, one block */
    size_t state_n; /* floats in state */
    float *ns;      /* Newton–Schulz scratch */
    size_t ns_n;
} rf_optim;

int rf_optim_init(rf_optim *o, const rf_optim_config *cfg, rf_error *err);
/* Register a parameter (before rf_optim_ready). */
int rf_optim_add(rf_optim *o, float *data, float *grad, int rows, int cols, bool muon_ok,
                 rf_error *err);
/* Allocate the state once every parameter is registered. */
int rf_optim_ready(rf_optim *o, rf_error *err);
void rf_optim_free(rf_optim *o);

/* The learning rate of update number `step` (0-based). */
float rf_optim_lr(const rf_optim_config *c, long step);
/* √Σ grad² over every parameter. */
double rf_optim_grad_norm(const rf_optim *o);
/* One update: clip (if configured; returns the norm before clipping in
 * *norm), step, and zero the gradients. */
void rf_optim_step(rf_optim *o, double *norm);
void rf_optim_zero_grad(rf_optim *o);

/* X ← NS5(X) for X [rows, cols] in place; scratch holds rf_ns5_scratch floats. */
void rf_ns5(float *x, int rows, int cols, float *scratch);
size_t rf_ns5_scratch(int rows, int cols);

#endif
