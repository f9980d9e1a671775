#include "service/migrate.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/db.h"
#include "service/embedded.h"
#include "service/log.h"

/* An arbitrary constant: the advisory-lock key every refinery process uses. */
#define RF_MIGRATE_LOCK "7301948211"

typedef struct {
    char name[256];   /* file name, e.g. 0001_init.sql */
    char version[64]; /* the leading digits, e.g. 0001 */
    char *sql;        /* owned when read from a folder */
    const char *text; /* what to run */
} migration;

static int cmp_migration(const void *a, const void *b)
{
    return strcmp(((const migration *)a)->name, ((const migration *)b)->name);
}

static int parse_name(const char *base, migration *m, rf_error *err)
{
    size_t digits = strspn(base, "0123456789");
    size_t len = strlen(base);
    if (digits == 0 || digits >= sizeof m->version || base[digits] != '_' || len < 5 ||
        strcmp(base + len - 4, ".sql"))
        return rf_errorf(err, RF_EINVAL, "migration file '%s' is not named NNNN_name.sql", base);
    snprintf(m->name, sizeof m->name, "%s", base);
    memcpy(m->version, base, digits);
    m->version[digits] = '\0';
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = '\0';
            }
        }
    }
    fclose(f);
    return buf;
}

static void free_list(migration *list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i].sql);
    free(list);
}

/* The ordered list of migrations this binary knows. */
static int load_list(const char *dir, migration **out, int *count, rf_error *err)
{
    int cap = 64, n = 0, rc = 0;
    migration *list = calloc((size_t)cap, sizeof *list);
    if (!list) return rf_errorf(err, RF_ENOMEM, "out of memory");
    if (dir && *dir) {
        DIR *d = opendir(dir);
        if (!d) {
            free(list);
            return rf_errorf(err, RF_EIO, "cannot open migrations folder '%s'", dir);
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len < 5 || strcmp(e->d_name + len - 4, ".sql")) continue;
            if (n == cap) {
                rc = rf_errorf(err, RF_EINVAL, "more than %d migrations", cap);
                break;
            }
            if ((rc = parse_name(e->d_name, &list[n], err))) break;
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (!(list[n].sql = read_file(path))) {
                rc = rf_errorf(err, RF_EIO, "cannot read migration '%s'", path);
                break;
            }
            list[n].text = list[n].sql;
            n++;
        }
        closedir(d);
    } else {
        for (const rf_embedded_file *f = rf_embedded_files; f->name && !rc; f++) {
            if (strncmp(f->name, "migrations/", 11)) continue;
            if (n == cap)
                rc = rf_errorf(err, RF_EINVAL, "more than %d migrations", cap);
            else if (!(rc = parse_name(f->name + 11, &list[n], err)))
                list[n++].text = f->data;
        }
    }
    if (rc) {
        free_list(list, n);
        return rc;
    }
    qsort(list, (size_t)n, sizeof *list, cmp_migration);
    for (int i = 1; i < n; i++)
        if (!strcmp(list[i].version, list[i - 1].version)) {
            rc = rf_errorf(err, RF_EINVAL, "migrations '%s' and '%s' share version %s",
                           list[i - 1].name, list[i].name, list[i].version);
            free_list(list, n);
            return rc;
        }
    *out = list;
    *count = n;
    return 0;
}

int rf_migrate_latest(const char *dir, char *out, size_t cap, rf_error *err)
{
    migration *list;
    int n, rc = load_list(dir, &list, &n, err);
    if (rc) return rc;
    snprintf(out, cap, "%s", n ? list[n - 1].version : "");
    free_list(list, n);
    return 0;
}

bool rf_migrate_is_current(PGconn *c, const char *latest)
{
    PGresult *r;
    if (rf_db_exec(c, "SELECT coalesce(max(version), '') FROM schema_migrations", 0, NULL, &r,
                   NULL)) {
        PQclear(r);
        return false;
    }
    /* Versions are zero-padded digit strings: compare as numbers. */
    bool ok = strtoull(PQgetvalue(r, 0, 0), NULL, 10) >= strtoull(latest, NULL, 10);
    PQclear(r);
    return ok;
}

int rf_migrate(PGconn *c, const char *dir, int *applied, rf_error *err)
{
    migration *list = NULL;
    int n = 0, done = 0, rc, locked = 0;
    PGresult *r = NULL;
    if (applied) *applied = 0;
    if ((rc = load_list(dir, &list, &n, err))) return rc;

    if ((rc = rf_db_exec(c, "SELECT pg_advisory_lock(" RF_MIGRATE_LOCK ")", 0, NULL, NULL, err)))
        goto fail;
    locked = 1;
    if ((rc = rf_db_exec(c,
                         "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version text PRIMARY KEY, name text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())",
                         0, NULL, NULL, err)))
        goto fail;

    for (int i = 0; i < n; i++) {
        const char *p[2] = {list[i].version, list[i].name};
        if ((rc = rf_db_exec(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, p, &r,
                             err)))
            goto fail;
        int have = PQntuples(r) > 0;
        PQclear(r);
        r = NULL;
        if (have) continue;

        if ((rc = rf_db_begin(c, err))) goto fail;
        /* PQexec, not PQexecParams: a migration is several statements. */
        r = PQexec(c, list[i].text);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = rf_errorf(err, RF_EDB, "migration %s failed: %s", list[i].name,
                           PQresultErrorMessage(r));
            size_t len = err ? strlen(err->msg) : 0;
            while (len && err->msg[len - 1] == '\n')
                err->msg[--len] = '\0';
            rf_db_rollback(c);
            goto fail;
        }
        PQclear(r);
        r = NULL;
        if ((rc = rf_db_exec(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                             p, NULL, err)) ||
            (rc = rf_db_commit(c, err))) {
            rf_db_rollback(c);
            goto fail;
        }
        rf_log(RF_LOG_INFO, "applied migration %s", list[i].name);
        done++;
    }
    rc = 0;
fail:
    PQclear(r);
    if (locked) {
        PGresult *u = PQexec(c, "SELECT pg_advisory_unlock(" RF_MIGRATE_LOCK ")");
        PQclear(u);
    }
    free_list(list, n);
    if (applied) *applied = done;
    return rc;
}
