#include "engine/eval/eval_dataset.h"
#include "engine/core/util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/generate/complete.h"
#include "engine/core/dataset.h"
#include "engine/eval/evaluate.h"
#include "engine/eval/latency.h"

static const struct {
    const char *name;
    int bit;
} g_metrics[] = {{"perplexity", RF_METRIC_PERPLEXITY},
                 {"accuracy", RF_METRIC_ACCURACY},
                 {"exact_match", RF_METRIC_EXACT_MATCH},
                 {"latency", RF_METRIC_LATENCY}};

static int metric_bit(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof g_metrics / sizeof *g_metrics; i++)
        if (strlen(g_metrics[i].name) == n && !strncmp(g_metrics[i].name, name, n))
            return g_metrics[i].bit;
    return 0;
}

int rf_eval_parse_metrics(const char *list, int *bits, rf_error *err)
{
    *bits = 0;
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        int b = metric_bit(p, n);
        if (!b)
            return rf_error_field(
                err, RF_EINVAL, "metrics",
                "unknown metric '%.*s' (perplexity, accuracy, exact_match, latency)", (int)n, p);
        *bits |= b;
        if (!p[n]) break;
        p += n + 1;
    }
    return 0;
}

int rf_eval_metrics_json(const json_t *arr, int *bits, rf_error *err)
{
    *bits = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return rf_error_field(err, RF_EINVAL, "metrics",
                              "'metrics' must be a non-empty array of perplexity, accuracy, "
                              "exact_match, latency");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        int b = s ? metric_bit(s, strlen(s)) : 0;
        if (!b) {
            char field[32];
            snprintf(field, sizeof field, "metrics[%zu]", i);
            return rf_error_field(err, RF_EINVAL, field,
                                  "each metric must be one of perplexity, accuracy, exact_match");
        }
        *bits |= b;
    }
    return 0;
}

int rf_eval_parse_split(const char *s, int *split, rf_error *err)
{
    *split = -1;
    if (!s || !strcmp(s, "all")) return 0;
    for (int i = 0; i < RF_SPLIT_COUNT; i++)
        if (!strcmp(s, rf_split_name((rf_split)i))) {
            *split = i;
            return 0;
        }
    return rf_error_field(err, RF_EINVAL, "split",
                          "'split' must be \"train\", \"validation\", \"test\" or \"all\"");
}

/* One row as context text + optional target, in the harness's formatting. */
typedef struct row {
    char *ctx;       /* malloc'd */
    int add_special; /* plain text gets the post-processor's BOS; chat has it */
    const char *target;
    const char *delim; /* before each target: " " plain, "" chat */
    json_t *choices;
    int answer;
} row;

static int format_row(const rf_lm *lm, const json_t *line, bool chat, row *r, rf_error *err)
{
    memset(r, 0, sizeof *r);
    json_t *msgs = json_object_get(line, "messages");
    r->choices = json_object_get(line, "choices");
    r->answer = (int)json_integer_value(json_object_get(line, "answer"));
    rf_chat_msg *m = NULL;
    size_t n = 0;
    if (!msgs && !chat) {
        r->ctx = strdup(json_string_value(json_object_get(line, "prompt")));
        r->add_special = 1;
        r->target = json_string_value(json_object_get(line, "response"));
        r->delim = " ";
        return r->ctx ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    r->delim = "";
    if (!msgs) {
        m = malloc(sizeof *m);
        if (!m) return rf_errorf(err, RF_ENOMEM, "out of memory");
        m[0] = (rf_chat_msg){"user", json_string_value(json_object_get(line, "prompt"))};
        n = 1;
        r->target = json_string_value(json_object_get(line, "response"));
    } else {
        n = json_array_size(msgs);
        m = malloc(sizeof *m * n);
        if (!m) return rf_errorf(err, RF_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(msgs, i);
            m[i] = (rf_chat_msg){json_string_value(json_object_get(x, "role")),
                                 json_string_value(json_object_get(x, "content"))};
        }
        /* The last assistant turn is the target; the turns before, the context. */
        if (!r->choices && !strcmp(m[n - 1].role, "assistant")) r->target = m[--n].content;
    }
    if (!lm->chat) {
        free(m);
        return rf_errorf(err, RF_EUNSUPPORTED, "chat formatting needs a chat template: %s",
                         lm->chat_error);
    }
    json_t *jm = rf_chat_messages(m, n);
    free(m);
    if (!jm) return rf_errorf(err, RF_ENOMEM, "out of memory");
    rf_chat_opts o = {.add_generation_prompt = 1};
    size_t len;
    int rc = rf_chat_render(lm->chat, jm, &o, &r->ctx, &len, err);
    json_decref(jm);
    return rc < 0 ? rc : 0;
}

/* Context ids and the target's ids: those of context+delim+target past the
 * context's length, as lm-evaluation-harness splits them. */
static int encode_pair(const rf_lm *lm, const row *r, const char *target, int32_t **whole,
                       size_t *n_whole, size_t *n_ctx, rf_error *err)
{
    int32_t *c = NULL;
    size_t nc;
    int rc = rf_tokenizer_encode(lm->tok, r->ctx, strlen(r->ctx), r->add_special, &c, &nc, err);
    free(c);
    if (rc < 0) return rc;
    size_t lc = strlen(r->ctx), ld = strlen(r->delim), lt = strlen(target);
    char *s = malloc(lc + ld + lt + 1);
    if (!s) return rf_errorf(err, RF_ENOMEM, "out of memory");
    memcpy(s, r->ctx, lc);
    memcpy(s + lc, r->delim, ld);
    memcpy(s + lc + ld, target, lt + 1);
    rc = rf_tokenizer_encode(lm->tok, s, lc + ld + lt, r->add_special, whole, n_whole, err);
    free(s);
    if (rc < 0) return rc;
    *n_ctx = nc < *n_whole ? nc : *n_whole;
    if (*n_ctx == 0 || *n_ctx == *n_whole) {
        free(*whole);
        *whole = NULL;
        return rf_errorf(err, RF_EINVAL,
                         *n_ctx ? "the target encodes to no tokens"
                                : "the prompt encodes to no tokens");
    }
    return 0;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

typedef struct totals {
    double nll;
    long ppl_tokens, ppl_rows, mc_rows, acc, acc_norm, em_rows, em;
} totals;

/* Activations that grow to the longest sequence seen (capped by the model). */
typedef struct scorer {
    rf_llama_acts a;
    float *scratch;
} scorer;

static int scorer_fit(const rf_lm *lm, scorer *s, int need, rf_error *err)
{
    const rf_llama_config *c = &lm->model.config;
    if (need > c->max_pos)
        return rf_errorf(err, RF_EINVAL, "%d tokens exceed the model's context of %d", need,
                         c->max_pos);
    if (s->a.arena && s->a.max_seq >= need) return 0;
    int seq = s->a.max_seq ? s->a.max_seq : 256;
    while (seq < need)
        seq *= 2;
    if (seq > c->max_pos) seq = c->max_pos;
    rf_llama_acts_free(&s->a);
    free(s->scratch);
    s->scratch = NULL;
    int chunk = seq < 128 ? seq : 128, rc = rf_llama_acts_init(&s->a, c, 1, seq, chunk, err);
    if (rc < 0) return rc;
    if (!(s->scratch = malloc(sizeof(float) * (size_t)chunk * (size_t)c->vocab_size)))
        return rf_errorf(err, RF_ENOMEM, "out of memory for the logits");
    return 0;
}

static int eval_row(const rf_lm *lm, const rf_eval_opts *o, const row *r, scorer *sc, totals *t,
                    rf_error *err)
{
    int32_t *whole = NULL;
    size_t n = 0, nc = 0;
    int rc = 0;
    if (r->choices && (o->metrics & RF_METRIC_ACCURACY)) {
        size_t k = json_array_size(r->choices), n_ctx = 0;
        int32_t **toks = calloc(k, sizeof *toks), *ctx_ids = NULL;
        int *lens = calloc(k, sizeof *lens), *chars = calloc(k, sizeof *chars), longest = 0;
        double *ll = calloc(k, sizeof *ll);
        if (!toks || !lens || !chars || !ll) rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        /* The context is run once; each choice's tokens are those of
         * context+choice past the context's length. */
        if (!rc)
            rc = rf_tokenizer_encode(lm->tok, r->ctx, strlen(r->ctx), r->add_special, &ctx_ids,
                                     &n_ctx, err);
        for (size_t i = 0; i < k && !rc; i++) {
            const char *choice = json_string_value(json_array_get(r->choices, i));
            if ((rc = encode_pair(lm, r, choice, &whole, &n, &nc, err)) < 0) break;
            lens[i] = (int)(n - nc);
            chars[i] = (int)utf8_chars(choice);
            if ((toks[i] = malloc(sizeof **toks * (size_t)lens[i])))
                memcpy(toks[i], whole + nc, sizeof **toks * (size_t)lens[i]);
            else
                rc = rf_errorf(err, RF_ENOMEM, "out of memory");
            if ((int)(n_ctx + (size_t)lens[i]) > longest) longest = (int)n_ctx + lens[i];
            free(whole);
            whole = NULL;
        }
        if (!rc) rc = scorer_fit(lm, sc, longest, err);
        if (!rc)
            rc = rf_eval_choices(&lm->model, &sc->a, ctx_ids, (int)n_ctx, (const int *const *)toks,
                                 lens, (int)k, ll, NULL, err);
        if (!rc) {
            int pred, pred_norm;
            rf_eval_pick(ll, chars, (int)k, &pred, &pred_norm);
            t->mc_rows++;
            t->acc += pred == r->answer;
            t->acc_norm += pred_norm == r->answer;
        }
        for (size_t i = 0; toks && i < k; i++)
            free(toks[i]);
        free(toks);
        free(ctx_ids);
        free(lens);
        free(chars);
        free(ll);
        return rc;
    }
    if (!r->target || r->choices) return 0;
    if ((rc = encode_pair(lm, r, r->target, &whole, &n, &nc, err)) < 0) return rc;
    if (o->metrics & RF_METRIC_PERPLEXITY) {
        double sum;
        if ((rc = scorer_fit(lm, sc, (int)n, err)) < 0 ||
            (rc = rf_llama_score(&lm->model, &sc->a, whole, (int)n, (int)nc, sc->scratch, &sum,
                                 NULL, err)) < 0)
            goto out;
        t->nll -= sum;
        t->ppl_tokens += (long)(n - nc);
        t->ppl_rows++;
    }
    if (o->metrics & RF_METRIC_EXACT_MATCH) {
        int room = lm->model.config.max_pos - (int)nc;
        rf_complete_params cp = {.max_tokens = o->max_new_tokens < room ? o->max_new_tokens : room,
                                 .n = 1,
                                 .sampling = {.temperature = 0, .top_p = 1},
                                 .top_logprobs = -1};
        rf_complete_result res;
        if (cp.max_tokens < 1) {
            rc = rf_errorf(err, RF_EINVAL, "the prompt leaves no room to generate an answer");
            goto out;
        }
        if ((rc = rf_complete(lm, whole, (int)nc, &cp, NULL, NULL, &res, err)) < 0) goto out;
        char *want = strdup(r->target);
        if (!want) {
            rf_complete_result_free(&res);
            rc = rf_errorf(err, RF_ENOMEM, "out of memory");
            goto out;
        }
        t->em_rows++;
        t->em += !strcmp(trim(res.choices[0].text), trim(want));
        free(want);
        rf_complete_result_free(&res);
    }
out:
    free(whole);
    return rc;
}

/* The row's split, or -1 when the line does not say (then it is "train"). */
static int row_split(const json_t *line)
{
    int s;
    const char *name = json_string_value(json_object_get(line, "split"));
    if (!name) return RF_SPLIT_TRAIN;
    return rf_eval_parse_split(name, &s, NULL) == 0 ? s : RF_SPLIT_TRAIN;
}

/* Parse and check one line; NULL with err naming the line when it is bad. */
static json_t *read_line(const char *buf, long lineno, rf_dataset_stats *st, rf_error *err)
{
    json_error_t je;
    json_t *line = json_loads(buf, JSON_REJECT_DUPLICATES, &je);
    rf_error e = {0};
    if (!line) {
        rf_error_field(err, RF_EINVAL, "dataset", "line %ld is not JSON: %s", lineno, je.text);
        return NULL;
    }
    if (rf_dataset_check(line, st, &e) < 0) {
        rf_error_field(err, RF_EINVAL, "dataset", "line %ld: %s%s%s", lineno, e.msg,
                       e.field[0] ? " (field " : "", e.field[0] ? e.field : "");
        if (e.field[0]) strncat(err->msg, ")", sizeof err->msg - strlen(err->msg) - 1);
        json_decref(line);
        return NULL;
    }
    return line;
}

static bool blank(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return !*s;
}

int rf_eval_dataset(const rf_lm *lm, const char *path, const rf_eval_opts *o, json_t **result,
                    rf_error *err)
{
    *result = NULL;
    if (!o->metrics) return rf_error_field(err, RF_EINVAL, "metrics", "no metric was asked for");
    FILE *f = fopen(path, "r");
    if (!f) return rf_error_field(err, RF_EIO, "dataset", "cannot open dataset %s", path);
    char *buf = NULL;
    size_t cap = 0;
    long lineno = 0, total = 0, done = 0;
    int rc = 0;
    rf_dataset_stats st = {0};
    /* First pass: validate every line and count the rows to run, so that
     * progress has a denominator and a bad file fails before any work. */
    while (getline(&buf, &cap, f) > 0) {
        lineno++;
        if (blank(buf)) continue;
        json_t *line = read_line(buf, lineno, &st, err);
        if (!line) {
            rc = RF_EINVAL;
            goto out;
        }
        if (o->split < 0 || row_split(line) == o->split) total++;
        json_decref(line);
    }
    if (o->limit > 0 && total > o->limit) total = o->limit;
    if (total == 0) {
        rc = rf_error_field(err, RF_EINVAL, o->split < 0 ? "dataset" : "split",
                            "the dataset has no rows%s%s", o->split < 0 ? "" : " in split ",
                            o->split < 0 ? "" : rf_split_name((rf_split)o->split));
        goto out;
    }
    rewind(f);
    totals t = {0};
    scorer sc = {0};
    double t0 = rf_now_s(), last_ckpt = t0;
    long skip = 0;
    int32_t *lat_prompt = NULL;
    size_t lat_n = 0;
    if (o->resume) {
        /* Totals are sums, so a run resumed from them ends where one run would. */
        skip = done = (long)json_integer_value(json_object_get(o->resume, "rows"));
        t.nll = json_number_value(json_object_get(o->resume, "nll"));
        t.ppl_tokens = (long)json_integer_value(json_object_get(o->resume, "ppl_tokens"));
        t.ppl_rows = (long)json_integer_value(json_object_get(o->resume, "ppl_rows"));
        t.mc_rows = (long)json_integer_value(json_object_get(o->resume, "mc_rows"));
        t.acc = (long)json_integer_value(json_object_get(o->resume, "acc"));
        t.acc_norm = (long)json_integer_value(json_object_get(o->resume, "acc_norm"));
        t.em_rows = (long)json_integer_value(json_object_get(o->resume, "em_rows"));
        t.em = (long)json_integer_value(json_object_get(o->resume, "em"));
    }
    lineno = 0;
    while (done < total && getline(&buf, &cap, f) > 0) {
        lineno++;
        if (blank(buf)) continue;
        rf_dataset_stats st2 = {0};
        json_t *line = read_line(buf, lineno, &st2, err);
        if (!line) {
            rc = RF_EINVAL;
            break;
        }
        if ((o->split >= 0 && row_split(line) != o->split) || (skip > 0 && skip--)) {
            json_decref(line);
            continue;
        }
        row r;
        rc = format_row(lm, line, o->chat, &r, err);
        if (rc == 0) rc = eval_row(lm, o, &r, &sc, &t, err);
        if (rc == 0 && (o->metrics & RF_METRIC_LATENCY) && !lat_prompt)
            rc = rf_lm_encode_prompt(lm, r.ctx, &lat_prompt, &lat_n, err);
        free(r.ctx);
        json_decref(line);
        if (rc < 0) {
            if (rc != RF_ENOMEM) rf_error_wrap(err, "line %ld", lineno);
            break;
        }
        done++;
        if (o->on_checkpoint && done < total && rf_now_s() - last_ckpt >= o->checkpoint_s) {
            last_ckpt = rf_now_s();
            json_t *state = json_pack(
                "{s:I,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "rows", (json_int_t)done, "nll", t.nll,
                "ppl_tokens", (json_int_t)t.ppl_tokens, "ppl_rows", (json_int_t)t.ppl_rows,
                "mc_rows", (json_int_t)t.mc_rows, "acc", (json_int_t)t.acc, "acc_norm",
                (json_int_t)t.acc_norm, "em_rows", (json_int_t)t.em_rows, "em", (json_int_t)t.em);
            if (state) o->on_checkpoint(o->ctx, state);
            json_decref(state);
        }
        if (o->on_row && !o->on_row(o->ctx, done, total)) {
            rc = rf_errorf(err, RF_ECANCELED, "evaluation stopped after %ld of %ld rows", done,
                           total);
            break;
        }
    }
    rf_llama_acts_free(&sc.a);
    free(sc.scratch);
    rf_latency lat = {0};
    if (rc == 0 && (o->metrics & RF_METRIC_LATENCY)) {
        /* 128 prompt tokens and 32 new ones, as bench/forward times decode,
         * fewer when the model has fewer positions */
        const int maxp = lm->model.config.max_pos;
        const int P = maxp >= 160 ? 128 : maxp / 2, N = maxp >= 160 ? 32 : maxp / 4;
        if (lat_n == 0 || N < 2)
            rc = rf_error_field(err, RF_EINVAL, "metrics",
                                "latency needs a row with a prompt and a model of 8+ positions");
        else
            rc = rf_eval_latency(&lm->model, lat_prompt, (int)lat_n, P, N, 5, &lat, err);
    }
    free(lat_prompt);
    if (rc < 0) goto out;
    json_t *m = json_object();
    if (o->metrics & RF_METRIC_LATENCY) {
        json_object_set_new(m, "decode_tokens_per_s", json_real(lat.decode_tokens_per_s));
        json_object_set_new(m, "latency_ms_per_token", json_real(lat.ms_per_token));
        json_object_set_new(m, "prefill_tokens_per_s", json_real(lat.prefill_tokens_per_s));
        json_object_set_new(m, "first_token_ms", json_real(lat.first_token_ms));
        json_object_set_new(m, "latency_prompt_tokens", json_integer(lat.prompt_tokens));
        json_object_set_new(m, "latency_new_tokens", json_integer(lat.new_tokens));
    }
    json_object_set_new(m, "rows", json_integer(done));
    if (o->metrics & RF_METRIC_PERPLEXITY) {
        bool any = t.ppl_tokens > 0;
        json_object_set_new(m, "perplexity",
                            any ? json_real(exp(t.nll / t.ppl_tokens)) : json_null());
        json_object_set_new(m, "loss", any ? json_real(t.nll / t.ppl_tokens) : json_null());
        json_object_set_new(m, "perplexity_tokens", json_integer(t.ppl_tokens));
        json_object_set_new(m, "perplexity_rows", json_integer(t.ppl_rows));
    }
    if (o->metrics & RF_METRIC_ACCURACY) {
        bool any = t.mc_rows > 0;
        json_object_set_new(m, "acc", any ? json_real((double)t.acc / t.mc_rows) : json_null());
        json_object_set_new(m, "acc_norm",
                            any ? json_real((double)t.acc_norm / t.mc_rows) : json_null());
        json_object_set_new(m, "multiple_choice_rows", json_integer(t.mc_rows));
    }
    if (o->metrics & RF_METRIC_EXACT_MATCH) {
        json_object_set_new(m, "exact_match",
                            t.em_rows ? json_real((double)t.em / t.em_rows) : json_null());
        json_object_set_new(m, "exact_match_rows", json_integer(t.em_rows));
    }
    json_object_set_new(m, "model_bytes", json_integer((json_int_t)rf_lm_bytes(lm)));
    json_object_set_new(m, "seconds", json_real(rf_now_s() - t0));
    *result = m;
out:
    free(buf);
    fclose(f);
    return rc;
}
