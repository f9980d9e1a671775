#include "engine/model/llama_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An integer field: required when def < 0, else defaulted; must be in
 * [lo, hi]. null counts as absent (head_dim is often null). */
static int get_int(const json_t *root, const char *key, int def, int lo, int hi, int *out,
                   rf_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (def < 0) return rf_error_field(err, RF_EINVAL, key, "config.json: missing %s", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rf_error_field(err, RF_EINVAL, key, "config.json: %s must be an integer in [%d, %d]",
                              key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_num(const json_t *root, const char *key, double def, double *out, rf_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
        return rf_error_field(err, RF_EINVAL, key, "config.json: %s must be a positive number",
                              key);
    *out = json_number_value(v);
    return 0;
}

static int get_bool(const json_t *root, const char *key, bool def, bool *out, rf_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return rf_error_field(err, RF_EINVAL, key, "config.json: %s must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

static int parse_rope_scaling(rf_llama_config *c, const json_t *rs, rf_error *err)
{
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs))
        return rf_error_field(err, RF_EINVAL, "rope_scaling",
                              "config.json: rope_scaling must be an object or null");
    /* Older files spell the key "type". */
    const char *type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type) type = json_string_value(json_object_get(rs, "type"));
    if (!type || strcmp(type, "default") == 0) return 0;
    if (strcmp(type, "llama3") != 0)
        return rf_error_field(
            err, RF_EUNSUPPORTED, "rope_scaling.rope_type",
            "config.json: rope_scaling.rope_type '%s' is not supported (only llama3)", type);
    c->rope_llama3 = true;
    static const char *const keys[4] = {"factor", "low_freq_factor", "high_freq_factor",
                                        "original_max_position_embeddings"};
    double v[4];
    for (int i = 0; i < 4; i++) {
        json_t *x = json_object_get(rs, keys[i]);
        char f[96];
        snprintf(f, sizeof f, "rope_scaling.%s", keys[i]);
        if (!json_is_number(x) || !(json_number_value(x) > 0) || !isfinite(json_number_value(x)))
            return rf_error_field(err, RF_EINVAL, f,
                                  "config.json: rope_scaling (llama3) needs %s, a positive number",
                                  f);
        v[i] = json_number_value(x);
    }
    c->rope_factor = v[0];
    c->rope_low_freq_factor = v[1];
    c->rope_high_freq_factor = v[2];
    c->rope_orig_max_pos = (int)v[3];
    if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
        return rf_error_field(
            err, RF_EINVAL, "rope_scaling.high_freq_factor",
            "config.json: rope_scaling.high_freq_factor must exceed low_freq_factor");
    return 0;
}

static int parse_eos(rf_llama_config *c, const json_t *v, rf_error *err)
{
    c->n_eos = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        c->eos_ids[c->n_eos++] = (int)json_integer_value(v);
        return 0;
    }
    size_t i;
    json_t *e;
    if (!json_is_array(v)) goto bad;
    json_array_foreach(v, i, e)
    {
        if (!json_is_integer(e)) goto bad;
        if (c->n_eos < RF_LLAMA_MAX_EOS) c->eos_ids[c->n_eos++] = (int)json_integer_value(e);
    }
    return 0;
bad:
    return rf_error_field(err, RF_EINVAL, "eos_token_id",
                          "config.json: eos_token_id must be an integer or a list");
}

int rf_llama_config_parse(rf_llama_config *c, const json_t *root, rf_error *err)
{
    memset(c, 0, sizeof *c);
    int rc;
    if (!json_is_object(root)) return rf_errorf(err, RF_EINVAL, "config.json: not a JSON object");
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (!mt) return rf_error_field(err, RF_EINVAL, "model_type", "config.json: missing model_type");
    if (!strcmp(mt, "llama"))
        c->arch = RF_ARCH_LLAMA;
    else if (!strcmp(mt, "mistral"))
        c->arch = RF_ARCH_MISTRAL;
    else if (!strcmp(mt, "qwen2"))
        c->arch = RF_ARCH_QWEN2;
    else
        return rf_error_field(
            err, RF_EUNSUPPORTED, "model_type",
            "config.json: model_type '%s' is not supported (llama, mistral, qwen2)", mt);

    if ((rc = get_int(root, "hidden_size", -1, 1, 1 << 16, &c->dim, err)) < 0) return rc;
    if ((rc = get_int(root, "intermediate_size", -1, 1, 1 << 18, &c->hidden_dim, err)) < 0)
        return rc;
    if ((rc = get_int(root, "num_hidden_layers", -1, 1, 1024, &c->n_layers, err)) < 0) return rc;
    if ((rc = get_int(root, "num_attention_heads", -1, 1, 1024, &c->n_heads, err)) < 0) return rc;
    if ((rc = get_int(root, "num_key_value_heads", c->n_heads, 1, c->n_heads, &c->n_kv_heads,
                      err)) < 0)
        return rc;
    if (c->n_heads % c->n_kv_heads)
        return rf_error_field(
            err, RF_EINVAL, "num_key_value_heads",
            "config.json: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
            c->n_heads, c->n_kv_heads);
    if ((rc = get_int(root, "head_dim", c->dim / c->n_heads, 2, RF_OPS_MAX_HEAD_DIM, &c->head_dim,
                      err)) < 0)
        return rc;
    if (c->head_dim % 2 || c->head_dim < 2)
        return rf_error_field(err, RF_EINVAL, "head_dim",
                              "config.json: head_dim must be even and at least 2");
    if ((rc = get_int(root, "vocab_size", -1, 1, 1 << 24, &c->vocab_size, err)) < 0) return rc;
    if ((rc = get_int(root, "max_position_embeddings", 2048, 1, 1 << 24, &c->max_pos, err)) < 0)
        return rc;
    if ((rc = get_num(root, "rms_norm_eps", 1e-6, &c->rms_eps, err)) < 0) return rc;
    if ((rc = get_num(root, "rope_theta", 10000.0, &c->rope_theta, err)) < 0) return rc;
    if ((rc = parse_rope_scaling(c, json_object_get(root, "rope_scaling"), err)) < 0) return rc;
    if ((rc = get_bool(root, "tie_word_embeddings", false, &c->tie_embeddings, err)) < 0) return rc;

    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (act && strcmp(act, "silu") != 0)
        return rf_error_field(err, RF_EUNSUPPORTED, "hidden_act",
                              "config.json: hidden_act '%s' is not supported (only silu)", act);
    bool b;
    if ((rc = get_bool(root, "mlp_bias", false, &b, err)) < 0) return rc;
    if (b)
        return rf_error_field(err, RF_EUNSUPPORTED, "mlp_bias",
                              "config.json: mlp_bias is not supported");
    if ((rc = get_bool(root, "attention_bias", false, &b, err)) < 0) return rc;
    /* Qwen2 always has q/k/v biases and none on o_proj; Llama's
     * attention_bias puts one on all four projections. */
    c->qkv_bias = c->arch == RF_ARCH_QWEN2 || b;
    c->o_bias = c->arch == RF_ARCH_LLAMA && b;
    /* Quantized checkpoints: GPTQ 4-bit in the v1 layout (FORMATS.md "GPTQ
     * W4A16 checkpoint"); the loader then takes qweight/qzeros/scales/g_idx
     * linear layers. Other methods and gptq_v2's zero convention are refused. */
    json_t *qc = json_object_get(root, "quantization_config");
    if (qc && !json_is_null(qc)) {
        const char *qm = json_string_value(json_object_get(qc, "quant_method"));
        const char *fmt = json_string_value(json_object_get(qc, "checkpoint_format"));
        json_t *bits = json_object_get(qc, "bits");
        if (!qm || strcmp(qm, "gptq") != 0)
            return rf_error_field(err, RF_EUNSUPPORTED, "quantization_config.quant_method",
                                  "config.json: quantization_config.quant_method '%s' is not "
                                  "supported (only gptq)",
                                  qm ? qm : "(missing)");
        if (!json_is_integer(bits) || json_integer_value(bits) != 4)
            return rf_error_field(err, RF_EUNSUPPORTED, "quantization_config.bits",
                                  "config.json: quantization_config.bits must be 4");
        if (fmt && strcmp(fmt, "gptq") != 0)
            return rf_error_field(err, RF_EUNSUPPORTED, "quantization_config.checkpoint_format",
                                  "config.json: quantization_config.checkpoint_format '%s' is "
                                  "not supported (only gptq, the v1 zero-point layout)",
                                  fmt);
        c->gptq = true;
    }
    if (c->arch == RF_ARCH_MISTRAL &&
        (rc = get_int(root, "sliding_window", 0, 1, 1 << 30, &c->sliding_window, err)) < 0)
        return rc;
    if (c->arch == RF_ARCH_QWEN2) {
        if ((rc = get_bool(root, "use_sliding_window", false, &b, err)) < 0) return rc;
        if (b)
            return rf_error_field(err, RF_EUNSUPPORTED, "use_sliding_window",
                                  "config.json: use_sliding_window (qwen2 per-layer sliding window "
                                  "attention) is not supported");
    }
    json_t *bos = json_object_get(root, "bos_token_id");
    c->bos_id = json_is_integer(bos) ? (int)json_integer_value(bos) : -1;
    return parse_eos(c, json_object_get(root, "eos_token_id"), err);
}

int rf_llama_config_load(rf_llama_config *c, const char *dir, rf_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return rf_errorf(err, access(path, F_OK) ? RF_ENOTFOUND : RF_EINVAL, "%s: %s", path,
                         je.text);
    int rc = rf_llama_config_parse(c, root, err);
    json_decref(root);
    if (rc < 0) return rc;
    /* generation_config.json, when present, is what generate() stops on:
     * Llama 3 lists several EOS ids there and only one in config.json. */
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (access(path, F_OK) != 0) return 0;
    if (!(root = json_load_file(path, 0, &je)))
        return rf_errorf(err, RF_EINVAL, "%s: %s", path, je.text);
    json_t *eos = json_object_get(root, "eos_token_id"),
           *bos = json_object_get(root, "bos_token_id");
    if (eos && !json_is_null(eos)) rc = parse_eos(c, eos, err);
    if (json_is_integer(bos)) c->bos_id = (int)json_integer_value(bos);
    json_decref(root);
    if (rc < 0) rf_error_wrap(err, "generation_config.json");
    return rc;
}

void rf_llama_rope_inv_freq(const rf_llama_config *c, float *inv_freq)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* inv_freq_i = theta^(-2i/d) */
        double f = 1.0 / pow(c->rope_theta, (2.0 * i) / c->head_dim);
        if (c->rope_llama3) {
            /* Llama 3.1: keep high frequencies, divide low ones by factor,
             * interpolate smoothly between the two wavelength bands. */
            double old = c->rope_orig_max_pos;
            double low_wavelen = old / c->rope_low_freq_factor,
                   high_wavelen = old / c->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f = f / c->rope_factor;
            } else if (wavelen >= high_wavelen) {
                double s = (old / wavelen - c->rope_low_freq_factor) /
                           (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0 - s) * f / c->rope_factor + s * f;
            }
        }
        inv_freq[i] = (float)f;
    }
}
