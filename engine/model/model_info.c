#include "engine/model/model_info.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/tokenizer/tokenizer.h"

static const char *hf_dtype(rf_dtype d)
{
    switch (d) {
    case RF_DTYPE_F32:
        return "float32";
    case RF_DTYPE_F16:
        return "float16";
    case RF_DTYPE_BF16:
        return "bfloat16";
    default:
        return NULL;
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int rf_model_inspect(const char *dir, rf_model_info *info, rf_error *err)
{
    memset(info, 0, sizeof *info);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!cfg)
        return rf_error_field(err, RF_EINVAL, "config.json",
                              "config.json is missing or not JSON: %s", je.text);
    int rc = 0;
    rf_st_model m = {0};
    bool opened = false;
    rf_tokenizer *tok = NULL;
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    if (!json_is_object(cfg) || !mt || !*mt || strlen(mt) >= sizeof info->architecture) {
        rc = rf_error_field(err, RF_EINVAL, "config.json", "config.json has no model_type");
        goto out;
    }
    snprintf(info->architecture, sizeof info->architecture, "%s", mt);
    json_t *q = json_object_get(cfg, "quantization_config");
    if (q && !json_is_null(q)) info->quantization = json_incref(q);
    int bits = 0;
    if (info->quantization) bits = (int)json_integer_value(json_object_get(q, "bits"));

    if ((rc = rf_st_model_open(&m, dir, err))) goto out;
    opened = true;
    uint64_t by_dtype[RF_DTYPE_COUNT] = {0};
    for (int f = 0; f < m.nfiles; f++) {
        struct stat st;
        if (!stat(m.files[f].path, &st)) info->bytes += (uint64_t)st.st_size;
        for (int i = 0; i < m.files[f].n; i++) {
            const rf_st_entry *e = &m.files[f].entries[i];
            uint64_t n = 1;
            for (int d = 0; d < e->ndim; d++)
                n *= (uint64_t)e->shape[d];
            /* GPTQ: qweight packs 32/bits weights per int32; its scales, zeros
             * and g_idx describe them and are not weights themselves. */
            if (ends_with(e->name, ".qweight") && bits > 0)
                n *= (uint64_t)(32 / bits);
            else if (ends_with(e->name, ".qzeros") || ends_with(e->name, ".scales") ||
                     ends_with(e->name, ".g_idx"))
                n = 0;
            info->parameters += n;
            if (hf_dtype(e->dtype)) by_dtype[e->dtype] += e->end - e->begin;
        }
    }
    rf_dtype best = RF_DTYPE_F32;
    for (int d = 0; d < RF_DTYPE_COUNT; d++)
        if (hf_dtype((rf_dtype)d) && by_dtype[d] > by_dtype[best]) best = (rf_dtype)d;
    snprintf(info->dtype, sizeof info->dtype, "%s", hf_dtype(best));
    if ((rc = rf_tokenizer_load(dir, &tok, err))) {
        rf_error_wrap(err, "tokenizer.json");
        if (err && !err->field[0]) snprintf(err->field, sizeof err->field, "tokenizer.json");
        goto out;
    }
out:
    rf_tokenizer_free(tok);
    if (opened) rf_st_model_close(&m);
    json_decref(cfg);
    if (rc) rf_model_info_clear(info);
    return rc;
}

void rf_model_info_clear(rf_model_info *info)
{
    json_decref(info->quantization);
    info->quantization = NULL;
}
