#include "engine/train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/safetensors.h"

/* ---- full-parameter mode: an f32 copy of every weight ---- */

/* Gradient of a parameter of the full blob (same offset), NULL otherwise. */
static float *G(const rf_trainer *t, const void *p)
{
    if (!t->full || !p) return NULL;
    const float *f = p;
    if (f < t->full || f >= t->full + t->full_n) return NULL;
    return t->full_grad + (f - t->full);
}

static float *take(float **cur, size_t n)
{
    float *p = *cur;
    *cur += n;
    return p;
}

static void to_f32_tensor(rf_tensor *dst, const rf_tensor *src, float **cur)
{
    size_t n = (size_t)rf_tensor_numel(src);
    float *p = take(cur, n);
    rf_to_f32(src->dtype, src->data, p, n);
    rf_tensor_view(dst, RF_DTYPE_F32, src->ndim, src->shape, p);
}

static const float *copy_small(const float *src, size_t n, float **cur)
{
    if (!src) return NULL;
    float *p = take(cur, n);
    memcpy(p, src, sizeof(float) * n);
    return p;
}

static int make_full(rf_trainer *t, rf_error *err)
{
    const rf_llama_config *c = &t->c;
    const rf_llama_weights *mw = &t->m->w;
    const size_t dim = c->dim, qd = (size_t)c->n_heads * c->head_dim,
                 kvd = (size_t)c->n_kv_heads * c->head_dim, hid = c->hidden_dim;
    size_t per = 2 * dim + 2 * qd * dim + 2 * kvd * dim + 3 * hid * dim +
                 (c->qkv_bias ? qd + 2 * kvd : 0) + (c->o_bias ? dim : 0);
    size_t n =
        (size_t)c->vocab_size * dim * (c->tie_embeddings ? 1 : 2) + dim + per * (size_t)c->n_layers;
    t->full = malloc(sizeof(float) * n);
    t->full_grad = calloc(n, sizeof(float));
    t->w.layers = calloc((size_t)c->n_layers, sizeof *t->w.layers);
    if (!t->full || !t->full_grad || !t->w.layers)
        return rf_errorf(err, RF_ENOMEM, "full-parameter training: cannot allocate %zu MiB",
                         n * 8 >> 20);
    t->full_n = n;
    float *cur = t->full;
    to_f32_tensor(&t->w.embed, &mw->embed, &cur);
    if (c->tie_embeddings)
        t->w.lm_head = t->w.embed;
    else
        to_f32_tensor(&t->w.lm_head, &mw->lm_head, &cur);
    t->w.norm = copy_small(mw->norm, dim, &cur);
    for (int l = 0; l < c->n_layers; l++) {
        const rf_llama_layer *s = &mw->layers[l];
        rf_llama_layer *d = &t->w.layers[l];
        d->attn_norm = copy_small(s->attn_norm, dim, &cur);
        d->ffn_norm = copy_small(s->ffn_norm, dim, &cur);
        d->q_bias = copy_small(s->q_bias, qd, &cur);
        d->k_bias = copy_small(s->k_bias, kvd, &cur);
        d->v_bias = copy_small(s->v_bias, kvd, &cur);
        d->o_bias = copy_small(s->o_bias, dim, &cur);
        to_f32_tensor(&d->wq, &s->wq, &cur);
        to_f32_tensor(&d->wk, &s->wk, &cur);
        to_f32_tensor(&d->wv, &s->wv, &cur);
        to_f32_tensor(&d->wo, &s->wo, &cur);
        to_f32_tensor(&d->w_gate, &s->w_gate, &cur);
        to_f32_tensor(&d->w_up, &s->w_up, &cur);
        to_f32_tensor(&d->w_down, &s->w_down, &cur);
    }
    return 0;
}

/* ---- activations ---- */

static int acts_init(rf_trainer *t, int B, int T, int chunk, rf_error *err)
{
    const rf_llama_config *c = &t->c;
    rf_train_acts *a = &t->a;
    const size_t R = (size_t)B * T, dim = c->dim, qd = (size_t)c->n_heads * c->head_dim,
                 kvd = (size_t)c->n_kv_heads * c->head_dim, hid = c->hidden_dim;
    const size_t r = t->lora ? (size_t)t->lora->cfg.r : 0, g = t->grads ? 1 : 0;
    size_t wide = dim > qd ? dim : qd;
    wide = wide > hid ? wide : hid;
    a->B = B, a->T = T, a->R = (int)R, a->chunk = chunk;
    a->n_slots = t->grads ? c->n_layers : 1;
    a->scratch_n = rf_ops_matmul_scratch((int)wide);
    const size_t per = 4 * dim + 2 * qd + 2 * kvd + 3 * hid + RF_LORA_NTARGETS * r;
    size_t sizes[] = {R * per * (size_t)a->n_slots,
                      R * dim,
                      R * dim,
                      g * R * dim,
                      g * R * dim,
                      g * R * qd,
                      g * R * kvd,
                      g * R * kvd,
                      g * R * qd,
                      g * R * hid,
                      g * R * hid,
                      g * R * hid,
                      R * wide,
                      R * wide,
                      g * R * wide,
                      g * R * r,
                      (size_t)chunk * c->vocab_size,
                      (size_t)chunk * c->vocab_size,
                      a->scratch_n};
    float **ptrs[] = {NULL,      &a->xf,     &a->xnf,     &a->dres,   &a->dxn,
                      &a->dq,    &a->dk,     &a->dv,      &a->datt,   &a->dh,
                      &a->dgate, &a->dup,    &a->tmp_out, &a->tmp_in, &a->tmp_din,
                      &a->tmp_r, &a->logits, &a->tlogits, &a->scratch};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += (sizes[i] + 15) & ~(size_t)15;
    a->arena = calloc(total, sizeof(float));
    a->pos = calloc(2 * R, sizeof(int));
    a->layers = calloc((size_t)a->n_slots, sizeof *a->layers);
    if (!a->arena || !a->pos || !a->layers)
        return rf_errorf(err, RF_ENOMEM, "training activations: cannot allocate %zu MiB",
                         total * 4 >> 20);
    a->ids = a->pos + R;
    a->bytes = total * sizeof(float) + 2 * R * sizeof(int);
    float *p = a->arena;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        if (ptrs[i])
            *ptrs[i] = sizes[i] ? p : NULL;
        else {
            float *q = p;
            for (int l = 0; l < a->n_slots; l++) {
                rf_train_layer_acts *L = &a->layers[l];
                L->x_in = take(&q, R * dim), L->xn1 = take(&q, R * dim);
                L->xn2 = take(&q, R * dim), L->x_mid = take(&q, R * dim);
                L->q = take(&q, R * qd), L->k = take(&q, R * kvd), L->v = take(&q, R * kvd);
                L->att = take(&q, R * qd);
                L->gate = take(&q, R * hid), L->up = take(&q, R * hid), L->h = take(&q, R * hid);
                for (int k = 0; k < RF_LORA_NTARGETS; k++)
                    L->lu[k] = take(&q, R * r);
            }
        }
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    return 0;
}

int rf_trainer_init(rf_trainer *t, const rf_llama_model *m, rf_train_mode mode, rf_lora *lora,
                    int B, int T, int chunk, rf_error *err)
{
    memset(t, 0, sizeof *t);
    t->m = m, t->c = m->config, t->ops = m->ops;
    t->lora = lora;
    t->grads = mode != RF_TRAIN_FROZEN;
    if (B < 1 || T < 1 || T > t->c.max_pos)
        return rf_errorf(err, RF_EINVAL, "trainer: batch %d × sequence %d (max positions %d)", B, T,
                         t->c.max_pos);
    if (mode == RF_TRAIN_LORA && !lora)
        return rf_errorf(err, RF_EINVAL, "trainer: LoRA mode needs adapters");
    if (lora && lora->n_layers != t->c.n_layers)
        return rf_errorf(err, RF_EINVAL, "trainer: adapters for %d layers, model has %d",
                         lora->n_layers, t->c.n_layers);
    if (t->c.vocab_size > RF_LOSS_MAX_VOCAB)
        return rf_errorf(err, RF_EUNSUPPORTED, "trainer: vocabulary over %d", RF_LOSS_MAX_VOCAB);
    int rc;
    t->w = m->w;
    if (mode == RF_TRAIN_FULL && (rc = make_full(t, err)) < 0) goto fail;
    if ((rc = acts_init(t, B, T, chunk > 0 ? chunk : 32, err)) < 0) goto fail;
    return 0;
fail:
    rf_trainer_free(t);
    return rc;
}

void rf_trainer_free(rf_trainer *t)
{
    if (!t) return;
    if (t->full) free(t->w.layers);
    free(t->full);
    free(t->full_grad);
    free(t->a.arena);
    free(t->a.pos);
    free(t->a.layers);
    memset(t, 0, sizeof *t);
}

int rf_trainer_add_params(rf_trainer *t, rf_optim *o, rf_error *err)
{
    int rc = 0;
    if (t->lora) {
        const int r = t->lora->cfg.r;
        for (int l = 0; l < t->c.n_layers; l++)
            for (int k = 0; k < RF_LORA_NTARGETS; k++) {
                rf_lora_pair *p = rf_lora_at(t->lora, l, k);
                if (!p->A) continue;
                if ((rc = rf_optim_add(o, p->A, p->dA, r, p->in, true, err)) < 0 ||
                    (rc = rf_optim_add(o, p->B, p->dB, p->out, r, true, err)) < 0)
                    return rc;
            }
    }
    if (!t->full) return 0;
    const int dim = t->c.dim;
    /* FORMATS.md "Muon": embeddings and the LM head use AdamW, as do 1-D params */
#define ADD(ptr, rows, cols, mu)                                                                   \
    do {                                                                                           \
        if ((ptr) && (rc = rf_optim_add(o, (float *)(ptr), G(t, ptr), rows, cols, mu, err)) < 0)   \
            return rc;                                                                             \
    } while (0)
#define ADDW(tn, mu) ADD((tn).data, (int)(tn).shape[0], (int)(tn).shape[1], mu)
    ADDW(t->w.embed, false);
    if (!t->c.tie_embeddings) ADDW(t->w.lm_head, false);
    ADD(t->w.norm, dim, 0, false);
    for (int l = 0; l < t->c.n_layers; l++) {
        const rf_llama_layer *L = &t->w.layers[l];
        ADD(L->attn_norm, dim, 0, false);
        ADD(L->ffn_norm, dim, 0, false);
        ADD(L->q_bias, (int)L->wq.shape[0], 0, false);
        ADD(L->k_bias, (int)L->wk.shape[0], 0, false);
        ADD(L->v_bias, (int)L->wv.shape[0], 0, false);
        ADD(L->o_bias, dim, 0, false);
        ADDW(L->wq, true);
        ADDW(L->wk, true);
        ADDW(L->wv, true);
        ADDW(L->wo, true);
        ADDW(L->w_gate, true);
        ADDW(L->w_up, true);
        ADDW(L->w_down, true);
    }
#undef ADD
#undef ADDW
    return 0;
}

/* ---- forward ---- */

static const float *layer_bias(const rf_llama_layer *L, int k)
{
    return k == RF_LORA_Q   ? L->q_bias
           : k == RF_LORA_K ? L->k_bias
           : k == RF_LORA_V ? L->v_bias
           : k == RF_LORA_O ? L->o_bias
                            : NULL;
}

/* x with the adapter's dropout applied, into tmp_in (or x itself when p = 0). */
static const float *dropped(rf_trainer *t, int l, int k, const float *x, int in)
{
    if (!t->grads || t->lora->cfg.dropout <= 0) return x;
    const size_t n = (size_t)t->a.R * in;
    for (size_t i = 0; i < n; i++)
        t->a.tmp_in[i] = x[i] * rf_lora_dropout(t->lora, t->step, l, k, i);
    return t->a.tmp_in;
}

/* y = x·Wᵀ (+ bias) + s·(drop(x)·Aᵀ)·Bᵀ */
static void linear(rf_trainer *t, rf_train_layer_acts *S, int l, int k, float *y, const float *x)
{
    rf_train_acts *a = &t->a;
    const rf_llama_layer *L = &t->w.layers[l];
    t->ops->matmul(y, x, rf_lora_base_weight(&t->w, l, k), layer_bias(L, k), a->R, a->scratch,
                   a->scratch_n);
    const rf_lora_pair *p = t->lora ? rf_lora_at(t->lora, l, k) : NULL;
    if (!p || !p->A) return;
    const int r = t->lora->cfg.r;
    rf_tensor A, B;
    rf_tensor_view(&A, RF_DTYPE_F32, 2, (int64_t[]){r, p->in}, p->A);
    rf_tensor_view(&B, RF_DTYPE_F32, 2, (int64_t[]){p->out, r}, p->B);
    float *u = S->lu[k];
    t->ops->matmul(u, dropped(t, l, k, x, p->in), &A, NULL, a->R, a->scratch, a->scratch_n);
    for (size_t i = 0; i < (size_t)a->R * r; i++)
        u[i] *= t->lora->scale;
    t->ops->matmul(a->tmp_out, u, &B, NULL, a->R, a->scratch, a->scratch_n);
    t->ops->add(y, a->tmp_out, (size_t)a->R * p->out);
}

static rf_attn_args attn_args(const rf_trainer *t, const rf_train_layer_acts *S, int b)
{
    const rf_llama_config *c = &t->c;
    const size_t off = (size_t)b * t->a.T, qd = (size_t)c->n_heads * c->head_dim,
                 kvd = (size_t)c->n_kv_heads * c->head_dim;
    return (rf_attn_args){.T = t->a.T,
                          .pos0 = 0,
                          .n_heads = c->n_heads,
                          .n_kv_heads = c->n_kv_heads,
                          .head_dim = c->head_dim,
                          .window = c->sliding_window,
                          .scale = 1.0f / sqrtf((float)c->head_dim),
                          .q = S->q + off * qd,
                          .k = S->k + off * kvd,
                          .v = S->v + off * kvd,
                          .out = S->att + off * qd};
}

int rf_train_forward(rf_trainer *t, const int *ids, rf_error *err)
{
    const rf_llama_config *c = &t->c;
    rf_train_acts *a = &t->a;
    const rf_ops *ops = t->ops;
    const int R = a->R, dim = c->dim, hd = c->head_dim, hid = c->hidden_dim;
    const float eps = (float)c->rms_eps;
    for (int i = 0; i < R; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return rf_errorf(err, RF_EINVAL, "train: token id %d outside the vocabulary", ids[i]);
        a->ids[i] = ids[i];
        a->pos[i] = i % a->T;
    }
    t->step++;
    ops->embedding(a->layers[0].x_in, &t->w.embed, ids, R);
    for (int l = 0; l < c->n_layers; l++) {
        rf_train_layer_acts *S = &a->layers[a->n_slots > 1 ? l : 0];
        float *next = l + 1 == c->n_layers ? a->xf : a->layers[a->n_slots > 1 ? l + 1 : 0].x_in;
        const rf_llama_layer *L = &t->w.layers[l];
        /* attention block: x_mid = x_in + o(attn(rope(q), rope(k), v)) */
        ops->rmsnorm(S->xn1, S->x_in, L->attn_norm, R, dim, eps);
        linear(t, S, l, RF_LORA_Q, S->q, S->xn1);
        linear(t, S, l, RF_LORA_K, S->k, S->xn1);
        linear(t, S, l, RF_LORA_V, S->v, S->xn1);
        ops->rope(S->q, R, c->n_heads, hd, a->pos, t->m->inv_freq);
        ops->rope(S->k, R, c->n_kv_heads, hd, a->pos, t->m->inv_freq);
        for (int b = 0; b < a->B; b++) {
            rf_attn_args aa = attn_args(t, S, b);
            ops->attention(&aa);
        }
        linear(t, S, l, RF_LORA_O, S->x_mid, S->att);
        ops->add(S->x_mid, S->x_in, (size_t)R * dim);
        /* MLP block: next = x_mid + down(silu(gate)·up) */
        ops->rmsnorm(S->xn2, S->x_mid, L->ffn_norm, R, dim, eps);
        linear(t, S, l, RF_LORA_GATE, S->gate, S->xn2);
        linear(t, S, l, RF_LORA_UP, S->up, S->xn2);
        memcpy(S->h, S->gate, sizeof(float) * (size_t)R * hid);
        ops->swiglu(S->h, S->up, (size_t)R * hid);
        linear(t, S, l, RF_LORA_DOWN, next, S->h);
        ops->add(next, S->x_mid, (size_t)R * dim);
    }
    ops->rmsnorm(a->xnf, a->xf, t->w.norm, R, dim, eps);
    return 0;
}

/* ---- backward ---- */

/* dx += ∂/∂x of linear(), dW (full mode) and dA, dB (LoRA) accumulated. */
static void linear_backward(rf_trainer *t, const rf_train_layer_acts *S, int l, int k, float *dx,
                            const float *dy, const float *x)
{
    rf_train_acts *a = &t->a;
    const rf_llama_layer *L = &t->w.layers[l];
    const rf_tensor *W = rf_lora_base_weight(&t->w, l, k);
    t->ops->matmul_backward(dx, G(t, W->data), G(t, layer_bias(L, k)), dy, x, W, a->R, a->scratch,
                            a->scratch_n);
    const rf_lora_pair *p = t->lora ? rf_lora_at(t->lora, l, k) : NULL;
    if (!p || !p->A) return;
    const int r = t->lora->cfg.r;
    const size_t nr = (size_t)a->R * r, nin = (size_t)a->R * p->in;
    rf_tensor A, B;
    rf_tensor_view(&A, RF_DTYPE_F32, 2, (int64_t[]){r, p->in}, p->A);
    rf_tensor_view(&B, RF_DTYPE_F32, 2, (int64_t[]){p->out, r}, p->B);
    /* u = s·drop(x)·Aᵀ, y += u·Bᵀ: dB += dyᵀ·u, du = dy·B, then through s and A */
    memset(a->tmp_r, 0, sizeof(float) * nr);
    t->ops->matmul_backward(a->tmp_r, p->dB, NULL, dy, S->lu[k], &B, a->R, a->scratch,
                            a->scratch_n);
    for (size_t i = 0; i < nr; i++)
        a->tmp_r[i] *= t->lora->scale;
    if (t->lora->cfg.dropout <= 0) {
        t->ops->matmul_backward(dx, p->dA, NULL, a->tmp_r, x, &A, a->R, a->scratch, a->scratch_n);
        return;
    }
    const float *xd = dropped(t, l, k, x, p->in);
    memset(a->tmp_din, 0, sizeof(float) * nin);
    t->ops->matmul_backward(a->tmp_din, p->dA, NULL, a->tmp_r, xd, &A, a->R, a->scratch,
                            a->scratch_n);
    for (size_t i = 0; i < nin; i++)
        dx[i] += a->tmp_din[i] * rf_lora_dropout(t->lora, t->step, l, k, i);
}

static void zero(float *p, size_t n)
{
    memset(p, 0, sizeof(float) * n);
}

/* Everything below the final norm, given dxnf in a->dxn. */
static void backward_layers(rf_trainer *t)
{
    const rf_llama_config *c = &t->c;
    rf_train_acts *a = &t->a;
    const rf_ops *ops = t->ops;
    const size_t R = a->R, dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd,
                 kvd = c->n_kv_heads * hd, hid = c->hidden_dim;
    const float eps = (float)c->rms_eps;
    zero(a->dres, R * dim);
    ops->rmsnorm_backward(a->dres, G(t, t->w.norm), a->dxn, a->xf, t->w.norm, (int)R, (int)dim,
                          eps);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const rf_train_layer_acts *S = &a->layers[l];
        const rf_llama_layer *L = &t->w.layers[l];
        /* MLP block; dres is ∂L/∂(layer output) and, through the residual, ∂L/∂x_mid */
        zero(a->dh, R * hid);
        linear_backward(t, S, l, RF_LORA_DOWN, a->dh, a->dres, S->h);
        zero(a->dgate, R * hid), zero(a->dup, R * hid);
        ops->swiglu_backward(a->dgate, a->dup, a->dh, S->gate, S->up, R * hid);
        zero(a->dxn, R * dim);
        linear_backward(t, S, l, RF_LORA_GATE, a->dxn, a->dgate, S->xn2);
        linear_backward(t, S, l, RF_LORA_UP, a->dxn, a->dup, S->xn2);
        ops->rmsnorm_backward(a->dres, G(t, L->ffn_norm), a->dxn, S->x_mid, L->ffn_norm, (int)R,
                              (int)dim, eps);
        /* attention block; dres is now ∂L/∂x_mid, and through the residual ∂L/∂x_in */
        zero(a->datt, R * qd);
        linear_backward(t, S, l, RF_LORA_O, a->datt, a->dres, S->att);
        zero(a->dq, R * qd), zero(a->dk, R * kvd), zero(a->dv, R * kvd);
        for (int b = 0; b < a->B; b++) {
            rf_attn_args aa = attn_args(t, S, b);
            const size_t off = (size_t)b * a->T;
            ops->attention_backward(&aa, a->datt + off * qd, a->dq + off * qd, a->dk + off * kvd,
                                    a->dv + off * kvd);
        }
        ops->rope_backward(a->dq, (int)R, c->n_heads, (int)hd, a->pos, t->m->inv_freq);
        ops->rope_backward(a->dk, (int)R, c->n_kv_heads, (int)hd, a->pos, t->m->inv_freq);
        zero(a->dxn, R * dim);
        linear_backward(t, S, l, RF_LORA_Q, a->dxn, a->dq, S->xn1);
        linear_backward(t, S, l, RF_LORA_K, a->dxn, a->dk, S->xn1);
        linear_backward(t, S, l, RF_LORA_V, a->dxn, a->dv, S->xn1);
        ops->rmsnorm_backward(a->dres, G(t, L->attn_norm), a->dxn, S->x_in, L->attn_norm, (int)R,
                              (int)dim, eps);
    }
    float *demb = G(t, t->w.embed.data);
    if (demb) ops->embedding_backward(demb, a->dres, a->ids, (int)R, (int)dim);
}

int rf_train_loss(rf_trainer *s, const rf_trainer *teacher, const rf_topk *topk, const int *targets,
                  const rf_loss_config *lc, float grad_scale, bool backward, rf_train_stats *st,
                  rf_error *err)
{
    rf_train_acts *a = &s->a;
    const int R = a->R, V = s->c.vocab_size, dim = s->c.dim;
    memset(st, 0, sizeof *st);
    if (backward && !s->grads)
        return rf_errorf(err, RF_EINVAL, "train: backward through a frozen model");
    if (teacher && (teacher->a.R != R || teacher->c.vocab_size != V))
        return rf_errorf(err, RF_EINVAL,
                         "train: teacher batch or vocabulary (%d) differs from the student's (%d)",
                         teacher->c.vocab_size, V);
    if (!(lc->temperature > 0) || !(lc->alpha >= 0 && lc->alpha <= 1))
        return rf_errorf(err, RF_EINVAL, "train: need temperature > 0 and alpha in [0, 1]");
    int N = 0;
    for (int r = 0; r < R; r++) {
        if (targets[r] >= V) return rf_errorf(err, RF_EINVAL, "train: target %d", targets[r]);
        N += targets[r] >= 0;
    }
    st->n_tokens = N;
    if (backward) zero(a->dxn, (size_t)R * dim);
    const float w = N ? grad_scale / (float)N : 0.0f;
    double ce = 0, kl = 0;
    for (int c0 = 0; c0 < R && N; c0 += a->chunk) {
        const int n = R - c0 < a->chunk ? R - c0 : a->chunk;
        s->ops->matmul(a->logits, a->xnf + (size_t)c0 * dim, &s->w.lm_head, NULL, n, a->scratch,
                       a->scratch_n);
        if (teacher)
            s->ops->matmul(a->tlogits, teacher->a.xnf + (size_t)c0 * teacher->c.dim,
                           &teacher->w.lm_head, NULL, n, a->scratch, a->scratch_n);
        for (int i = 0; i < n; i++) {
            float *z = a->logits + (size_t)i * V;
            const int tg = targets[c0 + i];
            if (tg < 0) {
                zero(z, V); /* masked row: no gradient */
                continue;
            }
            st->correct += rf_argmax(z, V) == tg;
            rf_loss_row lr;
            if (topk)
                rf_loss_topk(z, V, topk->ids + (size_t)(c0 + i) * topk->k,
                             topk->logp + (size_t)(c0 + i) * topk->k, topk->k, tg, lc, w, backward,
                             &lr);
            else
                rf_loss_dense(z, teacher ? a->tlogits + (size_t)i * V : NULL, V, tg, lc, w,
                              backward, &lr);
            ce += lr.ce, kl += lr.kl;
        }
        if (backward)
            s->ops->matmul_backward(a->dxn + (size_t)c0 * dim, G(s, s->w.lm_head.data), NULL,
                                    a->logits, a->xnf + (size_t)c0 * dim, &s->w.lm_head, n,
                                    a->scratch, a->scratch_n);
    }
    if (N) {
        const bool kd = (teacher || topk) && lc->alpha > 0;
        const double T = lc->temperature;
        st->ce = ce / N, st->kl = kl / N;
        st->loss = kd ? lc->alpha * T * T * st->kl + (1 - lc->alpha) * st->ce : st->ce;
    }
    if (backward && N) backward_layers(s);
    return 0;
}

int rf_trainer_save_full(const rf_trainer *t, const char *src_dir, const char *out_dir,
                         rf_dtype dtype, rf_error *err)
{
    if (!t->full) return rf_errorf(err, RF_EINVAL, "save: not a full-parameter trainer");
    const rf_st_model *st = &t->m->st;
    int total = 0, n = 0, rc = 0;
    for (int f = 0; f < st->nfiles; f++)
        total += st->files[f].n;
    rf_st_item *items = calloc((size_t)total, sizeof *items);
    rf_tensor *ts = calloc((size_t)total, sizeof *ts);
    char path[4096];
    if ((rc = rf_copy_model_files(src_dir, out_dir, err)) < 0) goto fail;
    if (!items || !ts) {
        rc = rf_errorf(err, RF_ENOMEM, "save: out of memory");
        goto fail;
    }
    /* Every tensor of the source checkpoint, by name, from the f32 copy. */
    for (int f = 0; f < st->nfiles; f++)
        for (int e = 0; e < st->files[f].n && rc == 0; e++) {
            const rf_st_entry *en = &st->files[f].entries[e];
            const float *src = NULL;
            int l = -1;
            char rest[128];
            if (!strcmp(en->name, "model.embed_tokens.weight"))
                src = t->w.embed.data;
            else if (!strcmp(en->name, "lm_head.weight"))
                src = t->w.lm_head.data;
            else if (!strcmp(en->name, "model.norm.weight"))
                src = t->w.norm;
            else if (sscanf(en->name, "model.layers.%d.%127s", &l, rest) == 2 && l >= 0 &&
                     l < t->c.n_layers) {
                const rf_llama_layer *L = &t->w.layers[l];
                const struct {
                    const char *n;
                    const void *p;
                } map[] = {{"input_layernorm.weight", L->attn_norm},
                           {"post_attention_layernorm.weight", L->ffn_norm},
                           {"self_attn.q_proj.weight", L->wq.data},
                           {"self_attn.k_proj.weight", L->wk.data},
                           {"self_attn.v_proj.weight", L->wv.data},
                           {"self_attn.o_proj.weight", L->wo.data},
                           {"mlp.gate_proj.weight", L->w_gate.data},
                           {"mlp.up_proj.weight", L->w_up.data},
                           {"mlp.down_proj.weight", L->w_down.data},
                           {"self_attn.q_proj.bias", L->q_bias},
                           {"self_attn.k_proj.bias", L->k_bias},
                           {"self_attn.v_proj.bias", L->v_bias},
                           {"self_attn.o_proj.bias", L->o_bias}};
                for (size_t i = 0; i < sizeof map / sizeof *map; i++)
                    if (!strcmp(rest, map[i].n)) src = map[i].p;
            }
            if (!src) {
                rc = rf_errorf(err, RF_EUNSUPPORTED, "save: tensor %s is not a Llama weight",
                               en->name);
                break;
            }
            if ((rc = rf_tensor_alloc(&ts[n], dtype, en->ndim, en->shape, err)) < 0) break;
            rf_from_f32(dtype, src, ts[n].data, (size_t)rf_tensor_numel(&ts[n]));
            items[n].name = en->name, items[n].tensor = &ts[n];
            n++;
        }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
        rc = rf_st_write(path, items, n, err);
    }
fail:
    for (int i = 0; ts && i < n; i++)
        rf_tensor_free(&ts[i]);
    free(items), free(ts);
    return rc;
}
