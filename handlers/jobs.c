#include "handlers/jobs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "service/jobs.h"
#include "service/sse.h"

void rf_h_jobs_create(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    json_t *body = rf_req_json(req);
    if (!body) return;
    char *json = NULL;
    bool created = false;
    rf_error err;
    int rc = rf_jobs_create(c, req->tenant, body, rf_req_header(req, "Idempotency-Key"), &json,
                            &created, &err);
    json_decref(body);
    rf_reply_result(req, rc, created ? 201 : 200, json, &err);
}

void rf_h_jobs_list(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    static const char *const statuses[] = {"queued", "running",   "waiting", "succeeded",
                                           "failed", "cancelled", NULL};
    rf_job_query q = {.type = rf_req_query(req, "type"),
                      .status = rf_req_query(req, "status"),
                      .after = rf_req_query(req, "after"),
                      .parent_id = rf_req_query(req, "parent_id")};
    long long limit;
    if (!rf_req_query_int(req, "limit", 20, 1, 100, &limit)) return;
    q.limit = (int)limit;
    if (q.status) {
        bool ok = false;
        for (const char *const *s = statuses; *s; s++)
            ok |= !strcmp(*s, q.status);
        if (!ok) {
            rf_error e;
            rf_error_field(&e, RF_EINVAL, "status",
                           "'status' must be one of queued, running, waiting, succeeded, "
                           "failed, cancelled");
            rf_reply_error(req, &e);
            return;
        }
    }
    char *json = NULL;
    rf_error err;
    int rc = rf_jobs_list(c, req->tenant, &q, &json, &err);
    rf_reply_result(req, rc, 200, json, &err);
}

void rf_h_jobs_get(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_jobs_get(c, req->tenant, rf_req_param(req, 0), &json, &err);
    rf_reply_result(req, rc, 200, json, &err);
}

void rf_h_jobs_cancel(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_jobs_cancel(c, req->tenant, rf_req_param(req, 0), &json, &err);
    rf_reply_result(req, rc, 200, json, &err);
}

void rf_h_jobs_events(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    long long after, limit;
    if (!rf_req_query_int(req, "after", 0, 0, 9223372036854775807LL, &after) ||
        !rf_req_query_int(req, "limit", 100, 1, 1000, &limit))
        return;
    const char *accept = rf_req_header(req, "Accept");
    if (accept && strstr(accept, "text/event-stream")) {
        /* Last-Event-ID (sent by a reconnecting EventSource) wins over ?after. */
        const char *last = rf_req_header(req, "Last-Event-ID");
        if (last) {
            char *end;
            errno = 0;
            long long v = strtoll(last, &end, 10);
            if (!*last || *end || errno || v < 0) {
                rf_error e;
                rf_error_field(&e, RF_EINVAL, "Last-Event-ID", "Last-Event-ID must be an event id");
                rf_reply_error(req, &e);
                return;
            }
            after = v;
        }
        char *json = NULL;
        rf_error err;
        /* The same ownership check as the list, for one event (or none). */
        if (rf_jobs_events(c, req->tenant, rf_req_param(req, 0), after, 1, &json, &err)) {
            rf_reply_error(req, &err);
            return;
        }
        free(json);
        rf_sse_reply(req, rf_req_param(req, 0), after);
        return;
    }
    char *json = NULL;
    rf_error err;
    int rc = rf_jobs_events(c, req->tenant, rf_req_param(req, 0), after, (int)limit, &json, &err);
    rf_reply_result(req, rc, 200, json, &err);
}
