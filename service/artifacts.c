#include "service/artifacts.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/db.h"
#include "service/log.h"
#include "service/metrics.h"

/* SHA-256 of an open file as hex, read in 1 MiB pieces. */
static int hash_fd(int fd, char hex[65], long long *bytes, rf_error *err)
{
    static _Thread_local unsigned char buf[1 << 20];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        return rf_errorf(err, RF_ENOMEM, "cannot start a SHA-256 digest");
    }
    *bytes = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            EVP_MD_CTX_free(md);
            return rf_errorf(err, RF_EIO, "reading the artifact failed: %s", strerror(errno));
        }
        if (n == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        *bytes += n;
    }
    unsigned char out[32];
    unsigned int len;
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
    rf_hex(out, 32, hex);
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int fsync_dir(const char *dir, rf_error *err)
{
    return fsync_path(dir, O_RDONLY | O_DIRECTORY)
               ? rf_errorf(err, RF_EIO, "fsync of %s failed: %s", dir, strerror(errno))
               : 0;
}

/* What a browser needs to show a report or a plot rather than save it. */
static const char *content_type_of(const char *name)
{
    static const char *const types[][2] = {{".svg", "image/svg+xml"},
                                           {".html", "text/html; charset=utf-8"},
                                           {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i][0])) return types[i][1];
    return "application/octet-stream";
}

int rf_artifact_register(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                         const char *owner, int attempt, const char *kind, const char *path,
                         const char *name, char id_out[RF_ID_MAX], rf_error *err)
{
    if (!name || !*name || strlen(name) > 255 || strchr(name, '/'))
        return rf_error_field(err, RF_EINVAL, "name",
                              "artifact name must be 1 to 255 characters without '/'");
    char dir[1200], tmp[1300], dest[1300], hex[65];
    long long bytes = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rf_errorf(err, RF_EIO, "cannot open artifact %s: %s", path, strerror(errno));
    int rc = hash_fd(fd, hex, &bytes, err);
    if (!rc && fsync(fd))
        rc = rf_errorf(err, RF_EIO, "fsync of %s failed: %s", path, strerror(errno));
    close(fd);
    if (rc) return rc;

    if (rf_id_new("art", id_out))
        return rf_errorf(err, RF_EIO, "the system's random source failed");
    snprintf(dir, sizeof dir, "%s/artifacts", data_dir);
    mkdir(dir, 0750);
    snprintf(dir, sizeof dir, "%s/artifacts/%s", data_dir, tenant);
    if (mkdir(dir, 0750) && errno != EEXIST)
        return rf_errorf(err, RF_EIO, "cannot create %s: %s", dir, strerror(errno));
    /* In under a name that says whose it is until the row exists
     * (service/sweep.h), then under its id. */
    snprintf(tmp, sizeof tmp, "%s/.tmp.%s.%s", dir, job_id, id_out);
    snprintf(dest, sizeof dest, "%s/%s", dir, id_out);
    if (rename(path, tmp))
        return rf_errorf(err, RF_EIO, "cannot move %s into the artifact store: %s", path,
                         strerror(errno));
    if ((rc = fsync_dir(dir, err))) goto undo;
    char b[32], a[16];
    snprintf(b, sizeof b, "%lld", bytes);
    snprintf(a, sizeof a, "%d", attempt);
    const char *p[11] = {
        id_out, tenant, job_id, kind, name, b, hex, dest, owner, a, content_type_of(name)};
    PGresult *r = NULL;
    /* Fenced by the job's lease, as every write of a running job: an attempt
     * that lost its job records nothing. An earlier attempt's artifact of the
     * same name is replaced, so that a job has one of each whatever its
     * attempts did; the old file goes once the new row is in. */
    rc = rf_db_execp(
        c,
        "WITH held AS (SELECT id FROM jobs WHERE id = $3 AND lease_owner = $9"
        "  AND attempts = $10::int AND status = 'running' FOR SHARE),"
        " old AS (DELETE FROM artifacts WHERE job_id = (SELECT id FROM held) AND name = $5"
        "  RETURNING path),"
        " ins AS (INSERT INTO artifacts (id, tenant_id, job_id, kind, name, bytes, sha256, path,"
        "  content_type) SELECT $1, $2, id, $4, $5, $6::bigint, $7, $8, $11 FROM held"
        "  RETURNING id)"
        " SELECT (SELECT count(*) FROM ins), (SELECT json_agg(path) FROM old)::text",
        11, p, &r, err);
    if (!rc && atoi(PQgetvalue(r, 0, 0)) == 0)
        rc = rf_errorf(err, RF_ECONFLICT, "job %s is no longer held by this worker (lease lost)",
                       job_id);
    if (rc) {
        PQclear(r);
        goto undo;
    }
    if (rename(tmp, dest) && !(errno == ENOENT && access(dest, F_OK) == 0))
        rf_log(RF_LOG_WARN,
               "artifact %s: recorded, but not moved into place (%s); the next sweep "
               "does it",
               id_out, strerror(errno));
    else
        fsync_dir(dir, NULL);
    json_t *old = PQgetisnull(r, 0, 1) ? NULL : json_loads(PQgetvalue(r, 0, 1), 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(old, i, v) unlink(json_string_value(v));
    json_decref(old);
    PQclear(r);
    rf_metrics_artifact_bytes((uint64_t)bytes);
    return 0;
undo:
    /* Not recorded: put the file back where the runner left it. */
    if (rename(tmp, path)) unlink(tmp);
    return rc;
}

#define ARTIFACT_JSON                                                                              \
    "(SELECT row_to_json(o) FROM (SELECT a.id, 'artifact' AS object, a.job_id, a.kind, a.name,"    \
    " a.bytes, a.sha256, a.content_type,"                                                          \
    " extract(epoch from a.created_at)::bigint AS created_at) o)::text"

int rf_artifacts_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err)
{
    if (!rf_id_valid("art", id))
        return rf_errorf(err, RF_ENOTFOUND, "no artifact with id '%s'", id);
    PGresult *r;
    int rc = rf_db_execp(
        c, "SELECT " ARTIFACT_JSON " FROM artifacts a WHERE a.id = $1 AND a.tenant_id = $2", 2,
        (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no artifact with id '%s'", id);
    if (!rc) *json = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int rf_artifacts_of_job(PGconn *c, const char *tenant, const char *job_id, char **json,
                        rf_error *err)
{
    if (!rf_id_valid("job", job_id))
        return rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", job_id);
    PGresult *r;
    const char *p[2] = {job_id, tenant};
    int rc = rf_db_execp(c,
                         "SELECT (SELECT count(*) FROM jobs WHERE id = $1 AND tenant_id = $2),"
                         " coalesce((SELECT json_agg(x ORDER BY n) FROM (SELECT " ARTIFACT_JSON
                         "::json AS x, a.created_at AS n FROM artifacts a WHERE a.job_id = $1"
                         " AND a.tenant_id = $2) q), '[]')::text",
                         2, p, &r, err);
    if (!rc && PQgetvalue(r, 0, 0)[0] == '0')
        rc = rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", job_id);
    if (!rc) {
        const char *data = PQgetvalue(r, 0, 1);
        size_t n = strlen(data) + 64;
        *json = malloc(n);
        if (*json)
            snprintf(*json, n, "{\"object\":\"list\",\"data\":%s,\"has_more\":false}", data);
        else
            rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    PQclear(r);
    return rc;
}

int rf_artifacts_file(PGconn *c, const char *tenant, const char *id, rf_artifact_file *f,
                      rf_error *err)
{
    memset(f, 0, sizeof *f);
    if (!rf_id_valid("art", id))
        return rf_errorf(err, RF_ENOTFOUND, "no artifact with id '%s'", id);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT path, sha256, name, content_type FROM artifacts"
                         " WHERE id = $1 AND tenant_id = $2",
                         2, (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no artifact with id '%s'", id);
    if (!rc) {
        f->path = strdup(PQgetvalue(r, 0, 0));
        f->sha256 = strdup(PQgetvalue(r, 0, 1));
        f->name = strdup(PQgetvalue(r, 0, 2));
        f->content_type = strdup(PQgetvalue(r, 0, 3));
        if (!f->path || !f->sha256 || !f->name || !f->content_type) {
            rf_artifact_file_free(f);
            rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    return rc;
}

int rf_artifacts_of_job_named(PGconn *c, const char *tenant, const char *job_id, const char *kind,
                              const char *name, rf_artifact_file *f, rf_error *err)
{
    memset(f, 0, sizeof *f);
    if (!rf_id_valid("job", job_id))
        return rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", job_id);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT a.id, j.type, j.status FROM jobs j LEFT JOIN artifacts a"
                         " ON a.job_id = j.id AND a.tenant_id = j.tenant_id AND a.kind = $3"
                         " AND a.name = $4 WHERE j.id = $1 AND j.tenant_id = $2"
                         " ORDER BY a.created_at DESC NULLS LAST LIMIT 1",
                         4, (const char *[]){job_id, tenant, kind, name}, &r, err);
    if (rc) return rc;
    char id[RF_ID_MAX] = "";
    if (PQntuples(r) == 0)
        rc = rf_errorf(err, RF_ENOTFOUND, "no job with id '%s'", job_id);
    else if (PQgetisnull(r, 0, 0))
        rc = rf_errorf(err, RF_ENOTFOUND,
                       "job %s (%s, %s) has no %s: a pipeline job registers its report when it "
                       "succeeds",
                       job_id, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), name);
    else
        snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc ? rc : rf_artifacts_file(c, tenant, id, f, err);
}

void rf_artifact_file_free(rf_artifact_file *f)
{
    free(f->path);
    free(f->sha256);
    free(f->name);
    free(f->content_type);
    memset(f, 0, sizeof *f);
}
