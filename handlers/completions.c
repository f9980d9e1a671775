#include "handlers/completions.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/generate/complete.h"
#include "service/ids.h"
#include "service/infer.h"
#include "service/resolve.h"

#define RF_DEFAULT_CHAT_TOKENS 4096

/* One request, checked; owned by the task once submitted. */
typedef struct creq {
    bool chat;
    char model[256];
    char id[RF_ID_MAX];
    long long created;
    char *prompt;      /* completions */
    rf_chat_msg *msgs; /* chat; strings borrowed from body */
    size_t n_msgs;
    json_t *body;   /* kept for the borrowed strings */
    int max_tokens; /* 0: the default */
    int n;
    rf_sampler_params sampling;
    char *stop[RF_MAX_STOP_STRINGS];
    int n_stop;
    int top_logprobs; /* -1: none */
    bool stream, include_usage;
    /* results */
    char *json; /* the non-streaming answer */
} creq;

static void creq_free(void *p)
{
    creq *r = p;
    free(r->prompt);
    free(r->msgs);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    json_decref(r->body);
    free(r->json);
    free(r);
}

static int bad(rf_error *err, const char *field, const char *msg)
{
    return rf_error_field(err, RF_EINVAL, field, "%s", msg);
}

static int get_number(const json_t *b, const char *k, double lo, double hi, double def, double *out,
                      rf_error *err)
{
    json_t *v = json_object_get(b, k);
    *out = def;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
        return rf_error_field(err, RF_EINVAL, k, "'%s' must be a number in [%g, %g]", k, lo, hi);
    *out = json_number_value(v);
    return 0;
}

static int get_int(const json_t *b, const char *k, long long lo, long long hi, long long def,
                   long long *out, rf_error *err)
{
    json_t *v = json_object_get(b, k);
    *out = def;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rf_error_field(err, RF_EINVAL, k, "'%s' must be an integer in [%lld, %lld]", k, lo,
                              hi);
    *out = json_integer_value(v);
    return 0;
}

/* The text of a chat message's content: a string, or text parts. */
static int content_text(json_t *content, json_t *body_keep, const char **out, const char *field,
                        rf_error *err)
{
    if (json_is_string(content)) {
        *out = json_string_value(content);
        return 0;
    }
    if (!json_is_array(content) || json_array_size(content) == 0)
        return bad(err, field, "'content' must be a string or an array of text parts");
    /* Joined into a new string kept inside the body, so it lives as long. */
    size_t i, len = 0;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!type || strcmp(type, "text") || !json_is_string(text))
            return bad(err, field,
                       "only text parts ({\"type\": \"text\", \"text\": …}) are supported");
        len += json_string_length(text);
    }
    char *s = malloc(len + 1);
    if (!s) return rf_errorf(err, RF_ENOMEM, "out of memory");
    size_t off = 0;
    json_array_foreach(content, i, part)
    {
        json_t *text = json_object_get(part, "text");
        memcpy(s + off, json_string_value(text), json_string_length(text));
        off += json_string_length(text);
    }
    s[off] = '\0';
    json_t *joined = json_stringn_nocheck(s, off);
    free(s);
    if (!joined) return rf_errorf(err, RF_ENOMEM, "out of memory");
    char key[32];
    snprintf(key, sizeof key, "\x01joined%zu", json_object_size(body_keep));
    json_object_set_new(body_keep, key, joined);
    *out = json_string_value(joined);
    return 0;
}

static int parse(json_t *b, bool chat, creq *r, rf_error *err)
{
    static const char *const common[] = {"model",
                                         "max_tokens",
                                         "temperature",
                                         "top_p",
                                         "top_k",
                                         "n",
                                         "seed",
                                         "stop",
                                         "stream",
                                         "stream_options",
                                         "user",
                                         "presence_penalty",
                                         "frequency_penalty",
                                         "logit_bias",
                                         "logprobs",
                                         NULL};
    static const char *const only_chat[] = {
        "messages", "top_logprobs", "max_completion_tokens", "response_format", "metadata", "store",
        NULL};
    static const char *const only_text[] = {"prompt", "echo", "suffix", "best_of", NULL};
    if (!json_is_object(b)) return bad(err, "", "the request body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        bool ok = false;
        for (const char *const *n = common; *n && !ok; n++)
            ok = !strcmp(*n, k);
        for (const char *const *n = chat ? only_chat : only_text; *n && !ok; n++)
            ok = !strcmp(*n, k);
        if (!ok) return rf_error_field(err, RF_EINVAL, k, "unknown field '%s'", k);
    }
    const char *model = json_string_value(json_object_get(b, "model"));
    if (!model || !*model || strlen(model) >= sizeof r->model)
        return bad(err, "model", "'model' is required: a registered model's id or name");
    snprintf(r->model, sizeof r->model, "%s", model);

    long long x;
    double d;
    int rc;
    const char *mt = chat && json_object_get(b, "max_completion_tokens") ? "max_completion_tokens"
                                                                         : "max_tokens";
    if ((rc = get_int(b, mt, 1, 1 << 20, chat ? 0 : 16, &x, err))) return rc;
    r->max_tokens = (int)x;
    if ((rc = get_int(b, "n", 1, 16, 1, &x, err))) return rc;
    r->n = (int)x;
    if ((rc = get_int(b, "top_k", 0, 1 << 30, 0, &x, err))) return rc;
    r->sampling.top_k = (int)x;
    if ((rc = get_int(b, "seed", -(1LL << 62), 1LL << 62, 0, &x, err))) return rc;
    r->sampling.seed = (uint64_t)x;
    if ((rc = get_number(b, "temperature", 0, 2, 1, &d, err))) return rc;
    r->sampling.temperature = (float)d;
    if ((rc = get_number(b, "top_p", 0, 1, 1, &d, err))) return rc;
    if (d == 0) return bad(err, "top_p", "'top_p' must be greater than 0");
    r->sampling.top_p = (float)d;
    /* Accepted for compatibility at their neutral values only. */
    static const char *const neutral[] = {"presence_penalty", "frequency_penalty", NULL};
    for (const char *const *n = neutral; *n; n++) {
        if ((rc = get_number(b, *n, -2, 2, 0, &d, err))) return rc;
        if (d != 0) return rf_error_field(err, RF_EINVAL, *n, "'%s' is not supported (only 0)", *n);
    }
    json_t *lb = json_object_get(b, "logit_bias");
    if (lb && !json_is_null(lb) && (!json_is_object(lb) || json_object_size(lb)))
        return bad(err, "logit_bias", "'logit_bias' is not supported");

    json_t *stop = json_object_get(b, "stop");
    if (json_is_string(stop)) {
        if (!json_string_length(stop)) return bad(err, "stop", "a stop string must not be empty");
        r->stop[r->n_stop++] = strdup(json_string_value(stop));
    } else if (json_is_array(stop)) {
        if (json_array_size(stop) > RF_MAX_STOP_STRINGS)
            return bad(err, "stop", "'stop' holds at most 4 strings");
        size_t i;
        json_array_foreach(stop, i, v)
        {
            if (!json_is_string(v) || !json_string_length(v))
                return bad(err, "stop", "'stop' must hold non-empty strings");
            r->stop[r->n_stop++] = strdup(json_string_value(v));
        }
    } else if (stop && !json_is_null(stop)) {
        return bad(err, "stop", "'stop' must be a string or an array of strings");
    }
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i]) return rf_errorf(err, RF_ENOMEM, "out of memory");

    json_t *st = json_object_get(b, "stream");
    if (st && !json_is_null(st) && !json_is_boolean(st))
        return bad(err, "stream", "'stream' must be true or false");
    r->stream = json_is_true(st);
    json_t *so = json_object_get(b, "stream_options");
    if (so && !json_is_null(so)) {
        json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_boolean(iu)))
            return bad(err, "stream_options", "'stream_options' must be {\"include_usage\": bool}");
        if (!r->stream)
            return bad(err, "stream_options", "'stream_options' needs \"stream\": true");
        r->include_usage = json_is_true(iu);
    }

    r->top_logprobs = -1;
    json_t *lp = json_object_get(b, "logprobs");
    if (chat) {
        if (lp && !json_is_null(lp) && !json_is_boolean(lp))
            return bad(err, "logprobs", "'logprobs' must be true or false");
        if ((rc = get_int(b, "top_logprobs", 0, RF_MAX_TOP_LOGPROBS, 0, &x, err))) return rc;
        if (json_object_get(b, "top_logprobs") &&
            !json_is_null(json_object_get(b, "top_logprobs")) && !json_is_true(lp))
            return bad(err, "top_logprobs", "'top_logprobs' needs \"logprobs\": true");
        if (json_is_true(lp)) r->top_logprobs = (int)x;
        json_t *rf = json_object_get(b, "response_format");
        const char *rft = json_string_value(json_object_get(rf, "type"));
        if (rf && !json_is_null(rf) && (!rft || strcmp(rft, "text")))
            return bad(err, "response_format", "only {\"type\": \"text\"} is supported");
        json_t *msgs = json_object_get(b, "messages");
        if (!json_is_array(msgs) || !json_array_size(msgs))
            return bad(err, "messages", "'messages' must be a non-empty array");
        r->n_msgs = json_array_size(msgs);
        if (!(r->msgs = calloc(r->n_msgs, sizeof *r->msgs)))
            return rf_errorf(err, RF_ENOMEM, "out of memory");
        size_t i;
        json_array_foreach(msgs, i, v)
        {
            char field[64];
            const char *role = json_string_value(json_object_get(v, "role"));
            snprintf(field, sizeof field, "messages[%zu].role", i);
            if (role && !strcmp(role, "developer")) role = "system";
            if (!role ||
                (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")))
                return bad(err, field, "'role' must be \"system\", \"user\" or \"assistant\"");
            snprintf(field, sizeof field, "messages[%zu].content", i);
            r->msgs[i].role = role;
            if ((rc = content_text(json_object_get(v, "content"), b, &r->msgs[i].content, field,
                                   err)))
                return rc;
        }
    } else {
        if ((rc = get_int(b, "logprobs", 0, 5, -1, &x, err))) return rc;
        r->top_logprobs = (int)x;
        json_t *echo = json_object_get(b, "echo");
        if (json_is_true(echo)) return bad(err, "echo", "'echo' is not supported");
        json_t *suffix = json_object_get(b, "suffix");
        if (suffix && !json_is_null(suffix)) return bad(err, "suffix", "'suffix' is not supported");
        if ((rc = get_int(b, "best_of", 1, 1, 1, &x, err))) return rc;
        json_t *p = json_object_get(b, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
        if (!json_is_string(p))
            return bad(err, "prompt", "'prompt' must be a string (or an array of one string)");
        if (!(r->prompt = strdup(json_string_value(p))))
            return rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- building the answers ------------------------------------------------ */

static json_t *token_text(const rf_lm *lm, int id)
{
    char *s = NULL;
    size_t n = 0;
    if (!rf_tokenizer_id_to_token(lm->tok, id) ||
        rf_tokenizer_decode(lm->tok, &id, 1, RF_DECODE_NO_CLEANUP, &s, &n, NULL) < 0)
        return json_string("");
    json_t *j = json_stringn(s, n);
    free(s);
    return j ? j : json_string("");
}

static json_t *bytes_of(const json_t *str)
{
    json_t *a = json_array();
    const unsigned char *s = (const unsigned char *)json_string_value(str);
    for (size_t i = 0; i < json_string_length(str); i++)
        json_array_append_new(a, json_integer(s[i]));
    return a;
}

/* Log-probabilities of tokens [from, from + n) of c, in the endpoint's form. */
static json_t *logprobs_json(const creq *r, const rf_lm *lm, const rf_complete_choice *c, int from,
                             int n, size_t text_offset)
{
    if (r->top_logprobs < 0 || !c->lp) return json_null();
    if (r->chat) {
        json_t *content = json_array();
        for (int i = from; i < from + n; i++) {
            const rf_complete_token *t = &c->lp[i];
            json_t *tok = token_text(lm, t->id), *top = json_array();
            for (int k = 0; k < t->n_top; k++) {
                json_t *alt = token_text(lm, t->top[k].id);
                json_array_append_new(top,
                                      json_pack("{s:O,s:f,s:o}", "token", alt, "logprob",
                                                (double)t->top[k].logprob, "bytes", bytes_of(alt)));
                json_decref(alt);
            }
            json_array_append_new(content, json_pack("{s:O,s:f,s:o,s:o}", "token", tok, "logprob",
                                                     (double)t->logprob, "bytes", bytes_of(tok),
                                                     "top_logprobs", top));
            json_decref(tok);
        }
        return json_pack("{s:o,s:n}", "content", content, "refusal");
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (int i = from; i < from + n; i++) {
        const rf_complete_token *t = &c->lp[i];
        json_t *tok = token_text(lm, t->id), *top = json_object();
        for (int k = 0; k < t->n_top; k++) {
            json_t *alt = token_text(lm, t->top[k].id);
            json_object_set_new(top, json_string_value(alt), json_real(t->top[k].logprob));
            json_decref(alt);
        }
        json_array_append_new(offs, json_integer((json_int_t)text_offset));
        text_offset += json_string_length(tok);
        json_array_append_new(tokens, tok);
        json_array_append_new(lps, json_real(t->logprob));
        json_array_append_new(tops, top);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs",
                     tops, "text_offset", offs);
}

static const char *finish_name(int f)
{
    return f == RF_FINISH_STOP ? "stop" : "length";
}

static json_t *usage_json(const rf_complete_result *res, int prompt_tokens, int completion_tokens)
{
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", prompt_tokens, "completion_tokens",
                     completion_tokens, "total_tokens", prompt_tokens + completion_tokens);
}

static json_t *envelope(const creq *r, bool chunk)
{
    const char *object =
        r->chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return json_pack("{s:s,s:s,s:I,s:s}", "id", r->id, "object", object, "created",
                     (json_int_t)r->created, "model", r->model);
}

/* ---- streaming ----------------------------------------------------------- */

typedef struct stream_ctx {
    creq *r;
    rf_infer_task *t;
    const rf_lm *lm;
    size_t offsets[16]; /* text_offset per choice, for completion logprobs */
    int completion_tokens;
} stream_ctx;

static bool send_event(rf_infer_task *t, json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(obj);
    if (!s) return false;
    bool ok = rf_infer_emit(t, "data: ", 6) && rf_infer_emit(t, s, strlen(s)) &&
              rf_infer_emit(t, "\n\n", 2);
    free(s);
    return ok;
}

static bool on_piece(void *arg, int seq, const char *text, size_t len, int first, int n,
                     const rf_complete_choice *c, bool final)
{
    stream_ctx *sc = arg;
    if (rf_infer_gone(sc->t)) return false;
    if (!sc->r->stream || (!len && !final)) return true;
    json_t *choice = json_pack("{s:i}", "index", seq);
    if (sc->r->chat) {
        json_t *delta = json_object();
        if (len) json_object_set_new(delta, "content", json_stringn(text, len));
        json_object_set_new(choice, "delta", delta);
    } else {
        json_object_set_new(choice, "text", json_stringn(text, len));
    }
    json_object_set_new(choice, "logprobs",
                        logprobs_json(sc->r, sc->lm, c, first, n, sc->offsets[seq]));
    sc->offsets[seq] += len;
    json_object_set_new(choice, "finish_reason",
                        final ? json_string(finish_name(c->finish)) : json_null());
    json_t *ev = envelope(sc->r, true);
    json_object_set_new(ev, "choices", json_pack("[o]", choice));
    return send_event(sc->t, ev);
}

/* ---- the work, on an inference thread ------------------------------------ */

static void work(rf_infer_task *t, const rf_lm *lm, void *arg)
{
    creq *r = arg;
    rf_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    rf_complete_result res = {0};
    int rc = r->chat ? rf_lm_encode_chat(lm, r->msgs, r->n_msgs, NULL, &ids, &n, &err)
                     : rf_lm_encode_prompt(lm, r->prompt, &ids, &n, &err);
    if (rc < 0) {
        if (!err.field[0])
            snprintf(err.field, sizeof err.field, "%s", r->chat ? "messages" : "prompt");
        if (rc == RF_EUNSUPPORTED) err.code = RF_EINVAL;
        rf_infer_fail(t, &err);
        goto out;
    }
    if (n == 0) { /* checked before a stream opens: an answer still can be a 422 */
        rf_error_field(&err, RF_EINVAL, r->chat ? "messages" : "prompt",
                       "the prompt encodes to no tokens");
        rf_infer_fail(t, &err);
        goto out;
    }
    int ctx_len = lm->model.config.max_pos, room = ctx_len - (int)n;
    if (room < 1) {
        rf_error_field(&err, RF_EINVAL, r->chat ? "messages" : "prompt",
                       "the prompt is %zu tokens; the model's context is %d", n, ctx_len);
        rf_infer_fail(t, &err);
        goto out;
    }
    /* Without max_tokens a chat answer may use the rest of the context, up to
     * RF_DEFAULT_CHAT_TOKENS: the KV cache is sized for it up front, and a
     * 128K-token context would reserve gigabytes for a short answer. */
    int max_tokens = r->max_tokens                   ? r->max_tokens
                     : room < RF_DEFAULT_CHAT_TOKENS ? room
                                                     : RF_DEFAULT_CHAT_TOKENS;
    rf_complete_params p = {.max_tokens = max_tokens,
                            .n = r->n,
                            .sampling = r->sampling,
                            .stop = (const char *const *)r->stop,
                            .n_stop = r->n_stop,
                            .top_logprobs = r->top_logprobs};
    stream_ctx sc = {.r = r, .t = t, .lm = lm};
    if (n + (size_t)max_tokens > (size_t)ctx_len) {
        rf_error_field(&err, RF_EINVAL,
                       r->chat && json_object_get(r->body, "max_completion_tokens")
                           ? "max_completion_tokens"
                           : "max_tokens",
                       "the prompt (%zu tokens) plus %d new tokens exceed the model's context of "
                       "%d tokens",
                       n, max_tokens, ctx_len);
        rf_infer_fail(t, &err);
        goto out;
    }
    if (r->stream) {
        rf_infer_open_stream(t);
        if (r->chat) /* the role first, as OpenAI's streams begin */
            for (int s = 0; s < r->n; s++) {
                json_t *ev = envelope(r, true);
                json_object_set_new(ev, "choices",
                                    json_pack("[{s:i,s:{s:s,s:s},s:n,s:n}]", "index", s, "delta",
                                              "role", "assistant", "content", "", "logprobs",
                                              "finish_reason"));
                send_event(t, ev);
            }
    }
    rc = rf_complete(lm, ids, (int)n, &p, on_piece, &sc, &res, &err);
    if (r->stream) {
        if (rc < 0 && rc != RF_ECANCELED) {
            send_event(
                t, json_pack("{s:{s:s,s:s}}", "error", "message", err.msg, "type", "server_error"));
        } else if (rc == 0) {
            if (r->include_usage) {
                json_t *ev = envelope(r, true);
                json_object_set_new(ev, "choices", json_array());
                json_object_set_new(ev, "usage",
                                    usage_json(&res, res.prompt_tokens, res.completion_tokens));
                send_event(t, ev);
            }
            rf_infer_emit(t, "data: [DONE]\n\n", 14);
        }
        goto out;
    }
    if (rc < 0) {
        rf_infer_fail(t, &err);
        goto out;
    }
    json_t *choices = json_array();
    for (int s = 0; s < res.n; s++) {
        const rf_complete_choice *c = &res.choices[s];
        json_t *ch = json_pack("{s:i}", "index", s);
        if (r->chat)
            json_object_set_new(ch, "message",
                                json_pack("{s:s,s:s%,s:n}", "role", "assistant", "content", c->text,
                                          c->len, "refusal"));
        else
            json_object_set_new(ch, "text", json_stringn(c->text, c->len));
        json_object_set_new(ch, "logprobs", logprobs_json(r, lm, c, 0, c->n_tokens, 0));
        json_object_set_new(ch, "finish_reason", json_string(finish_name(c->finish)));
        json_array_append_new(choices, ch);
    }
    json_t *o = envelope(r, false);
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage_json(&res, res.prompt_tokens, res.completion_tokens));
    r->json = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!r->json) {
        rf_errorf(&err, RF_ENOMEM, "out of memory");
        rf_infer_fail(t, &err);
    }
out:
    rf_complete_result_free(&res);
    free(ids);
}

/* ---- the handler --------------------------------------------------------- */

static void handle(rf_req *req, bool chat)
{
    rf_infer_task *t = rf_infer_task_of(req);
    if (t) { /* called again: the work has answered */
        const rf_error *err;
        if (rf_infer_streaming(t, &err)) {
            rf_infer_reply_stream(req, t);
            return;
        }
        creq *r = rf_infer_arg(t);
        if (err && err->code == RF_ECANCELED) { /* shutdown (a gone client reads nothing) */
            rf_reply_problem(req, 503, "the server is shutting down; retry", NULL);
            rf_reply_header(req, "Retry-After", "1");
        } else if (err)
            rf_reply_error(req, err);
        else {
            rf_reply_json_text(req, 200, r->json);
            r->json = NULL;
        }
        rf_infer_release(req);
        return;
    }
    PGconn *c = rf_req_db(req);
    if (!c) return;
    json_t *body = rf_req_json(req);
    if (!body) return;
    creq *r = calloc(1, sizeof *r);
    rf_error err = {0};
    char *dir = NULL, *adapter = NULL;
    if (!r) {
        json_decref(body);
        rf_reply_problem(req, 500, "out of memory", NULL);
        return;
    }
    r->body = body;
    r->chat = chat;
    r->created = (long long)time(NULL);
    rf_id_new(chat ? "chatcmpl" : "cmpl", r->id);
    if (parse(body, chat, r, &err) < 0) goto fail;
    int rc = rf_resolve(c, req->tenant, "model", r->model, &dir, &err);
    if (rc == RF_ENOTFOUND && !strncmp(r->model, "job_", 4))
        /* a train job's id: its LoRA adapter on its student, as vLLM serves
         * an adapter under its own name */
        rc = rf_resolve_lora(c, req->tenant, req->cfg->data_dir, r->model, &dir, &adapter, &err);
    else if (rc == RF_ENOTFOUND)
        snprintf(err.msg + strlen(err.msg), sizeof err.msg - strlen(err.msg),
                 "; a train job's id serves its LoRA adapter on its student");
    if (rc == RF_ENOTFOUND || rc == RF_EINVAL) snprintf(err.field, sizeof err.field, "model");
    if (rc < 0) goto fail;
    if (rf_infer_submit_adapter(req, dir, adapter, work, r, creq_free, &err) < 0) {
        free(dir);
        free(adapter);
        creq_free(r);
        rf_reply_problem(req, 503, err.msg, NULL);
        rf_reply_header(req, "Retry-After", "1");
        return;
    }
    free(dir);
    free(adapter);
    return;
fail:
    free(dir);
    free(adapter);
    creq_free(r);
    rf_reply_error(req, &err);
}

void rf_h_completions(rf_req *req)
{
    handle(req, false);
}

void rf_h_chat_completions(rf_req *req)
{
    handle(req, true);
}
