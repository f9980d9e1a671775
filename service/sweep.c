#include "service/sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "service/db.h"
#include "service/ids.h"
#include "service/log.h"

#define TMP ".tmp."
/* A temporary that names no job (an upload's) and was not written for this
 * long is dead. */
#define UPLOAD_STALE_S 3600

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) && errno != ENOENT ? -1 : 0;
}

int rf_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* What was found on disk, and what to ask the database about it. */
typedef enum { E_TEMP, E_FILE, E_JOBDIR, E_STALE } entry_kind;

typedef struct {
    entry_kind kind;
    bool model;            /* the models store (else artifacts) */
    char path[1400];       /* where it is */
    char dest[1400];       /* E_TEMP: where it goes once recorded */
    char job[RF_ID_MAX];   /* E_TEMP, E_JOBDIR */
    char obj[RF_ID_MAX];   /* E_TEMP, E_FILE */
    bool active, recorded; /* answers: the job may still run; the row exists */
} entry;

typedef struct {
    entry *e;
    size_t n, cap;
} entries;

static entry *add(entries *es)
{
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 64;
        entry *e = realloc(es->e, cap * sizeof *e);
        if (!e) return NULL;
        es->e = e, es->cap = cap;
    }
    entry *e = &es->e[es->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* ".tmp.<job id>.<object id>" → the two ids; false for any other name. */
static bool parse_temp(const char *name, char job[RF_ID_MAX], char obj[RF_ID_MAX])
{
    if (strncmp(name, TMP, strlen(TMP))) return false;
    const char *j = name + strlen(TMP), *dot = strchr(j, '.');
    if (!dot || (size_t)(dot - j) >= RF_ID_MAX || strlen(dot + 1) >= RF_ID_MAX) return false;
    snprintf(job, RF_ID_MAX, "%.*s", (int)(dot - j), j);
    snprintf(obj, RF_ID_MAX, "%s", dot + 1);
    return rf_id_valid("job", job) && (rf_id_valid("art", obj) || rf_id_valid("mdl", obj));
}

/* The entries of one tenant folder of a store; only_job limits it to the
 * temporaries of that job. */
static void scan_tenant(entries *es, const char *dir, bool model, bool files, const char *only_job)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *t;
    while ((t = readdir(d))) {
        char job[RF_ID_MAX], obj[RF_ID_MAX];
        if (!strcmp(t->d_name, ".") || !strcmp(t->d_name, "..")) continue;
        if (parse_temp(t->d_name, job, obj)) {
            if (only_job && strcmp(job, only_job)) continue;
            entry *e = add(es);
            if (!e) break;
            e->kind = E_TEMP, e->model = model;
            snprintf(e->job, sizeof e->job, "%s", job);
            snprintf(e->obj, sizeof e->obj, "%s", obj);
            snprintf(e->path, sizeof e->path, "%s/%s", dir, t->d_name);
            snprintf(e->dest, sizeof e->dest, "%s/%s", dir, obj);
        } else if (!only_job && !strncmp(t->d_name, TMP, strlen(TMP))) {
            /* Not ours (an older layout, a hand-made copy): by its age alone. */
            entry *e = add(es);
            if (!e) break;
            e->kind = E_STALE;
            snprintf(e->path, sizeof e->path, "%s/%s", dir, t->d_name);
        } else if (files && !only_job && !model && rf_id_valid("art", t->d_name)) {
            entry *e = add(es);
            if (!e) break;
            e->kind = E_FILE;
            snprintf(e->obj, sizeof e->obj, "%s", t->d_name);
            snprintf(e->path, sizeof e->path, "%s/%s", dir, t->d_name);
        }
    }
    closedir(d);
}

static void scan_store(entries *es, const char *data_dir, const char *store, bool files)
{
    char root[1100];
    snprintf(root, sizeof root, "%s/%s", data_dir, store);
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *t;
    while ((t = readdir(d))) {
        if (t->d_name[0] == '.') continue;
        char sub[1300];
        snprintf(sub, sizeof sub, "%s/%s", root, t->d_name);
        scan_tenant(es, sub, !strcmp(store, "models"), files, NULL);
    }
    closedir(d);
}

static void scan_jobs(entries *es, const char *data_dir)
{
    char root[1100];
    snprintf(root, sizeof root, "%s/jobs", data_dir);
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *t;
    while ((t = readdir(d))) {
        if (!rf_id_valid("job", t->d_name)) continue;
        entry *e = add(es);
        if (!e) break;
        e->kind = E_JOBDIR;
        snprintf(e->job, sizeof e->job, "%s", t->d_name);
        snprintf(e->path, sizeof e->path, "%s/%s", root, t->d_name);
    }
    closedir(d);
}

/* Upload temporaries of the dataset store that nobody has written for an
 * hour: an upload in progress writes as its body arrives, and a stalled
 * connection is closed long before (REFINERY_HTTP_TIMEOUT). */
static int sweep_uploads(const char *data_dir)
{
    int removed = 0;
    char root[1100];
    snprintf(root, sizeof root, "%s/datasets", data_dir);
    DIR *d = opendir(root);
    if (!d) return 0;
    struct dirent *t;
    time_t now = time(NULL);
    while ((t = readdir(d))) {
        if (t->d_name[0] == '.') continue;
        char sub[1300];
        snprintf(sub, sizeof sub, "%s/%s", root, t->d_name);
        DIR *s = opendir(sub);
        if (!s) continue;
        struct dirent *e;
        while ((e = readdir(s))) {
            if (strncmp(e->d_name, TMP, strlen(TMP))) continue;
            char path[1700];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", sub, e->d_name);
            if (stat(path, &st) || now - st.st_mtime < UPLOAD_STALE_S) continue;
            if (!unlink(path)) {
                rf_log(RF_LOG_WARN, "sweep: removed the unfinished upload %s", path);
                removed++;
            }
        }
        closedir(s);
    }
    closedir(d);
    return removed;
}

/* A text[] literal of the ids the entries of kind k carry ("{}" when none). */
static char *ids_literal(const entries *es, int what)
{
    size_t cap = 3 + es->n * (RF_ID_MAX + 1), len = 1;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = '{';
    for (size_t i = 0; i < es->n; i++) {
        const entry *e = &es->e[i];
        const char *id = e->kind == E_STALE ? NULL
                         : what == 0        ? (e->kind == E_FILE ? NULL : e->job)
                         : what == 1        ? (e->kind == E_JOBDIR || e->model ? NULL : e->obj)
                                            : (e->kind == E_TEMP && e->model ? e->obj : NULL);
        if (!id) continue;
        len += (size_t)snprintf(s + len, cap - len, "%s%s", len > 1 ? "," : "", id);
    }
    snprintf(s + len, cap - len, "}");
    return s;
}

/* Fill active (the job is queued, running or waiting) and recorded (the row
 * exists) for every entry, in three queries. */
static int ask(PGconn *c, entries *es, rf_error *err)
{
    static const char *const sql[3] = {"SELECT id FROM jobs WHERE id = ANY($1::text[])"
                                       " AND status IN ('queued', 'running', 'waiting')",
                                       "SELECT id FROM artifacts WHERE id = ANY($1::text[])",
                                       "SELECT id FROM models WHERE id = ANY($1::text[])"};
    for (int q = 0; q < 3; q++) {
        char *lit = ids_literal(es, q);
        if (!lit) return rf_errorf(err, RF_ENOMEM, "out of memory");
        PGresult *r = NULL;
        int rc = strcmp(lit, "{}") ? rf_db_exec(c, sql[q], 1, (const char *[]){lit}, &r, err) : 0;
        free(lit);
        if (rc) {
            PQclear(r);
            return rc;
        }
        for (int i = 0; r && i < PQntuples(r); i++) {
            const char *id = PQgetvalue(r, i, 0);
            for (size_t k = 0; k < es->n; k++) {
                entry *e = &es->e[k];
                if (q == 0 && (e->kind == E_TEMP || e->kind == E_JOBDIR) && !strcmp(e->job, id))
                    e->active = true;
                if (q == 1 && (e->kind == E_TEMP || e->kind == E_FILE) && !e->model &&
                    !strcmp(e->obj, id))
                    e->recorded = true;
                if (q == 2 && e->kind == E_TEMP && e->model && !strcmp(e->obj, id))
                    e->recorded = true;
            }
        }
        PQclear(r);
    }
    return 0;
}

static void fsync_parent(const char *path)
{
    char dir[1400];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    if (fsync(fd)) rf_log(RF_LOG_WARN, "sweep: fsync of %s failed: %s", dir, strerror(errno));
    close(fd);
}

static void settle(entries *es, rf_sweep_stats *st)
{
    for (size_t i = 0; i < es->n; i++) {
        entry *e = &es->e[i];
        struct stat sb;
        if (e->kind == E_TEMP && e->recorded) {
            /* Recorded, not yet moved: finish the move (or drop the copy
             * when the move was made meanwhile). */
            if (!lstat(e->dest, &sb))
                rf_remove_tree(e->path);
            else if (!rename(e->path, e->dest))
                fsync_parent(e->dest);
            rf_log(RF_LOG_WARN, "sweep: %s %s of job %s moved into place",
                   e->model ? "model" : "artifact", e->obj, e->job);
            st->finished++;
        } else if (e->kind == E_TEMP && !e->active) {
            if (!rf_remove_tree(e->path)) {
                rf_log(RF_LOG_WARN, "sweep: removed %s, never recorded (job %s ended)", e->path,
                       e->job);
                st->removed++;
            }
        } else if (e->kind == E_JOBDIR && !e->active) {
            if (!rf_remove_tree(e->path)) st->removed++;
        } else if (e->kind == E_STALE && !lstat(e->path, &sb) &&
                   time(NULL) - sb.st_mtime >= UPLOAD_STALE_S) {
            if (!rf_remove_tree(e->path)) {
                rf_log(RF_LOG_WARN, "sweep: removed the unfinished file %s", e->path);
                st->removed++;
            }
        } else if (e->kind == E_FILE && !e->recorded) {
            if (!unlink(e->path)) {
                rf_log(RF_LOG_WARN, "sweep: removed %s, which no artifact names", e->path);
                st->unrecorded++;
            }
        }
    }
}

static int report_missing(PGconn *c, rf_sweep_stats *st, rf_error *err)
{
    PGresult *r;
    int rc = rf_db_exec(c,
                        "SELECT 'artifact', id, path FROM artifacts"
                        " UNION ALL SELECT 'dataset', id, path FROM datasets",
                        0, NULL, &r, err);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        struct stat sb;
        if (stat(PQgetvalue(r, i, 2), &sb)) {
            rf_log(RF_LOG_WARN, "sweep: %s %s is recorded but its file %s is missing",
                   PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
            st->missing++;
        }
    }
    PQclear(r);
    return rc;
}

int rf_sweep_data(PGconn *c, const char *data_dir, bool full, rf_sweep_stats *st, rf_error *err)
{
    memset(st, 0, sizeof *st);
    entries es = {0};
    scan_store(&es, data_dir, "artifacts", full);
    scan_store(&es, data_dir, "models", false);
    scan_jobs(&es, data_dir);
    int rc = ask(c, &es, err);
    if (!rc) settle(&es, st);
    free(es.e);
    if (!rc) st->removed += sweep_uploads(data_dir);
    if (!rc && full) rc = report_missing(c, st, err);
    return rc;
}

void rf_sweep_job(PGconn *c, const char *data_dir, const char *tenant, const char *job_id)
{
    entries es = {0};
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/artifacts/%s", data_dir, tenant);
    scan_tenant(&es, dir, false, false, job_id);
    snprintf(dir, sizeof dir, "%s/models/%s", data_dir, tenant);
    scan_tenant(&es, dir, true, false, job_id);
    rf_error err;
    rf_sweep_stats st = {0};
    if (es.n && ask(c, &es, &err))
        rf_log(RF_LOG_WARN, "job %s: its temporaries were not swept: %s", job_id, err.msg);
    else
        settle(&es, &st);
    free(es.e);
    snprintf(dir, sizeof dir, "%s/jobs/%s", data_dir, job_id);
    if (rf_remove_tree(dir))
        rf_log(RF_LOG_WARN, "job %s: its folder was not removed: %s", job_id, strerror(errno));
}
