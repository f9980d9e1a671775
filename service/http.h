/* The HTTP server on libmicrohttpd: internal epoll thread pool, a body cap,
 * X-Request-Id, an access log line per request, RFC 9457 problem+json for
 * every error, and dispatch through a route table to handlers. Handlers run
 * on pool threads and reply through the rf_reply_* functions below. */
#ifndef RF_HTTP_H
#define RF_HTTP_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "service/config.h"
#include "service/ids.h"
#include "service/router.h"

struct MHD_Connection;
struct MHD_Response;

struct rf_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    char request_id[72];
    char tenant[RF_ID_MAX]; /* set before an authenticated handler runs */
    rf_match match;
    const rf_config *cfg;
    char *body;
    size_t body_len, body_cap;
    bool body_too_big;
    void *stream; /* a streaming route's own state */
    /* The handler suspended the connection and answers when it is resumed
     * (the handler is then called again): see service/infer.h. */
    bool deferred;
    /* Called when the request ends, however it ends (the client may leave
     * while the handler waits); may be NULL. */
    void (*on_end)(rf_req *req);
    struct MHD_Response *resp; /* built, not yet queued */
    bool replied;              /* queued: later replies are ignored */
    int status;
    double start; /* monotonic seconds */
};

typedef struct rf_http rf_http;

int rf_http_start(const rf_config *cfg, const rf_route *routes, rf_http **out, rf_error *err);
/* The port actually bound (REFINERY_LISTEN may ask for port 0). */
int rf_http_port(const rf_http *h);
/* Stop accepting connections; requests in flight carry on. */
void rf_http_quiesce(rf_http *h);
/* Wait up to grace_ms for requests in flight, then stop the server. */
void rf_http_stop(rf_http *h, int grace_ms);

/* ---- for handlers ---- */
const char *rf_req_param(const rf_req *req, int i);
const char *rf_req_query(const rf_req *req, const char *name);
const char *rf_req_header(const rf_req *req, const char *name);
/* An optional integer query parameter in [lo, hi] (def when absent); false
 * after replying 422 naming it. */
bool rf_req_query_int(rf_req *req, const char *name, long long def, long long lo, long long hi,
                      long long *out);
/* This thread's database connection; NULL after replying 503 itself. */
PGconn *rf_req_db(rf_req *req);
/* Parse the body as a JSON value; NULL after replying 400/415 itself. */
json_t *rf_req_json(rf_req *req);

/* Replies. Each queues exactly one response; later calls are ignored. */
void rf_reply_text(rf_req *req, int status, const char *content_type, char *body, size_t len);
void rf_reply_json_text(rf_req *req, int status, char *json); /* takes ownership */
/* length bytes of fd from offset, sent with sendfile; takes ownership of fd. */
void rf_reply_fd(rf_req *req, int status, int fd, uint64_t offset, uint64_t length,
                 const char *content_type);
void rf_reply_empty(rf_req *req, int status);
void rf_reply_json(rf_req *req, int status, json_t *value); /* steals the reference */
/* RFC 9457: type, title, status, detail, instance, request_id, and field when
 * one is at fault. */
void rf_reply_problem(rf_req *req, int status, const char *detail, const char *field);
/* The same with extension members (ext is stolen; may be NULL). */
void rf_reply_problem_ext(rf_req *req, int status, const char *detail, const char *field,
                          json_t *ext);
/* Map an rf_error to its status and reply with a problem. */
void rf_reply_error(rf_req *req, const rf_error *err);
/* A service call's outcome: its JSON with status when rc is 0 (json is
 * taken), else the error's problem. */
void rf_reply_result(rf_req *req, int rc, int status, char *json, const rf_error *err);
void rf_reply_header(rf_req *req, const char *name, const char *value);

#endif
