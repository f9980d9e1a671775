#include "engine/data/teacher_http.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/core/util.h"

typedef struct http_teacher {
    rf_teacher base;
    char *url, *model, *auth; /* auth: "Authorization: Bearer …" */
    json_t *extra;
    double timeout_s, backoff_base_s, backoff_max_s;
    int max_retries, concurrency;
    uint64_t jitter; /* splitmix64 state */
} http_teacher;

/* One request through its attempts. */
typedef struct slot {
    size_t idx;
    CURL *easy;
    struct curl_slist *headers;
    char *body, *resp;
    size_t resp_len, resp_cap;
    double retry_after; /* seconds from the last answer's Retry-After, -1 none */
    int attempt;
    double not_before; /* monotonic seconds */
    bool running, done;
} slot;

bool rf_teacher_url_allowed(const char *url, const char *prefixes)
{
    if (!url || !prefixes || !*prefixes) return false;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) return false;
    const char *auth = strstr(url, "://") + 3, *path = strchr(auth, '/');
    const char *at = strchr(auth, '@');
    if (at && (!path || at < path)) return false;
    for (const char *p = prefixes; *p;) {
        const char *comma = strchr(p, ',');
        size_t k = comma ? (size_t)(comma - p) : strlen(p);
        while (k && (*p == ' ')) /* "a, b" */
            p++, k--;
        while (k && p[k - 1] == ' ')
            k--;
        if (k && !strncmp(url, p, k) &&
            (p[k - 1] == '/' || p[k - 1] == ':' || url[k] == '\0' || url[k] == '/' ||
             url[k] == '?'))
            return true;
        p = comma ? comma + 1 : p + strlen(p);
    }
    return false;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    slot *s = arg;
    size_t n = size * nmemb;
    if (s->resp_len + n + 1 > s->resp_cap) {
        size_t c = s->resp_cap ? s->resp_cap * 2 : 4096;
        while (c < s->resp_len + n + 1)
            c *= 2;
        if (c > (64u << 20)) return 0; /* an answer over 64 MiB: abort the transfer */
        char *r = realloc(s->resp, c);
        if (!r) return 0;
        s->resp = r, s->resp_cap = c;
    }
    memcpy(s->resp + s->resp_len, data, n);
    s->resp_len += n;
    s->resp[s->resp_len] = '\0';
    return n;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    slot *s = arg;
    size_t n = size * nmemb;
    if (n > 12 && !strncasecmp(data, "Retry-After:", 12)) {
        char v[128];
        size_t k = n - 12 < sizeof v - 1 ? n - 12 : sizeof v - 1;
        memcpy(v, data + 12, k);
        v[k] = '\0';
        char *p = v;
        while (*p == ' ' || *p == '\t')
            p++;
        p[strcspn(p, "\r\n")] = '\0';
        char *end;
        double secs = strtod(p, &end);
        if (end != p && *end == '\0' && secs >= 0) {
            s->retry_after = secs;
        } else {
            time_t when = curl_getdate(p, NULL);
            if (when != -1) {
                double d = difftime(when, time(NULL));
                s->retry_after = d > 0 ? d : 0;
            }
        }
    }
    return n;
}

static void slot_reset(slot *s)
{
    if (s->easy) curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    s->easy = NULL;
    s->headers = NULL;
    s->resp_len = 0;
    if (s->resp) s->resp[0] = '\0';
    s->retry_after = -1;
    s->running = false;
}

static int start(http_teacher *t, CURLM *multi, slot *s, rf_error *err)
{
    slot_reset(s);
    if (!(s->easy = curl_easy_init())) return rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (t->auth) s->headers = curl_slist_append(s->headers, t->auth);
    CURL *e = s->easy;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could leave the allow-list */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(t->timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->timeout_s * 1000));
    if (curl_multi_add_handle(multi, e) != CURLM_OK)
        return rf_errorf(err, RF_EINTERNAL, "teacher: cannot start a request");
    s->running = true;
    return 0;
}

/* The message a teacher put in an error body: OpenAI's error.message,
 * problem+json's detail, or the start of the body. */
static void teacher_message(const char *body, char *out, size_t cap)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!m) m = json_string_value(json_object_get(j, "error"));
    if (!m) m = json_string_value(json_object_get(j, "detail"));
    if (!m) m = json_string_value(json_object_get(j, "message"));
    if (m)
        snprintf(out, cap, "%s", m);
    else
        snprintf(out, cap, "%.200s", body && *body ? body : "(no body)");
    json_decref(j);
}

/* What an attempt's end means: 0 done (reply filled), 1 retry, <0 final. */
static int judge_attempt(http_teacher *t, slot *s, CURLcode cc, rf_teacher_reply *r)
{
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    char msg[300];
    if (cc != CURLE_OK) {
        rf_errorf(&r->err, RF_EIO, "teacher %s: %s", t->url,
                  cc == CURLE_OPERATION_TIMEDOUT ? "the request timed out"
                                                 : curl_easy_strerror(cc));
        return 1;
    }
    if (status >= 300 && status < 400) {
        char *loc = NULL;
        curl_easy_getinfo(s->easy, CURLINFO_REDIRECT_URL, &loc);
        rf_errorf(&r->err, RF_EINVAL,
                  "teacher %s answered a redirect (HTTP %ld to %s), which is not followed: give "
                  "the final address as base_url",
                  t->url, status, loc ? loc : "?");
        return RF_EINVAL;
    }
    if (status == 429 || status == 408 || status == 409 || status >= 500) {
        teacher_message(s->resp, msg, sizeof msg);
        rf_errorf(&r->err, RF_EIO, "teacher %s: HTTP %ld: %s", t->url, status, msg);
        return 1;
    }
    if (status != 200) {
        teacher_message(s->resp, msg, sizeof msg);
        rf_errorf(&r->err, RF_EINVAL, "teacher %s refused the request (HTTP %ld): %s", t->url,
                  status, msg);
        return RF_EINVAL;
    }
    json_t *j = json_loads(s->resp ? s->resp : "", 0, NULL);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    const char *text =
        json_string_value(json_object_get(json_object_get(ch, "message"), "content"));
    if (!text) {
        json_decref(j);
        rf_errorf(&r->err, RF_EIO, "teacher %s: the answer is not a chat completion (%.80s)",
                  t->url, s->resp ? s->resp : "");
        return 1;
    }
    r->text = strdup(text);
    const char *fin = json_string_value(json_object_get(ch, "finish_reason"));
    snprintf(r->finish, sizeof r->finish, "%s", fin ? fin : "stop");
    json_t *u = json_object_get(j, "usage");
    r->prompt_tokens = (long)json_integer_value(json_object_get(u, "prompt_tokens"));
    r->completion_tokens = (long)json_integer_value(json_object_get(u, "completion_tokens"));
    json_decref(j);
    if (!r->text) {
        rf_errorf(&r->err, RF_ENOMEM, "teacher: out of memory");
        return RF_ENOMEM;
    }
    return 0;
}

static double backoff(http_teacher *t, const slot *s)
{
    double d = t->backoff_base_s * pow(2, s->attempt - 1);
    d *= 0.5 + 0.5 * rf_unit53(rf_splitmix64(&t->jitter)); /* jitter in [0.5, 1) */
    if (s->retry_after >= 0) d = s->retry_after;           /* the server knows best */
    return d < t->backoff_max_s ? d : t->backoff_max_s;
}

static char *request_body(http_teacher *t, const rf_teacher_request *q,
                          const rf_teacher_sampling *sp, uint64_t seed)
{
    json_t *msgs = json_array();
    for (size_t i = 0; i < q->n_messages; i++)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", q->messages[i].role, "content",
                                              q->messages[i].content));
    json_t *b = json_pack("{s:s,s:o,s:f,s:f,s:i,s:I}", "model", t->model, "messages", msgs,
                          "temperature", sp->temperature, "top_p", sp->top_p, "max_tokens",
                          sp->max_tokens, "seed", (json_int_t)(seed & 0x3fffffffffffffffull));
    if (!b) return NULL;
    if (t->extra) json_object_update(b, t->extra);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static int http_chat(rf_teacher *base, const rf_teacher_request *reqs, size_t n,
                     const rf_teacher_sampling *sp, rf_teacher_reply *out, rf_error *err)
{
    http_teacher *t = (http_teacher *)base;
    int rc = 0;
    slot *slots = calloc(n ? n : 1, sizeof *slots);
    CURLM *multi = curl_multi_init();
    if (!slots || !multi) {
        rc = rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
        goto out;
    }
    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        slots[i].idx = i;
        slots[i].retry_after = -1;
        if (!(slots[i].body = request_body(t, &reqs[i], sp, sp->seed + i))) {
            rc = rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
            goto out;
        }
    }
    size_t left = n, next = 0;
    bool fatal = false; /* a request failed for good: start nothing new */
    int running = 0;
    while (left) {
        if (base->should_stop && base->should_stop(base->stop_arg)) {
            rc = rf_errorf(err, RF_ECANCELED, "teacher: stopped");
            goto out;
        }
        double now = rf_now_s(), wake = now + 0.2;
        for (size_t i = 0; i < n && running < t->concurrency; i++) {
            slot *s = &slots[(next + i) % n];
            if (s->done || s->running) continue;
            if (fatal) { /* never sent: the batch failed already */
                s->done = true;
                left--;
                out[s->idx].rc = rf_errorf(&out[s->idx].err, RF_ECANCELED,
                                           "teacher: not sent, an earlier request failed");
                continue;
            }
            if (s->not_before > now) {
                if (s->not_before < wake) wake = s->not_before;
                continue;
            }
            if ((rc = start(t, multi, s, err)) < 0) goto out;
            running++;
        }
        next = (next + 1) % (n ? n : 1);
        int still = 0;
        curl_multi_perform(multi, &still);
        int ms = (int)((wake - rf_now_s()) * 1000);
        curl_multi_poll(multi, NULL, 0, ms < 0 ? 0 : ms > 200 ? 200 : ms, NULL);
        curl_multi_perform(multi, &still);
        CURLMsg *m;
        int q;
        while ((m = curl_multi_info_read(multi, &q))) {
            if (m->msg != CURLMSG_DONE) continue;
            slot *s;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode cc = m->data.result;
            curl_multi_remove_handle(multi, m->easy_handle);
            running--;
            rf_teacher_reply *r = &out[s->idx];
            int v = judge_attempt(t, s, cc, r);
            s->running = false;
            if (v == 1 && s->attempt < t->max_retries && !fatal) {
                s->attempt++;
                r->retries = s->attempt;
                s->not_before = rf_now_s() + backoff(t, s);
                continue;
            }
            s->done = true;
            left--;
            if (v == 0) {
                rf_error_clear(&r->err);
                continue;
            }
            if (v == 1)
                rf_error_wrap(&r->err, "after %d retr%s", s->attempt,
                              s->attempt == 1 ? "y" : "ies");
            r->rc = v == 1 ? RF_EIO : v;
            fatal = true;
        }
    }
out:
    for (size_t i = 0; slots && i < n; i++) {
        if (slots[i].easy && slots[i].running) curl_multi_remove_handle(multi, slots[i].easy);
        slot_reset(&slots[i]);
        free(slots[i].body);
        free(slots[i].resp);
    }
    free(slots);
    if (multi) curl_multi_cleanup(multi);
    return rc;
}

static void http_destroy(rf_teacher *base)
{
    http_teacher *t = (http_teacher *)base;
    free(t->url);
    free(t->model);
    if (t->auth) {
        /* the key leaves no copy behind in freed memory */
        volatile char *p = t->auth;
        while (*p)
            *p++ = 0;
        free(t->auth);
    }
    json_decref(t->extra);
    free(t);
}

/* libcurl's global state, once per process, whichever worker gets here first. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_failed;

static void curl_start(void)
{
    curl_failed = curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK;
}

int rf_teacher_http_new(const rf_teacher_http_opts *o, rf_teacher **out, rf_error *err)
{
    pthread_once(&curl_once, curl_start);
    if (curl_failed) return rf_errorf(err, RF_EINTERNAL, "libcurl cannot start");
    http_teacher *t = calloc(1, sizeof *t);
    if (!t) return rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
    size_t n = strlen(o->base_url);
    while (n && o->base_url[n - 1] == '/')
        n--;
    if ((t->url = malloc(n + 32)))
        snprintf(t->url, n + 32, "%.*s/chat/completions", (int)n, o->base_url);
    t->model = strdup(o->model);
    if (o->api_key) {
        size_t k = strlen(o->api_key) + 32;
        if ((t->auth = malloc(k))) snprintf(t->auth, k, "Authorization: Bearer %s", o->api_key);
    }
    t->extra = o->extra_body ? json_deep_copy(o->extra_body) : NULL;
    t->timeout_s = o->timeout_s > 0 ? o->timeout_s : 60;
    t->max_retries = o->max_retries >= 0 ? o->max_retries : 6;
    t->concurrency = o->concurrency > 0 ? o->concurrency : 8;
    t->backoff_base_s = o->backoff_base_s > 0 ? o->backoff_base_s : 1;
    t->backoff_max_s = o->backoff_max_s > 0 ? o->backoff_max_s : 60;
    t->jitter = rf_mix64((uint64_t)time(NULL) ^ (uintptr_t)t);
    if (!t->url || !t->model || (o->api_key && !t->auth)) {
        http_destroy(&t->base);
        return rf_errorf(err, RF_ENOMEM, "teacher: out of memory");
    }
    snprintf(t->base.name, sizeof t->base.name, "%s at %.*s", o->model, (int)n, o->base_url);
    t->base.chat = http_chat;
    t->base.destroy = http_destroy;
    *out = &t->base;
    return 0;
}
