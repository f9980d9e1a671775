#include "handlers/studies.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "service/studies.h"

/* An optional body: none (or an empty one) is NULL without an error. */
static bool optional_body(rf_req *req, json_t **body)
{
    *body = NULL;
    if (!req->body_len) return true;
    return (*body = rf_req_json(req)) != NULL;
}

/* The trial number in the path; false after replying 404. */
static bool trial_number(rf_req *req, int *number)
{
    const char *s = rf_req_param(req, 1);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v > 2147483647) {
        rf_error e;
        rf_errorf(&e, RF_ENOTFOUND, "study %s has no trial '%s'", rf_req_param(req, 0), s);
        rf_reply_error(req, &e);
        return false;
    }
    *number = (int)v;
    return true;
}

void rf_h_studies_create(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    json_t *body = rf_req_json(req);
    if (!body) return;
    char *json = NULL;
    bool created = false;
    rf_error err;
    int rc = rf_studies_create(c, req->tenant, body, rf_req_header(req, "Idempotency-Key"), NULL,
                               &json, &created, &err);
    json_decref(body);
    rf_reply_result(req, rc, created ? 201 : 200, json, &err);
}

void rf_h_studies_list(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    long long limit;
    if (!rf_req_query_int(req, "limit", 20, 1, 100, &limit)) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_studies_list(c, req->tenant, rf_req_query(req, "after"), (int)limit, &json, &err);
    rf_reply_result(req, rc, 200, json, &err);
}

void rf_h_studies_get(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_studies_get(c, req->tenant, rf_req_param(req, 0), &json, &err);
    rf_reply_result(req, rc, 200, json, &err);
}

void rf_h_studies_ask(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    json_t *body;
    if (!c || !optional_body(req, &body)) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_studies_ask(c, req->tenant, rf_req_param(req, 0), body, &json, &err);
    json_decref(body);
    rf_reply_result(req, rc, 201, json, &err);
}

void rf_h_studies_trials(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    long long limit, after;
    if (!rf_req_query_int(req, "limit", 100, 1, 1000, &limit) ||
        !rf_req_query_int(req, "after", -1, -1, 2147483647, &after))
        return;
    char *json = NULL;
    rf_error err;
    int rc =
        rf_studies_trials(c, req->tenant, rf_req_param(req, 0), after, (int)limit, &json, &err);
    rf_reply_result(req, rc, 200, json, &err);
}

void rf_h_studies_trial(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    int number;
    if (!c || !trial_number(req, &number)) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_studies_trials(c, req->tenant, rf_req_param(req, 0), number - 1, 1, &json, &err);
    if (!rc) {
        /* the page of one: unwrap it, or say there is no such trial */
        json_t *page = json_loads(json, 0, NULL);
        json_t *t = json_array_get(json_object_get(page, "data"), 0);
        free(json);
        json = NULL;
        if (t && json_integer_value(json_object_get(t, "number")) == number)
            json = json_dumps(t, JSON_COMPACT);
        else
            rc = rf_errorf(&err, RF_ENOTFOUND, "study %s has no trial %d", rf_req_param(req, 0),
                           number);
        json_decref(page);
    }
    rf_reply_result(req, rc, 200, json, &err);
}

static void tell(rf_req *req, const char *state)
{
    PGconn *c = rf_req_db(req);
    int number;
    json_t *body;
    if (!c || !trial_number(req, &number) || !optional_body(req, &body)) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_studies_tell(c, req->tenant, rf_req_param(req, 0), number, state, body, NULL, &json,
                             &err);
    json_decref(body);
    rf_reply_result(req, rc, 200, json, &err);
}

void rf_h_studies_complete(rf_req *req)
{
    tell(req, "complete");
}

void rf_h_studies_fail(rf_req *req)
{
    tell(req, "fail");
}

void rf_h_studies_prune(rf_req *req)
{
    tell(req, "prune");
}

void rf_h_studies_report(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    int number;
    if (!c || !trial_number(req, &number)) return;
    json_t *body = rf_req_json(req);
    if (!body) return;
    char *json = NULL;
    rf_error err;
    int rc = rf_studies_report(c, req->tenant, rf_req_param(req, 0), number, body, &json, &err);
    json_decref(body);
    rf_reply_result(req, rc, 200, json, &err);
}
