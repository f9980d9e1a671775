#include "service/db.h"

#include "engine/core/util.h"
#include "service/log.h"
#include "service/metrics.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* Server notices (e.g. "relation already exists, skipping") are not errors. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int rf_db_connect(const char *url, PGconn **out, rf_error *err)
{
    *out = NULL;
    if (!url || !*url) return rf_errorf(err, RF_EDB, "no database URL configured");
    PGconn *c = PQconnectdb(url);
    if (!c) return rf_errorf(err, RF_ENOMEM, "out of memory connecting to the database");
    if (PQstatus(c) != CONNECTION_OK) {
        rf_metrics_db_error();
        rf_errorf(err, RF_EDB, "cannot connect to the database: %s", PQerrorMessage(c));
        if (err) trim_newline(err->msg);
        PQfinish(c);
        return RF_EDB;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    *out = c;
    return 0;
}

int rf_db_connect_wait(const char *url, int wait_s, const volatile sig_atomic_t *stop, PGconn **out,
                       rf_error *err)
{
    *out = NULL;
    if (wait_s <= 0 || !url || !*url) return rf_db_connect(url, out, err);
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        rf_errorf(err, RF_EINVAL, "REFINERY_DATABASE_URL does not parse: %s",
                  perr ? perr : "out of memory");
        if (err) trim_newline(err->msg);
        PQfreemem(perr);
        return RF_EINVAL;
    }
    PQconninfoFree(opts);

    double deadline = rf_now_s() + wait_s, delay = 0.25;
    for (int attempt = 1;; attempt++) {
        /* One attempt must not outlive the deadline on a host that drops
         * packets: a connect_timeout (libpq's floor is 2 s) that the URL's own
         * overrides, since keywords before an expanded dbname give way to it. */
        double left = deadline - rf_now_s();
        char timeout[16];
        snprintf(timeout, sizeof timeout, "%d", left > 10 ? 10 : left < 2 ? 2 : (int)left);
        const char *const keys[] = {"connect_timeout", "dbname", NULL};
        const char *const vals[] = {timeout, url, NULL};
        PGconn *c = PQconnectdbParams(keys, vals, 1);
        if (!c) return rf_errorf(err, RF_ENOMEM, "out of memory connecting to the database");
        if (PQstatus(c) == CONNECTION_OK) {
            PQsetNoticeProcessor(c, quiet_notice, NULL);
            if (attempt > 1) rf_log(RF_LOG_INFO, "database reached at attempt %d", attempt);
            *out = c;
            return 0;
        }
        rf_metrics_db_error();
        rf_errorf(err, RF_EDB, "cannot connect to the database: %s", PQerrorMessage(c));
        if (err) trim_newline(err->msg);
        bool needs_password = PQconnectionNeedsPassword(c);
        PQfinish(c);
        left = deadline - rf_now_s();
        if (needs_password || left <= 0) return RF_EDB;
        if (delay > left) delay = left;
        rf_log(RF_LOG_WARN, "%s (attempt %d; retrying in %.2f s, for up to %.1f s more)",
               err ? err->msg : "cannot connect to the database", attempt, delay, left);
        /* A signal (SIGTERM from `docker stop`) ends the wait: nanosleep is
         * never restarted, so EINTR means one arrived; the flag catches one
         * that arrived while connecting. */
        struct timespec ts = {(time_t)delay, (long)((delay - (time_t)delay) * 1e9)};
        if ((stop && *stop) || (nanosleep(&ts, NULL) && errno == EINTR) || (stop && *stop))
            return rf_errorf(err, RF_ECANCELED, "stopped while waiting for the database");
        delay = delay * 2 > 5 ? 5 : delay * 2;
    }
}

int rf_db_exec(PGconn *c, const char *sql, int n, const char *const *params, PGresult **res,
               rf_error *err)
{
    if (res) *res = NULL;
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rf_metrics_db_error();
        const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        rf_errorf(err, RF_EDB, "database error%s%s%s: %s", state ? " (SQLSTATE " : "",
                  state ? state : "", state ? ")" : "", msg && *msg ? msg : "connection lost");
        if (err) trim_newline(err->msg);
        /* Keep the failed result for callers that inspect the SQLSTATE. */
        if (res)
            *res = r;
        else
            PQclear(r);
        return RF_EDB;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* Prepared statements, per connection, for the hot paths. The SQL passed to
 * rf_db_execp is a string literal, so its address names it. Each thread uses
 * its own connections, so the record of what was prepared is thread-local; a
 * connection reopened at a recycled address is caught by the server's "does
 * not exist" answer and prepared again. */
#define PREP_SLOTS 128

typedef struct {
    const PGconn *conn;
    const char *sql;
} prep_slot;

static _Thread_local prep_slot t_prep[PREP_SLOTS];

static prep_slot *prep_find(const PGconn *c, const char *sql, bool *found)
{
    size_t h = (((uintptr_t)sql >> 3) ^ ((uintptr_t)c >> 4)) % PREP_SLOTS;
    for (size_t i = 0; i < PREP_SLOTS; i++) {
        prep_slot *s = &t_prep[(h + i) % PREP_SLOTS];
        if (s->conn == c && s->sql == sql) {
            *found = true;
            return s;
        }
        if (!s->conn) {
            *found = false;
            return s;
        }
    }
    /* Full: forget everything (statements stay on the server, harmlessly). */
    memset(t_prep, 0, sizeof t_prep);
    *found = false;
    return &t_prep[h];
}

int rf_db_execp(PGconn *c, const char *sql, int n, const char *const *params, PGresult **res,
                rf_error *err)
{
    char name[32];
    snprintf(name, sizeof name, "rf_%lx", (unsigned long)(uintptr_t)sql);
    bool found;
    prep_slot *slot = prep_find(c, sql, &found);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!found) {
            PGresult *p = PQprepare(c, name, sql, n, NULL);
            ExecStatusType st = PQresultStatus(p);
            /* 42P05: already prepared on this connection (our record was lost). */
            bool ok = st == PGRES_COMMAND_OK || !strcmp(rf_db_sqlstate(p), "42P05");
            if (!ok) {
                rf_errorf(err, RF_EDB, "database error: %s", PQresultErrorMessage(p));
                if (err) trim_newline(err->msg);
                if (res)
                    *res = p;
                else
                    PQclear(p);
                return RF_EDB;
            }
            PQclear(p);
            slot->conn = c;
            slot->sql = sql;
        }
        PGresult *r = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (res)
                *res = r;
            else
                PQclear(r);
            return 0;
        }
        if (attempt == 0 && !strcmp(rf_db_sqlstate(r), "26000")) { /* not prepared after all */
            PQclear(r);
            found = false;
            continue;
        }
        rf_metrics_db_error();
        const char *state = rf_db_sqlstate(r);
        rf_errorf(err, RF_EDB, "database error%s%s%s: %s", *state ? " (SQLSTATE " : "", state,
                  *state ? ")" : "", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        if (err) trim_newline(err->msg);
        if (res)
            *res = r;
        else
            PQclear(r);
        return RF_EDB;
    }
    return RF_EDB;
}

int rf_db_prepare(PGconn *c, const char *sql, int n, char name[32], rf_error *err)
{
    snprintf(name, 32, "rf_%lx", (unsigned long)(uintptr_t)sql);
    bool found;
    prep_slot *slot = prep_find(c, sql, &found);
    if (found) return 0;
    PGresult *p = PQprepare(c, name, sql, n, NULL);
    bool ok = PQresultStatus(p) == PGRES_COMMAND_OK || !strcmp(rf_db_sqlstate(p), "42P05");
    if (!ok) {
        rf_metrics_db_error();
        rf_errorf(err, RF_EDB, "database error: %s",
                  p ? PQresultErrorMessage(p) : PQerrorMessage(c));
        if (err) trim_newline(err->msg);
    } else {
        slot->conn = c;
        slot->sql = sql;
    }
    PQclear(p);
    return ok ? 0 : RF_EDB;
}

void rf_db_forget(PGconn *c, const char *sql)
{
    bool found;
    prep_slot *slot = prep_find(c, sql, &found);
    /* An emptied slot would end the probe sequence of the ones after it, so
     * it keeps a connection no statement is run on. */
    if (found) slot->sql = "";
}

static int lit_reserve(rf_array_lit *a, size_t more)
{
    if (a->len + more <= a->cap) return 0;
    size_t c = a->cap ? a->cap : 256;
    while (c < a->len + more)
        c *= 2;
    char *b = realloc(a->s, c);
    if (!b) return RF_ENOMEM;
    a->s = b;
    a->cap = c;
    return 0;
}

int rf_array_lit_add(rf_array_lit *a, const char *v)
{
    if (lit_reserve(a, (v ? 2 * strlen(v) : 4) + 4)) return RF_ENOMEM;
    char sep = a->len ? ',' : '{';
    a->s[a->len++] = sep;
    if (!v) {
        memcpy(a->s + a->len, "NULL", 4);
        a->len += 4;
        return 0;
    }
    a->s[a->len++] = '"';
    for (const char *q = v; *q; q++) {
        if (*q == '"' || *q == '\\') a->s[a->len++] = '\\';
        a->s[a->len++] = *q;
    }
    a->s[a->len++] = '"';
    return 0;
}

int rf_array_lit_end(rf_array_lit *a)
{
    if (lit_reserve(a, 3)) return RF_ENOMEM;
    if (!a->len) a->s[a->len++] = '{';
    a->s[a->len++] = '}';
    a->s[a->len] = '\0';
    return 0;
}

const char *rf_db_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

int rf_db_begin(PGconn *c, rf_error *err)
{
    return rf_db_exec(c, "BEGIN", 0, NULL, NULL, err);
}

int rf_db_commit(PGconn *c, rf_error *err)
{
    return rf_db_exec(c, "COMMIT", 0, NULL, NULL, err);
}

void rf_db_rollback(PGconn *c)
{
    PGresult *r = PQexec(c, "ROLLBACK");
    PQclear(r);
}

bool rf_db_alive(PGconn *c)
{
    if (!c || PQstatus(c) != CONNECTION_OK) return false;
    /* An idle connection has nothing to read but notices and notifications.
     * A server that shut down (a restart, a failover) sent its FATAL and
     * closed the socket; reading that now marks the connection bad, where
     * the next query would otherwise fail on it. */
    for (int i = 0; i < 8; i++) {
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        int n = poll(&pfd, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if ((pfd.revents & (POLLERR | POLLNVAL)) || !PQconsumeInput(c)) return false;
        if (PQstatus(c) != CONNECTION_OK) return false;
        if (!(pfd.revents & POLLIN)) break;
    }
    return PQstatus(c) == CONNECTION_OK;
}

/* Per-thread connections for HTTP pool threads. */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_url[1024];

static void close_conn(void *p)
{
    PQfinish(p);
}

static void make_key(void)
{
    pthread_key_create(&g_key, close_conn);
}

void rf_db_set_url(const char *url)
{
    snprintf(g_url, sizeof g_url, "%s", url);
}

PGconn *rf_db_thread(rf_error *err)
{
    pthread_once(&g_once, make_key);
    PGconn *c = pthread_getspecific(g_key);
    if (c && rf_db_alive(c) && PQtransactionStatus(c) == PQTRANS_IDLE) return c;
    if (c) {
        /* Broken (the server closed it: a restart), or left inside a
         * transaction by a failed request: start over. */
        PQfinish(c);
        pthread_setspecific(g_key, NULL);
    }
    if (rf_db_connect(g_url, &c, err)) return NULL;
    pthread_setspecific(g_key, c);
    return c;
}

int rf_db_list_json(PGresult *r, int limit, char **json, rf_error *err)
{
    int n = PQntuples(r), shown = n > limit ? limit : n;
    size_t cap = 64;
    for (int i = 0; i < shown; i++)
        cap += (size_t)PQgetlength(r, i, 0) + 1;
    char *s = malloc(cap);
    if (!s) return rf_errorf(err, RF_ENOMEM, "out of memory");
    size_t len = (size_t)sprintf(s, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < shown; i++) {
        if (i) s[len++] = ',';
        size_t l = (size_t)PQgetlength(r, i, 0);
        memcpy(s + len, PQgetvalue(r, i, 0), l);
        len += l;
    }
    sprintf(s + len, "],\"has_more\":%s}", n > limit ? "true" : "false");
    *json = s;
    return 0;
}
