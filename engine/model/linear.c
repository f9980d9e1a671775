#include "engine/model/linear.h"

#include <string.h>

/* The Hugging Face module names of a Llama block (modeling_llama.py:
 * LlamaAttention.{q,k,v,o}_proj, LlamaMLP.{gate,up,down}_proj). */
static const rf_lin_info g_lin[RF_LIN_COUNT] = {
    [RF_LIN_Q] = {"self_attn.q_proj", "q_proj", 0},
    [RF_LIN_K] = {"self_attn.k_proj", "k_proj", 0},
    [RF_LIN_V] = {"self_attn.v_proj", "v_proj", 0},
    [RF_LIN_O] = {"self_attn.o_proj", "o_proj", 1},
    [RF_LIN_GATE] = {"mlp.gate_proj", "gate_proj", 2},
    [RF_LIN_UP] = {"mlp.up_proj", "up_proj", 2},
    [RF_LIN_DOWN] = {"mlp.down_proj", "down_proj", 3},
};

const rf_lin_info *rf_lin(int i)
{
    return &g_lin[i];
}

void rf_lin_shape(const rf_llama_config *c, int i, int *out, int *in)
{
    const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int outs[RF_LIN_COUNT] = {qd, kvd, kvd, c->dim, c->hidden_dim, c->hidden_dim, c->dim};
    const int ins[RF_LIN_COUNT] = {c->dim, c->dim, c->dim, qd, c->dim, c->dim, c->hidden_dim};
    *out = outs[i], *in = ins[i];
}

bool rf_lin_has_bias(const rf_llama_config *c, int i)
{
    return i <= RF_LIN_V ? c->qkv_bias : i == RF_LIN_O ? c->o_bias : false;
}

int rf_lin_parse_tensor(const char *rest, bool *is_bias)
{
    for (int i = 0; i < RF_LIN_COUNT; i++) {
        const size_t n = strlen(g_lin[i].path);
        if (strncmp(rest, g_lin[i].path, n) || rest[n] != '.') continue;
        if (!strcmp(rest + n + 1, "weight")) return *is_bias = false, i;
        if (!strcmp(rest + n + 1, "bias")) return *is_bias = true, i;
    }
    return -1;
}

static void base_forward(const rf_ops *ops, const rf_linear *l, float *y, const float *x, int R,
                         float *scratch, size_t scratch_n)
{
    if (rf_linear_is_gptq(l))
        ops->matmul_w4a16(y, x, &l->q, l->bias, R, scratch, scratch_n);
    else
        ops->matmul(y, x, &l->w, l->bias, R, scratch, scratch_n);
}

/* x with the adapter's dropout applied (into x_tmp), or x itself when p = 0. */
static const float *dropped(const rf_lin_lora *lo, const float *x, int R)
{
    if (lo->dropout <= 0) return x;
    const size_t n = (size_t)R * lo->p->in;
    for (size_t i = 0; i < n; i++)
        lo->x_tmp[i] = x[i] * rf_lin_keep(lo->seed, lo->dropout, i);
    return lo->x_tmp;
}

static void adapter_views(const rf_lin_lora *lo, rf_tensor *A, rf_tensor *B)
{
    rf_tensor_view(A, RF_DTYPE_F32, 2, (int64_t[]){lo->r, lo->p->in}, lo->p->A);
    rf_tensor_view(B, RF_DTYPE_F32, 2, (int64_t[]){lo->p->out, lo->r}, lo->p->B);
}

void rf_linear_forward(const rf_ops *ops, const rf_linear *l, const rf_lin_lora *lo, float *y,
                       const float *x, int R, float *scratch, size_t scratch_n)
{
    base_forward(ops, l, y, x, R, scratch, scratch_n);
    if (!lo) return;
    /* u = s·drop(x)·Aᵀ [R, r], then y += u·Bᵀ */
    rf_tensor A, B;
    adapter_views(lo, &A, &B);
    ops->matmul(lo->u, dropped(lo, x, R), &A, NULL, R, scratch, scratch_n);
    const size_t nr = (size_t)R * lo->r;
    for (size_t i = 0; i < nr; i++)
        lo->u[i] *= lo->scale;
    ops->matmul(lo->y_tmp, lo->u, &B, NULL, R, scratch, scratch_n);
    ops->add(y, lo->y_tmp, (size_t)R * lo->p->out);
}

void rf_linear_backward(const rf_ops *ops, const rf_linear *l, const rf_lin_lora *lo, float *dx,
                        float *dw, float *dbias, const float *dy, const float *x, int R,
                        float *scratch, size_t scratch_n)
{
    if (rf_linear_is_gptq(l)) {
        /* frozen 4-bit base: the input gradient only (and a bias's, if trained) */
        if (dbias)
            for (int m = 0; m < R; m++)
                for (int n = 0; n < l->out; n++)
                    dbias[n] += dy[(size_t)m * l->out + n];
        if (dx) ops->matmul_w4a16_backward(dx, dy, &l->q, R, scratch, scratch_n);
    } else {
        ops->matmul_backward(dx, dw, dbias, dy, x, &l->w, R, scratch, scratch_n);
    }
    if (!lo) return;
    rf_tensor A, B;
    adapter_views(lo, &A, &B);
    /* y += u·Bᵀ with u = s·drop(x)·Aᵀ: dB += dyᵀ·u, du = dy·B (into y_tmp),
     * then through s, and A: dA += (s·du)ᵀ·drop(x), dx += mask ⊙ ((s·du)·A) */
    const size_t nr = (size_t)R * lo->r, nin = (size_t)R * lo->p->in;
    float *du = lo->y_tmp;
    memset(du, 0, sizeof(float) * nr);
    ops->matmul_backward(du, lo->p->dB, NULL, dy, lo->u, &B, R, scratch, scratch_n);
    for (size_t i = 0; i < nr; i++)
        du[i] *= lo->scale;
    if (lo->dropout <= 0) {
        ops->matmul_backward(dx, lo->p->dA, NULL, du, x, &A, R, scratch, scratch_n);
        return;
    }
    /* x_tmp holds drop(x) for dA, then the gradient at drop(x) */
    ops->matmul_backward(NULL, lo->p->dA, NULL, du, dropped(lo, x, R), &A, R, scratch, scratch_n);
    if (!dx) return;
    memset(lo->x_tmp, 0, sizeof(float) * nin);
    ops->matmul_backward(lo->x_tmp, NULL, NULL, du, x, &A, R, scratch, scratch_n);
    for (size_t i = 0; i < nin; i++)
        dx[i] += lo->x_tmp[i] * rf_lin_keep(lo->seed, lo->dropout, i);
}
