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

/* Without a chat template (a base model), as TRL trains prompt/completion
 * data: the prompt's tokens (with the BOS the post-processor adds), then the
 * response's and the EOS, the loss on the response and the EOS only. */
static int plain_example(const json_t *line, const rf_tokenizer *tok, int seq_len,
                         rf_train_example *out, rf_error *err)
{
    if (json_object_get(line, "messages"))
        return rf_error_field(err, RF_EINVAL, "dataset",
                              "messages rows need a chat template, and the model's "
                              "tokenizer_config.json has none: name one in chat_template "
                              "(chatml, llama3, llama2, mistral) or give prompt/response rows");
    const char *pr = json_string_value(json_object_get(line, "prompt")),
               *re = json_string_value(json_object_get(line, "response"));
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int rc = rf_tokenizer_encode(tok, pr, strlen(pr), 1, &a, &na, err);
    if (rc == 0) rc = rf_tokenizer_encode(tok, re, strlen(re), 0, &b, &nb, err);
    const int32_t eos = rf_tokenizer_eos_id(tok);
    const size_t nt = na + nb + (eos >= 0);
    if (rc == 0 && (!(out->ids = malloc(sizeof(int32_t) * (nt ? nt : 1))) ||
                    !(out->mask = malloc(nt ? nt : 1))))
        rc = rf_errorf(err, RF_ENOMEM, "dataset: out of memory");
    if (rc == 0) {
        memcpy(out->ids, a, sizeof(int32_t) * na);
        memcpy(out->ids + na, b, sizeof(int32_t) * nb);
        if (eos >= 0) out->ids[na + nb] = eos;
        memset(out->mask, 0, na);
        memset(out->mask + na, 1, nt - na);
        out->n = (int)(nt < (size_t)seq_len ? nt : (size_t)seq_len);
        out->whole = (int)nt;
        out->prompt = (int)na;
    }
    free(a), free(b);
    return rc;
}

/* One checked line → messages → chat text → tokens and answer mask; 1
 * (and no example) for a line with no answer to learn. chat NULL: plain
 * prompt + response text (plain_example). */
static int example(const json_t *line, const rf_tokenizer *tok, const rf_chat_template *chat,
                   int seq_len, rf_train_example *out, rf_chat_out *co, rf_error *err)
{
    json_t *m = json_object_get(line, "messages");
    /* multiple choice without a response: nothing to learn */
    if (!m && !json_is_string(json_object_get(line, "response"))) return 1;
    if (!chat) return plain_example(line, tok, seq_len, out, err);
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
        out->whole = (int)nt;
        out->prompt = 0;
        while (out->prompt < (int)nt && !out->mask[out->prompt])
            out->prompt++;
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

/* The message when no line gives a training example, saying why and what
 * would do. */
static int none_left(const rf_train_data *d, int seq_len, long lines, rf_error *err)
{
    if (d->skipped)
        return rf_error_field(
            err, RF_EINVAL, "seq_len",
            "no training example has an answer within seq_len %d: the prompts of the %ld train "
            "rows take %d to %d tokens through the chat template; give seq_len of at least %d "
            "(the first answer token of the shortest), or %d to keep every example whole",
            seq_len, d->skipped, d->prompt_min, d->prompt_max, d->prompt_min + 1, d->whole_max);
    if (d->unanswered)
        return rf_error_field(err, RF_EINVAL, "dataset",
                              "the dataset has no train row with an answer to learn from (%ld "
                              "are multiple-choice questions without a 'response'): give rows "
                              "with 'prompt' and 'response', or 'messages' with an assistant turn",
                              d->unanswered);
    return rf_error_field(err, RF_EINVAL, "dataset",
                          "the dataset has no train rows (%ld lines, none in the train split)",
                          lines);
}

int rf_train_data_load(const char *path, const rf_tokenizer *tok, const rf_chat_template *chat,
                       int seq_len, rf_train_data *train, rf_train_data *val, rf_error *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    FILE *f = fopen(path, "r");
    if (!f) return rf_error_field(err, RF_EINVAL, "dataset", "the dataset file cannot be read");
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
            rc = rf_error_field(err, RF_EINVAL, "dataset", "dataset line %ld: %s", lineno, je.text);
            break;
        }
        rf_train_example e = {0};
        rf_chat_out co = {0};
        int got = 0;
        if ((rc = rf_dataset_check(line, &stats, err)) < 0) {
            rf_error_wrap(err, "dataset line %ld", lineno);
        } else if ((got = example(line, tok, chat, seq_len, &e, &co, err)) < 0) {
            rc = got;
            rf_error_wrap(err, "dataset line %ld", lineno);
        } else {
            if (got == 0 && chat && !co.stable && !train->unstable++)
                snprintf(train->unstable_note, sizeof train->unstable_note, "line %ld: %s", lineno,
                         co.note);
            const char *sp = json_string_value(json_object_get(line, "split"));
            rf_train_data *d = sp && !strcmp(sp, "validation") ? val : train;
            if (sp && !strcmp(sp, "test")) d = NULL; /* the test split is evaluation's */
            if (d && (got == 1 || e.prompt >= e.whole)) {
                d->unanswered++; /* no answer token at all, whatever the seq_len */
                free(e.ids), free(e.mask);
            } else if (!d || !has_answer(&e)) {
                if (d) {
                    d->prompt_min =
                        d->skipped && d->prompt_min < e.prompt ? d->prompt_min : e.prompt;
                    d->prompt_max = e.prompt > d->prompt_max ? e.prompt : d->prompt_max;
                    d->whole_max = e.whole > d->whole_max ? e.whole : d->whole_max;
                    d->skipped++;
                }
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
    if (rc == 0 && train->n == 0) rc = none_left(train, seq_len, lineno, err);
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
