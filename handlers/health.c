#include "handlers/health.h"

#include <string.h>

#include "service/db.h"
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
