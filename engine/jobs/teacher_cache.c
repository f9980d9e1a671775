#include "engine/jobs/teacher_cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/train.h"

/* The k largest of z (descending) into ids/vals: insertion into a sorted
 * array, rejecting most values with one comparison against the k-th. */
static void top_k(const float *z, int V, int k, int32_t *ids, float *vals)
{
    int n = 0;
    for (int i = 0; i < V; i++) {
        if (n == k && z[i] <= vals[k - 1]) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && vals[j - 1] < z[i]) {
            vals[j] = vals[j - 1], ids[j] = ids[j - 1];
            j--;
        }
        vals[j] = z[i], ids[j] = i;
    }
}

int rf_teacher_cache_build(const char *path, const rf_llama_model *teacher,
                           const rf_train_data *data, int batch, int seq_len, int k, rf_error *err)
{
    const int V = teacher->config.vocab_size, B = batch, T = seq_len;
    if (k < 1 || k > V) return rf_error_field(err, RF_EINVAL, "k", "k must be in [1, %d]", V);
    int64_t rows = 0;
    for (int i = 0; i < data->n; i++)
        rows += data->ex[i].n < T ? data->ex[i].n : T;
    rf_tensor toff, tids, tlp, tmeta;
    int rc = 0;
    memset(&toff, 0, sizeof toff), memset(&tids, 0, sizeof tids), memset(&tlp, 0, sizeof tlp);
    int64_t meta[3] = {k, T, V};
    rf_trainer tr;
    int *ids = malloc(sizeof(int) * (size_t)B * T), *tg = malloc(sizeof(int) * (size_t)B * T),
        *idx = malloc(sizeof(int) * (size_t)B);
    if ((rc = rf_trainer_init(&tr, teacher, RF_TRAIN_FROZEN, NULL, B, T, 0, err)) < 0) goto out;
    if (!ids || !tg || !idx ||
        (rc = rf_tensor_alloc(&toff, RF_DTYPE_I64, 1, (int64_t[]){data->n + 1}, err)) < 0 ||
        (rc = rf_tensor_alloc(&tids, RF_DTYPE_I32, 2, (int64_t[]){rows, k}, err)) < 0 ||
        (rc = rf_tensor_alloc(&tlp, RF_DTYPE_F32, 2, (int64_t[]){rows, k}, err)) < 0) {
        rc = rc < 0 ? rc : rf_errorf(err, RF_ENOMEM, "teacher cache: out of memory");
        goto out;
    }
    int64_t *off = toff.data;
    off[0] = 0;
    for (int i = 0; i < data->n; i++)
        off[i + 1] = off[i] + (data->ex[i].n < T ? data->ex[i].n : T);
    float *z = tr.a.logits;
    for (int i0 = 0; i0 < data->n && rc == 0; i0 += B) {
        for (int b = 0; b < B; b++)
            idx[b] = i0 + b < data->n ? i0 + b : -1;
        rf_train_data_batch(data, idx, B, T, 0, ids, tg);
        if ((rc = rf_train_forward(&tr, ids, err)) < 0) break;
        /* logits one row at a time (the chunk buffer holds tr.a.chunk rows) */
        for (int b = 0; b < B && idx[b] >= 0; b++) {
            const int n = (int)(off[idx[b] + 1] - off[idx[b]]);
            for (int t = 0; t < n; t++) {
                rf_linear_forward(teacher->ops, &teacher->w.lm_head, NULL, z,
                                  tr.a.xnf + ((size_t)b * T + t) * teacher->config.dim, 1,
                                  tr.a.scratch, tr.a.scratch_n);
                double mx = -INFINITY, s = 0;
                for (int v = 0; v < V; v++)
                    mx = fmax(mx, z[v]);
                for (int v = 0; v < V; v++)
                    s += exp(z[v] - mx);
                const float lse = (float)(mx + log(s));
                const size_t row = (size_t)(off[idx[b]] + t) * k;
                top_k(z, V, k, (int32_t *)tids.data + row, (float *)tlp.data + row);
                for (int j = 0; j < k; j++)
                    ((float *)tlp.data)[row + j] -= lse;
            }
        }
    }
    if (rc == 0) {
        rf_tensor_view(&tmeta, RF_DTYPE_I64, 1, (int64_t[]){3}, meta);
        const rf_st_item items[] = {
            {"offsets", &toff}, {"ids", &tids}, {"logp", &tlp}, {"meta", &tmeta}};
        rc = rf_st_write(path, items, 4, err);
    }
out:
    rf_trainer_free(&tr);
    rf_tensor_free(&toff), rf_tensor_free(&tids), rf_tensor_free(&tlp);
    free(ids), free(tg), free(idx);
    return rc;
}

int rf_teacher_cache_open(rf_teacher_cache *c, const char *path, rf_error *err)
{
    memset(c, 0, sizeof *c);
    int rc = rf_st_open(&c->f, path, err);
    if (rc < 0) return rc;
    const char *names[] = {"offsets", "ids", "logp", "meta"};
    const rf_dtype dts[] = {RF_DTYPE_I64, RF_DTYPE_I32, RF_DTYPE_F32, RF_DTYPE_I64};
    rf_tensor t[4];
    for (int i = 0; i < 4; i++) {
        const rf_st_entry *e = rf_st_find(&c->f, names[i]);
        if (e) rf_st_view(&c->f, e, &t[i]);
        if (!e || t[i].dtype != dts[i]) {
            rf_st_close(&c->f);
            return rf_errorf(err, RF_EINVAL,
                             "the file is not a teacher cache ('%s' missing or mistyped): give "
                             "the teacher_cache artifact of a teacher-cache job",
                             names[i]);
        }
    }
    const int64_t *meta = t[3].data;
    c->k = (int)meta[0], c->seq_len = (int)meta[1], c->vocab = (int)meta[2];
    c->n = t[0].shape[0] - 1;
    c->offsets = t[0].data, c->ids = t[1].data, c->logp = t[2].data;
    if (t[1].ndim != 2 || t[1].shape[1] != c->k || t[2].shape[0] != t[1].shape[0] ||
        c->offsets[c->n] != t[1].shape[0]) {
        rf_st_close(&c->f);
        return rf_errorf(err, RF_EINVAL,
                         "the teacher cache is inconsistent (offsets and rows "
                         "disagree): run the teacher-cache job again");
    }
    return 0;
}

void rf_teacher_cache_close(rf_teacher_cache *c)
{
    rf_st_close(&c->f);
    memset(c, 0, sizeof *c);
}

int rf_teacher_cache_check(const rf_teacher_cache *c, const rf_train_data *d, int seq_len,
                           int vocab, rf_error *err)
{
    bool ok = c->n == d->n && c->seq_len == seq_len && c->vocab == vocab;
    for (int i = 0; ok && i < d->n; i++)
        ok = c->offsets[i + 1] - c->offsets[i] == (d->ex[i].n < seq_len ? d->ex[i].n : seq_len);
    for (int64_t i = 0; ok && i < c->offsets[c->n] * c->k; i++)
        ok = c->ids[i] >= 0 && c->ids[i] < vocab;
    if (!ok)
        return rf_error_field(err, RF_EINVAL, "teacher_cache",
                              "the teacher cache was built for other examples, seq_len or "
                              "vocabulary (%lld examples, seq_len %d, vocabulary %d; this run: %d, "
                              "%d, %d)",
                              (long long)c->n, c->seq_len, c->vocab, d->n, seq_len, vocab);
    return 0;
}

void rf_teacher_cache_batch(const rf_teacher_cache *c, const int *idx, int B, int T, int *ids,
                            float *logp)
{
    const size_t k = (size_t)c->k;
    for (int b = 0; b < B; b++) {
        const int64_t first = idx[b] >= 0 ? c->offsets[idx[b]] : 0;
        const int n = idx[b] >= 0 ? (int)(c->offsets[idx[b] + 1] - first) : 0;
        for (int t = 0; t < T; t++) {
            int *di = ids + ((size_t)b * T + t) * k;
            float *dl = logp + ((size_t)b * T + t) * k;
            if (t < n) {
                memcpy(di, c->ids + (first + t) * (int64_t)k, sizeof(int) * k);
                memcpy(dl, c->logp + (first + t) * (int64_t)k, sizeof(float) * k);
            } else {
                memset(di, 0, sizeof(int) * k), memset(dl, 0, sizeof(float) * k);
            }
        }
    }
}

/* ---- the `teacher-cache` job ---- */

static const rf_param tc_params[] = {
    {.name = "teacher",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED,
     .ref = "model",
     .help = "the teacher model: a registered model's id or name"},
    {.name = "dataset",
     .type = RF_PARAM_STRING,
     .flags = RF_PARAM_REQUIRED | RF_PARAM_ANSWERS,
     .ref = "dataset",
     .help = "the dataset the train jobs will use (its train split, in order)"},
    {.name = "k",
     .type = RF_PARAM_INT,
     .lo = 1,
     .hi = 1024,
     .def = "32",
     .help = "log-probabilities kept per token (the teacher's top k)"},
    {.name = "seq_len",
     .type = RF_PARAM_INT,
     .lo = 2,
     .hi = 131072,
     .def = "512",
     .help = "the train jobs' seq_len (capped by the teacher's max_position_embeddings)"},
    {.name = "batch", .type = RF_PARAM_INT, .lo = 1, .hi = 4096, .def = "4"},
    {.name = "chat_template",
     .type = RF_PARAM_STRING,
     .help = "chat family; default: detected from the teacher's tokenizer"},
    {0}};

static int tc_run(const json_t *p, rf_job_ctx *ctx, json_t **result, rf_error *err)
{
    int rc = rf_params_check(p, tc_params, "", err);
    if (rc < 0) return rc;
    const char *teacher = rf_param_str(p, tc_params, "teacher", NULL),
               *dataset = rf_param_str(p, tc_params, "dataset", NULL),
               *chat = rf_param_str(p, tc_params, "chat_template", NULL);
    const int k = (int)rf_param_int(p, tc_params, "k", 32),
              B = (int)rf_param_int(p, tc_params, "batch", 4);
    int T = (int)rf_param_int(p, tc_params, "seq_len", 512);
    /* teacher names a model, dataset a dataset: the context says where they are. */
    char *teacher_dir = NULL, *dataset_path = NULL;
    if (!ctx->resolve)
        return rf_errorf(err, RF_EINTERNAL,
                         "teacher-cache: this context cannot resolve references");
    if ((rc = ctx->resolve(ctx, "model", teacher, &teacher_dir, err)) < 0) {
        snprintf(err->field, sizeof err->field, "teacher");
        return rc;
    }
    if ((rc = ctx->resolve(ctx, "dataset", dataset, &dataset_path, err)) < 0) {
        free(teacher_dir);
        snprintf(err->field, sizeof err->field, "dataset");
        return rc;
    }
    teacher = teacher_dir;
    dataset = dataset_path;
    rf_llama_model m;
    rf_tokenizer *tok = NULL;
    rf_train_data train = {0}, val = {0};
    rf_chat_template *ct = NULL;
    char path[4096];
    if ((rc = rf_llama_load(&m, teacher, NULL, err)) < 0) {
        snprintf(err->field, sizeof err->field, "teacher");
        free(teacher_dir), free(dataset_path);
        return rc;
    }
    if ((rc = rf_tokenizer_load(teacher, &tok, err)) < 0) goto out;
    /* a base model without a chat template: plain prompt + response, as train does */
    rc = !chat && !rf_chat_template_present(tok) ? 0 : rf_chat_template_load(tok, chat, &ct, err);
    if (rc < 0) {
        snprintf(err->field, sizeof err->field, "chat_template");
        goto out;
    }
    if (T > m.config.max_pos) T = m.config.max_pos;
    if ((rc = rf_train_data_load(dataset, tok, ct, T, &train, &val, err)) < 0) goto out;
    rf_train_data_report(&train, ctx);
    snprintf(path, sizeof path, "%s/teacher_cache.safetensors", ctx->workdir);
    if ((rc = rf_teacher_cache_build(path, &m, &train, B, T, k, err)) < 0) goto out;
    /* The file becomes an artifact: a train job names it by the artifact's id. */
    if ((rc = ctx->artifact(ctx, "teacher_cache", path, "teacher_cache.safetensors")) < 0) {
        rf_errorf(err, rc, "the teacher cache could not be registered as an artifact");
        goto out;
    }
    *result = json_pack("{s:i,s:i,s:i}", "examples", train.n, "k", k, "seq_len", T);
out:
    free(teacher_dir), free(dataset_path);
    rf_train_data_free(&train), rf_train_data_free(&val);
    rf_chat_template_free(ct);
    if (tok) rf_tokenizer_free(tok);
    rf_llama_free(&m);
    return rc;
}

static const rf_runner g_tc = {
    .type = "teacher-cache",
    .run = tc_run,
    .description = "The teacher's top-k log-probabilities at every answer position of a dataset's "
                   "train split, computed once and kept as an artifact that train jobs name as "
                   "teacher_cache (sparse distillation without the teacher in memory).",
    .params = tc_params};

const rf_runner *rf_teacher_cache_runner(void)
{
    return &g_tc;
}
