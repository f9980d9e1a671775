#include "service/http.h"
#include "service/headers.h"
#include "engine/core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "service/auth.h"
#include "service/db.h"
#include "service/log.h"
#include "service/metrics.h"
#include "service/sse.h"

struct rf_http {
    struct MHD_Daemon *d;
    const rf_config *cfg;
    const rf_route *routes;
    atomic_int in_flight;
};

/* ---- replies ------------------------------------------------------------ */

void rf_reply_header(rf_req *req, const char *name, const char *value)
{
    if (req->resp && !req->replied) MHD_add_response_header(req->resp, name, value);
}

void rf_reply_text(rf_req *req, int status, const char *content_type, char *body, size_t len)
{
    if (req->resp || req->replied) {
        free(body);
        return;
    }
    req->resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    req->status = status;
    if (req->resp && content_type) MHD_add_response_header(req->resp, "Content-Type", content_type);
}

void rf_reply_fd(rf_req *req, int status, int fd, uint64_t offset, uint64_t length,
                 const char *content_type)
{
    if (req->resp || req->replied) {
        close(fd);
        return;
    }
    /* libmicrohttpd sends it with sendfile and closes fd when done. */
    req->resp = MHD_create_response_from_fd_at_offset64(length, fd, offset);
    req->status = status;
    if (!req->resp) {
        close(fd);
        return;
    }
    if (content_type) MHD_add_response_header(req->resp, "Content-Type", content_type);
}

void rf_reply_empty(rf_req *req, int status)
{
    rf_reply_text(req, status, NULL, NULL, 0);
}

void rf_reply_json_text(rf_req *req, int status, char *json)
{
    rf_reply_text(req, status, "application/json", json, json ? strlen(json) : 0);
}

void rf_reply_json(rf_req *req, int status, json_t *value)
{
    char *s = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(value);
    rf_reply_json_text(req, status, s);
}

static const char *problem_slug(int status)
{
    switch (status) {
    case 400:
        return "malformed-request";
    case 401:
        return "unauthorized";
    case 404:
        return "not-found";
    case 405:
        return "method-not-allowed";
    case 409:
        return "conflict";
    case 413:
        return "body-too-large";
    case 415:
        return "unsupported-media-type";
    case 416:
        return "range-not-satisfiable";
    case 422:
        return "validation-error";
    case 503:
        return "unavailable";
    default:
        return status >= 500 ? "internal-error" : "client-error";
    }
}

void rf_reply_problem(rf_req *req, int status, const char *detail, const char *field)
{
    rf_reply_problem_ext(req, status, detail, field, NULL);
}

void rf_reply_problem_ext(rf_req *req, int status, const char *detail, const char *field,
                          json_t *ext)
{
    char type[96];
    snprintf(type, sizeof type, "urn:refinery:problem:%s", problem_slug(status));
    const char *title = MHD_get_reason_phrase_for((unsigned)status);
    json_t *p = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s}", "type", type, "title",
                          title && *title ? title : "Error", "status", status, "detail",
                          detail ? detail : "", "instance", req->path ? req->path : "",
                          "request_id", req->request_id);
    if (p && field && *field) json_object_set_new(p, "field", json_string(field));
    if (p && ext) json_object_update(p, ext);
    json_decref(ext);
    char *s = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(p);
    if (!s) s = strdup("{\"title\":\"Error\"}");
    rf_reply_text(req, status, "application/problem+json", s, s ? strlen(s) : 0);
}

void rf_reply_result(rf_req *req, int rc, int status, char *json, const rf_error *err)
{
    if (rc) {
        free(json);
        rf_reply_error(req, err);
    } else {
        rf_reply_json_text(req, status, json);
    }
}

void rf_reply_error(rf_req *req, const rf_error *err)
{
    int status;
    switch (err->code) {
    case RF_EINVAL:
        status = 422;
        break;
    case RF_EUNSUPPORTED:
        status = 422;
        break;
    case RF_ENOTFOUND:
        status = 404;
        break;
    case RF_ECONFLICT:
        status = 409;
        break;
    case RF_ECANCELED:
        status = 409;
        break;
    case RF_EAUTH:
        status = 401;
        break;
    case RF_ETOOBIG:
        status = 413;
        break;
    case RF_ERANGE:
        status = 416;
        break;
    case RF_EDB:
        status = 503;
        break;
    default:
        status = 500;
        break;
    }
    if (status >= 500) rf_log(RF_LOG_ERROR, "request %s: %s", req->request_id, err->msg);
    /* Server-side details stay in the log; the client gets a sentence it can use. */
    const char *detail = status == 503   ? "the database is unavailable; retry later"
                         : status == 500 ? "internal error; see the server log for this request id"
                                         : err->msg;
    rf_reply_problem(req, status, detail, err->field);
    /* A database restart or failover takes seconds; a client may retry then. */
    if (status == 503) rf_reply_header(req, "Retry-After", "2");
}

/* ---- request helpers ---------------------------------------------------- */

const char *rf_req_param(const rf_req *req, int i)
{
    return i < req->match.nparams ? req->match.params[i] : NULL;
}

const char *rf_req_query(const rf_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool rf_req_query_int(rf_req *req, const char *name, long long def, long long lo, long long hi,
                      long long *out)
{
    const char *v = rf_req_query(req, name);
    *out = def;
    if (!v) return true;
    long long x;
    if (!rf_parse_int_in(v, lo, hi, &x)) {
        rf_error e;
        rf_error_field(&e, RF_EINVAL, name, "'%s' must be an integer in [%lld, %lld]", name, lo,
                       hi);
        rf_reply_error(req, &e);
        return false;
    }
    *out = x;
    return true;
}

const char *rf_req_header(const rf_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

PGconn *rf_req_db(rf_req *req)
{
    rf_error err;
    PGconn *c = rf_db_thread(&err);
    if (!c) {
        rf_log(RF_LOG_ERROR, "request %s: %s", req->request_id, err.msg);
        rf_reply_problem(req, 503, "the database is unavailable; retry later", NULL);
        rf_reply_header(req, "Retry-After", "2");
    }
    return c;
}

json_t *rf_req_json(rf_req *req)
{
    /* Lenient on purpose: `curl -d` labels JSON as form data. Only a type that
     * can never be JSON is refused. */
    const char *ct = rf_req_header(req, "Content-Type");
    if (ct && !strncasecmp(ct, "multipart/", 10)) {
        rf_reply_problem(req, 415, "the request body must be JSON (application/json)", NULL);
        return NULL;
    }
    if (!req->body_len) {
        rf_reply_problem(req, 400, "the request needs a JSON body", NULL);
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
        char detail[300];
        snprintf(detail, sizeof detail, "malformed JSON at line %d, column %d: %s", je.line,
                 je.column, je.text);
        rf_reply_problem(req, 400, detail, NULL);
    }
    return v;
}

/* ---- the libmicrohttpd glue --------------------------------------------- */

static enum MHD_Result send_reply(rf_req *req)
{
    if (!req->resp) rf_reply_problem(req, 500, "the handler produced no response", NULL);
    if (!req->resp) return MHD_NO;
    MHD_add_response_header(req->resp, "X-Request-Id", req->request_id);
    enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)req->status, req->resp);
    MHD_destroy_response(req->resp);
    req->resp = NULL;
    req->replied = true;
    return r;
}

/* Route and authenticate; false after replying (404, 405, 401, 503). */
static bool admit(rf_http *h, rf_req *req)
{
    if (!rf_route_match(h->routes, req->method, req->path, &req->match)) {
        if (req->match.allow[0]) {
            char detail[128];
            snprintf(detail, sizeof detail, "%s is not allowed here; allowed: %s", req->method,
                     req->match.allow);
            rf_reply_problem(req, 405, detail, NULL);
            rf_reply_header(req, "Allow", req->match.allow);
        } else {
            rf_reply_problem(req, 404, "no such route", NULL);
        }
        return false;
    }
    if (req->match.route->public_route) return true;
    PGconn *c = rf_req_db(req);
    if (!c) return false;
    rf_error err;
    int rc = rf_auth_bearer(c, rf_req_header(req, "Authorization"), req->tenant, &err);
    if (rc == RF_EAUTH) {
        /* No detail on why: missing, malformed, unknown and revoked look alike. */
        rf_reply_problem(req, 401, "a valid API key is required (Authorization: Bearer <key>)",
                         NULL);
        rf_reply_header(req, "WWW-Authenticate", "Bearer");
        return false;
    }
    if (rc) {
        rf_reply_error(req, &err);
        return false;
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    rf_http *h = cls;
    rf_req *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req) return MHD_NO;
        *con_cls = req;
        atomic_fetch_add(&h->in_flight, 1);
        req->conn = conn;
        req->method = method;
        req->path = url;
        req->cfg = h->cfg;
        req->start = rf_now_s();
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && rf_request_id_valid(rid))
            snprintf(req->request_id, sizeof req->request_id, "%s", rid);
        else
            rf_id_new("req", req->request_id);
        /* Everything that can be refused before the body is, without reading it. */
        if (!admit(h, req)) return send_reply(req);
        const rf_body_stream *st = req->match.route->stream;
        if (st) {
            if (st->begin) st->begin(req);
            return req->resp ? send_reply(req) : MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->cfg->max_body_bytes) {
            req->body_too_big = true;
            char detail[128];
            snprintf(detail, sizeof detail, "the request body exceeds %zu bytes",
                     h->cfg->max_body_bytes);
            rf_reply_problem(req, 413, detail, NULL);
            return send_reply(req);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->replied || req->resp) return MHD_YES; /* answered already: drop the rest */
        if (req->match.route->stream) {
            req->match.route->stream->chunk(req, upload, n);
            return MHD_YES;
        }
        if (req->body_too_big || req->body_len + n > h->cfg->max_body_bytes) {
            req->body_too_big = true;
            return MHD_YES;
        }
        if (req->body_len + n + 1 > req->body_cap) {
            size_t cap = req->body_cap ? req->body_cap : 4096;
            while (cap < req->body_len + n + 1)
                cap *= 2;
            char *b = realloc(req->body, cap);
            if (!b) return MHD_NO;
            req->body = b;
            req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, upload, n);
        req->body_len += n;
        req->body[req->body_len] = '\0';
        return MHD_YES;
    }
    if (req->replied) return MHD_YES;
    if (!req->resp) {
        if (req->body_too_big) {
            char detail[128];
            snprintf(detail, sizeof detail, "the request body exceeds %zu bytes",
                     h->cfg->max_body_bytes);
            rf_reply_problem(req, 413, detail, NULL);
        } else {
            req->match.route->handler(req);
            if (!req->resp && req->deferred) {
                req->deferred = false;
                return MHD_YES; /* suspended; the handler runs again on resume */
            }
        }
    }
    return send_reply(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rf_http *h = cls;
    rf_req *req = *con_cls;
    if (!req) return;
    if (req->match.route && req->match.route->stream && req->match.route->stream->cleanup)
        req->match.route->stream->cleanup(req);
    if (req->on_end) req->on_end(req);
    rf_metrics_request(req->match.route, req->status, rf_now_s() - req->start);
    if (h->cfg->access_log)
        rf_log_access(req->request_id, req->method, req->path, req->status,
                      (rf_now_s() - req->start) * 1000.0, req->tenant);
    if (req->resp) MHD_destroy_response(req->resp);
    free(req->body);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&h->in_flight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    rf_log(RF_LOG_WARN, "http: %s", msg);
}

int rf_http_start(const rf_config *cfg, const rf_route *routes, rf_http **out, rf_error *err)
{
    rf_http *h = calloc(1, sizeof *h);
    if (!h) return rf_errorf(err, RF_ENOMEM, "out of memory");
    h->cfg = cfg;
    h->routes = routes;
    rf_metrics_init(routes);
    rf_db_set_url(cfg->database_url);

    struct sockaddr_storage ss = {0};
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (inet_pton(AF_INET, cfg->listen_host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->listen_port);
    } else if (inet_pton(AF_INET6, cfg->listen_host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->listen_port);
        flags |= MHD_USE_IPv6;
    } else {
        free(h);
        return rf_error_field(err, RF_EINVAL, "REFINERY_LISTEN",
                              "REFINERY_LISTEN host '%s' is not an IP address", cfg->listen_host);
    }
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
                            NULL, /* first, so that it sees everything */
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return rf_errorf(err, RF_EIO, "cannot listen on %s:%d (in use, or not allowed)",
                         cfg->listen_host, cfg->listen_port);
    }
    int rc = rf_sse_start(cfg->sse_max_streams, cfg->sse_ping_ms, err);
    if (rc) {
        MHD_stop_daemon(h->d);
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

int rf_http_port(const rf_http *h)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : -1;
}

void rf_http_quiesce(rf_http *h)
{
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET) close(s);
}

void rf_http_stop(rf_http *h, int grace_ms)
{
    if (!h) return;
    rf_sse_stop(); /* streams end, so that nothing stays in flight for ever */
    double deadline = rf_now_s() + grace_ms / 1000.0;
    while (atomic_load(&h->in_flight) > 0 && rf_now_s() < deadline)
        usleep(10000);
    MHD_stop_daemon(h->d);
    free(h);
}
