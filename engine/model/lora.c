#include "engine/model/lora.h"
#include "engine/core/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/safetensors.h"

int rf_lora_target_parse(const char *name)
{
    for (int t = 0; t < RF_LIN_COUNT; t++) {
        const char *n = rf_lin(t)->name;
        if (!strcmp(name, n) || (strlen(name) + 5 == strlen(n) && !strncmp(name, n, strlen(name))))
            return t;
    }
    return -1;
}

int rf_lora_init(rf_lora *lo, const rf_llama_config *c, const rf_lora_config *cfg, rf_error *err)
{
    memset(lo, 0, sizeof *lo);
    if (cfg->r < 1) return rf_error_field(err, RF_EINVAL, "lora.r", "r must be at least 1");
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return rf_error_field(err, RF_EINVAL, "lora.dropout", "dropout must be in [0, 1)");
    if (!cfg->targets || cfg->targets & ~RF_LORA_ALL)
        return rf_error_field(err, RF_EINVAL, "lora.target_modules",
                              "target_modules must name some of q,k,v,o,gate,up,down _proj");
    lo->cfg = *cfg;
    lo->n_layers = c->n_layers;
    /* FORMATS.md: ΔW = (lora_alpha / r)·B·A; rsLoRA lora_alpha / √r */
    lo->scale = cfg->rslora ? cfg->alpha / sqrtf((float)cfg->r) : cfg->alpha / (float)cfg->r;
    size_t n = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < RF_LIN_COUNT; t++)
            if (cfg->targets >> t & 1) {
                int in, out;
                rf_lin_shape(c, t, &out, &in);
                n += (size_t)cfg->r * (in + out);
            }
    lo->pairs = calloc((size_t)c->n_layers * RF_LIN_COUNT, sizeof *lo->pairs);
    lo->params = calloc(n, sizeof(float));
    lo->grads = calloc(n, sizeof(float));
    if (!lo->pairs || !lo->params || !lo->grads) {
        rf_lora_free(lo);
        return rf_errorf(err, RF_ENOMEM, "lora: out of memory for %zu parameters", n);
    }
    lo->n_params = n;
    size_t off = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < RF_LIN_COUNT; t++) {
            rf_lora_pair *p = rf_lora_at(lo, l, t);
            rf_lin_shape(c, t, &p->out, &p->in);
            if (!(cfg->targets >> t & 1)) continue;
            p->A = lo->params + off, p->dA = lo->grads + off;
            off += (size_t)cfg->r * p->in;
            p->B = lo->params + off, p->dB = lo->grads + off;
            off += (size_t)cfg->r * p->out;
            /* PEFT: kaiming_uniform_(A, a=√5) on [r, in]: gain √(2/(1+5)),
             * bound gain·√(3/fan_in) = 1/√in. B stays zero. */
            const double bound = 1.0 / sqrt((double)p->in);
            const uint64_t base = rf_mix64(cfg->seed ^ rf_mix64((uint64_t)(l * RF_LIN_COUNT + t)));
            for (size_t i = 0; i < (size_t)cfg->r * p->in; i++)
                p->A[i] = (float)((2 * rf_unit53(rf_mix64(base + i)) - 1) * bound);
        }
    return 0;
}

void rf_lora_free(rf_lora *lo)
{
    if (!lo) return;
    free(lo->pairs);
    free(lo->params);
    free(lo->grads);
    memset(lo, 0, sizeof *lo);
}

rf_lora_pair *rf_lora_at(const rf_lora *lo, int layer, int target)
{
    return &lo->pairs[(size_t)layer * RF_LIN_COUNT + target];
}

uint64_t rf_lora_mask_seed(const rf_lora *lo, uint64_t step, int layer, int target)
{
    return rf_mix64(lo->cfg.seed ^ 0xd1b54a32d192ed03ull) ^
           rf_mix64(step * 131 + (uint64_t)(layer * RF_LIN_COUNT + target));
}

int rf_lora_merge_into(const rf_lora *lo, int layer, int target, rf_tensor *w, int sign,
                       rf_error *err)
{
    const rf_lora_pair *p = rf_lora_at(lo, layer, target);
    if (!p->A) return 0;
    if (w->ndim != 2 || w->shape[0] != p->out || w->shape[1] != p->in)
        return rf_errorf(err, RF_EINVAL, "merge: %s weight of layer %d has the wrong shape",
                         rf_lin(target)->name, layer);
    float *row = malloc(sizeof(float) * (size_t)p->in);
    if (!row) return rf_errorf(err, RF_ENOMEM, "merge: out of memory");
    const size_t es = rf_dtype_size(w->dtype);
    const int r = lo->cfg.r;
    for (int o = 0; o < p->out; o++) {
        char *dst = (char *)w->data + (size_t)o * p->in * es;
        rf_to_f32(w->dtype, dst, row, (size_t)p->in);
        for (int k = 0; k < r; k++) {
            const float b = sign * lo->scale * p->B[(size_t)o * r + k];
            const float *a = p->A + (size_t)k * p->in;
            for (int i = 0; i < p->in; i++)
                row[i] += b * a[i];
        }
        rf_from_f32(w->dtype, row, dst, (size_t)p->in);
    }
    free(row);
    return 0;
}

static int write_json(const char *path, json_t *j, rf_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(j, tmp, JSON_INDENT(2)) != 0 || rename(tmp, path) != 0)
        return rf_errorf(err, RF_EIO, "cannot write %s", path);
    return 0;
}

int rf_lora_save_peft(const rf_lora *lo, const char *dir, const char *base_model, rf_error *err)
{
    int rc = 0, n = 0;
    char path[4096];
    mkdir(dir, 0755);
    json_t *tm = json_array();
    for (int t = 0; t < RF_LIN_COUNT; t++)
        if (lo->cfg.targets >> t & 1) json_array_append_new(tm, json_string(rf_lin(t)->name));
    json_t *cfg = json_pack("{s:s, s:i, s:f, s:o, s:f, s:s, s:s, s:b, s:s, s:b, s:b}", "peft_type",
                            "LORA", "r", lo->cfg.r, "lora_alpha", (double)lo->cfg.alpha,
                            "target_modules", tm, "lora_dropout", (double)lo->cfg.dropout, "bias",
                            "none", "base_model_name_or_path", base_model ? base_model : "",
                            "use_rslora", lo->cfg.rslora, "task_type", "CAUSAL_LM",
                            "fan_in_fan_out", 0, "inference_mode", 1);
    const size_t cap = (size_t)lo->n_layers * RF_LIN_COUNT * 2;
    rf_st_item *items = calloc(cap, sizeof *items);
    rf_tensor *ts = calloc(cap, sizeof *ts);
    char(*names)[160] = calloc(cap, sizeof *names);
    if (!cfg || !items || !ts || !names) {
        rc = rf_errorf(err, RF_ENOMEM, "adapter export: out of memory");
        goto fail;
    }
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if ((rc = write_json(path, cfg, err)) < 0) goto fail;
    for (int l = 0; l < lo->n_layers; l++)
        for (int t = 0; t < RF_LIN_COUNT; t++) {
            const rf_lora_pair *p = rf_lora_at(lo, l, t);
            if (!p->A) continue;
            for (int ab = 0; ab < 2; ab++) {
                int64_t shape[2] = {ab ? p->out : lo->cfg.r, ab ? lo->cfg.r : p->in};
                rf_tensor_view(&ts[n], RF_DTYPE_F32, 2, shape, ab ? p->B : p->A);
                snprintf(names[n], sizeof names[n],
                         "base_model.model.model.layers.%d.%s.lora_%c.weight", l, rf_lin(t)->path,
                         ab ? 'B' : 'A');
                items[n].name = names[n], items[n].tensor = &ts[n];
                n++;
            }
        }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rc = rf_st_write(path, items, n, err);
fail:
    json_decref(cfg);
    free(items), free(ts), free(names);
    return rc;
}

int rf_lora_load_peft(rf_lora *lo, const rf_llama_config *c, const char *dir, rf_error *err)
{
    char path[4096];
    json_error_t je;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return rf_errorf(err, RF_EINVAL, "%s: %s", path, je.text);
    rf_lora_config cfg = {0};
    cfg.r = (int)json_integer_value(json_object_get(j, "r"));
    cfg.alpha = (float)json_number_value(json_object_get(j, "lora_alpha"));
    cfg.dropout = (float)json_number_value(json_object_get(j, "lora_dropout"));
    cfg.rslora = json_is_true(json_object_get(j, "use_rslora"));
    json_t *tm = json_object_get(j, "target_modules"), *v;
    size_t i;
    json_array_foreach(tm, i, v)
    {
        int t = json_is_string(v) ? rf_lora_target_parse(json_string_value(v)) : -1;
        if (t < 0) {
            json_decref(j);
            return rf_error_field(err, RF_EUNSUPPORTED, "target_modules",
                                  "%s: target module %zu is not one of the Llama linear layers",
                                  path, i);
        }
        cfg.targets |= 1u << t;
    }
    json_decref(j);
    int rc = rf_lora_init(lo, c, &cfg, err);
    if (rc < 0) return rc;
    rf_st_file f;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if ((rc = rf_st_open(&f, path, err)) < 0) goto fail;
    for (int l = 0; l < lo->n_layers && rc == 0; l++)
        for (int t = 0; t < RF_LIN_COUNT && rc == 0; t++) {
            rf_lora_pair *p = rf_lora_at(lo, l, t);
            if (!p->A) continue;
            for (int ab = 0; ab < 2; ab++) {
                char name[160];
                snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_%c.weight", l,
                         rf_lin(t)->path, ab ? 'B' : 'A');
                const rf_st_entry *e = rf_st_find(&f, name);
                int64_t want[2] = {ab ? p->out : cfg.r, ab ? cfg.r : p->in};
                rf_tensor tv;
                if (e) rf_st_view(&f, e, &tv);
                if (!e || !rf_tensor_shape_is(&tv, 2, want) ||
                    rf_to_f32(tv.dtype, tv.data, ab ? p->B : p->A, (size_t)(want[0] * want[1])) <
                        0) {
                    rc = rf_errorf(err, RF_EINVAL, "%s: %s is missing or not a float [%lld, %lld]",
                                   path, name, (long long)want[0], (long long)want[1]);
                    break;
                }
            }
        }
    rf_st_close(&f);
    if (rc == 0) return 0;
fail:
    rf_lora_free(lo);
    return rc;
}

static int copy_file(const char *from, const char *to, rf_error *err);

int rf_copy_model_files(const char *src_dir, const char *out_dir, rf_error *err)
{
    static const char *const files[] = {"config.json", "generation_config.json", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json"};
    char a[4096], b[4096];
    mkdir(out_dir, 0755);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(a, sizeof a, "%s/%s", src_dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", out_dir, files[i]);
        int rc = copy_file(a, b, err);
        if (rc < 0) return rc;
    }
    return 0;
}

static int copy_file(const char *from, const char *to, rf_error *err)
{
    FILE *in = fopen(from, "rb");
    if (!in) return 0; /* optional file */
    FILE *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int rc = out ? 0 : rf_errorf(err, RF_EIO, "cannot write %s", to);
    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = rf_errorf(err, RF_EIO, "cannot write %s", to);
    if (out && fclose(out) != 0 && !rc) rc = rf_errorf(err, RF_EIO, "cannot write %s", to);
    fclose(in);
    return rc;
}

int rf_lora_export_merged(const rf_lora *lo, const rf_llama_model *base, const char *base_dir,
                          const char *out_dir, rf_error *err)
{
    int rc = 0, n = 0, total = 0;
    char b[4096];
    if (base->n_gptq > 0)
        return rf_error_field(err, RF_EUNSUPPORTED, "export",
                              "a merged export needs a dense base, and this one is GPTQ 4-bit "
                              "(%d quantized linear layers): export the adapter instead, which "
                              "PEFT loads over the GPTQ base",
                              base->n_gptq);
    if ((rc = rf_copy_model_files(base_dir, out_dir, err)) < 0) return rc;
    for (int f = 0; f < base->st.nfiles; f++)
        total += base->st.files[f].n;
    rf_st_item *items = calloc((size_t)total, sizeof *items);
    rf_tensor *ts = calloc((size_t)total, sizeof *ts);
    if (!items || !ts) {
        rc = rf_errorf(err, RF_ENOMEM, "merged export: out of memory");
        goto fail;
    }
    for (int f = 0; f < base->st.nfiles; f++)
        for (int e = 0; e < base->st.files[f].n; e++) {
            const rf_st_entry *en = &base->st.files[f].entries[e];
            rf_st_view(&base->st.files[f], en, &ts[n]);
            int layer, t = -1;
            bool is_bias = false;
            char rest[128];
            if (sscanf(en->name, "model.layers.%d.%127s", &layer, rest) == 2 && layer >= 0 &&
                layer < lo->n_layers && (t = rf_lin_parse_tensor(rest, &is_bias)) >= 0 && is_bias)
                t = -1;
            if (t >= 0 && rf_lora_at(lo, layer, t)->A) {
                rf_tensor copy;
                if ((rc = rf_tensor_alloc(&copy, ts[n].dtype, ts[n].ndim, ts[n].shape, err)) < 0)
                    goto fail;
                memcpy(copy.data, ts[n].data, rf_tensor_nbytes(&copy));
                ts[n] = copy;
                if ((rc = rf_lora_merge_into(lo, layer, t, &ts[n], +1, err)) < 0) goto fail;
            }
            items[n].name = en->name, items[n].tensor = &ts[n];
            n++;
        }
    snprintf(b, sizeof b, "%s/model.safetensors", out_dir);
    rc = rf_st_write(b, items, n, err);
fail:
    /* n, and the tensor being merged when a merge failed */
    for (int i = 0; ts && i < total; i++)
        rf_tensor_free(&ts[i]);
    free(items), free(ts);
    return rc;
}
