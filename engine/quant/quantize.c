/* Model-level GPTQ/RTN and the GPTQ checkpoint export: see quantize.h and
 * FORMATS.md ("GPTQ algorithm", last paragraph; "GPTQ W4A16 checkpoint"). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/quant/gptq_pack.h"
#include "engine/core/util.h"
#include "engine/model/llama.h"
#include "engine/quant/quantize.h"
#include "engine/core/safetensors.h"

void rf_quantize_opts_default(rf_quantize_opts *o)
{
    rf_gptq_opts_default(&o->gptq);
    o->rtn = false;
    o->quantize_lm_head = false;
}

void rf_quantize_report_free(rf_quantize_report *r)
{
    free(r->layers);
    memset(r, 0, sizeof *r);
}

typedef struct {
    rf_hessian *h;
    int stage;
} observer;

static void observe(void *user, int stage, const float *x, int rows, int cols)
{
    observer *o = user;
    if (stage == o->stage) rf_hessian_add(o->h, x, rows, 1); /* one calibration sequence */
}

typedef struct {
    const rf_quantize_hooks *hooks;
    const char *layer;
} damp_ctx;

static void on_damp(void *user, double from, double to)
{
    damp_ctx *d = user;
    if (d->hooks && d->hooks->on_damp) d->hooks->on_damp(d->hooks->user, d->layer, from, to);
}

/* Quantize one dense weight against Hessian H into packed p; report it. */
static int quantize_one(const rf_tensor *w, const float *H, const rf_quantize_opts *o,
                        const rf_quantize_hooks *hooks, rf_quantize_layer *rl, rf_gptq_packed *p,
                        rf_error *err)
{
    const int N = (int)w->shape[0], K = (int)w->shape[1];
    float *W = malloc(sizeof(float) * (size_t)N * K), *What = NULL;
    rf_qlayer q = {0};
    int rc;
    if (!W) return rf_errorf(err, RF_ENOMEM, "out of memory for %s", rl->name);
    rf_to_f32(w->dtype, w->data, W, (size_t)N * K);
    double t0 = rf_now_s();
    rf_gptq_stats st = {0};
    damp_ctx dc = {hooks, rl->name};
    rc = o->rtn ? rf_rtn_quantize(W, N, K, &o->gptq, &q, err)
                : rf_gptq_quantize(W, N, K, H, &o->gptq, on_damp, &dc, &q, &st, err);
    if (rc < 0) goto fail;
    rl->seconds = rf_now_s() - t0;
    rl->percdamp_used = o->rtn ? 0 : st.percdamp_used;
    if ((rc = rf_gptq_pack(&q, p, err)) < 0) goto fail;
    /* the error of what the checkpoint holds (f16 scales, v1 zeros) */
    rf_gptq_weight v;
    if ((rc = rf_gptq_weight_view(&v, p, rl->name, err)) < 0) goto fail;
    if (!(What = malloc(sizeof(float) * (size_t)N * K))) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory for %s", rl->name);
        goto fail;
    }
    rf_gptq_dequant(&v, What);
    rc = rf_gptq_recon_error(W, What, N, K, H, NULL, &rl->rel_err, err);
fail:
    if (rc < 0) rf_error_wrap(err, "%s", rl->name);
    rf_qlayer_free(&q);
    free(W);
    free(What);
    return rc;
}

/* ---- export ------------------------------------------------------------- */

static int f16_copy(rf_tensor *dst, rf_dtype dt, const void *src, int ndim, const int64_t *shape,
                    rf_error *err)
{
    int rc = rf_tensor_alloc(dst, RF_DTYPE_F16, ndim, shape, err);
    if (rc < 0) return rc;
    size_t n = (size_t)rf_tensor_numel(dst);
    float *tmp = malloc(sizeof(float) * (n ? n : 1));
    if (!tmp) return rf_errorf(err, RF_ENOMEM, "out of memory converting to float16");
    rf_to_f32(dt, src, tmp, n);
    rf_from_f32(RF_DTYPE_F16, tmp, dst->data, n);
    free(tmp);
    return 0;
}

static json_t *quant_config(const rf_quantize_opts *o)
{
    return json_pack("{s:s, s:i, s:i, s:b, s:b, s:f, s:b, s:b, s:s, s:b}", "quant_method", "gptq",
                     "bits", o->gptq.bits, "group_size", o->gptq.group_size, "desc_act",
                     o->gptq.desc_act, "sym", o->gptq.sym, "damp_percent", o->gptq.percdamp,
                     "true_sequential", 1, "static_groups", o->gptq.static_groups,
                     "checkpoint_format", "gptq", "lm_head", o->quantize_lm_head);
}

static int write_json(const char *dir, const char *name, json_t *j, rf_error *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(j, tmp, JSON_INDENT(2)) != 0 || rename(tmp, path) != 0)
        return rf_errorf(err, RF_EIO, "cannot write %s", path);
    return 0;
}

static int copy_file(const char *src, const char *dst, rf_error *err)
{
    FILE *in = fopen(src, "rb");
    if (!in) return errno == ENOENT ? 0 : rf_errorf(err, RF_EIO, "cannot read %s", src);
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return rf_errorf(err, RF_EIO, "cannot write %s", dst);
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = rf_errorf(err, RF_EIO, "cannot write %s", dst);
    fclose(in);
    if (fclose(out) != 0 && !rc) rc = rf_errorf(err, RF_EIO, "cannot write %s", dst);
    return rc;
}

static int write_configs(const char *src_dir, const char *out_dir, const rf_quantize_opts *o,
                         rf_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", src_dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) return rf_errorf(err, RF_EIO, "cannot read %s: %s", path, je.text);
    json_object_set_new(cfg, "quantization_config", quant_config(o));
    json_object_set_new(cfg, "torch_dtype", json_string("float16"));
    int rc = write_json(out_dir, "config.json", cfg, err);
    json_decref(cfg);
    if (rc < 0) return rc;
    json_t *qc = quant_config(o);
    rc = write_json(out_dir, "quantize_config.json", qc, err);
    json_decref(qc);
    if (rc < 0) return rc;
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "tokenizer.model"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char s[4096], d[4096];
        snprintf(s, sizeof s, "%s/%s", src_dir, files[i]);
        snprintf(d, sizeof d, "%s/%s", out_dir, files[i]);
        if ((rc = copy_file(s, d, err)) < 0) return rc;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------ */

static int check_inputs(const rf_llama_model *m, const char *src_dir, const rf_quantize_opts *o,
                        const int32_t *tokens, const size_t *off, int nseq, int seq_len,
                        rf_error *err)
{
    const rf_llama_config *c = &m->config;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", src_dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    int quantized = cfg && json_object_get(cfg, "quantization_config");
    json_decref(cfg);
    if (quantized || m->n_gptq > 0)
        return rf_error_field(err, RF_EINVAL, "model", "the model is already quantized (%s)",
                              m->n_gptq ? "it holds GPTQ layers"
                                        : "config.json has "
                                          "quantization_config");
    const int Ks[] = {c->dim, c->n_heads * c->head_dim, c->hidden_dim};
    for (int i = 0; i < 3; i++) {
        int rc = rf_gptq_opts_check(&o->gptq, Ks[i], err);
        if (rc < 0) return rc;
    }
    if (o->gptq.bits != 4)
        return rf_error_field(err, RF_EUNSUPPORTED, "bits", "only 4-bit GPTQ is exported");
    if (o->quantize_lm_head && c->tie_embeddings)
        return rf_error_field(err, RF_EUNSUPPORTED, "quantize_lm_head",
                              "the lm_head is tied to the embeddings; quantizing it would "
                              "quantize the embedding table too");
    if (nseq < 1)
        return rf_error_field(err, RF_EINVAL, "calibration.samples",
                              "at least one calibration sequence is needed");
    if (seq_len < 1 || seq_len > c->max_pos)
        return rf_error_field(err, RF_EINVAL, "calibration.seq_len",
                              "seq_len %d is outside [1, %d] (max_position_embeddings)", seq_len,
                              c->max_pos);
    for (size_t i = 0; i < off[nseq]; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return rf_error_field(err, RF_EINVAL, "calibration",
                                  "calibration token %d is outside the vocabulary", tokens[i]);
    return 0;
}

int rf_quantize_model(const char *src_dir, const char *out_dir, const rf_quantize_opts *o,
                      const int32_t *tokens, const int *lens, int nseq, int seq_len,
                      const rf_quantize_hooks *hooks, rf_quantize_report *rep, rf_error *err)
{
    double t_start = rf_now_s();
    memset(rep, 0, sizeof *rep);
    rf_llama_model m;
    rf_llama_acts a = {0};
    rf_hessian h = {0};
    float *X = NULL, *Y = NULL;
    size_t *off = NULL;
#define SLEN(s) ((int)(off[(s) + 1] - off[s]))
    int rc = rf_llama_load(&m, src_dir, NULL, err);
    if (rc < 0) return rc;
    const rf_llama_config *c = &m.config;
    const int L = c->n_layers, dim = c->dim;
    const int total = L * RF_LIN_COUNT + (o->quantize_lm_head ? 1 : 0);
    rf_gptq_packed *packed = calloc((size_t)total, sizeof *packed);
    rf_st_item *items = NULL;
    rf_tensor *f16s = NULL;
    int nitems = 0, nf16 = 0;
    rep->layers = calloc((size_t)total, sizeof *rep->layers);
    if (!packed || !rep->layers) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    /* off[s]: where sequence s starts, in tokens (and in rows of X) */
    if (nseq < 1 || !(off = malloc(sizeof(size_t) * ((size_t)nseq + 1)))) {
        rc = nseq < 1 ? rf_error_field(err, RF_EINVAL, "calibration.samples",
                                       "at least one calibration sequence is needed")
                      : rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    off[0] = 0;
    for (int s = 0; s < nseq; s++) {
        int len = lens ? lens[s] : seq_len;
        if (len < 1 || len > seq_len) {
            rc =
                rf_error_field(err, RF_EINVAL, "calibration",
                               "calibration sequence %d has %d tokens, not 1..%d", s, len, seq_len);
            goto fail;
        }
        off[s + 1] = off[s] + (size_t)len;
    }
    if ((rc = check_inputs(&m, src_dir, o, tokens, off, nseq, seq_len, err)) < 0) goto fail;
    if ((rc = rf_llama_acts_init(&a, c, 1, seq_len, seq_len, err)) < 0) goto fail;
    rep->calib_bytes = 2 * sizeof(float) * off[nseq] * dim;
    X = malloc(sizeof(float) * off[nseq] * dim);
    Y = malloc(sizeof(float) * off[nseq] * dim);
    if (!X || !Y) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory for %d calibration sequences of %d", nseq,
                       seq_len);
        goto fail;
    }
    for (int s = 0; s < nseq; s++)
        m.ops->embedding(X + off[s] * dim, &m.w.embed, tokens + off[s], SLEN(s));

    int done = 0;
    for (int l = 0; l < L; l++) {
        rf_llama_layer *Ly = &m.w.layers[l];
        for (int stage = 0; stage < 4; stage++) {
            const int K = stage == 1 ? c->n_heads * c->head_dim : stage == 3 ? c->hidden_dim : dim;
            if ((rc = rf_hessian_init(&h, K, err)) < 0) goto fail;
            observer ob = {&h, stage};
            for (int s = 0; s < nseq; s++) {
                memcpy(a.x, X + off[s] * dim, sizeof(float) * SLEN(s) * dim);
                if ((rc = rf_llama_layer_forward(&m, &a, l, SLEN(s), stage, observe, &ob, err)) < 0)
                    goto fail;
            }
            rf_hessian_finish(&h);
            for (int i = 0; i < RF_LIN_COUNT; i++) {
                if (rf_lin(i)->stage != stage) continue;
                if (hooks && hooks->should_stop && hooks->should_stop(hooks->user)) {
                    rc = rf_errorf(err, RF_ECANCELED, "quantization stopped at layer %d", l);
                    goto fail;
                }
                rf_quantize_layer *rl = &rep->layers[done];
                rf_gptq_packed *p = &packed[done];
                rf_linear *lin = &Ly->lin[i];
                snprintf(rl->name, sizeof rl->name, "model.layers.%d.%s", l, rf_lin(i)->path);
                rl->N = lin->out;
                rl->K = lin->in;
                if ((rc = quantize_one(&lin->w, h.H, o, hooks, rl, p, err)) < 0) goto fail;
                /* from here on the block computes with the quantized weight */
                if ((rc = rf_gptq_weight_view(&lin->q, p, rl->name, err)) < 0 ||
                    (rc = rf_gptq_weight_prepare(&lin->q, err)) < 0)
                    goto fail;
                rep->n = ++done;
                if (hooks && hooks->on_layer) hooks->on_layer(hooks->user, rl, done, total);
            }
            rf_hessian_free(&h);
        }
        /* the block's outputs, through its quantized layers, feed the next */
        for (int s = 0; s < nseq; s++) {
            memcpy(a.x, X + off[s] * dim, sizeof(float) * SLEN(s) * dim);
            if ((rc = rf_llama_layer_forward(&m, &a, l, SLEN(s), 4, NULL, NULL, err)) < 0)
                goto fail;
            memcpy(Y + off[s] * dim, a.x, sizeof(float) * SLEN(s) * dim);
        }
        float *t = X;
        X = Y;
        Y = t;
    }
    if (o->quantize_lm_head) {
        /* its inputs: the final norm of the last block's outputs */
        if ((rc = rf_hessian_init(&h, dim, err)) < 0) goto fail;
        for (int s = 0; s < nseq; s++) {
            m.ops->rmsnorm(Y, X + off[s] * dim, m.w.norm, SLEN(s), dim, (float)c->rms_eps);
            rf_hessian_add(&h, Y, SLEN(s), 1);
        }
        rf_hessian_finish(&h);
        rf_quantize_layer *rl = &rep->layers[done];
        snprintf(rl->name, sizeof rl->name, "lm_head");
        rl->N = c->vocab_size;
        rl->K = dim;
        if ((rc = quantize_one(&m.w.lm_head.w, h.H, o, hooks, rl, &packed[done], err)) < 0)
            goto fail;
        rf_hessian_free(&h);
        rep->n = ++done;
        if (hooks && hooks->on_layer) hooks->on_layer(hooks->user, rl, done, total);
    }
    free(X);
    free(Y);
    X = Y = NULL;

    /* export: FORMATS.md — quantized linears as four tensors, the rest f16 */
    const int max_items = total * 4 + 4 + L * 8;
    items = calloc((size_t)max_items, sizeof *items);
    f16s = calloc((size_t)max_items, sizeof *f16s);
    char(*names)[128] = calloc((size_t)max_items, 128);
    if (!items || !f16s || !names) {
        free(names);
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
#define ADD_F16(nm, dt, src, nd, ...)                                                              \
    do {                                                                                           \
        int64_t shp_[] = {__VA_ARGS__};                                                            \
        if ((rc = f16_copy(&f16s[nf16], dt, src, nd, shp_, err)) < 0) goto export_fail;            \
        snprintf(names[nitems], 128, "%s", nm);                                                    \
        items[nitems].name = names[nitems];                                                        \
        items[nitems++].tensor = &f16s[nf16++];                                                    \
    } while (0)
    char nm[128];
    ADD_F16("model.embed_tokens.weight", m.w.embed.dtype, m.w.embed.data, 2, c->vocab_size, dim);
    ADD_F16("model.norm.weight", RF_DTYPE_F32, m.w.norm, 1, dim);
    if (!c->tie_embeddings && !o->quantize_lm_head)
        ADD_F16("lm_head.weight", m.w.lm_head.w.dtype, m.w.lm_head.w.data, 2, c->vocab_size, dim);
    for (int l = 0; l < L; l++) {
        const rf_llama_layer *Ly = &m.w.layers[l];
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD_F16(nm, RF_DTYPE_F32, Ly->attn_norm, 1, dim);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD_F16(nm, RF_DTYPE_F32, Ly->ffn_norm, 1, dim);
        for (int i = 0; i < RF_LIN_COUNT; i++)
            if (Ly->lin[i].bias) {
                snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, rf_lin(i)->path);
                ADD_F16(nm, RF_DTYPE_F32, Ly->lin[i].bias, 1, Ly->lin[i].out);
            }
    }
    for (int i = 0; i < done; i++) {
        const char *parts[4] = {"qweight", "qzeros", "scales", "g_idx"};
        const rf_tensor *t[4] = {&packed[i].qweight, &packed[i].qzeros, &packed[i].scales,
                                 &packed[i].g_idx};
        for (int j = 0; j < 4; j++) {
            snprintf(names[nitems], 128, "%s.%s", rep->layers[i].name, parts[j]);
            items[nitems].name = names[nitems];
            items[nitems++].tensor = t[j];
        }
    }
#undef ADD_F16
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        rc = rf_errorf(err, RF_EIO, "cannot create %s: %s", out_dir, strerror(errno));
        goto export_fail;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    if ((rc = rf_st_write(path, items, nitems, err)) < 0) goto export_fail;
    if ((rc = write_configs(src_dir, out_dir, o, err)) < 0) goto export_fail;
    struct stat sb;
    if (stat(path, &sb) == 0) rep->out_bytes = (size_t)sb.st_size;
    rep->src_bytes = m.weight_bytes;
export_fail:
    free(names);
fail:
    if (rc >= 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) rep->peak_rss_kib = ru.ru_maxrss;
        rep->seconds = rf_now_s() - t_start;
    }
    for (int i = 0; i < nf16; i++)
        rf_tensor_free(&f16s[i]);
    free(f16s);
    free(items);
    rf_hessian_free(&h);
    free(X);
    free(Y);
    free(off);
#undef SLEN
    rf_llama_acts_free(&a);
    rf_llama_free(&m); /* releases the views' scales; packed data is ours */
    for (int i = 0; packed && i < total; i++)
        rf_gptq_packed_free(&packed[i]);
    free(packed);
    if (rc < 0) rf_quantize_report_free(rep);
    return rc;
}
