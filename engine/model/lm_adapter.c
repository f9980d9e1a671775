#include "engine/model/lm_adapter.h"

#include <stdlib.h>
#include <string.h>

#include "engine/model/lora.h"

/* The dense weight of linear target of a layer (engine/model/linear.h). */
static rf_tensor *weight(rf_llama_layer *L, int target)
{
    return &L->lin[target].w;
}

int rf_lm_adapter_apply(rf_lm *lm, const char *adapter_dir, rf_lm_adapter *a, rf_error *err)
{
    memset(a, 0, sizeof *a);
    rf_llama_model *m = &lm->model;
    if (m->n_gptq > 0)
        return rf_errorf(err, RF_EUNSUPPORTED,
                         "the adapter's base model is GPTQ 4-bit, and completions apply an adapter "
                         "by merging it into float weights, which 4-bit codes cannot hold: serve "
                         "it on a float base, or quantize the float base with the adapter (the "
                         "quantize job's 'adapter')");
    rf_lora lo;
    int rc = rf_lora_load_peft(&lo, &m->config, adapter_dir, err);
    if (rc < 0) return rc;
    a->n = m->config.n_layers * RF_LIN_COUNT;
    if (!(a->copies = calloc((size_t)a->n, sizeof *a->copies))) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory applying the adapter");
        goto out;
    }
    for (int l = 0; l < m->config.n_layers; l++)
        for (int t = 0; t < RF_LIN_COUNT; t++) {
            if (!rf_lora_at(&lo, l, t)->A) continue;
            rf_tensor *w = weight(&m->w.layers[l], t), *c = &a->copies[l * RF_LIN_COUNT + t];
            if ((rc = rf_tensor_alloc(c, w->dtype, w->ndim, w->shape, err)) < 0) goto out;
            memcpy(c->data, w->data, rf_tensor_nbytes(c));
            if ((rc = rf_lora_merge_into(&lo, l, t, c, +1, err)) < 0) goto out;
            a->bytes += rf_tensor_nbytes(c);
        }
    /* Only now, with every copy merged, does the model see them. */
    for (int l = 0; l < m->config.n_layers; l++)
        for (int t = 0; t < RF_LIN_COUNT; t++) {
            rf_tensor *c = &a->copies[l * RF_LIN_COUNT + t];
            if (!c->data) continue;
            rf_tensor view;
            rf_tensor_view(&view, c->dtype, c->ndim, c->shape, c->data);
            *weight(&m->w.layers[l], t) = view;
        }
out:
    rf_lora_free(&lo);
    if (rc < 0) rf_lm_adapter_free(a);
    return rc;
}

void rf_lm_adapter_free(rf_lm_adapter *a)
{
    for (int i = 0; a && a->copies && i < a->n; i++)
        rf_tensor_free(&a->copies[i]);
    if (a) free(a->copies), memset(a, 0, sizeof *a);
}
