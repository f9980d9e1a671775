#include "service/resolve.h"

#include <stdlib.h>
#include <string.h>

#include "service/db.h"

int rf_resolve(PGconn *c, const char *tenant, const char *kind, const char *ref, char **path,
               rf_error *err)
{
    *path = NULL;
    const char *sql;
    if (!strcmp(kind, "model"))
        /* An id wins over a name: names are the user's, ids are unambiguous. */
        sql = "SELECT path FROM models WHERE tenant_id = $1 AND (id = $2 OR name = $2)"
              " ORDER BY (id = $2) DESC LIMIT 1";
    else if (!strcmp(kind, "dataset"))
        sql = "SELECT path FROM datasets WHERE tenant_id = $1 AND id = $2";
    else if (!strcmp(kind, "artifact"))
        sql = "SELECT path FROM artifacts WHERE tenant_id = $1 AND id = $2";
    else
        return rf_errorf(err, RF_EINTERNAL, "unknown reference kind '%s'", kind);
    PGresult *r;
    int rc = rf_db_execp(c, sql, 2, (const char *[]){tenant, ref}, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_ENOTFOUND,
                       !strcmp(kind, "model")     ? "no model with id or name '%s'"
                       : !strcmp(kind, "dataset") ? "no dataset with id '%s'"
                                                  : "no artifact with id '%s'",
                       ref);
    else if (!(*path = strdup(PQgetvalue(r, 0, 0))))
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    PQclear(r);
    return rc;
}

int rf_resolve_check(PGconn *c, const char *tenant, const rf_runner *runner, const json_t *params,
                     rf_error *err)
{
    for (const rf_runner_ref *ref = rf_runner_refs(runner->type); ref && ref->field; ref++) {
        const char *v = json_string_value(json_object_get(params, ref->field));
        if (!v) continue;
        char *path = NULL, field[96];
        int rc = rf_resolve(c, tenant, ref->kind, v, &path, err);
        free(path);
        if (rc == RF_ENOTFOUND) {
            snprintf(field, sizeof field, "params.%s", ref->field);
            /* the request is at fault, not the URL: 422, naming the field */
            return rf_error_field(err, RF_EINVAL, field, "%s", err->msg);
        }
        if (rc) return rc;
    }
    return 0;
}
