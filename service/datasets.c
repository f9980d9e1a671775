#include "service/datasets.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/dataset.h"
#include "service/db.h"
#include "service/ids.h"

#define MAX_LINE (16u << 20) /* one JSONL record */
#define WBUF (1u << 20)

struct rf_upload {
    char id[RF_ID_MAX], tenant[RF_ID_MAX], name[256];
    char dir[1100], tmp[1200], final[1200];
    int fd;
    bool done;
    EVP_MD_CTX *md;
    uint64_t bytes, max_bytes, line_no;
    char *line; /* the unfinished line carried between pieces */
    size_t line_len, line_cap;
    char *wbuf; /* writes go out in 1 MiB pieces */
    size_t wlen;
    rf_dataset_stats st;
    int failed; /* 0, or the error code kept in err */
    uint64_t err_line;
    rf_error err;
};

int rf_upload_begin(const char *data_dir, const char *tenant, const char *name, uint64_t max_bytes,
                    rf_upload **out, rf_error *err)
{
    rf_upload *u = calloc(1, sizeof *u);
    if (!u) return rf_errorf(err, RF_ENOMEM, "out of memory");
    u->fd = -1;
    u->max_bytes = max_bytes;
    snprintf(u->tenant, sizeof u->tenant, "%s", tenant);
    snprintf(u->name, sizeof u->name, "%s", name);
    int rc;
    if (rf_id_new("ds", u->id)) {
        rc = rf_errorf(err, RF_EIO, "the system's random source failed");
        goto fail;
    }
    char parent[1100];
    snprintf(parent, sizeof parent, "%s/datasets", data_dir);
    mkdir(data_dir, 0750);
    mkdir(parent, 0750);
    snprintf(u->dir, sizeof u->dir, "%s/%s", parent, tenant);
    if (mkdir(u->dir, 0750) && errno != EEXIST) {
        rc = rf_errorf(err, RF_EIO, "cannot create %s: %s", u->dir, strerror(errno));
        goto fail;
    }
    snprintf(u->tmp, sizeof u->tmp, "%s/.tmp.%s", u->dir, u->id);
    snprintf(u->final, sizeof u->final, "%s/%s.jsonl", u->dir, u->id);
    u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    u->md = EVP_MD_CTX_new();
    u->wbuf = malloc(WBUF);
    if (u->fd < 0 || !u->md || !u->wbuf || !EVP_DigestInit_ex(u->md, EVP_sha256(), NULL)) {
        rc = rf_errorf(err, RF_EIO, "cannot start the upload: %s", strerror(errno));
        goto fail;
    }
    *out = u;
    return 0;
fail:
    rf_upload_free(u);
    return rc;
}

static void fail_at(rf_upload *u, uint64_t line, int code)
{
    u->failed = code;
    u->err_line = line;
}

static void flush_writes(rf_upload *u)
{
    size_t off = 0;
    while (off < u->wlen && !u->failed) {
        ssize_t w = write(u->fd, u->wbuf + off, u->wlen - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            /* Disk full and the like: the upload fails, nothing is kept. */
            rf_errorf(&u->err, RF_EIO, "writing the dataset failed: %s", strerror(errno));
            fail_at(u, 0, RF_EIO);
            break;
        }
        off += (size_t)w;
    }
    u->wlen = 0;
}

static void check_line(rf_upload *u, const char *s, size_t n)
{
    u->line_no++;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
        i++;
    if (i == n) return; /* blank lines are allowed and ignored */
    json_error_t je;
    json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
        rf_error_field(&u->err, RF_EINVAL, "", "malformed JSON at column %d: %s", je.column,
                       je.text);
        fail_at(u, u->line_no, RF_EINVAL);
        return;
    }
    if (rf_dataset_check(v, &u->st, &u->err)) fail_at(u, u->line_no, RF_EINVAL);
    json_decref(v);
}

void rf_upload_feed(rf_upload *u, const char *data, size_t n)
{
    u->bytes += n;
    if (u->failed) return;
    if (u->bytes > u->max_bytes) {
        rf_errorf(&u->err, RF_ETOOBIG, "the dataset exceeds %llu bytes",
                  (unsigned long long)u->max_bytes);
        fail_at(u, 0, RF_ETOOBIG);
        return;
    }
    EVP_DigestUpdate(u->md, data, n);
    for (size_t off = 0; off < n;) {
        size_t take = n - off < WBUF - u->wlen ? n - off : WBUF - u->wlen;
        memcpy(u->wbuf + u->wlen, data + off, take);
        u->wlen += take;
        off += take;
        if (u->wlen == WBUF) flush_writes(u);
    }
    /* Whole lines are checked where they lie; only a line cut by the end of
     * this piece is copied, to be completed by the next. */
    const char *p = data, *end = data + n;
    while (p < end && !u->failed) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (u->line_len + len > MAX_LINE) {
            rf_errorf(&u->err, RF_EINVAL, "line is longer than %u bytes", MAX_LINE);
            fail_at(u, u->line_no + 1, RF_EINVAL);
            return;
        }
        if (!nl || u->line_len) {
            if (u->line_len + len > u->line_cap) {
                size_t cap = u->line_cap ? u->line_cap : 4096;
                while (cap < u->line_len + len)
                    cap *= 2;
                char *b = realloc(u->line, cap);
                if (!b) {
                    rf_errorf(&u->err, RF_ENOMEM, "out of memory");
                    fail_at(u, 0, RF_ENOMEM);
                    return;
                }
                u->line = b;
                u->line_cap = cap;
            }
            memcpy(u->line + u->line_len, p, len);
            u->line_len += len;
            if (nl) {
                check_line(u, u->line, u->line_len);
                u->line_len = 0;
            }
        } else {
            check_line(u, p, len);
        }
        p = nl ? nl + 1 : end;
    }
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int rf_upload_finish(rf_upload *u, PGconn *c, char **json, uint64_t *line, rf_error *err)
{
    *line = 0;
    if (!u->failed && u->line_len) { /* the last line needs no newline */
        check_line(u, u->line, u->line_len);
        u->line_len = 0;
    }
    if (!u->failed) flush_writes(u);
    if (!u->failed && u->st.schema == RF_SCHEMA_NONE) {
        rf_errorf(&u->err, RF_EINVAL, "the dataset has no rows");
        fail_at(u, 0, RF_EINVAL);
    }
    if (u->failed) {
        *line = u->err_line;
        *err = u->err;
        return u->failed;
    }
    if (fsync(u->fd)) return rf_errorf(err, RF_EIO, "fsync failed: %s", strerror(errno));
    close(u->fd);
    u->fd = -1;
    unsigned char md[32];
    unsigned int mdlen;
    char hex[65], bytes[32], rows[3][32], mc[32];
    EVP_DigestFinal_ex(u->md, md, &mdlen);
    rf_hex(md, 32, hex);
    if (rename(u->tmp, u->final) || fsync_dir(u->dir))
        return rf_errorf(err, RF_EIO, "cannot move the dataset into place: %s", strerror(errno));
    u->done = true; /* from here on the file is ours to remove on failure */
    snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)u->bytes);
    for (int i = 0; i < 3; i++)
        snprintf(rows[i], sizeof rows[i], "%llu", (unsigned long long)u->st.rows[i]);
    snprintf(mc, sizeof mc, "%llu", (unsigned long long)u->st.multiple_choice);
    const char *p[11] = {u->id,   u->tenant, u->name, rf_dataset_schema_name(u->st.schema),
                         rows[0], rows[1],   rows[2], mc,
                         bytes,   hex,       u->final};
    PGresult *r;
    int rc = rf_db_execp(
        c,
        "INSERT INTO datasets (id, tenant_id, name, schema, rows_train, rows_validation,"
        " rows_test, multiple_choice, bytes, sha256, path) VALUES ($1, $2, $3, $4,"
        " $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::bigint, $10, $11)"
        " RETURNING id",
        11, p, &r, err);
    PQclear(r);
    if (rc) {
        unlink(u->final); /* not recorded: not kept */
        return rc;
    }
    return rf_datasets_get(c, u->tenant, u->id, json, err);
}

void rf_upload_free(rf_upload *u)
{
    if (!u) return;
    if (u->fd >= 0) close(u->fd);
    if (!u->done && u->tmp[0]) unlink(u->tmp);
    EVP_MD_CTX_free(u->md);
    free(u->line);
    free(u->wbuf);
    free(u);
}

#define DATASET_JSON                                                                               \
    "(SELECT row_to_json(o) FROM (SELECT d.id, 'dataset' AS object, d.name, d.schema,"             \
    " (SELECT row_to_json(r) FROM (SELECT d.rows_train AS train,"                                  \
    "  d.rows_validation AS validation, d.rows_test AS test) r) AS rows,"                          \
    " d.multiple_choice, d.bytes, d.sha256,"                                                       \
    " CASE WHEN d.source_job_id IS NULL THEN 'upload' ELSE d.source_job_id END AS source,"         \
    " extract(epoch from d.created_at)::bigint AS created_at) o)::text"

int rf_datasets_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err)
{
    if (!rf_id_valid("ds", id)) return rf_errorf(err, RF_ENOTFOUND, "no dataset with id '%s'", id);
    PGresult *r;
    int rc = rf_db_execp(
        c, "SELECT " DATASET_JSON " FROM datasets d WHERE d.id = $1 AND d.tenant_id = $2", 2,
        (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no dataset with id '%s'", id);
    if (!rc && !(*json = strdup(PQgetvalue(r, 0, 0))))
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    PQclear(r);
    return rc;
}

int rf_datasets_list(PGconn *c, const char *tenant, const char *after, int limit, char **json,
                     rf_error *err)
{
    if (after && !rf_id_valid("ds", after))
        return rf_error_field(err, RF_EINVAL, "after", "'after' must be a dataset id");
    char l[16];
    snprintf(l, sizeof l, "%d", limit + 1);
    PGresult *r;
    int rc = rf_db_execp(c,
                         "SELECT " DATASET_JSON " FROM datasets d WHERE d.tenant_id = $1"
                         " AND ($2::text IS NULL OR (d.created_at, d.id) < (SELECT created_at, id"
                         "  FROM datasets WHERE id = $2 AND tenant_id = $1))"
                         " ORDER BY d.created_at DESC, d.id DESC LIMIT $3::int",
                         3, (const char *[]){tenant, after, l}, &r, err);
    if (!rc) rc = rf_db_list_json(r, limit, json, err);
    PQclear(r);
    return rc;
}

int rf_datasets_delete(PGconn *c, const char *tenant, const char *id, rf_error *err)
{
    if (!rf_id_valid("ds", id)) return rf_errorf(err, RF_ENOTFOUND, "no dataset with id '%s'", id);
    PGresult *r;
    /* A job refers to a dataset by its id somewhere in its params. */
    int rc = rf_db_execp(c,
                         "WITH busy AS (SELECT id FROM jobs WHERE tenant_id = $2"
                         "  AND status IN ('queued', 'running', 'waiting') AND "
                         "strpos(params::text, $1) > 0 LIMIT 1),"
                         " d AS (DELETE FROM datasets WHERE id = $1 AND tenant_id = $2"
                         "  AND NOT EXISTS (SELECT 1 FROM busy) RETURNING path)"
                         " SELECT (SELECT path FROM d), (SELECT id FROM busy),"
                         "  (SELECT count(*) FROM datasets WHERE id = $1 AND tenant_id = $2)",
                         2, (const char *[]){id, tenant}, &r, err);
    if (rc) {
        PQclear(r);
        return rc;
    }
    if (!PQgetisnull(r, 0, 0)) {
        unlink(PQgetvalue(r, 0, 0)); /* the row is gone; the file follows */
    } else if (!PQgetisnull(r, 0, 1)) {
        rc = rf_errorf(err, RF_ECONFLICT, "dataset %s is in use by job %s, which has not finished",
                       id, PQgetvalue(r, 0, 1));
    } else {
        rc = rf_errorf(err, RF_ENOTFOUND, "no dataset with id '%s'", id);
    }
    PQclear(r);
    return rc;
}

int rf_datasets_file(PGconn *c, const char *tenant, const char *id, rf_dataset_file *f,
                     rf_error *err)
{
    memset(f, 0, sizeof *f);
    if (!rf_id_valid("ds", id)) return rf_errorf(err, RF_ENOTFOUND, "no dataset with id '%s'", id);
    PGresult *r;
    int rc =
        rf_db_execp(c, "SELECT path, sha256, name FROM datasets WHERE id = $1 AND tenant_id = $2",
                    2, (const char *[]){id, tenant}, &r, err);
    if (!rc && PQntuples(r) == 0) rc = rf_errorf(err, RF_ENOTFOUND, "no dataset with id '%s'", id);
    if (!rc) {
        f->path = strdup(PQgetvalue(r, 0, 0));
        f->sha256 = strdup(PQgetvalue(r, 0, 1));
        size_t n = strlen(PQgetvalue(r, 0, 2)) + 8;
        if ((f->name = malloc(n))) snprintf(f->name, n, "%s.jsonl", PQgetvalue(r, 0, 2));
        if (!f->path || !f->sha256 || !f->name) {
            rf_dataset_file_free(f);
            rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    return rc;
}

void rf_dataset_file_free(rf_dataset_file *f)
{
    free(f->path);
    free(f->sha256);
    free(f->name);
    memset(f, 0, sizeof *f);
}

int rf_datasets_adopt(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                      const char *path, const char *name, char id_out[40], rf_error *err)
{
    /* Streamed through the upload's own checks; the copy is the upload's
     * temporary file, so the store keeps one layout and one code path. */
    FILE *f = fopen(path, "r");
    if (!f)
        return rf_errorf(err, RF_EIO, "cannot read the dataset the job wrote: %s", strerror(errno));
    rf_upload *u = NULL;
    int rc = rf_upload_begin(data_dir, tenant, name, UINT64_MAX, &u, err);
    char buf[1 << 16];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0)
        rf_upload_feed(u, buf, n);
    fclose(f);
    if (rc) return rc;
    /* The digest decides whether this job registered it already. */
    uint64_t line;
    if (!u->failed && u->line_len) {
        check_line(u, u->line, u->line_len);
        u->line_len = 0;
    }
    if (!u->failed) flush_writes(u);
    unsigned char md[32];
    unsigned int mdlen;
    char hex[65];
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    if (!copy || !EVP_MD_CTX_copy_ex(copy, u->md) || !EVP_DigestFinal_ex(copy, md, &mdlen)) {
        EVP_MD_CTX_free(copy);
        rf_upload_free(u);
        return rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    EVP_MD_CTX_free(copy);
    rf_hex(md, 32, hex);
    PGresult *r;
    rc = rf_db_execp(c,
                     "SELECT id FROM datasets WHERE tenant_id = $1 AND source_job_id = $2"
                     " AND sha256 = $3 LIMIT 1",
                     3, (const char *[]){tenant, job_id, hex}, &r, err);
    if (!rc && PQntuples(r) == 1) {
        snprintf(id_out, 40, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        rf_upload_free(u);
        unlink(path);
        return 0;
    }
    PQclear(r);
    char *json = NULL;
    if (!rc) rc = rf_upload_finish(u, c, &json, &line, err);
    if (!rc) {
        snprintf(id_out, 40, "%s", u->id);
        rc = rf_db_execp(c, "UPDATE datasets SET source_job_id = $2 WHERE id = $1", 2,
                         (const char *[]){u->id, job_id}, &r, err);
        PQclear(r);
    } else if (line) {
        rf_error_wrap(err, "line %llu", (unsigned long long)line);
    }
    free(json);
    rf_upload_free(u);
    if (!rc) unlink(path);
    return rc;
}
