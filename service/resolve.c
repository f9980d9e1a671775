#include "service/resolve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "service/db.h"
#include "service/ids.h"

/* Why a train job gives no adapter, in words a user can act on. */
static int adapter_missing(PGconn *c, const char *tenant, const char *ref, rf_error *err)
{
    PGresult *r;
    int rc = rf_db_execp(c, "SELECT type, status FROM jobs WHERE tenant_id = $1 AND id = $2", 2,
                         (const char *[]){tenant, ref}, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_ENOTFOUND,
                       "no job with id '%s': give the id of a train job (method lora) that "
                       "has succeeded (GET /v1/jobs?type=train lists them)",
                       ref);
    else if (strcmp(PQgetvalue(r, 0, 0), "train"))
        rc = rf_errorf(err, RF_EINVAL,
                       "job %s is a %s job, which makes no adapter: give the id of a train job "
                       "(method lora)",
                       ref, PQgetvalue(r, 0, 0));
    else if (strcmp(PQgetvalue(r, 0, 1), "succeeded"))
        rc = rf_errorf(err, RF_EINVAL,
                       "train job %s has not succeeded (it is %s): its adapter exists once it "
                       "has; wait for it or give another job",
                       ref, PQgetvalue(r, 0, 1));
    else
        rc = rf_errorf(err, RF_EINVAL,
                       "train job %s exported no adapter (method full, or export without "
                       "\"adapter\"): train with method lora and export [\"adapter\"]",
                       ref);
    PQclear(r);
    return rc;
}

/* An artifact of another kind given as a teacher cache. */
static int teacher_cache_missing(PGconn *c, const char *tenant, const char *ref, rf_error *err)
{
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT kind, name, coalesce(job_id, '') FROM artifacts"
                         " WHERE tenant_id = $1 AND id = $2",
                         2, (const char *[]){tenant, ref}, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_ENOTFOUND,
                       "no artifact with id '%s': give the id of the teacher_cache artifact a "
                       "teacher-cache job registered (GET /v1/jobs/{id}/artifacts lists them)",
                       ref);
    else
        rc = rf_errorf(err, RF_EINVAL,
                       "artifact %s is not a teacher cache but the %s file '%s'%s%s: give the id "
                       "of the teacher_cache artifact a teacher-cache job registered",
                       ref, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
                       *PQgetvalue(r, 0, 2) ? " of job " : "", PQgetvalue(r, 0, 2));
    PQclear(r);
    return rc;
}

int rf_resolve(PGconn *c, const char *tenant, const char *kind, const char *ref, char **path,
               rf_error *err)
{
    *path = NULL;
    const char *sql;
    /* An id wins over a name: names are the user's, ids are unambiguous. */
    if (!strcmp(kind, "model"))
        sql = "SELECT path FROM models WHERE tenant_id = $1 AND (id = $2 OR name = $2)"
              " ORDER BY (id = $2) DESC LIMIT 1";
    else if (!strcmp(kind, "dataset"))
        sql = "SELECT path FROM datasets WHERE tenant_id = $1 AND (id = $2 OR name = $2)"
              " ORDER BY (id = $2) DESC LIMIT 1";
    else if (!strcmp(kind, "artifact"))
        sql = "SELECT path FROM artifacts WHERE tenant_id = $1 AND id = $2";
    else if (!strcmp(kind, "teacher_cache"))
        sql = "SELECT path FROM artifacts WHERE tenant_id = $1 AND id = $2"
              " AND kind = 'teacher_cache'";
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
    if (PQntuples(r) == 0) {
        if (!strcmp(kind, "adapter"))
            rc = adapter_missing(c, tenant, ref, err);
        else if (!strcmp(kind, "teacher_cache"))
            rc = teacher_cache_missing(c, tenant, ref, err);
        else
            rc = rf_errorf(
                err, RF_ENOTFOUND,
                !strcmp(kind, "model")
                    ? "no model with id or name '%s': register one with POST /v1/models "
                      "(GET /v1/models lists this tenant's models)"
                : !strcmp(kind, "dataset")
                    ? "no dataset with id or name '%s': upload one with POST /v1/datasets "
                      "(GET /v1/datasets lists this tenant's datasets)"
                    : "no artifact with id '%s': GET /v1/jobs/{id}/artifacts lists a job's files",
                ref);
    } else if (!(*path = strdup(PQgetvalue(r, 0, 0)))) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    PQclear(r);
    return rc;
}

typedef struct check_ctx {
    PGconn *c;
    const char *tenant;
    rf_error *err;
} check_ctx;

/* A dataset a job learns from must have train rows with answers. The
 * count is kept at upload (NULL for datasets stored before it was). */
static int check_answers(PGconn *c, const char *tenant, const char *ref, rf_error *err)
{
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT id, rows_train, rows_validation + rows_test, multiple_choice,"
                         " train_answers FROM datasets WHERE tenant_id = $1 AND (id = $2 OR"
                         " name = $2) ORDER BY (id = $2) DESC LIMIT 1",
                         2, (const char *[]){tenant, ref}, &r, err);
    if (rc || PQntuples(r) == 0 || PQgetisnull(r, 0, 4) || atoll(PQgetvalue(r, 0, 4)) > 0) {
        PQclear(r);
        return rc;
    }
    const char *id = PQgetvalue(r, 0, 0);
    long long train = atoll(PQgetvalue(r, 0, 1)), other = atoll(PQgetvalue(r, 0, 2)),
              mc = atoll(PQgetvalue(r, 0, 3));
    if (train == 0)
        rc = rf_errorf(err, RF_EINVAL,
                       "dataset %s has no rows in its train split (its %lld rows are validation "
                       "or test): give rows without a split, or with \"split\": \"train\"",
                       id, other);
    else
        rc = rf_errorf(err, RF_EINVAL,
                       "dataset %s has no train row with an answer to learn from (%lld of its "
                       "%lld train rows are multiple-choice questions without a 'response'): give "
                       "rows with 'prompt' and 'response', or 'messages' with an assistant turn "
                       "(multiple-choice rows are for evaluate)",
                       id, mc, train);
    PQclear(r);
    return rc;
}

/* One reference of params (field is its path inside params). */
static int check_one(void *user, const rf_param *p, const char *field, const char *value)
{
    check_ctx *k = user;
    char *path = NULL;
    int rc = rf_resolve(k->c, k->tenant, p->ref, value, &path, k->err);
    free(path);
    if (rc == 0 && (p->flags & RF_PARAM_ANSWERS) && !strcmp(p->ref, "dataset"))
        rc = check_answers(k->c, k->tenant, value, k->err);
    if (rc == RF_ENOTFOUND || rc == RF_EINVAL) {
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
    int rc = runner->params ? rf_params_refs_params(params, runner->params, "", check_one, &k) : 0;
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

typedef struct use_ctx {
    const char *kind, *id, *name;
    bool hit;
} use_ctx;

static int use_one(void *user, const char *kind, const char *field, const char *value)
{
    use_ctx *u = user;
    if (!strcmp(kind, u->kind) && (!strcmp(value, u->id) || !strcmp(value, u->name))) u->hit = true;
    return u->hit;
}

int rf_resolve_in_use(PGconn *c, const char *tenant, const char *kind, const char *id,
                      const char *name, char *job, rf_error *err)
{
    *job = '\0';
    /* The text search narrows the candidates; the walk over each type's
     * reference params decides (a name may also be some other param's value). */
    char quoted[300];
    snprintf(quoted, sizeof quoted, "\"%s\"", name);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT id, type, params::text FROM jobs WHERE tenant_id = $1"
                         " AND status IN ('queued', 'running', 'waiting')"
                         " AND (strpos(params::text, $2) > 0 OR strpos(params::text, $3) > 0)"
                         " ORDER BY seq",
                         3, (const char *[]){tenant, id, quoted}, &r, err);
    if (rc) return rc;
    for (int i = 0; i < PQntuples(r) && !*job; i++) {
        const rf_runner *runner = rf_runner_find(PQgetvalue(r, i, 1));
        json_t *params = json_loads(PQgetvalue(r, i, 2), 0, NULL);
        use_ctx u = {kind, id, name, false};
        if (runner && runner->params && params)
            rf_params_refs(params, runner->params, "", use_one, &u);
        /* a type this process does not run: the text match is all there is */
        if (u.hit || !runner || !runner->params)
            snprintf(job, RF_ID_MAX, "%s", PQgetvalue(r, i, 0));
        json_decref(params);
    }
    PQclear(r);
    return 0;
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

int rf_resolve_lora(PGconn *c, const char *tenant, const char *data_dir, const char *job_id,
                    char **base_dir, char **adapter_dir, rf_error *err)
{
    *base_dir = *adapter_dir = NULL;
    char *cfg = NULL;
    int rc = rf_resolve(c, tenant, "adapter", job_id, &cfg, err);
    free(cfg);
    if (rc) return rc;
    PGresult *r;
    if ((rc = rf_db_execp(c, "SELECT params->>'student' FROM jobs WHERE tenant_id = $1 AND id = $2",
                          2, (const char *[]){tenant, job_id}, &r, err)))
        return rc;
    char student[256] = "";
    if (PQntuples(r) && !PQgetisnull(r, 0, 0))
        snprintf(student, sizeof student, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!*student)
        return rf_errorf(err, RF_EINVAL,
                         "train job %s has no student model to apply its adapter to", job_id);
    if ((rc = rf_resolve(c, tenant, "model", student, base_dir, err)) == RF_ENOTFOUND)
        return rf_errorf(err, RF_ENOTFOUND,
                         "the adapter of train job %s applies to its student '%s', which is no "
                         "longer registered: register that model again under the same name",
                         job_id, student);
    if (rc) return rc;
    /* A folder of links to the adapter's two artifacts, made once, where a
     * PEFT loader wants it. */
    char dir[1400];
    snprintf(dir, sizeof dir, "%s/adapters", data_dir);
    mkdir(dir, 0750);
    snprintf(dir, sizeof dir, "%s/adapters/%s", data_dir, tenant);
    mkdir(dir, 0750);
    snprintf(dir, sizeof dir, "%s/adapters/%s/%s", data_dir, tenant, job_id);
    char probe[1500], probe2[1500];
    snprintf(probe, sizeof probe, "%s/adapter_config.json", dir);
    snprintf(probe2, sizeof probe2, "%s/adapter_model.safetensors", dir);
    struct stat st;
    if ((stat(probe, &st) || stat(probe2, &st)) &&
        (rc = rf_resolve_adapter(c, tenant, job_id, dir, err)) < 0) {
        free(*base_dir), *base_dir = NULL;
        return rc;
    }
    if (!(*adapter_dir = strdup(dir))) {
        free(*base_dir), *base_dir = NULL;
        return rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    return 0;
}
