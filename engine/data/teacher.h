/* The data teacher: one interface, chat(messages, sampling) → text,
 * finish_reason, usage, run for many requests at once (DESIGN.md
 * "Teachers"). Two implementations: a registered model run in-process
 * (teacher_lm.h, requests decoded as one batch) and any OpenAI-compatible
 * endpoint (teacher_http.h, libcurl multi with bounded concurrency and
 * backoff). A reply that failed for good carries its error; the caller
 * decides what a failed request means for the job. */
#ifndef RF_TEACHER_H
#define RF_TEACHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"

typedef struct rf_teacher_sampling {
    double temperature, top_p;
    int max_tokens;
    uint64_t seed; /* request i of a call draws with seed + i */
} rf_teacher_sampling;

typedef struct rf_teacher_request {
    const rf_chat_msg *messages;
    size_t n_messages;
} rf_teacher_request;

typedef struct rf_teacher_reply {
    char *text;         /* malloc'd; NULL when the request failed */
    char finish[24];    /* "stop", "length", … as the teacher said */
    long prompt_tokens; /* usage */
    long completion_tokens;
    int retries; /* attempts beyond the first */
    int rc;      /* 0, or why it failed after its retries */
    rf_error err;
} rf_teacher_reply;

typedef struct rf_teacher rf_teacher;
struct rf_teacher {
    char name[256]; /* for events: the model, or "model at base_url" */
    /* Run n requests (at most `concurrency` at once); every reply is filled.
     * Returns RF_ECANCELED when should_stop said so, else 0: the failures
     * are in the replies. */
    int (*chat)(rf_teacher *t, const rf_teacher_request *reqs, size_t n,
                const rf_teacher_sampling *s, rf_teacher_reply *out, rf_error *err);
    void (*destroy)(rf_teacher *t);
    bool (*should_stop)(void *arg); /* may be NULL */
    void *stop_arg;
};

void rf_teacher_reply_clear(rf_teacher_reply *r);
/* One request of one user message. */
int rf_teacher_ask(rf_teacher *t, const char *prompt, const rf_teacher_sampling *s,
                   rf_teacher_reply *out, rf_error *err);
void rf_teacher_free(rf_teacher *t);

#endif
