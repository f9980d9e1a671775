/* refinery jobs watch: a job's progress in the terminal, from its event
 * stream (GET /v1/jobs/{id}/events as Server-Sent Events), as a client of
 * the HTTP API like any other (libcurl). On a terminal one status line is
 * redrawn (stage, a bar, the latest metrics) with logs above it; elsewhere
 * every event is a line of its own. The job's end prints its result. */
#include "cli/watch.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct watch {
    const char *base, *key, *id;
    bool tty;
    /* the stream's parser */
    char *line;
    size_t len, cap;
    char event[64], data[1 << 16];
    size_t dlen;
    long long last_id;
    bool final;
    /* what the status line shows */
    double progress;
    char message[160], metrics[400], status[32];
    bool drawn;
} watch;

typedef struct buf {
    char *s;
    size_t n;
} buf;

static size_t to_buf(char *p, size_t size, size_t n, void *user)
{
    buf *b = user;
    char *s = realloc(b->s, b->n + size * n + 1);
    if (!s) return 0;
    memcpy(s + b->n, p, size * n);
    b->s = s, b->n += size * n, s[b->n] = '\0';
    return size * n;
}

static struct curl_slist *headers(const watch *w, bool stream)
{
    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", w->key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    if (stream) {
        h = curl_slist_append(h, "Accept: text/event-stream");
        char last[64];
        snprintf(last, sizeof last, "Last-Event-ID: %lld", w->last_id);
        if (w->last_id) h = curl_slist_append(h, last);
    }
    return h;
}

/* GET path as JSON; the HTTP status in *status (0: no answer, *err says why). */
static json_t *get_json(const watch *w, const char *path, long *status, char *err, size_t cap)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", w->base, path);
    CURL *c = curl_easy_init();
    buf b = {0};
    struct curl_slist *h = headers(w, false);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    else
        snprintf(err, cap, "%s: %s", w->base, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *j = b.s ? json_loads(b.s, 0, NULL) : NULL;
    free(b.s);
    return j;
}

static void bar(char *out, size_t cap, double f)
{
    const int W = 30, full = (int)(f * W + 0.5);
    snprintf(out, cap, "[%.*s%.*s] %3d%%", full, "##############################", W - full,
             "------------------------------", (int)(f * 100 + 0.5));
}

/* The status line: status, bar, message, metrics. */
static void draw(watch *w)
{
    char b[64];
    bar(b, sizeof b, w->progress);
    if (w->tty) {
        printf("\r\033[K%s %s%s%s%s%s", w->status, b, *w->message ? "  " : "", w->message,
               *w->metrics ? "  " : "", w->metrics);
        w->drawn = true;
    } else {
        printf("%s %s%s%s%s%s\n", w->status, b, *w->message ? "  " : "", w->message,
               *w->metrics ? "  " : "", w->metrics);
    }
    fflush(stdout);
}

/* A line of its own above the status line. */
static void say(watch *w, const char *fmt, const char *a, const char *b)
{
    if (w->tty && w->drawn) printf("\r\033[K");
    printf(fmt, a, b);
    printf("\n");
    if (w->tty && w->drawn) draw(w);
    fflush(stdout);
}

/* "loss 2.31  lr 0.0002": the numbers of a metrics event, most telling first. */
static void metrics_text(const json_t *d, char *out, size_t cap)
{
    static const char *const first[] = {"step",         "loss",  "ce",         "kl",
                                        "lr",           "layer", "rel_err",    "seconds",
                                        "tokens_per_s", "acc",   "perplexity", NULL};
    size_t n = 0;
    out[0] = '\0';
    for (const char *const *k = first; *k && n + 1 < cap; k++) {
        json_t *v = json_object_get(d, *k);
        if (json_is_integer(v))
            n += (size_t)snprintf(out + n, cap - n, "%s%s %lld", n ? "  " : "", *k,
                                  (long long)json_integer_value(v));
        else if (json_is_real(v))
            n += (size_t)snprintf(out + n, cap - n, "%s%s %.4g", n ? "  " : "", *k,
                                  json_real_value(v));
        else if (json_is_string(v))
            n += (size_t)snprintf(out + n, cap - n, "%s%s %s", n ? "  " : "", *k,
                                  json_string_value(v));
    }
}

static void on_event(watch *w)
{
    json_t *e = json_loads(w->data, 0, NULL);
    const json_t *d = json_object_get(e, "data");
    const char *kind = w->event;
    if (!strcmp(kind, "progress")) {
        w->progress = json_number_value(json_object_get(d, "progress"));
        const char *m = json_string_value(json_object_get(d, "message"));
        snprintf(w->message, sizeof w->message, "%s", m ? m : "");
        snprintf(w->status, sizeof w->status, "running");
        draw(w);
    } else if (!strcmp(kind, "metrics")) {
        /* shown with the next progress line (a step's metrics come just before it) */
        metrics_text(d, w->metrics, sizeof w->metrics);
        if (w->tty) draw(w);
    } else if (!strcmp(kind, "log")) {
        const char *lvl = json_string_value(json_object_get(d, "level"));
        const char *m = json_string_value(json_object_get(d, "message"));
        say(w, "%s: %s", lvl ? lvl : "log", m ? m : "");
    } else if (!strcmp(kind, "status")) {
        const char *s = json_string_value(json_object_get(d, "status"));
        snprintf(w->status, sizeof w->status, "%s", s ? s : "?");
    } else {
        /* eval, artifact, model and a job type's own: the event as it is */
        char *s = json_dumps(d, JSON_COMPACT);
        say(w, "%s: %s", kind, s ? s : "");
        free(s);
    }
    json_decref(e);
}

/* Server-Sent Events, line by line: "id:", "event:", "data:", a blank line
 * ends an event (https://html.spec.whatwg.org/multipage/server-sent-events.html). */
static void on_line(watch *w, const char *l, size_t n)
{
    if (n && l[n - 1] == '\r') n--;
    if (n == 0) {
        if (w->dlen) {
            w->data[w->dlen] = '\0';
            on_event(w);
        }
        w->dlen = 0, w->event[0] = '\0';
        return;
    }
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l) return; /* a comment (keep-alive) */
    size_t k = (size_t)(colon - l);
    const char *v = colon + 1;
    if (v < l + n && *v == ' ') v++;
    size_t vn = (size_t)(l + n - v);
    if (k == 5 && !strncmp(l, "event", 5))
        snprintf(w->event, sizeof w->event, "%.*s", (int)vn, v);
    else if (k == 2 && !strncmp(l, "id", 2))
        w->last_id = atoll(v);
    else if (k == 4 && !strncmp(l, "data", 4) && w->dlen + vn + 1 < sizeof w->data) {
        memcpy(w->data + w->dlen, v, vn);
        w->dlen += vn;
    }
}

static size_t on_stream(char *p, size_t size, size_t n, void *user)
{
    watch *w = user;
    size_t len = size * n;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            on_line(w, w->line ? w->line : "", w->len);
            w->len = 0;
            continue;
        }
        if (w->len + 1 >= w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 4096;
            char *s = realloc(w->line, cap);
            if (!s) return 0;
            w->line = s, w->cap = cap;
        }
        w->line[w->len++] = p[i];
    }
    return len;
}

/* Follow the stream until the server ends it (the job finished); a dropped
 * connection resumes after the last event seen. */
static int follow(watch *w, char *err, size_t cap)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/v1/jobs/%s/events", w->base, w->id);
    for (int tries = 0; tries < 20; tries++) {
        CURL *c = curl_easy_init();
        struct curl_slist *h = headers(w, true);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        /* keep-alive comments come every 15 s: a minute of silence is a dead link */
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (rc == CURLE_OK && status == 200) return 0; /* the server ended it: the job is done */
        if (status && status != 200) {
            snprintf(err, cap, "the event stream answered HTTP %ld", status);
            return -1;
        }
        snprintf(err, cap, "%s", curl_easy_strerror(rc));
        sleep(1);
    }
    return -1;
}

static int usage(void)
{
    fprintf(stderr, "usage: refinery jobs watch JOB_ID [--url URL] [--api-key KEY] [--plain]\n"
                    "  follows a job's events until it ends, then prints its result\n"
                    "  URL: --url, else REFINERY_URL, else http://127.0.0.1:8080\n"
                    "  KEY: --api-key, else REFINERY_API_KEY, else the key make run keeps in "
                    ".run/local-key\n"
                    "  exit status: 0 succeeded, 1 failed or cancelled, 2 could not watch\n");
    return 2;
}

/* The key make run keeps, when run from the checkout. */
static char *local_key(void)
{
    FILE *f = fopen(".run/local-key", "r");
    if (!f) return NULL;
    char k[256] = "";
    char *ok = fgets(k, sizeof k, f);
    fclose(f);
    k[strcspn(k, "\r\n")] = '\0';
    return ok && *k ? strdup(k) : NULL;
}

static void problem(const json_t *j, long status, const char *err)
{
    const char *d = json_string_value(json_object_get(j, "detail"));
    if (status)
        fprintf(stderr, "refinery jobs watch: HTTP %ld: %s\n", status, d ? d : "(no detail)");
    else
        fprintf(stderr, "refinery jobs watch: cannot reach %s\n", err);
}

int rf_cmd_watch(int argc, char **argv)
{
    watch w = {0};
    const char *env_url = getenv("REFINERY_URL"), *env_key = getenv("REFINERY_API_KEY");
    w.base = env_url && *env_url ? env_url : "http://127.0.0.1:8080";
    w.key = env_key && *env_key ? env_key : NULL;
    w.tty = isatty(STDOUT_FILENO);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            w.base = argv[++i];
        else if (!strcmp(argv[i], "--api-key") && i + 1 < argc)
            w.key = argv[++i];
        else if (!strcmp(argv[i], "--plain"))
            w.tty = false;
        else if (argv[i][0] != '-' && !w.id)
            w.id = argv[i];
        else
            return usage();
    }
    if (!w.id) return usage();
    char *kept = w.key ? NULL : local_key();
    if (!w.key) w.key = kept;
    if (!w.key) {
        fprintf(stderr, "refinery jobs watch: no API key: give --api-key KEY or set "
                        "REFINERY_API_KEY (make run keeps one in .run/local-key)\n");
        return 2;
    }
    char base[1024];
    snprintf(base, sizeof base, "%s", w.base);
    while (*base && base[strlen(base) - 1] == '/')
        base[strlen(base) - 1] = '\0';
    w.base = base;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 2;
    char path[256], err[512] = "";
    long status;
    snprintf(path, sizeof path, "/v1/jobs/%s", w.id);
    json_t *job = get_json(&w, path, &status, err, sizeof err);
    if (status != 200) {
        problem(job, status, err);
        goto out;
    }
    const char *type = json_string_value(json_object_get(job, "type"));
    snprintf(w.status, sizeof w.status, "%s", json_string_value(json_object_get(job, "status")));
    w.progress = json_number_value(json_object_get(job, "progress"));
    printf("job %s (%s) on %s\n", w.id, type ? type : "?", w.base);
    draw(&w);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (follow(&w, err, sizeof err) < 0) {
        if (w.tty) printf("\n");
        fprintf(stderr, "refinery jobs watch: the event stream failed: %s\n", err);
        goto out;
    }
    json_decref(job);
    job = get_json(&w, path, &status, err, sizeof err);
    if (status != 200) {
        problem(job, status, err);
        goto out;
    }
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const char *final = json_string_value(json_object_get(job, "status"));
    snprintf(w.status, sizeof w.status, "%s", final ? final : "?");
    w.progress = json_number_value(json_object_get(job, "progress"));
    draw(&w);
    if (w.tty) printf("\n");
    json_t *result = json_object_get(job, "result");
    const char *error = json_string_value(json_object_get(job, "error"));
    printf("%s after %.1f s (attempts %lld)\n", final ? final : "?",
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           (long long)json_integer_value(json_object_get(job, "attempts")));
    if (error) printf("error: %s\n", error);
    if (result && !json_is_null(result)) {
        char *s = json_dumps(result, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("result: %s\n", s ? s : "");
        free(s);
    }
    rc = final && !strcmp(final, "succeeded") ? 0 : 1;
out:
    json_decref(job);
    free(kept);
    free(w.line);
    curl_global_cleanup();
    return rc;
}
