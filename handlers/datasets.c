#include "handlers/datasets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/datasets.h"
#include "service/download.h"

static void upload_begin(rf_req *req)
{
    const char *name = rf_req_query(req, "name");
    rf_error e;
    if (!name || !*name || strlen(name) > 200) {
        rf_error_field(&e, RF_EINVAL, "name", "?name= is required: 1 to 200 characters");
        rf_reply_error(req, &e);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == '/' || *p == 0x7f) {
            rf_error_field(&e, RF_EINVAL, "name",
                           "the name may not hold control characters or '/'");
            rf_reply_error(req, &e);
            return;
        }
    const char *ct = rf_req_header(req, "Content-Type");
    if (ct && !strncasecmp(ct, "multipart/", 10)) {
        rf_reply_problem(req, 415,
                         "send the JSONL file as the body (application/x-ndjson), not as a form",
                         NULL);
        return;
    }
    const char *cl = rf_req_header(req, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > req->cfg->max_dataset_bytes) {
        char detail[128];
        snprintf(detail, sizeof detail, "datasets are limited to %llu bytes",
                 req->cfg->max_dataset_bytes);
        rf_reply_problem(req, 413, detail, NULL);
        return;
    }
    /* names are unique within a tenant: refuse before the upload, not after */
    PGconn *c = rf_req_db(req);
    if (!c) return;
    if (rf_datasets_name_taken(c, req->tenant, name, &e)) {
        rf_reply_error(req, &e);
        return;
    }
    rf_upload *u;
    if (rf_upload_begin(req->cfg->data_dir, req->tenant, name, req->cfg->max_dataset_bytes, &u,
                        &e)) {
        rf_reply_problem(req, 507, e.msg, NULL);
        return;
    }
    req->stream = u;
}

static void upload_chunk(rf_req *req, const char *data, size_t n)
{
    rf_upload_feed(req->stream, data, n);
}

static void upload_cleanup(rf_req *req)
{
    rf_upload_free(req->stream);
    req->stream = NULL;
}

const rf_body_stream rf_h_datasets_upload_stream = {upload_begin, upload_chunk, upload_cleanup};

void rf_h_datasets_create(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    uint64_t line = 0;
    rf_error e;
    int rc = rf_upload_finish(req->stream, c, &json, &line, &e);
    if (!rc) {
        rf_reply_json_text(req, 201, json);
        return;
    }
    if (rc == RF_EINVAL && line) {
        char detail[700];
        snprintf(detail, sizeof detail, "line %" PRIu64 ": %s", line, e.msg);
        rf_reply_problem_ext(req, 422, detail, e.field,
                             json_pack("{s:I}", "line", (json_int_t)line));
    } else if (rc == RF_EIO) {
        rf_reply_problem(req, 507, e.msg, NULL); /* disk full and the like */
    } else {
        rf_reply_error(req, &e);
    }
}

void rf_h_datasets_list(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    long long limit;
    if (!rf_req_query_int(req, "limit", 20, 1, 100, &limit)) return;
    rf_error e;
    char *json = NULL;
    if (rf_datasets_list(c, req->tenant, rf_req_query(req, "after"), (int)limit, &json, &e))
        rf_reply_error(req, &e);
    else
        rf_reply_json_text(req, 200, json);
}

void rf_h_datasets_get(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error e;
    if (rf_datasets_get(c, req->tenant, rf_req_param(req, 0), &json, &e))
        rf_reply_error(req, &e);
    else
        rf_reply_json_text(req, 200, json);
}

void rf_h_datasets_content(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    rf_dataset_file f;
    rf_error e;
    if (rf_datasets_file(c, req->tenant, rf_req_param(req, 0), &f, &e)) {
        rf_reply_error(req, &e);
        return;
    }
    rf_file_info info = {f.path, f.sha256, f.name, "application/x-ndjson", false};
    rf_reply_download(req, &info);
    rf_dataset_file_free(&f);
}

void rf_h_datasets_delete(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    rf_error e;
    const char *id = rf_req_param(req, 0);
    if (rf_datasets_delete(c, req->tenant, id, &e)) {
        rf_reply_error(req, &e);
        return;
    }
    json_t *o = json_pack("{s:s,s:s,s:b}", "id", id, "object", "dataset.deleted", "deleted", 1);
    rf_reply_json(req, 200, o);
}
