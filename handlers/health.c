#include "handlers/health.h"

#include <stdlib.h>
#include <string.h>

#include "service/db.h"
#include "service/log.h"
#include "service/embedded.h"
#include "service/metrics.h"
#include "service/migrate.h"

void rf_h_healthz(rf_req *req)
{
    rf_reply_json_text(req, 200, strdup("{\"status\":\"ok\"}"));
}

/* The schema version the database holds; RF_EIO when the database cannot
 * be reached (a cached connection that died counts: one fresh try). */
static int db_version(char *out, size_t cap, rf_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = rf_db_thread(err);
        if (!c) return RF_EIO;
        PGresult *r;
        int rc = rf_db_exec(c, "SELECT coalesce(max(version), '') FROM schema_migrations", 0, NULL,
                            &r, err);
        if (rc == 0) snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        if (rc == 0) return 0;
        if (PQstatus(c) == CONNECTION_OK) return RF_EDB; /* it answered: no schema */
    }
    return RF_EIO;
}

void rf_h_readyz(rf_req *req)
{
    rf_error err;
    char have[64] = "", latest[64];
    int rc = db_version(have, sizeof have, &err);
    if (rc == RF_EIO) {
        rf_log(RF_LOG_WARN, "readyz: %s", err.msg);
        rf_reply_problem(req, 503,
                         "database unreachable: the server cannot connect to "
                         "PostgreSQL (REFINERY_DATABASE_URL); is it running?",
                         NULL);
        rf_reply_header(req, "Retry-After", "2");
        return;
    }
    if (rf_migrate_latest(req->cfg->migrations_dir, latest, sizeof latest, &err)) {
        rf_reply_error(req, &err);
        return;
    }
    if (rc || strtoull(have, NULL, 10) < strtoull(latest, NULL, 10)) {
        char detail[256];
        snprintf(detail, sizeof detail,
                 "the database schema is at version %s, this binary needs %s: run refinery "
                 "migrate (serve migrates at start)",
                 *have ? have : "none", latest);
        rf_reply_problem(req, 503, detail, NULL);
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
