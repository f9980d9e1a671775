#include "engine/model/llama_init.h"
#include "engine/core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model/linear.h"
#include "engine/model/llama_config.h"
#include "engine/core/safetensors.h"

/* Box–Muller from two uniforms of the counter-based stream. */
static float normal(uint64_t seed, uint64_t i, double std)
{
    double u1 = ((rf_mix64(seed + 2 * i) >> 11) + 0.5) / (double)(1ull << 53);
    double u2 = (rf_mix64(seed + 2 * i + 1) >> 11) / (double)(1ull << 53);
    return (float)(std * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

int rf_llama_init_random(const char *dir, const json_t *config, uint64_t seed, rf_error *err)
{
    rf_llama_config c;
    int rc = rf_llama_config_parse(&c, config, err);
    if (rc < 0) {
        char f[sizeof err->field];
        snprintf(f, sizeof f, "config%s%s", *err->field ? "." : "", err->field);
        snprintf(err->field, sizeof err->field, "%s", f);
        return rc;
    }
    json_t *ir = json_object_get(config, "initializer_range");
    const double std = json_is_number(ir) ? json_number_value(ir) : 0.02;
    const int64_t dim = c.dim;
    /* a layer's tensors: the two norms, then each linear's weight and bias
     * (when the config has one), named from the one table (linear.h) */
    struct {
        char suffix[64];
        int64_t d0, d1; /* d1 0: a norm (ones), -1: a bias (zeros) */
        int on;
    } lay[2 + 2 * RF_LIN_COUNT] = {{"input_layernorm.weight", dim, 0, 1},
                                   {"post_attention_layernorm.weight", dim, 0, 1}};
    for (int i = 0; i < RF_LIN_COUNT; i++) {
        int out, in;
        rf_lin_shape(&c, i, &out, &in);
        snprintf(lay[2 + i].suffix, sizeof lay[2 + i].suffix, "%s.weight", rf_lin(i)->path);
        lay[2 + i].d0 = out, lay[2 + i].d1 = in, lay[2 + i].on = 1;
        snprintf(lay[2 + RF_LIN_COUNT + i].suffix, sizeof lay[0].suffix, "%s.bias",
                 rf_lin(i)->path);
        lay[2 + RF_LIN_COUNT + i].d0 = out, lay[2 + RF_LIN_COUNT + i].d1 = -1;
        lay[2 + RF_LIN_COUNT + i].on = rf_lin_has_bias(&c, i);
    }
    const int nl = (int)(sizeof lay / sizeof *lay), cap = 3 + nl * c.n_layers;
    rf_st_item *items = calloc((size_t)cap, sizeof *items);
    rf_tensor *ts = calloc((size_t)cap, sizeof *ts);
    char(*names)[96] = calloc((size_t)cap, sizeof *names);
    int n = 0;
    if (!items || !ts || !names) {
        rc = rf_errorf(err, RF_ENOMEM, "init: out of memory");
        goto out;
    }
    for (int l = -1; l < c.n_layers && rc == 0; l++)
        for (int j = 0; j < (l < 0 ? 3 : nl) && rc == 0; j++) {
            int64_t sh[2];
            int kind; /* 0 ones, 1 normal, 2 zeros */
            if (l < 0) {
                if (j == 2 && c.tie_embeddings) continue;
                const char *top[] = {"model.embed_tokens.weight", "model.norm.weight",
                                     "lm_head.weight"};
                snprintf(names[n], 96, "%s", top[j]);
                sh[0] = j == 1 ? dim : c.vocab_size, sh[1] = dim, kind = j == 1 ? 0 : 1;
            } else {
                if (!lay[j].on) continue;
                snprintf(names[n], 96, "model.layers.%d.%s", l, lay[j].suffix);
                sh[0] = lay[j].d0, sh[1] = lay[j].d1;
                kind = lay[j].d1 > 0 ? 1 : lay[j].d1 == 0 ? 0 : 2;
            }
            const int nd = l < 0 ? (j == 1 ? 1 : 2) : (lay[j].d1 > 0 ? 2 : 1);
            if ((rc = rf_tensor_alloc(&ts[n], RF_DTYPE_F32, nd, sh, err)) < 0) break;
            float *v = ts[n].data;
            const uint64_t s = rf_mix64(seed ^ rf_mix64((uint64_t)n + 1));
            for (int64_t i = 0; i < rf_tensor_numel(&ts[n]); i++)
                v[i] = kind == 1 ? normal(s, (uint64_t)i, std) : kind == 0 ? 1.0f : 0.0f;
            items[n].name = names[n], items[n].tensor = &ts[n];
            n++;
        }
    if (rc == 0) {
        char p[4096];
        mkdir(dir, 0755);
        snprintf(p, sizeof p, "%s/config.json", dir);
        if (json_dump_file(config, p, JSON_INDENT(2)) != 0)
            rc = rf_errorf(err, RF_EIO, "init: cannot write %s", p);
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        if (rc == 0) rc = rf_st_write(p, items, n, err);
    }
out:
    for (int i = 0; ts && i < cap; i++)
        rf_tensor_free(&ts[i]);
    free(items), free(ts), free(names);
    return rc;
}
