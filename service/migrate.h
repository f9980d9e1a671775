/* Schema migrations: migrations/NNNN_name.sql, compiled into the binary (or
 * read from REFINERY_MIGRATIONS_DIR), applied once each, in order, each in its
 * own transaction, recorded in schema_migrations. A session advisory lock
 * serialises processes that start together. */
#ifndef RF_MIGRATE_H
#define RF_MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "engine/core/error.h"

/* Apply what is missing. dir NULL or "" uses the embedded set. *applied (may
 * be NULL) gets how many ran. A failing migration is rolled back whole and
 * err carries the SQL error and the file's name. */
int rf_migrate(PGconn *c, const char *dir, int *applied, rf_error *err);

/* The newest version this binary knows ("0001"…); "" when none. */
int rf_migrate_latest(const char *dir, char *out, size_t cap, rf_error *err);

/* True when the database has every migration this binary knows. */
bool rf_migrate_is_current(PGconn *c, const char *latest);

#endif
