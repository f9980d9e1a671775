#include "engine/model/block.h"

#include <math.h>
#include <string.h>

/* The adapter of linear k in this call, or NULL. */
static const rf_lin_lora *adapter(const rf_block_io *io, const rf_block_acts *a, int l, int k,
                                  rf_lin_lora *out)
{
    if (!io->lora) return NULL;
    const rf_lora_pair *p = rf_lora_at(io->lora, l, k);
    if (!p->A) return NULL;
    *out = (rf_lin_lora){.p = p,
                         .r = io->lora->cfg.r,
                         .scale = io->lora->scale,
                         .dropout = io->lora->cfg.dropout,
                         .seed = rf_lora_mask_seed(io->lora, io->step, l, k),
                         .u = a->lu[k],
                         .x_tmp = io->lora_x,
                         .y_tmp = io->lora_y};
    return out;
}

static void lin_forward(const rf_llama_model *m, const rf_llama_layer *L, int l, int k,
                        const rf_block_io *io, const rf_block_acts *a, float *y, const float *x)
{
    rf_lin_lora lo;
    rf_linear_forward(m->ops, &L->lin[k], adapter(io, a, l, k, &lo), y, x, io->B * io->T,
                      io->scratch, io->scratch_n);
}

static void lin_backward(const rf_llama_model *m, const rf_llama_layer *L, int l, int k,
                         const rf_block_io *io, const rf_block_acts *a, const rf_block_grads *g,
                         float *dx, const float *dy, const float *x)
{
    rf_lin_lora lo;
    rf_linear_backward(m->ops, &L->lin[k], adapter(io, a, l, k, &lo), dx, g ? g->w[k] : NULL,
                       g ? g->bias[k] : NULL, dy, x, io->B * io->T, io->scratch, io->scratch_n);
}

/* out = base + proj(x) for a residual connection, where out may be base
 * (in place: the projection goes to io->tmp first) or a buffer of its own
 * (the projection is written there directly). */
static void residual(const rf_llama_model *m, const rf_llama_layer *L, int l, int k,
                     const rf_block_io *io, const rf_block_acts *a, float *out, const float *base,
                     const float *x)
{
    const size_t n = (size_t)io->B * io->T * m->config.dim;
    if (out == base) {
        lin_forward(m, L, l, k, io, a, io->tmp, x);
        m->ops->add(out, io->tmp, n);
    } else {
        lin_forward(m, L, l, k, io, a, out, x);
        m->ops->add(out, base, n);
    }
}

/* Attention arguments of sequence b: against the cache, or this call's k, v. */
static rf_attn_args attn_args(const rf_llama_config *c, const rf_block_io *io,
                              const rf_block_acts *a, int b)
{
    const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t row = (size_t)b * io->T;
    const bool cached = io->kcache != NULL;
    return (rf_attn_args){
        .T = io->T,
        .pos0 = cached && io->pos0 ? io->pos0[b] : 0,
        .n_heads = c->n_heads,
        .n_kv_heads = c->n_kv_heads,
        .head_dim = c->head_dim,
        .window = c->sliding_window,
        .scale = 1.0f / sqrtf((float)c->head_dim),
        .q = a->q + row * qd,
        .k = cached ? io->kcache + (size_t)b * io->cache_stride : a->k + row * kvd,
        .v = cached ? io->vcache + (size_t)b * io->cache_stride : a->v + row * kvd,
        .out = a->att + row * qd,
    };
}

#define OBSERVE(stage, ptr, cols)                                                                  \
    do {                                                                                           \
        if (io->observe) io->observe(io->user, stage, ptr, R, cols);                               \
        if (io->stop == stage) return;                                                             \
    } while (0)

void rf_block_forward(const rf_llama_model *m, const rf_llama_layer *L, int l,
                      const rf_block_io *io, const rf_block_acts *a)
{
    const rf_llama_config *c = &m->config;
    const rf_ops *ops = m->ops;
    const int R = io->B * io->T, dim = c->dim, hd = c->head_dim, hid = c->hidden_dim;
    const size_t kvd = (size_t)c->n_kv_heads * hd;
    const float eps = (float)c->rms_eps;

    /* attention half: x_mid = x_in + o_proj(attn(rope(q), rope(k), v)) */
    ops->rmsnorm(a->xn1, a->x_in, L->attn_norm, R, dim, eps);
    OBSERVE(0, a->xn1, dim);
    lin_forward(m, L, l, RF_LIN_Q, io, a, a->q, a->xn1);
    lin_forward(m, L, l, RF_LIN_K, io, a, a->k, a->xn1);
    lin_forward(m, L, l, RF_LIN_V, io, a, a->v, a->xn1);
    ops->rope(a->q, R, c->n_heads, hd, io->pos, m->inv_freq);
    ops->rope(a->k, R, c->n_kv_heads, hd, io->pos, m->inv_freq);
    for (int b = 0; b < io->B; b++) {
        if (io->kcache) {
            const int p0 = io->pos0 ? io->pos0[b] : 0;
            const size_t at = (size_t)b * io->cache_stride + (size_t)p0 * kvd;
            const size_t row = (size_t)b * io->T * kvd, bytes = sizeof(float) * io->T * kvd;
            memcpy(io->kcache + at, a->k + row, bytes);
            memcpy(io->vcache + at, a->v + row, bytes);
        }
        rf_attn_args aa = attn_args(c, io, a, b);
        ops->attention(&aa);
    }
    OBSERVE(1, a->att, c->n_heads * hd);
    residual(m, L, l, RF_LIN_O, io, a, a->x_mid, a->x_in, a->att);

    /* MLP half: x_out = x_mid + down_proj(silu(gate_proj(xn2)) · up_proj(xn2)) */
    ops->rmsnorm(a->xn2, a->x_mid, L->ffn_norm, R, dim, eps);
    OBSERVE(2, a->xn2, dim);
    lin_forward(m, L, l, RF_LIN_GATE, io, a, a->gate, a->xn2);
    lin_forward(m, L, l, RF_LIN_UP, io, a, a->up, a->xn2);
    if (a->h != a->gate) memcpy(a->h, a->gate, sizeof(float) * (size_t)R * hid);
    ops->swiglu(a->h, a->up, (size_t)R * hid);
    OBSERVE(3, a->h, hid);
    residual(m, L, l, RF_LIN_DOWN, io, a, a->x_out, a->x_mid, a->h);
}
#undef OBSERVE

static void zero(float *p, size_t n)
{
    memset(p, 0, sizeof(float) * n);
}

void rf_block_backward(const rf_llama_model *m, const rf_llama_layer *L, int l,
                       const rf_block_io *io, const rf_block_acts *a, const rf_block_grads *g,
                       const rf_block_bufs *b)
{
    const rf_llama_config *c = &m->config;
    const rf_ops *ops = m->ops;
    const int R = io->B * io->T, dim = c->dim, hd = c->head_dim;
    const size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd,
                 hid = c->hidden_dim;
    const float eps = (float)c->rms_eps;
    /* MLP half; b->dres is ∂L/∂x_out and, through the residual, part of ∂L/∂x_mid */
    zero(b->dh, R * hid);
    lin_backward(m, L, l, RF_LIN_DOWN, io, a, g, b->dh, b->dres, a->h);
    zero(b->dgate, R * hid), zero(b->dup, R * hid);
    ops->swiglu_backward(b->dgate, b->dup, b->dh, a->gate, a->up, R * hid);
    zero(b->dxn, (size_t)R * dim);
    lin_backward(m, L, l, RF_LIN_GATE, io, a, g, b->dxn, b->dgate, a->xn2);
    lin_backward(m, L, l, RF_LIN_UP, io, a, g, b->dxn, b->dup, a->xn2);
    ops->rmsnorm_backward(b->dres, g ? g->ffn_norm : NULL, b->dxn, a->x_mid, L->ffn_norm, R, dim,
                          eps);
    /* attention half; b->dres is now ∂L/∂x_mid, and through the residual part of ∂L/∂x_in */
    zero(b->datt, R * qd);
    lin_backward(m, L, l, RF_LIN_O, io, a, g, b->datt, b->dres, a->att);
    zero(b->dq, R * qd), zero(b->dk, R * kvd), zero(b->dv, R * kvd);
    for (int s = 0; s < io->B; s++) {
        rf_attn_args aa = attn_args(c, io, a, s);
        const size_t row = (size_t)s * io->T;
        ops->attention_backward(&aa, b->datt + row * qd, b->dq + row * qd, b->dk + row * kvd,
                                b->dv + row * kvd);
    }
    ops->rope_backward(b->dq, R, c->n_heads, hd, io->pos, m->inv_freq);
    ops->rope_backward(b->dk, R, c->n_kv_heads, hd, io->pos, m->inv_freq);
    zero(b->dxn, (size_t)R * dim);
    lin_backward(m, L, l, RF_LIN_Q, io, a, g, b->dxn, b->dq, a->xn1);
    lin_backward(m, L, l, RF_LIN_K, io, a, g, b->dxn, b->dk, a->xn1);
    lin_backward(m, L, l, RF_LIN_V, io, a, g, b->dxn, b->dv, a->xn1);
    ops->rmsnorm_backward(b->dres, g ? g->attn_norm : NULL, b->dxn, a->x_in, L->attn_norm, R, dim,
                          eps);
}
