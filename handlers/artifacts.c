#include "handlers/artifacts.h"

#include "service/artifacts.h"
#include "service/download.h"

void rf_h_artifacts_get(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error err;
    if (rf_artifacts_get(c, req->tenant, rf_req_param(req, 0), &json, &err))
        rf_reply_error(req, &err);
    else
        rf_reply_json_text(req, 200, json);
}

void rf_h_jobs_artifacts(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    char *json = NULL;
    rf_error err;
    if (rf_artifacts_of_job(c, req->tenant, rf_req_param(req, 0), &json, &err))
        rf_reply_error(req, &err);
    else
        rf_reply_json_text(req, 200, json);
}

void rf_h_artifacts_content(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    rf_artifact_file f;
    rf_error err;
    if (rf_artifacts_file(c, req->tenant, rf_req_param(req, 0), &f, &err)) {
        rf_reply_error(req, &err);
        return;
    }
    rf_file_info info = {f.path, f.sha256, f.name, f.content_type, false};
    rf_reply_download(req, &info);
    rf_artifact_file_free(&f);
}

void rf_h_jobs_report(rf_req *req)
{
    PGconn *c = rf_req_db(req);
    if (!c) return;
    rf_artifact_file f;
    rf_error err;
    if (rf_artifacts_of_job_named(c, req->tenant, rf_req_param(req, 0), "report", "report.html", &f,
                                  &err)) {
        rf_reply_error(req, &err);
        return;
    }
    rf_file_info info = {f.path, f.sha256, f.name, "text/html; charset=utf-8", true};
    rf_reply_download(req, &info);
    rf_artifact_file_free(&f);
}
