/* API keys and tenants. A key is shown once at creation; only its SHA-256 is
 * stored. Every /v1 request names its key as `Authorization: Bearer <key>`,
 * and everything it sees is scoped to the key's tenant. */
#ifndef RF_AUTH_H
#define RF_AUTH_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "service/ids.h"

#define RF_KEY_MAX 64

/* Create (or reuse) the tenant named tenant and a new key for it. */
int rf_key_create(PGconn *c, const char *tenant, char key_out[RF_KEY_MAX], char id_out[RF_ID_MAX],
                  char tenant_id_out[RF_ID_MAX], rf_error *err);
/* Revoke by key id; RF_ENOTFOUND when no such key, RF_ECONFLICT when already revoked. */
int rf_key_revoke(PGconn *c, const char *id, rf_error *err);

/* Resolve an Authorization header value to a tenant id. RF_EAUTH for anything
 * missing, malformed, unknown or revoked (the caller does not say which). */
int rf_auth_bearer(PGconn *c, const char *header, char tenant_out[RF_ID_MAX], rf_error *err);

/* Forget cached key lookups (a key was revoked somewhere). */
void rf_auth_flush(void);

#endif
