#include "engine/train/train_state.h"

#include <string.h>

#include "engine/core/safetensors.h"

/* meta, I64: optimiser step, trainer step, rng, epoch, index, tokens, and
 * the adapters' seed (their dropout masks hash it with the trainer step) */
#define META_N 7

static float *params(const rf_trainer *t, size_t *n)
{
    if (t->full) return *n = t->full_n, t->full;
    if (t->lora) return *n = t->lora->n_params, t->lora->params;
    return *n = 0, NULL;
}

int rf_train_state_save(const char *path, const rf_trainer *t, const rf_optim *o,
                        const rf_train_cursor *cur, rf_error *err)
{
    size_t np;
    float *p = params(t, &np);
    if (!p) return rf_errorf(err, RF_EINVAL, "checkpoint: the trainer has nothing to train");
    int64_t meta[META_N] = {o->step,
                            (int64_t)t->step,
                            (int64_t)cur->rng,
                            cur->epoch,
                            cur->index,
                            cur->tokens,
                            t->lora ? (int64_t)t->lora->cfg.seed : 0};
    rf_tensor tp, ts, tm;
    rf_tensor_view(&tp, RF_DTYPE_F32, 1, (int64_t[]){(int64_t)np}, p);
    rf_tensor_view(&ts, RF_DTYPE_F32, 1, (int64_t[]){(int64_t)(o->state_n ? o->state_n : 1)},
                   o->state);
    rf_tensor_view(&tm, RF_DTYPE_I64, 1, (int64_t[]){META_N}, meta);
    const rf_st_item items[] = {{"params", &tp}, {"optimizer", &ts}, {"meta", &tm}};
    return rf_st_write(path, items, 3, err);
}

static int get(const rf_st_file *f, const char *name, rf_dtype dt, size_t n, void *dst,
               rf_error *err)
{
    const rf_st_entry *e = rf_st_find(f, name);
    rf_tensor v;
    if (e) rf_st_view(f, e, &v);
    if (!e || v.dtype != dt || (size_t)rf_tensor_numel(&v) != n)
        return rf_errorf(err, RF_EINVAL,
                         "checkpoint %s: '%s' is missing or does not match this run (%zu values)",
                         f->path, name, n);
    memcpy(dst, v.data, n * rf_dtype_size(dt));
    return 0;
}

int rf_train_state_load(const char *path, rf_trainer *t, rf_optim *o, rf_train_cursor *cur,
                        rf_error *err)
{
    size_t np;
    float *p = params(t, &np);
    if (!p) return rf_errorf(err, RF_EINVAL, "checkpoint: the trainer has nothing to train");
    rf_st_file f;
    int rc = rf_st_open(&f, path, err);
    if (rc < 0) return rc;
    int64_t meta[META_N];
    if ((rc = get(&f, "params", RF_DTYPE_F32, np, p, err)) < 0 ||
        (rc = get(&f, "optimizer", RF_DTYPE_F32, o->state_n ? o->state_n : 1, o->state, err)) < 0 ||
        (rc = get(&f, "meta", RF_DTYPE_I64, META_N, meta, err)) < 0)
        goto out;
    o->step = meta[0];
    t->step = (uint64_t)meta[1];
    cur->rng = (uint64_t)meta[2];
    cur->epoch = meta[3], cur->index = meta[4], cur->tokens = meta[5];
    if (t->lora) t->lora->cfg.seed = (uint64_t)meta[6];
out:
    rf_st_close(&f);
    return rc;
}
