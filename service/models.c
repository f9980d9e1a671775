#include "service/models.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model/model_info.h"
#include "service/db.h"
#include "service/ids.h"
#include "service/log.h"
#include "service/resolve.h"
#include "service/sweep.h"

/* True when real (a resolved path) is root or lies under it. */
static bool under(const char *real, const char *root)
{
    size_t n = strlen(root);
    if (n > 1 && root[n - 1] == '/') n--;
    return !strncmp(real, root, n) && (real[n] == '\0' || real[n] == '/');
}

/* Resolve path and check it against each root (each resolved too). */
static int inside_roots(const char *roots, const char *path, char real[PATH_MAX], rf_error *err)
{
    if (!roots || !*roots)
        return rf_error_field(
            err, RF_EINVAL, "path",
            "no model roots are configured (REFINERY_MODEL_ROOTS); registering by path is off");
    if (!realpath(path, real))
        return rf_error_field(err, RF_EINVAL, "path", "'%s' does not exist or is not reachable: %s",
                              path, strerror(errno));
    char list[4096];
    snprintf(list, sizeof list, "%s", roots);
    char *save = NULL;
    for (char *r = strtok_r(list, ":", &save); r; r = strtok_r(NULL, ":", &save)) {
        char rr[PATH_MAX];
        if (*r && realpath(r, rr) && under(real, rr)) return 0;
    }
    return rf_error_field(err, RF_EINVAL, "path", "'%s' is not inside any of the model roots",
                          path);
}

#define MODEL_JSON                                                                                 \
    "(SELECT row_to_json(o) FROM (SELECT m.id, 'model' AS object, m.name, m.architecture,"         \
    " m.parameters, m.dtype, m.bytes, m.quantization,"                                             \
    " CASE WHEN m.source_job_id IS NULL THEN 'registered' ELSE m.source_job_id END AS source,"     \
    " extract(epoch from m.created_at)::bigint AS created_at) o)::text"

int rf_models_register(PGconn *c, const char *tenant, const char *roots, const json_t *body,
                       char **json, rf_error *err)
{
    if (!json_is_object(body))
        return rf_error_field(err, RF_EINVAL, "", "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (strcmp(k, "name") && strcmp(k, "path"))
            return rf_error_field(err, RF_EINVAL, k, "unknown field '%s' (expected name, path)", k);
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *path = json_string_value(json_object_get(body, "path"));
    if (!name || !*name || strlen(name) > 200 || strchr(name, '/'))
        return rf_error_field(err, RF_EINVAL, "name",
                              "'name' must be 1 to 200 characters without '/'");
    if (!path || !*path) return rf_error_field(err, RF_EINVAL, "path", "'path' is required");
    if (path[0] != '/') return rf_error_field(err, RF_EINVAL, "path", "'path' must be absolute");
    /* Refused outright, even when it would resolve inside a root. */
    for (const char *p = path; (p = strstr(p, "..")); p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return rf_error_field(err, RF_EINVAL, "path", "'path' may not contain '..'");
    char real[PATH_MAX];
    int rc = inside_roots(roots, path, real, err);
    if (rc) return rc;
    struct stat st;
    if (stat(real, &st) || !S_ISDIR(st.st_mode))
        return rf_error_field(err, RF_EINVAL, "path", "'%s' is not a folder", path);
    /* Each file the checkpoint is made of must stay inside the roots too. */
    DIR *d = opendir(real);
    if (!d) return rf_error_field(err, RF_EINVAL, "path", "cannot read '%s'", path);
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.') continue;
        char f[PATH_MAX + 256], fr[PATH_MAX];
        snprintf(f, sizeof f, "%s/%s", real, e->d_name);
        if (inside_roots(roots, f, fr, NULL))
            rc = rf_error_field(err, RF_EINVAL, "path", "'%s' points outside the model roots",
                                e->d_name);
    }
    closedir(d);
    if (rc) return rc;

    rf_model_info info;
    if ((rc = rf_model_inspect(real, &info, err))) {
        char field[sizeof err->field];
        snprintf(field, sizeof field, "path%s%s", err->field[0] ? ": " : "", err->field);
        snprintf(err->field, sizeof err->field, "%s", field);
        err->code = RF_EINVAL;
        return RF_EINVAL;
    }
    char id[RF_ID_MAX], params[32], bytes[32];
    rf_id_new("mdl", id);
    snprintf(params, sizeof params, "%llu", (unsigned long long)info.parameters);
    snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)info.bytes);
    char *q = info.quantization ? json_dumps(info.quantization, JSON_COMPACT) : NULL;
    const char *p[9] = {id, tenant, name, real, info.architecture, params, info.dtype, bytes, q};
    PGresult *r;
    rc = rf_db_execp(
        c,
        "WITH m AS (INSERT INTO models (id, tenant_id, name, path, architecture, parameters,"
        " dtype, bytes, quantization) VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8::bigint,"
        " $9::jsonb) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING *)"
        " SELECT " MODEL_JSON " FROM m",
        9, p, &r, err);
    free(q);
    rf_model_info_clear(&info);
    if (!rc && PQntuples(r) == 0)
        rc = rf_error_field(err, RF_ECONFLICT, "name",
                            "a model named '%s' is already registered: names are unique within a "
                            "tenant; pick another name, or DELETE /v1/models/{id} of the other "
                            "first (GET /v1/models lists them)",
                            name);
    if (!rc) *json = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int rf_models_adopt(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                    const char *owner, int attempt, const char *dir, const char *name,
                    char id_out[40], rf_error *err)
{
    if (!name || !*name || strlen(name) > 200 || strchr(name, '/'))
        return rf_error_field(err, RF_EINVAL, "name",
                              "a model name must be 1 to 200 characters without '/'");
    rf_model_info info;
    int rc = rf_model_inspect(dir, &info, err);
    if (rc) return rc;
    char store[PATH_MAX], tmp[PATH_MAX + 128], dest[PATH_MAX + 64];
    snprintf(store, sizeof store, "%s/models", data_dir);
    mkdir(store, 0750);
    snprintf(store, sizeof store, "%s/models/%s", data_dir, tenant);
    mkdir(store, 0750);
    rf_id_new("mdl", id_out);
    /* In as a temporary that names the job until the row exists
     * (service/sweep.h), then under the model's id. */
    snprintf(tmp, sizeof tmp, "%s/.tmp.%s.%s", store, job_id, id_out);
    snprintf(dest, sizeof dest, "%s/%s", store, id_out);
    if (rename(dir, tmp)) {
        rf_model_info_clear(&info);
        return rf_errorf(err, RF_EIO, "cannot move %s into the model store: %s", dir,
                         strerror(errno));
    }
    char params[32], bytes[32], a[16];
    snprintf(params, sizeof params, "%llu", (unsigned long long)info.parameters);
    snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)info.bytes);
    snprintf(a, sizeof a, "%d", attempt);
    char *q = info.quantization ? json_dumps(info.quantization, JSON_COMPACT) : NULL;
    const char *p[12] = {id_out, tenant, name,  dest, info.architecture, params, info.dtype, bytes,
                         q,      job_id, owner, a};
    PGresult *r;
    /* Fenced by the job's lease. A model of that name that an earlier attempt
     * of this job recorded is the job's model: kept (it may be in use by now),
     * and this attempt's copy dropped. */
    rc = rf_db_execp(
        c,
        "WITH held AS (SELECT id FROM jobs WHERE id = $10 AND lease_owner = $11"
        "  AND attempts = $12::int AND status = 'running' FOR SHARE),"
        " ins AS (INSERT INTO models (id, tenant_id, name, path, architecture, parameters, dtype,"
        "  bytes, quantization, source_job_id) SELECT $1, $2, $3, $4, $5, $6::bigint, $7,"
        "  $8::bigint, $9::jsonb, id FROM held ON CONFLICT (tenant_id, name) DO NOTHING"
        "  RETURNING id)"
        " SELECT (SELECT count(*) FROM held), (SELECT id FROM ins),"
        "  (SELECT id FROM models WHERE tenant_id = $2 AND name = $3 AND source_job_id = $10)",
        12, p, &r, err);
    free(q);
    rf_model_info_clear(&info);
    bool mine = false;
    if (!rc && PQgetvalue(r, 0, 0)[0] == '0')
        rc = rf_errorf(err, RF_ECONFLICT, "job %s is no longer held by this worker (lease lost)",
                       job_id);
    else if (!rc && PQgetisnull(r, 0, 1) && !PQgetisnull(r, 0, 2))
        snprintf(id_out, 40, "%s", PQgetvalue(r, 0, 2)); /* an earlier attempt's */
    else if (!rc && PQgetisnull(r, 0, 1))
        rc = rf_error_field(err, RF_EINVAL, "name", "a model named '%s' already exists", name);
    else if (!rc)
        mine = true;
    PQclear(r);
    if (mine) {
        if (rename(tmp, dest))
            rf_log(RF_LOG_WARN,
                   "model %s: recorded, but not moved into place (%s); the next "
                   "sweep does it",
                   id_out, strerror(errno));
        return 0;
    }
    if (rename(tmp,
               dir)) /* not recorded: give the folder back (the job's folder goes at its end) */
        rf_remove_tree(tmp);
    return rc;
}

int rf_models_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err)
{
    if (!rf_id_valid("mdl", id)) return rf_errorf(err, RF_ENOTFOUND, "no model with id '%s'", id);
    PGresult *r;
    int rc =
        rf_db_execp(c, "SELECT " MODEL_JSON " FROM models m WHERE m.id = $1 AND m.tenant_id = $2",
                    2, (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no model with id '%s'", id);
    if (!rc) *json = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int rf_models_list(PGconn *c, const char *tenant, const char *after, int limit, char **json,
                   rf_error *err)
{
    if (after && !rf_id_valid("mdl", after))
        return rf_error_field(err, RF_EINVAL, "after", "'after' must be a model id");
    char l[16];
    snprintf(l, sizeof l, "%d", limit + 1);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT " MODEL_JSON " FROM models m WHERE m.tenant_id = $1"
                         " AND ($2::text IS NULL OR (m.created_at, m.id) < (SELECT created_at, id"
                         "  FROM models WHERE id = $2 AND tenant_id = $1))"
                         " ORDER BY m.created_at DESC, m.id DESC LIMIT $3::int",
                         3, (const char *[]){tenant, after, l}, &r, err);
    if (!rc) rc = rf_db_list_json(r, limit, json, err);
    PQclear(r);
    return rc;
}

int rf_models_delete(PGconn *c, const char *tenant, const char *id, rf_error *err)
{
    if (!rf_id_valid("mdl", id)) return rf_errorf(err, RF_ENOTFOUND, "no model with id '%s'", id);
    PGresult *r;
    int rc = rf_db_execp(c, "SELECT name FROM models WHERE id = $1 AND tenant_id = $2", 2,
                         (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no model with id '%s'", id);
    char name[256] = "", job[RF_ID_MAX] = "";
    if (!rc) snprintf(name, sizeof name, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* In use: named, by id or name, by a job that has not finished (README
     * "Names and objects in use"); the same rule as datasets. */
    if (!rc && (rc = rf_resolve_in_use(c, tenant, "model", id, name, job, err)) == 0 && *job)
        rc = rf_errorf(err, RF_ECONFLICT,
                       "model %s ('%s') is in use by job %s, which has not finished: cancel it "
                       "(POST /v1/jobs/%s/cancel) or wait for it, then delete",
                       id, name, job, job);
    if (rc) return rc;
    rc = rf_db_execp(c, "DELETE FROM models WHERE id = $1 AND tenant_id = $2 RETURNING id", 2,
                     (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no model with id '%s'", id);
    PQclear(r);
    return rc;
}

static int model_dir(PGconn *c, const char *tenant, const char *id, char dir[PATH_MAX],
                     rf_error *err)
{
    if (!rf_id_valid("mdl", id)) return rf_errorf(err, RF_ENOTFOUND, "no model with id '%s'", id);
    PGresult *r;
    int rc = rf_db_execp(c, "SELECT path FROM models WHERE id = $1 AND tenant_id = $2", 2,
                         (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no model with id '%s'", id);
    if (!rc) snprintf(dir, PATH_MAX, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

typedef struct {
    char name[256];
    long long bytes;
} file_entry;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const file_entry *)a)->name, ((const file_entry *)b)->name);
}

int rf_models_files(PGconn *c, const char *tenant, const char *roots, const char *id, char **json,
                    rf_error *err)
{
    char dir[PATH_MAX];
    int rc = model_dir(c, tenant, id, dir, err);
    if (rc) return rc;
    DIR *d = opendir(dir);
    if (!d)
        return rf_errorf(err, RF_EIO, "the model's folder %s is unreadable: %s", dir,
                         strerror(errno));
    file_entry *files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char f[PATH_MAX + 256], real[PATH_MAX];
        struct stat st;
        snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
        if (inside_roots(roots, f, real, NULL) || stat(real, &st) || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            file_entry *g = realloc(files, cap * sizeof *files);
            if (!g) break;
            files = g;
        }
        snprintf(files[n].name, sizeof files[n].name, "%s", e->d_name);
        files[n++].bytes = st.st_size;
    }
    closedir(d);
    /* Sorted by name: directory order is the file system's whim. */
    qsort(files, n, sizeof *files, by_name);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s,s:I}", "name", files[i].name, "bytes",
                                              (json_int_t)files[i].bytes));
    free(files);
    json_t *o = json_pack("{s:s,s:o,s:b}", "object", "list", "data", list, "has_more", 0);
    *json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return *json ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
}

int rf_models_file_path(PGconn *c, const char *tenant, const char *roots, const char *id,
                        const char *name, char **path, rf_error *err)
{
    char dir[PATH_MAX];
    int rc = model_dir(c, tenant, id, dir, err);
    if (rc) return rc;
    if (!*name || name[0] == '.' || strchr(name, '/'))
        return rf_errorf(err, RF_ENOTFOUND, "model %s has no file '%s'", id, name);
    char f[PATH_MAX + 256], real[PATH_MAX];
    struct stat st;
    snprintf(f, sizeof f, "%s/%s", dir, name);
    if (inside_roots(roots, f, real, NULL) || stat(real, &st) || !S_ISREG(st.st_mode))
        return rf_errorf(err, RF_ENOTFOUND, "model %s has no file '%s'", id, name);
    *path = strdup(real);
    return *path ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
}
