/* The data teacher as any OpenAI-compatible endpoint (vLLM, llama.cpp,
 * Ollama, OpenAI, refinery itself): POST {base_url}/chat/completions over
 * libcurl multi with `concurrency` requests in flight. 429, 408, 409, 5xx,
 * timeouts and transport errors are retried with exponential backoff and
 * jitter (base·2^k × [0.5, 1), capped), honouring Retry-After in seconds or
 * as an HTTP date; any other 4xx fails at once with the teacher's message;
 * redirects are not followed (a 3xx fails, naming the target). Only http
 * and https. The API key is a value handed in (the runner reads it from the
 * worker's environment); it goes into the Authorization header and nowhere
 * else. */
#ifndef RF_TEACHER_HTTP_H
#define RF_TEACHER_HTTP_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/data/teacher.h"

typedef struct rf_teacher_http_opts {
    const char *base_url; /* ".../v1" */
    const char *model;
    const char *api_key; /* NULL: no Authorization header */
    double timeout_s;    /* per request attempt */
    int max_retries;
    int concurrency;
    const json_t *extra_body; /* merged into every request body (may be NULL) */
    double backoff_base_s;    /* first retry delay before jitter (1) */
    double backoff_max_s;     /* cap of one delay, Retry-After included (60) */
} rf_teacher_http_opts;

int rf_teacher_http_new(const rf_teacher_http_opts *o, rf_teacher **out, rf_error *err);

/* Whether url may be called: it starts with one of the comma-separated
 * prefixes and the match ends at a boundary (the prefix ends with '/' or
 * ':', or url continues with '/' or '?' or ends), it is http(s) and names no user info
 * (no '@' before the path). prefixes NULL or empty: nothing is allowed. */
bool rf_teacher_url_allowed(const char *url, const char *prefixes);

#endif
