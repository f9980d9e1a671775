#include "handlers/health.h"

#include <stdlib.h>
#include <string.h>

#include "service/db.h"
#include "service/embedded.h"
#include "service/metrics.h"
#include "service/migrate.h"

void rf_h_healthz(rf_req *req)
{
    rf_reply_json_text(req, 200, strdup("{\"status\":\"ok\"}"));
}

void rf_h_readyz(rf_req *req)
{
    rf_error err;
    PGconn *c = rf_db_thread(&err);
    if (!c) {
        rf_reply_problem(req, 503, "the database is unreachable", NULL);
        return;
    }
    char latest[64];
    if (rf_migrate_latest(req->cfg->migrations_dir, latest, sizeof latest, &err)) {
        rf_reply_error(req, &err);
        return;
    }
    if (!rf_migrate_is_current(c, latest)) {
        rf_reply_problem(req, 503, "the database schema is not at the version this binary needs",
                         NULL);
        return;
    }
    rf_reply_json_text(req, 200, strdup("{\"status\":\"ready\"}"));
}

void rf_h_metrics(rf_req *req)
{
    rf_error err;
    PGconn *c = rf_db_thread(&err); /* without a database, the process figures still go out */
    char *text = rf_metrics_render(c);
    if (!text) {
        rf_reply_problem(req, 500, "out of memory rendering metrics", NULL);
        return;
    }
    rf_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
}

void rf_h_openapi(rf_req *req)
{
    const rf_embedded_file *f = rf_embedded_find("openapi/openapi.yaml");
    char *copy = f ? malloc(f->size) : NULL;
    if (!copy) {
        rf_reply_problem(req, 500, "the contract is not built into this binary", NULL);
        return;
    }
    memcpy(copy, f->data, f->size);
    rf_reply_text(req, 200, "application/yaml", copy, f->size);
}
