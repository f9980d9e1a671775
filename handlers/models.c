#include "handlers/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "service/download.h"
#include "service/models.h"

void rf_h_models_create(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    json_t *body = rf_req_json(req);
    if (!body) return;
    char *json = NULL;
    rf_error e;
    int rc = rf_models_register(c, req->tenant, req->cfg->model_roots, body, &json, &e);
    json_decref(body);
    rf_reply_result(req, rc, 201, json, &e);
}

void rf_h_models_list(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    long long limit;
    if (!rf_req_query_int(req, "limit", 20, 1, 100, &limit)) return;
    rf_error e;
    char *json = NULL;
    int rc = rf_models_list(c, req->tenant, rf_req_query(req, "after"), (int)limit, &json, &e);
    rf_reply_result(req, rc, 200, json, &e);
}

void rf_h_models_get(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error e;
    int rc = rf_models_get(c, req->tenant, rf_req_param(req, 0), &json, &e);
    rf_reply_result(req, rc, 200, json, &e);
}

void rf_h_models_delete(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    rf_error e;
    const char *id = rf_req_param(req, 0);
    if (rf_models_delete(c, req->tenant, id, &e)) {
        rf_reply_error(req, &e);
        return;
    }
    rf_reply_json(req, 200,
                  json_pack("{s:s,s:s,s:b}", "id", id, "object", "model.deleted", "deleted", 1));
}

void rf_h_models_files(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error e;
    int rc =
        rf_models_files(c, req->tenant, req->cfg->served_roots, rf_req_param(req, 0), &json, &e);
    rf_reply_result(req, rc, 200, json, &e);
}

void rf_h_models_file(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *path = NULL;
    rf_error e;
    const char *name = rf_req_param(req, 1);
    if (rf_models_file_path(c, req->tenant, req->cfg->served_roots, rf_req_param(req, 0), name,
                            &path, &e)) {
        rf_reply_error(req, &e);
        return;
    }
    /* Checkpoints are large and rewritten only by replacing files: like nginx,
     * the validator is the file's size, modification time and inode. */
    struct stat st;
    char etag[96] = "0";
    if (!stat(path, &st))
        snprintf(etag, sizeof etag, "%llx-%llx-%llx", (unsigned long long)st.st_size,
                 (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                     (unsigned long long)st.st_mtim.tv_nsec,
                 (unsigned long long)st.st_ino);
    const char *ct = strstr(name, ".json") ? "application/json" : "application/octet-stream";
    rf_file_info info = {path, etag, name, ct, false};
    rf_reply_download(req, &info);
    free(path);
}
