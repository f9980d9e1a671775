/* Thin helpers over libpq. A connection belongs to one thread: HTTP pool
 * threads each get their own (rf_db_thread), workers and the listener open
 * theirs. Parameters are always sent separately from the SQL text. */
#ifndef RF_DB_H
#define RF_DB_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>

#include "engine/core/error.h"

int rf_db_connect(const char *url, PGconn **out, rf_error *err);

/* rf_db_connect for a process that is starting: while the server cannot be
 * reached (a database container still starting, a failover), retry with
 * backoff (250 ms doubling to 5 s), logging each failure, for up to wait_s
 * seconds (REFINERY_DB_WAIT_S); wait_s 0 is one attempt, as rf_db_connect.
 * A conninfo that does not parse or a missing password is not retried. A
 * signal, or *stop turning non-zero (a signal handler's flag; may be NULL),
 * ends the wait with RF_ECANCELED. */
int rf_db_connect_wait(const char *url, int wait_s, const volatile sig_atomic_t *stop, PGconn **out,
                       rf_error *err);

/* Run sql with n text parameters (NULL entries are SQL NULL). On success *res
 * holds the result (PQclear it); on failure err says what the server said.
 * res may be NULL when the caller needs no rows. */
int rf_db_exec(PGconn *c, const char *sql, int n, const char *const *params, PGresult **res,
               rf_error *err);

/* The same, as a statement prepared once per connection. sql must be a string
 * literal (its address is its name). For the hot paths. */
int rf_db_execp(PGconn *c, const char *sql, int n, const char *const *params, PGresult **res,
                rf_error *err);

/* For pipelines (PQsendQueryPrepared): prepare sql on c unless done already,
 * as rf_db_execp does, and write its statement name to name. When the server
 * answers that it does not know the name after all (SQLSTATE 26000: a new
 * connection at a recycled address), rf_db_forget drops the record, and the
 * next rf_db_prepare prepares it again. */
int rf_db_prepare(PGconn *c, const char *sql, int n, char name[32], rf_error *err);
void rf_db_forget(PGconn *c, const char *sql);

/* A PostgreSQL array literal being built, {"a","b\\"c",NULL}: one per column
 * of a statement that works on many rows at once (unnest($1::text[], …)). */
typedef struct {
    char *s;
    size_t len, cap;
} rf_array_lit;

/* Appends element v (NULL: SQL NULL), quoted and escaped; the first element
 * opens the literal. rf_array_lit_end closes it (an empty one too: "{}").
 * RF_ENOMEM when out of memory; free(a->s) afterwards. */
int rf_array_lit_add(rf_array_lit *a, const char *v);
int rf_array_lit_end(rf_array_lit *a);

/* The SQLSTATE of a failed result, "" when none. */
const char *rf_db_sqlstate(const PGresult *res);

/* Whether c is still usable as far as can be told without a round trip: not
 * marked bad, and the server has not closed it while it sat idle (what a
 * database restart does to every connection). */
bool rf_db_alive(PGconn *c);

/* This thread's connection, opened on first use and reopened after a broken
 * one (rf_db_alive); NULL with err filled when the database cannot be reached. Closed when
 * the thread exits. */
PGconn *rf_db_thread(rf_error *err);
void rf_db_set_url(const char *url);

/* A page as the API lists it: {"object":"list","data":[…],"has_more":…} from
 * the first column of r, which was asked for limit+1 rows (a row past the limit
 * means there are more). */
int rf_db_list_json(PGresult *r, int limit, char **json, rf_error *err);

/* BEGIN / COMMIT / ROLLBACK (rollback ignores errors: it is the cleanup path). */
int rf_db_begin(PGconn *c, rf_error *err);
int rf_db_commit(PGconn *c, rf_error *err);
void rf_db_rollback(PGconn *c);

#endif
