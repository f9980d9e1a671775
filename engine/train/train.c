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
    const size_t dim = c->dim;
    size_t per = 2 * dim;
    for (int i = 0; i < RF_LIN_COUNT; i++) {
        int out, in;
        rf_lin_shape(c, i, &out, &in);
        per += (size_t)out * in + (rf_lin_has_bias(c, i) ? (size_t)out : 0);
    }
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
    t->w.lm_head = (rf_linear){.out = c->vocab_size, .in = c->dim};
    if (c->tie_embeddings)
        t->w.lm_head.w = t->w.embed;
    else
        to_f32_tensor(&t->w.lm_head.w, &mw->lm_head.w, &cur);
    t->w.norm = copy_small(mw->norm, dim, &cur);
    for (int l = 0; l < c->n_layers; l++) {
        const rf_llama_layer *s = &mw->layers[l];
        rf_llama_layer *d = &t->w.layers[l];
        d->attn_norm = copy_small(s->attn_norm, dim, &cur);
        d->ffn_norm = copy_small(s->ffn_norm, dim, &cur);
        for (int i = 0; i < RF_LIN_COUNT; i++) {
            const rf_linear *sl = &s->lin[i];
            rf_linear *dl = &d->lin[i];
            *dl = (rf_linear){.out = sl->out, .in = sl->in};
            dl->bias = copy_small(sl->bias, (size_t)sl->out, &cur);
            to_f32_tensor(&dl->w, &sl->w, &cur);
        }
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
    const size_t r = t->lora ? (size_t)t->lora->cfg.r : 0, g = t->grads ? 1 : 0,
                 lo = t->lora ? 1 : 0;
    size_t wide = dim > qd ? dim : qd;
    wide = wide > hid ? wide : hid;
    a->B = B, a->T = T, a->R = (int)R, a->chunk = chunk;
    a->n_slots = t->grads ? c->n_layers : 1;
    /* the W4A16 backward dequantizes strips of `out` floats: the LM head's
     * vocabulary is the widest */
    a->scratch_n = rf_ops_matmul_scratch((int)wide);
    if (a->scratch_n < (size_t)c->vocab_size) a->scratch_n = (size_t)c->vocab_size;
    /* a slot with gradients keeps everything; the one frozen slot shares
     * x_in/x_mid/x_out, xn1/xn2 and gate/h (rf_block_acts' in-place layout) */
    const size_t per = g ? 4 * dim + 2 * qd + 2 * kvd + 3 * hid + RF_LIN_COUNT * r
                         : 2 * dim + 2 * qd + 2 * kvd + 2 * hid + RF_LIN_COUNT * r;
    size_t sizes[] = {R * per * (size_t)a->n_slots,
                      g * R * dim,
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
                      (1 - g) * R * dim,
                      lo * R * wide,
                      lo * R * wide,
                      (size_t)chunk * c->vocab_size,
                      (size_t)chunk * c->vocab_size,
                      a->scratch_n};
    float **ptrs[] = {NULL,      &a->xf,     &a->xnf,     &a->bw.dres, &a->bw.dxn,   &a->bw.dq,
                      &a->bw.dk, &a->bw.dv,  &a->bw.datt, &a->bw.dh,   &a->bw.dgate, &a->bw.dup,
                      &a->tmp,   &a->lora_x, &a->lora_y,  &a->logits,  &a->tlogits,  &a->scratch};
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
    float *p = a->arena, *slots = NULL;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        if (ptrs[i])
            *ptrs[i] = sizes[i] ? p : NULL;
        else
            slots = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    for (int l = 0; l < a->n_slots; l++) {
        rf_block_acts *L = &a->layers[l];
        L->x_in = take(&slots, R * dim), L->xn1 = take(&slots, R * dim);
        L->q = take(&slots, R * qd), L->k = take(&slots, R * kvd), L->v = take(&slots, R * kvd);
        L->att = take(&slots, R * qd);
        L->gate = take(&slots, R * hid), L->up = take(&slots, R * hid);
        for (int k = 0; k < RF_LIN_COUNT; k++)
            L->lu[k] = take(&slots, R * r);
        if (g) {
            L->x_mid = take(&slots, R * dim), L->xn2 = take(&slots, R * dim);
            L->h = take(&slots, R * hid);
        } else {
            L->x_mid = L->x_out = L->x_in, L->xn2 = L->xn1, L->h = L->gate;
        }
    }
    if (g)
        for (int l = 0; l < a->n_slots; l++)
            a->layers[l].x_out = l + 1 < a->n_slots ? a->layers[l + 1].x_in : a->xf;
    else
        a->xf = a->layers[0].x_in;
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
    if (mode == RF_TRAIN_FULL && m->n_gptq > 0)
        return rf_errorf(err, RF_EUNSUPPORTED,
                         "full-parameter training needs dense weights; this model has %d GPTQ "
                         "4-bit linear layers (train LoRA adapters over them instead)",
                         m->n_gptq);
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
            for (int k = 0; k < RF_LIN_COUNT; k++) {
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
    if (!t->c.tie_embeddings) ADDW(t->w.lm_head.w, false);
    ADD(t->w.norm, dim, 0, false);
    for (int l = 0; l < t->c.n_layers; l++) {
        const rf_llama_layer *L = &t->w.layers[l];
        ADD(L->attn_norm, dim, 0, false);
        ADD(L->ffn_norm, dim, 0, false);
        for (int i = 0; i < RF_LIN_COUNT; i++)
            ADD(L->lin[i].bias, L->lin[i].out, 0, false);
        for (int i = 0; i < RF_LIN_COUNT; i++)
            ADDW(L->lin[i].w, true);
    }
#undef ADD
#undef ADDW
    return 0;
}

/* ---- forward ---- */

/* What every block of this trainer's step runs on. */
static rf_block_io block_io(const rf_trainer *t)
{
    const rf_train_acts *a = &t->a;
    return (rf_block_io){.B = a->B,
                         .T = a->T,
                         .pos = a->pos,
                         .scratch = a->scratch,
                         .scratch_n = a->scratch_n,
                         .tmp = a->tmp,
                         .lora = t->lora,
                         .step = t->step,
                         .lora_x = a->lora_x,
                         .lora_y = a->lora_y,
                         .stop = 4};
}

int rf_train_forward(rf_trainer *t, const int *ids, rf_error *err)
{
    const rf_llama_config *c = &t->c;
    rf_train_acts *a = &t->a;
    const int R = a->R;
    for (int i = 0; i < R; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return rf_errorf(err, RF_EINVAL, "train: token id %d outside the vocabulary", ids[i]);
        a->ids[i] = ids[i];
        a->pos[i] = i % a->T;
    }
    t->step++;
    t->pending = false;
    const rf_block_io io = block_io(t);
    t->ops->embedding(a->layers[0].x_in, &t->w.embed, ids, R);
    for (int l = 0; l < c->n_layers; l++)
        rf_block_forward(t->m, &t->w.layers[l], l, &io, &a->layers[a->n_slots > 1 ? l : 0]);
    t->ops->rmsnorm(a->xnf, a->xf, t->w.norm, R, c->dim, (float)c->rms_eps);
    return 0;
}

/* ---- loss and the LM head ---- */

static void zero(float *p, size_t n)
{
    memset(p, 0, sizeof(float) * n);
}

int rf_train_loss(rf_trainer *s, const rf_trainer *teacher, const rf_topk *topk, const int *targets,
                  const rf_loss_config *lc, float grad_scale, bool grad, rf_train_stats *st,
                  rf_error *err)
{
    rf_train_acts *a = &s->a;
    const int R = a->R, V = s->c.vocab_size, dim = s->c.dim;
    memset(st, 0, sizeof *st);
    if (grad && !s->grads)
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
    if (grad) zero(a->bw.dxn, (size_t)R * dim);
    const float w = N ? grad_scale / (float)N : 0.0f;
    double ce = 0, kl = 0;
    for (int c0 = 0; c0 < R && N; c0 += a->chunk) {
        const int n = R - c0 < a->chunk ? R - c0 : a->chunk;
        const float *xs = a->xnf + (size_t)c0 * dim;
        rf_linear_forward(s->ops, &s->w.lm_head, NULL, a->logits, xs, n, a->scratch, a->scratch_n);
        if (teacher)
            rf_linear_forward(teacher->ops, &teacher->w.lm_head, NULL, a->tlogits,
                              teacher->a.xnf + (size_t)c0 * teacher->c.dim, n, teacher->a.scratch,
                              teacher->a.scratch_n);
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
                             topk->logp + (size_t)(c0 + i) * topk->k, topk->k, tg, lc, w, grad,
                             &lr);
            else
                rf_loss_dense(z, teacher ? a->tlogits + (size_t)i * V : NULL, V, tg, lc, w, grad,
                              &lr);
            ce += lr.ce, kl += lr.kl;
        }
        /* a->logits now hold ∂L/∂logits of the chunk */
        if (grad)
            rf_linear_backward(s->ops, &s->w.lm_head, NULL, a->bw.dxn + (size_t)c0 * dim,
                               G(s, s->w.lm_head.w.data), NULL, a->logits, xs, n, a->scratch,
                               a->scratch_n);
    }
    if (N) {
        const bool kd = (teacher || topk) && lc->alpha > 0;
        const double T = lc->temperature;
        st->ce = ce / N, st->kl = kl / N;
        st->loss = kd ? lc->alpha * T * T * st->kl + (1 - lc->alpha) * st->ce : st->ce;
    }
    if (grad) s->pending = true, s->pending_n = N;
    return 0;
}

/* ---- backward ---- */

static rf_block_grads block_grads(const rf_trainer *t, int l)
{
    const rf_llama_layer *L = &t->w.layers[l];
    rf_block_grads g = {.attn_norm = G(t, L->attn_norm), .ffn_norm = G(t, L->ffn_norm)};
    for (int i = 0; i < RF_LIN_COUNT; i++)
        g.w[i] = G(t, L->lin[i].w.data), g.bias[i] = G(t, L->lin[i].bias);
    return g;
}

int rf_train_backward(rf_trainer *t, rf_error *err)
{
    if (!t->pending)
        return rf_errorf(err, RF_EINVAL,
                         "train: no loss gradient to carry back (rf_train_loss with grad first)");
    t->pending = false;
    if (t->pending_n == 0) return 0; /* no answer tokens: every gradient is zero */
    const rf_llama_config *c = &t->c;
    rf_train_acts *a = &t->a;
    const int R = a->R, dim = c->dim;
    zero(a->bw.dres, (size_t)R * dim);
    t->ops->rmsnorm_backward(a->bw.dres, G(t, t->w.norm), a->bw.dxn, a->xf, t->w.norm, R, dim,
                             (float)c->rms_eps);
    const rf_block_io io = block_io(t);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const rf_block_grads g = block_grads(t, l);
        rf_block_backward(t->m, &t->w.layers[l], l, &io, &a->layers[l], t->full ? &g : NULL,
                          &a->bw);
    }
    float *demb = G(t, t->w.embed.data);
    if (demb) t->ops->embedding_backward(demb, a->bw.dres, a->ids, R, dim);
    return 0;
}

/* ---- full-parameter save ---- */

/* The f32 copy of a source tensor by its Hugging Face name (the linears'
 * names from the one table, engine/model/linear.h), NULL when not a weight. */
static const float *full_tensor(const rf_trainer *t, const char *name)
{
    if (!strcmp(name, "model.embed_tokens.weight")) return t->w.embed.data;
    if (!strcmp(name, "lm_head.weight")) return t->w.lm_head.w.data;
    if (!strcmp(name, "model.norm.weight")) return t->w.norm;
    int l = -1;
    char rest[128];
    if (sscanf(name, "model.layers.%d.%127s", &l, rest) != 2 || l < 0 || l >= t->c.n_layers)
        return NULL;
    const rf_llama_layer *L = &t->w.layers[l];
    if (!strcmp(rest, "input_layernorm.weight")) return L->attn_norm;
    if (!strcmp(rest, "post_attention_layernorm.weight")) return L->ffn_norm;
    bool is_bias;
    const int i = rf_lin_parse_tensor(rest, &is_bias);
    if (i < 0) return NULL;
    return is_bias ? L->lin[i].bias : L->lin[i].w.data;
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
            const float *src = full_tensor(t, en->name);
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
