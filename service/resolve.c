#include "service/resolve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
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
    else if (!strcmp(kind, "adapter"))
        /* A train job's PEFT adapter: both of its files must be there. The
         * path answered is the config's; rf_resolve_adapter assembles the folder. */
        sql = "SELECT a.path FROM artifacts a WHERE a.tenant_id = $1 AND a.job_id = $2"
              " AND a.kind = 'adapter' AND a.name = 'adapter_config.json'"
              " AND EXISTS (SELECT 1 FROM artifacts b WHERE b.tenant_id = $1 AND b.job_id = $2"
              "  AND b.kind = 'adapter' AND b.name = 'adapter_model.safetensors')";
    else
        return rf_errorf(err, RF_EINTERNAL, "unknown reference kind '%s'", kind);
    PGresult *r;
    int rc = rf_db_execp(c, sql, 2, (const char *[]){tenant, ref}, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_ENOTFOUND,
                       !strcmp(kind, "model")     ? "no model with id or name '%s'"
                       : !strcmp(kind, "dataset") ? "no dataset with id '%s'"
                       : !strcmp(kind, "adapter") ? "no job with id '%s' has exported an adapter"
                                                  : "no artifact with id '%s'",
                       ref);
    else if (!(*path = strdup(PQgetvalue(r, 0, 0))))
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    PQclear(r);
    return rc;
}

typedef struct check_ctx {
    PGconn *c;
    const char *tenant;
    rf_error *err;
} check_ctx;

/* One reference of params (field is its path inside params). */
static int check_one(void *user, const char *kind, const char *field, const char *value)
{
    check_ctx *k = user;
    char *path = NULL;
    int rc = rf_resolve(k->c, k->tenant, kind, value, &path, k->err);
    free(path);
    if (rc == RF_ENOTFOUND) {
        /* the request is at fault, not the URL: 422, naming the field. The
         * message is copied first: formatting err->msg into itself empties it. */
        char msg[sizeof k->err->msg], full[sizeof k->err->field];
        snprintf(msg, sizeof msg, "%s", k->err->msg);
        snprintf(full, sizeof full, "params.%s", field);
        return rf_error_field(k->err, RF_EINVAL, full, "%s", msg);
    }
    return rc;
}

/* rf_ref_resolver for a runner's check: the tenant's objects. */
static int resolve_for_check(void *user, const char *kind, const char *ref, char **path,
                             rf_error *err)
{
    check_ctx *k = user;
    return rf_resolve(k->c, k->tenant, kind, ref, path, err);
}

int rf_resolve_check(PGconn *c, const char *tenant, const rf_runner *runner, const json_t *params,
                     rf_error *err)
{
    check_ctx k = {c, tenant, err};
    int rc = 0;
    if (runner->params) {
        rc = rf_params_refs(params, runner->params, "", check_one, &k);
    } else {
        for (const rf_runner_ref *ref = rf_runner_refs(runner->type); ref && ref->field && !rc;
             ref++) {
            const char *v = json_string_value(json_object_get(params, ref->field));
            rc = v ? check_one(&k, ref->kind, ref->field, v) : 0;
        }
    }
    if (rc || !runner->check) return rc;
    /* every reference resolves: what the runner can tell from the objects */
    rc = runner->check(params, resolve_for_check, &k, err);
    if (rc == RF_EINVAL || rc == RF_EUNSUPPORTED) {
        char msg[sizeof err->msg], full[sizeof err->field];
        snprintf(msg, sizeof msg, "%s", err->msg);
        snprintf(full, sizeof full, "params%s%s", err->field[0] ? "." : "", err->field);
        return rf_error_field(err, RF_EINVAL, full, "%s", msg);
    }
    return rc;
}

int rf_resolve_adapter(PGconn *c, const char *tenant, const char *job_id, const char *dest,
                       rf_error *err)
{
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT name, path FROM artifacts WHERE tenant_id = $1 AND job_id = $2"
                         " AND kind = 'adapter'",
                         2, (const char *[]){tenant, job_id}, &r, err);
    if (rc) return rc;
    if (mkdir(dest, 0750) && errno != EEXIST)
        rc = rf_errorf(err, RF_EIO, "cannot create %s: %s", dest, strerror(errno));
    int found = 0;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        if (strcmp(name, "adapter_config.json") && strcmp(name, "adapter_model.safetensors"))
            continue;
        char link[4096];
        snprintf(link, sizeof link, "%s/%s", dest, name);
        unlink(link); /* a retried attempt made it already */
        if (symlink(PQgetvalue(r, i, 1), link))
            rc = rf_errorf(err, RF_EIO, "cannot link %s: %s", link, strerror(errno));
        found++;
    }
    PQclear(r);
    if (!rc && found != 2)
        rc = rf_errorf(err, RF_EINVAL, "job %s has not exported a complete adapter", job_id);
    return rc;
}
