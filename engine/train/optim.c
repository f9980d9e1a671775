#include "engine/train/optim.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void rf_optim_config_default(rf_optim_config *c)
{
    memset(c, 0, sizeof *c);
    c->kind = RF_OPT_ADAMW;
    c->lr = 1e-3f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->momentum = 0.95f;
    c->sched = RF_SCHED_COSINE;
    c->min_lr_ratio = 0.0f;
}

int rf_optim_init(rf_optim *o, const rf_optim_config *cfg, rf_error *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    if (!(cfg->lr >= 0) || cfg->weight_decay < 0 || cfg->beta1 < 0 || cfg->beta1 >= 1 ||
        cfg->beta2 < 0 || cfg->beta2 >= 1 || cfg->momentum < 0 || cfg->momentum >= 1)
        return rf_errorf(err, RF_EINVAL,
                         "optimizer: lr, weight decay, betas or momentum out of range");
    return 0;
}

int rf_optim_add(rf_optim *o, float *data, float *grad, int rows, int cols, bool muon_ok,
                 rf_error *err)
{
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 64;
        rf_optim_param *p = realloc(o->p, sizeof *p * (size_t)cap);
        if (!p) return rf_errorf(err, RF_ENOMEM, "optimizer: out of memory");
        o->p = p, o->cap = cap;
    }
    rf_optim_param *p = &o->p[o->n++];
    memset(p, 0, sizeof *p);
    p->data = data, p->grad = grad, p->rows = rows, p->cols = cols;
    /* FORMATS.md: non-2-D parameters (and embeddings, LM head: muon_ok false) use AdamW */
    p->muon = o->cfg.kind == RF_OPT_MUON && muon_ok && cols > 0 && rows > 0;
    return 0;
}

static size_t numel(const rf_optim_param *p)
{
    return (size_t)p->rows * (size_t)(p->cols ? p->cols : 1);
}

int rf_optim_ready(rf_optim *o, rf_error *err)
{
    size_t n = 0, ns = 0;
    for (int i = 0; i < o->n; i++) {
        n += numel(&o->p[i]) * (o->p[i].muon ? 1 : 2);
        if (o->p[i].muon) {
            /* NS5 scratch, then U itself */
            size_t s = rf_ns5_scratch(o->p[i].rows, o->p[i].cols) + numel(&o->p[i]);
            ns = s > ns ? s : ns;
        }
    }
    o->state = calloc(n ? n : 1, sizeof(float));
    o->ns = calloc(ns ? ns : 1, sizeof(float));
    if (!o->state || !o->ns) return rf_errorf(err, RF_ENOMEM, "optimizer: out of memory for state");
    o->state_n = n, o->ns_n = ns;
    float *s = o->state;
    for (int i = 0; i < o->n; i++) {
        rf_optim_param *p = &o->p[i];
        p->m = s, s += numel(p);
        if (!p->muon) p->v = s, s += numel(p);
    }
    return 0;
}

void rf_optim_free(rf_optim *o)
{
    if (!o) return;
    free(o->p);
    free(o->state);
    free(o->ns);
    memset(o, 0, sizeof *o);
}

float rf_optim_lr(const rf_optim_config *c, long step)
{
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    if (c->sched == RF_SCHED_CONSTANT || c->total_steps <= c->warmup_steps) return c->lr;
    double f = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    if (f > 1) f = 1;
    double decay = c->sched == RF_SCHED_COSINE ? 0.5 * (1 + cos(M_PI * f)) : 1 - f;
    return (float)(c->lr * (c->min_lr_ratio + (1 - c->min_lr_ratio) * decay));
}

double rf_optim_grad_norm(const rf_optim *o)
{
    double s = 0;
    for (int i = 0; i < o->n; i++) {
        const rf_optim_param *p = &o->p[i];
        size_t n = numel(p);
        for (size_t j = 0; j < n; j++)
            s += (double)p->grad[j] * p->grad[j];
    }
    return sqrt(s);
}

void rf_optim_zero_grad(rf_optim *o)
{
    for (int i = 0; i < o->n; i++)
        memset(o->p[i].grad, 0, sizeof(float) * numel(&o->p[i]));
}

size_t rf_ns5_scratch(int rows, int cols)
{
    int m = rows < cols ? rows : cols, n = rows < cols ? cols : rows;
    /* X (transposed copy) [m, n], A and A² [m, m], B·X [m, n] */
    return 2 * (size_t)m * n + 3 * (size_t)m * m;
}

void rf_ns5(float *x, int rows, int cols, float *scratch)
{
    /* FORMATS.md "Muon": X = U / (‖U‖_F + 1e-7), transposed when rows > cols
     * so that X Xᵀ is the small side; 5 × { A = X Xᵀ; B = b·A + c·A²;
     * X = a·X + B·X } with (a, b, c) = (3.4445, −4.7750, 2.0315). */
    const float a = 3.4445f, b = -4.7750f, c = 2.0315f;
    const bool tr = rows > cols;
    const int m = tr ? cols : rows, n = tr ? rows : cols;
    float *X = scratch, *A = X + (size_t)m * n, *A2 = A + (size_t)m * m, *Bm = A2 + (size_t)m * m,
          *BX = Bm + (size_t)m * m;
    double ss = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        ss += (double)x[i] * x[i];
    const float inv = (float)(1.0 / (sqrt(ss) + 1e-7));
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float v = x[(size_t)i * cols + j] * inv;
            if (tr)
                X[(size_t)j * n + i] = v;
            else
                X[(size_t)i * n + j] = v;
        }
    for (int it = 0; it < 5; it++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, n, 1.0f, X, n, X, n, 0.0f, A, m);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, A, m, A, m, 0.0f, A2,
                    m);
        for (size_t i = 0; i < (size_t)m * m; i++)
            Bm[i] = b * A[i] + c * A2[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, m, 1.0f, Bm, m, X, n, 0.0f, BX,
                    n);
        for (size_t i = 0; i < (size_t)m * n; i++)
            X[i] = a * X[i] + BX[i];
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            x[(size_t)i * cols + j] = tr ? X[(size_t)j * n + i] : X[(size_t)i * n + j];
}

static void adamw(const rf_optim_config *c, rf_optim_param *p, float lr, long t)
{
    /* torch.optim.AdamW: θ ← θ(1 − lr·wd); m, v moving averages;
     * θ ← θ − lr·m̂/(√v̂ + eps) with m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ). */
    const size_t n = numel(p);
    const double bc1 = 1 - pow(c->beta1, (double)t), bc2 = 1 - pow(c->beta2, (double)t);
    const float decay = 1 - lr * c->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float g = p->grad[i];
        p->m[i] = c->beta1 * p->m[i] + (1 - c->beta1) * g;
        p->v[i] = c->beta2 * p->v[i] + (1 - c->beta2) * g * g;
        double mh = p->m[i] / bc1, vh = p->v[i] / bc2;
        p->data[i] = (float)(p->data[i] * decay - lr * mh / (sqrt(vh) + c->eps));
    }
}

static void muon(const rf_optim_config *c, rf_optim_param *p, float lr, float *scratch, float *u)
{
    /* FORMATS.md "Muon": M ← βM + (1−β)G; U = (1−β)G + βM; O = NS5(U);
     * θ ← θ(1 − lr·wd) − lr·s·O */
    const size_t n = numel(p);
    const float beta = c->momentum;
    for (size_t i = 0; i < n; i++) {
        p->m[i] = beta * p->m[i] + (1 - beta) * p->grad[i];
        u[i] = (1 - beta) * p->grad[i] + beta * p->m[i];
    }
    rf_ns5(u, p->rows, p->cols, scratch);
    const double r = p->rows, cl = p->cols;
    const float s = c->muon_scale == RF_MUON_ORIGINAL ? (float)sqrt(fmax(1.0, r / cl))
                                                      : (float)(0.2 * sqrt(fmax(r, cl)));
    const float decay = 1 - lr * c->weight_decay;
    for (size_t i = 0; i < n; i++)
        p->data[i] = p->data[i] * decay - lr * s * u[i];
}

void rf_optim_step(rf_optim *o, double *norm)
{
    const rf_optim_config *c = &o->cfg;
    double gn = rf_optim_grad_norm(o);
    if (norm) *norm = gn;
    if (c->clip_norm > 0 && gn > c->clip_norm) {
        /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) */
        float f = (float)(c->clip_norm / (gn + 1e-6));
        for (int i = 0; i < o->n; i++)
            for (size_t j = 0; j < numel(&o->p[i]); j++)
                o->p[i].grad[j] *= f;
    }
    const float lr = rf_optim_lr(c, o->step);
    const float alr = c->kind == RF_OPT_MUON && c->adamw_lr > 0 ? c->adamw_lr * lr / c->lr : lr;
    o->step++;
    for (int i = 0; i < o->n; i++) {
        rf_optim_param *p = &o->p[i];
        if (p->muon) {
            size_t need = rf_ns5_scratch(p->rows, p->cols);
            muon(c, p, lr, o->ns, o->ns + need);
        } else {
            adamw(c, p, alr, o->step);
        }
    }
    rf_optim_zero_grad(o);
}
