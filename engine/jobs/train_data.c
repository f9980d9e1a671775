#include "engine/jobs/train_data.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/dataset.h"

static int push(rf_train_data *d, rf_train_example *e, rf_error *err)
{
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 64;
        rf_train_example *p = realloc(d->ex, sizeof *p * (size_t)cap);
        if (!p) return rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
        d->ex = p, d->cap = cap;
    }
    d->ex[d->n++] = *e;
    return 0;
}

/* One checked line → messages → chat text → tokens and answer mask. */
static int example(const json_t *line, const rf_tokenizer *tok, const rf_chat_template *chat,
                   int seq_len, rf_train_example *out, rf_chat_out *co, rf_error *err)
{
    json_t *m = json_object_get(line, "messages");
    json_t *msgs =
        m ? json_incref(m)
          : rf_chat_prompt_response(json_string_value(json_object_get(line, "prompt")),
                                    json_string_value(json_object_get(line, "response")));
    int32_t *ids = NULL;
    rf_token_span *spans = NULL;
    size_t nt = 0;
    int rc = msgs ? rf_chat_render_spans(chat, msgs, NULL, co, err)
                  : rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
    json_decref(msgs);
    if (rc == 0) rc = rf_tokenizer_encode_spans(tok, co->text, co->len, 0, &ids, &spans, &nt, err);
    if (rc == 0) {
        out->mask = malloc(nt ? nt : 1);
        if (!out->mask) rc = rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
    }
    if (rc == 0) {
        rf_chat_answer_mask(co, spans, nt, out->mask);
        out->ids = ids, ids = NULL;
        out->n = (int)(nt < (size_t)seq_len ? nt : (size_t)seq_len);
    }
    free(ids), free(spans);
    return rc;
}

static bool has_answer(const rf_train_example *e)
{
    for (int i = 1; i < e->n; i++)
        if (e->mask[i]) return true;
    return false;
}

int rf_train_data_load(const char *path, const rf_tokenizer *tok, const rf_chat_template *chat,
                       int seq_len, rf_train_data *train, rf_train_data *val, rf_error *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    FILE *f = fopen(path, "r");
    if (!f) return rf_error_field(err, RF_EINVAL, "dataset", "cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    rf_dataset_stats stats = {0};
    while (rc == 0 && (len = getline(&buf, &cap, f)) > 0) {
        lineno++;
        if (len == 1 && buf[0] == '\n') continue;
        json_error_t je;
        json_t *line = json_loadb(buf, (size_t)len, 0, &je);
        if (!line) {
            rc =
                rf_error_field(err, RF_EINVAL, "dataset", "%s line %ld: %s", path, lineno, je.text);
            break;
        }
        rf_train_example e = {0};
        rf_chat_out co = {0};
        if ((rc = rf_dataset_check(line, &stats, err)) < 0) {
            rf_error_wrap(err, "%s line %ld", path, lineno);
        } else if ((rc = example(line, tok, chat, seq_len, &e, &co, err)) < 0) {
            rf_error_wrap(err, "%s line %ld", path, lineno);
        } else {
            if (!co.stable && !train->unstable++)
                snprintf(train->unstable_note, sizeof train->unstable_note, "line %ld: %s", lineno,
                         co.note);
            const char *sp = json_string_value(json_object_get(line, "split"));
            rf_train_data *d = sp && !strcmp(sp, "validation") ? val : train;
            if (sp && !strcmp(sp, "test")) d = NULL; /* the test split is evaluation's */
            if (!d || !has_answer(&e)) {
                if (d) d->skipped++;
                free(e.ids), free(e.mask);
            } else {
                rc = push(d, &e, err);
            }
        }
        rf_chat_out_free(&co);
        json_decref(line);
    }
    free(buf);
    fclose(f);
    if (rc == 0 && train->n == 0)
        rc = rf_error_field(err, RF_EINVAL, "dataset",
                            "%s has no training example with an answer within seq_len", path);
    if (rc < 0) rf_train_data_free(train), rf_train_data_free(val);
    return rc;
}

void rf_train_data_free(rf_train_data *d)
{
    for (int i = 0; d && i < d->n; i++)
        free(d->ex[i].ids), free(d->ex[i].mask);
    if (d) free(d->ex), memset(d, 0, sizeof *d);
}

int rf_train_data_batch(const rf_train_data *d, const int *idx, int B, int T, int pad, int *ids,
                        int *targets)
{
    int n = 0;
    for (int b = 0; b < B; b++) {
        const rf_train_example *e = idx[b] >= 0 ? &d->ex[idx[b]] : NULL;
        for (int t = 0; t < T; t++) {
            const int i = b * T + t;
            ids[i] = e && t < e->n ? e->ids[t] : pad;
            targets[i] = e && t + 1 < e->n && e->mask[t + 1] ? e->ids[t + 1] : -1;
            n += targets[i] >= 0;
        }
    }
    return n;
}

void rf_train_data_report(const rf_train_data *d, rf_job_ctx *ctx)
{
    if (!d->unstable || !ctx || !ctx->event) return;
    json_t *ev = json_pack("{s:s,s:s,s:I,s:s}", "level", "warning", "message",
                           "the chat template is not prefix-stable on some lines: their answer "
                           "masks keep only what the prefix renderings agree on",
                           "lines", (json_int_t)d->unstable, "first", d->unstable_note);
    if (ev) ctx->event(ctx, "log", ev);
    json_decref(ev);
}
