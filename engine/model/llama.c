#include "engine/model/llama.h"

#include "engine/model/block.h"

#include "engine/core/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Find name, check dtype is a float type and the shape is [d0] or [d0, d1]. */
static int get_weight(rf_llama_model *m, const char *name, int64_t d0, int64_t d1, rf_tensor *out,
                      rf_error *err)
{
    int rc = rf_st_model_get(&m->st, name, out, err);
    if (rc < 0) return rc;
    if (out->dtype != RF_DTYPE_F32 && out->dtype != RF_DTYPE_F16 && out->dtype != RF_DTYPE_BF16)
        return rf_errorf(err, RF_EUNSUPPORTED, "tensor '%s': dtype %s is not F32, F16 or BF16",
                         name, rf_dtype_name(out->dtype));
    /* The ops read elements in place: a foreign writer that packed an f32
     * after an odd-length bf16 would need a copy we do not make. */
    if ((uintptr_t)out->data % rf_dtype_size(out->dtype))
        return rf_errorf(err, RF_EUNSUPPORTED,
                         "tensor '%s': data is not aligned to its %zu-byte elements", name,
                         rf_dtype_size(out->dtype));
    int64_t want[2] = {d0, d1};
    int nd = d1 > 0 ? 2 : 1;
    if (!rf_tensor_shape_is(out, nd, want)) {
        char a[96], b[96];
        return rf_errorf(err, RF_EINVAL, "tensor '%s': shape %s, expected %s from config.json",
                         name, rf_shape_str(out->ndim, out->shape, a, sizeof a),
                         rf_shape_str(nd, want, b, sizeof b));
    }
    return 0;
}

/* A 1-D weight converted into the f32 block at *cursor. */
static int get_small(rf_llama_model *m, const char *name, int64_t n, float **cursor,
                     const float **out, rf_error *err)
{
    rf_tensor t;
    int rc = get_weight(m, name, n, 0, &t, err);
    if (rc < 0) return rc;
    rf_to_f32(t.dtype, t.data, *cursor, (size_t)n);
    *out = *cursor;
    *cursor += n;
    return 0;
}

/* True when some shard holds name (no error when absent). */
static bool has_tensor(const rf_llama_model *m, const char *name)
{
    for (int i = 0; i < m->st.nfiles; i++)
        if (rf_st_find(&m->st.files[i], name)) return true;
    return false;
}

/* A linear layer: prefix.weight (dense), or prefix.qweight/qzeros/scales/
 * g_idx (GPTQ, FORMATS.md), checked against [out, in] from config.json. */
static int get_linear(rf_llama_model *m, const char *prefix, int out, int in, rf_linear *lin,
                      rf_error *err)
{
    char n[300];
    lin->out = out, lin->in = in;
    snprintf(n, sizeof n, "%s.qweight", prefix);
    if (!has_tensor(m, n)) {
        snprintf(n, sizeof n, "%s.weight", prefix);
        return get_weight(m, n, out, in, &lin->w, err);
    }
    rf_gptq_packed p;
    const char *parts[4] = {"qweight", "qzeros", "scales", "g_idx"};
    rf_tensor *dst[4] = {&p.qweight, &p.qzeros, &p.scales, &p.g_idx};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.%s", prefix, parts[i]);
        int rc = rf_st_model_get(&m->st, n, dst[i], err);
        if (rc < 0) return rc;
        if ((uintptr_t)dst[i]->data % 4)
            return rf_errorf(err, RF_EUNSUPPORTED, "tensor '%s': data is not 4-byte aligned", n);
    }
    rf_gptq_weight *q = &lin->q;
    int rc = rf_gptq_weight_view(q, &p, prefix, err);
    if (rc < 0) return rc;
    if (q->N != out || q->K != in) {
        rc = rf_errorf(err, RF_EINVAL, "'%s': GPTQ layer is [%d, %d], expected [%d, %d]", prefix,
                       q->N, q->K, out, in);
        memset(q, 0, sizeof *q);
        return rc;
    }
    if ((rc = rf_gptq_weight_prepare(q, err)) < 0) return rc;
    m->n_gptq++;
    return 0;
}

static int load_weights(rf_llama_model *m, rf_error *err)
{
    const rf_llama_config *c = &m->config;
    rf_llama_weights *w = &m->w;
    const int dim = c->dim;
    size_t per_layer = 2 * (size_t)dim;
    for (int i = 0; i < RF_LIN_COUNT; i++) {
        int out, in;
        rf_lin_shape(c, i, &out, &in);
        per_layer += rf_lin_has_bias(c, i) ? (size_t)out : 0;
    }
    w->small = malloc(sizeof(float) * ((size_t)dim + per_layer * (size_t)c->n_layers));
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->small || !w->layers)
        return rf_errorf(err, RF_ENOMEM, "out of memory for the layer table");
    float *cur = w->small;
    int rc;
    char n[256];
    if ((rc = get_weight(m, "model.embed_tokens.weight", c->vocab_size, dim, &w->embed, err)) < 0)
        return rc;
    if ((rc = get_small(m, "model.norm.weight", dim, &cur, &w->norm, err)) < 0) return rc;
    if (c->tie_embeddings) {
        w->lm_head = (rf_linear){.out = c->vocab_size, .in = dim, .w = w->embed};
    } else if ((rc = get_linear(m, "lm_head", c->vocab_size, dim, &w->lm_head, err)) < 0) {
        return rc;
    }
    for (int l = 0; l < c->n_layers; l++) {
        rf_llama_layer *L = &w->layers[l];
        snprintf(n, sizeof n, "model.layers.%d.input_layernorm.weight", l);
        if ((rc = get_small(m, n, dim, &cur, &L->attn_norm, err)) < 0) return rc;
        snprintf(n, sizeof n, "model.layers.%d.post_attention_layernorm.weight", l);
        if ((rc = get_small(m, n, dim, &cur, &L->ffn_norm, err)) < 0) return rc;
        for (int i = 0; i < RF_LIN_COUNT; i++) {
            int out, in;
            rf_lin_shape(c, i, &out, &in);
            snprintf(n, sizeof n, "model.layers.%d.%s", l, rf_lin(i)->path);
            if ((rc = get_linear(m, n, out, in, &L->lin[i], err)) < 0) return rc;
            if (!rf_lin_has_bias(c, i)) continue;
            snprintf(n, sizeof n, "model.layers.%d.%s.bias", l, rf_lin(i)->path);
            if ((rc = get_small(m, n, out, &cur, &L->lin[i].bias, err)) < 0) return rc;
        }
    }
    return 0;
}

int rf_llama_load(rf_llama_model *m, const char *dir, const rf_ops *ops, rf_error *err)
{
    memset(m, 0, sizeof *m);
    m->ops = ops ? ops : rf_ops_cpu();
    int rc;
    if ((rc = rf_llama_config_load(&m->config, dir, err)) < 0) goto fail;
    if ((rc = rf_st_model_open(&m->st, dir, err)) < 0) goto fail;
    if ((rc = load_weights(m, err)) < 0) goto fail;
    if (!(m->inv_freq = malloc(sizeof(float) * (size_t)(m->config.head_dim / 2)))) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    rf_llama_rope_inv_freq(&m->config, m->inv_freq);
    m->weight_bytes = rf_st_model_bytes(&m->st);
    return 0;
fail:
    rf_error_wrap(err, "loading %s", dir);
    rf_llama_free(m);
    return rc;
}

size_t rf_llama_resident_bytes(const rf_llama_model *m)
{
    size_t b = m->weight_bytes;
    for (int l = 0; m->w.layers && l < m->config.n_layers; l++)
        for (int i = 0; i < RF_LIN_COUNT; i++)
            if (rf_linear_is_gptq(&m->w.layers[l].lin[i]))
                b += 8 * (size_t)m->w.layers[l].lin[i].q.G * (size_t)m->w.layers[l].lin[i].q.N;
    if (rf_linear_is_gptq(&m->w.lm_head))
        b += 8 * (size_t)m->w.lm_head.q.G * (size_t)m->w.lm_head.q.N;
    return b;
}

void rf_llama_free(rf_llama_model *m)
{
    if (!m) return;
    for (int l = 0; m->w.layers && l < m->config.n_layers; l++)
        for (int i = 0; i < RF_LIN_COUNT; i++)
            rf_gptq_weight_release(&m->w.layers[l].lin[i].q);
    rf_gptq_weight_release(&m->w.lm_head.q);
    free(m->w.layers);
    free(m->w.small);
    free(m->inv_freq);
    rf_st_model_close(&m->st);
    memset(m, 0, sizeof *m);
}

int rf_llama_acts_init(rf_llama_acts *a, const rf_llama_config *c, int max_batch, int max_seq,
                       int max_tokens, rf_error *err)
{
    memset(a, 0, sizeof *a);
    if (max_batch < 1 || max_seq < 1 || max_tokens < 1 || max_tokens > max_seq)
        return rf_errorf(err, RF_EINVAL,
                         "activations: need batch, sequence >= 1 and 1 <= tokens <= sequence");
    const size_t rows = (size_t)max_batch * (size_t)max_tokens;
    const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t wide = qd > (size_t)c->dim ? qd : (size_t)c->dim;
    const size_t cache = (size_t)c->n_layers * (size_t)max_batch * (size_t)max_seq * kvd;
    int kmax = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    if ((int)qd > kmax) kmax = (int)qd;
    a->scratch_n = rf_ops_matmul_scratch(kmax);
    size_t sizes[] = {rows * c->dim,
                      rows * wide,
                      rows * qd,
                      rows * kvd,
                      rows * kvd,
                      rows * qd,
                      rows * c->hidden_dim,
                      rows * c->hidden_dim,
                      cache,
                      cache,
                      a->scratch_n,
                      (size_t)max_batch * c->vocab_size};
    float **ptrs[] = {&a->x,  &a->xb,  &a->q,         &a->k,           &a->v,       &a->att,
                      &a->hb, &a->hb2, &a->key_cache, &a->value_cache, &a->scratch, &a->logits};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += (sizes[i] + 15) & ~(size_t)15;
    a->arena = calloc(total, sizeof(float));
    a->pos = calloc(rows, sizeof(int));
    if (!a->arena || !a->pos) {
        rf_llama_acts_free(a);
        return rf_errorf(err, RF_ENOMEM, "activations: cannot allocate %zu MiB", total * 4 >> 20);
    }
    float *p = a->arena;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *ptrs[i] = p;
        p += (sizes[i] + 15) &
             ~(size_t)15; /* each piece starts on a 64-byte multiple of the arena */
    }
    a->max_batch = max_batch;
    a->max_seq = max_seq;
    a->max_tokens = max_tokens;
    a->bytes = total * sizeof(float) + rows * sizeof(int);
    return 0;
}

void rf_llama_acts_free(rf_llama_acts *a)
{
    if (!a) return;
    free(a->arena);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

static float *cache_at(const rf_llama_config *c, const rf_llama_acts *a, float *base, int l, int b,
                       int pos)
{
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    return base + (((size_t)l * a->max_batch + (size_t)b) * a->max_seq + (size_t)pos) * kvd;
}

static int check_args(const rf_llama_model *m, const rf_llama_acts *a, int B, int T, const int *ids,
                      const int *pos0, rf_error *err)
{
    if (B < 1 || B > a->max_batch || T < 1 || T > a->max_tokens)
        return rf_errorf(err, RF_EINVAL,
                         "forward: %d sequences of %d tokens exceed the activations (%d of %d)", B,
                         T, a->max_batch, a->max_tokens);
    for (int b = 0; b < B; b++)
        if (pos0[b] < 0 || pos0[b] + T > a->max_seq)
            return rf_errorf(err, RF_EINVAL,
                             "forward: sequence %d would reach position %d of a %d-position cache",
                             b, pos0[b] + T, a->max_seq);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= m->config.vocab_size)
            return rf_errorf(err, RF_EINVAL,
                             "forward: token id %d is outside the vocabulary [0, %d)", ids[i],
                             m->config.vocab_size);
    return 0;
}

/* Block l on the B·T rows of a->x (positions in a->pos), in place: the
 * inference layout of rf_block_acts, this layer's slots of the KV cache. */
static void layer_forward(const rf_llama_model *m, rf_llama_acts *a, int l, int B, int T,
                          const int *pos0, int stop, rf_llama_observe_fn observe, void *user)
{
    const rf_llama_config *c = &m->config;
    const rf_block_acts acts = {.x_in = a->x,
                                .xn1 = a->xb,
                                .q = a->q,
                                .k = a->k,
                                .v = a->v,
                                .att = a->att,
                                .x_mid = a->x,
                                .xn2 = a->xb,
                                .gate = a->hb,
                                .up = a->hb2,
                                .h = a->hb,
                                .x_out = a->x};
    const rf_block_io io = {.B = B,
                            .T = T,
                            .pos = a->pos,
                            .pos0 = pos0,
                            .kcache = cache_at(c, a, a->key_cache, l, 0, 0),
                            .vcache = cache_at(c, a, a->value_cache, l, 0, 0),
                            .cache_stride = (size_t)a->max_seq * c->n_kv_heads * c->head_dim,
                            .scratch = a->scratch,
                            .scratch_n = a->scratch_n,
                            .tmp = a->xb,
                            .observe = observe,
                            .user = user,
                            .stop = stop};
    rf_block_forward(m, &m->w.layers[l], l, &io, &acts);
}

int rf_llama_forward(const rf_llama_model *m, rf_llama_acts *a, int B, int T, const int *ids,
                     const int *pos0, float *logits_out, bool all_logits, rf_error *err)
{
    int rc = check_args(m, a, B, T, ids, pos0, err);
    if (rc < 0) return rc;
    const rf_llama_config *c = &m->config;
    const rf_ops *ops = m->ops;
    const int R = B * T, dim = c->dim;
    const float eps = (float)c->rms_eps;

    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            a->pos[b * T + t] = pos0[b] + t;
    ops->embedding(a->x, &m->w.embed, ids, R);

    for (int l = 0; l < c->n_layers; l++)
        layer_forward(m, a, l, B, T, pos0, 4, NULL, NULL);

    /* Final norm and head, on every row or only each sequence's last. */
    if (all_logits && logits_out) {
        ops->rmsnorm(a->xb, a->x, m->w.norm, R, dim, eps);
        rf_linear_forward(ops, &m->w.lm_head, NULL, logits_out, a->xb, R, a->scratch, a->scratch_n);
        for (int b = 0; b < B; b++)
            memcpy(a->logits + (size_t)b * c->vocab_size,
                   logits_out + ((size_t)b * T + T - 1) * c->vocab_size,
                   sizeof(float) * c->vocab_size);
        return 0;
    }
    for (int b = 0; b < B; b++)
        ops->rmsnorm(a->xb + (size_t)b * dim, a->x + ((size_t)b * T + T - 1) * dim, m->w.norm, 1,
                     dim, eps);
    rf_linear_forward(ops, &m->w.lm_head, NULL, a->logits, a->xb, B, a->scratch, a->scratch_n);
    if (logits_out) memcpy(logits_out, a->logits, sizeof(float) * B * c->vocab_size);
    return 0;
}

int rf_llama_layer_forward(const rf_llama_model *m, rf_llama_acts *a, int l, int T, int stop,
                           rf_llama_observe_fn observe, void *user, rf_error *err)
{
    if (l < 0 || l >= m->config.n_layers || T < 1 || T > a->max_tokens || T > a->max_seq)
        return rf_errorf(err, RF_EINVAL, "layer forward: layer %d, %d tokens out of range", l, T);
    const int pos0 = 0;
    for (int t = 0; t < T; t++)
        a->pos[t] = t;
    layer_forward(m, a, l, 1, T, &pos0, stop, observe, user);
    return 0;
}

void rf_llama_copy_slot(const rf_llama_model *m, rf_llama_acts *a, int from, int to, int n_pos)
{
    const rf_llama_config *c = &m->config;
    const size_t bytes = sizeof(float) * (size_t)n_pos * c->n_kv_heads * c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        memcpy(cache_at(c, a, a->key_cache, l, to, 0), cache_at(c, a, a->key_cache, l, from, 0),
               bytes);
        memcpy(cache_at(c, a, a->value_cache, l, to, 0), cache_at(c, a, a->value_cache, l, from, 0),
               bytes);
    }
}

static bool is_eos(const rf_llama_config *c, int id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return true;
    return false;
}

int rf_llama_generate_greedy(const rf_llama_model *m, rf_llama_acts *a, const int *prompt,
                             int n_prompt, int n_new, bool stop_at_eos, int *out, rf_error *err)
{
    if (n_prompt < 1 || n_new < 0 || n_prompt + n_new > a->max_seq)
        return rf_errorf(err, RF_EINVAL,
                         "generate: %d prompt + %d new tokens do not fit %d positions", n_prompt,
                         n_new, a->max_seq);
    int rc;
    for (int p = 0; p < n_prompt; p += a->max_tokens) {
        int n = n_prompt - p < a->max_tokens ? n_prompt - p : a->max_tokens;
        if ((rc = rf_llama_forward(m, a, 1, n, prompt + p, &p, NULL, false, err)) < 0) return rc;
    }
    int pos = n_prompt;
    for (int i = 0; i < n_new; i++) {
        int next = rf_argmax(a->logits, m->config.vocab_size);
        out[i] = next;
        if (stop_at_eos && is_eos(&m->config, next)) return i + 1;
        if (i + 1 == n_new) break;
        if ((rc = rf_llama_forward(m, a, 1, 1, &next, &pos, NULL, false, err)) < 0) return rc;
        pos++;
    }
    return n_new;
}

int rf_llama_score(const rf_llama_model *m, rf_llama_acts *a, const int *ids, int n, int start,
                   float *logits_scratch, double *logprob_sum, bool *all_greedy, rf_error *err)
{
    if (n < 2 || start < 1 || start >= n || n > a->max_seq)
        return rf_errorf(err, RF_EINVAL, "score: need 1 <= start < n <= %d (start %d, n %d)",
                         a->max_seq, start, n);
    const int V = m->config.vocab_size;
    double sum = 0;
    bool greedy = true;
    /* The logits at position p predict token p + 1; positions start-1..n-2
     * are needed, all of them computed from the full prefix. */
    for (int p = 0; p < n - 1; p += a->max_tokens) {
        int len = n - 1 - p < a->max_tokens ? n - 1 - p : a->max_tokens;
        bool need = p + len - 1 >= start - 1;
        int rc =
            rf_llama_forward(m, a, 1, len, ids + p, &p, need ? logits_scratch : NULL, need, err);
        if (rc < 0) return rc;
        for (int i = 0; need && i < len; i++) {
            int target = p + i + 1;
            if (target < start) continue;
            const float *lg = logits_scratch + (size_t)i * V;
            sum += rf_logprob(lg, V, ids[target]);
            greedy = greedy && rf_argmax(lg, V) == ids[target];
        }
    }
    *logprob_sum = sum;
    if (all_greedy) *all_greedy = greedy;
    return 0;
}
