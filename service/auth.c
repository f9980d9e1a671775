#include "service/auth.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "service/db.h"

#define KEY_PREFIX "rfk_"
#define KEY_RANDOM 40

/* "\x" + hex, the text form of bytea that PostgreSQL accepts as a parameter. */
static void sha256_param(const char *s, char out[2 + 64 + 1])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    out[0] = '\\';
    out[1] = 'x';
    rf_hex(md, 32, out + 2);
}

int rf_key_create(PGconn *c, const char *tenant, char key_out[RF_KEY_MAX], char id_out[RF_ID_MAX],
                  char tenant_id_out[RF_ID_MAX], rf_error *err)
{
    if (!tenant || !*tenant || strlen(tenant) > 64)
        return rf_error_field(err, RF_EINVAL, "tenant", "tenant name must be 1 to 64 characters");
    for (const char *p = tenant; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return rf_error_field(err, RF_EINVAL, "tenant",
                                  "tenant name may hold only letters, digits, '-', '_' and '.'");

    /* The key: a recognisable prefix and 40 characters of [0-9a-z] (~206 bits). */
    char tid[RF_ID_MAX], hash[67];
    memcpy(key_out, KEY_PREFIX, sizeof KEY_PREFIX);
    if (rf_random_alnum(key_out + strlen(KEY_PREFIX), KEY_RANDOM) || rf_id_new("key", id_out) ||
        rf_id_new("ten", tid))
        return rf_errorf(err, RF_EIO, "the system's random source failed");
    sha256_param(key_out, hash);

    int rc;
    PGresult *r = NULL;
    if ((rc = rf_db_begin(c, err))) return rc;
    const char *p1[2] = {tid, tenant};
    if ((rc = rf_db_execp(c,
                          "INSERT INTO tenants (id, name) VALUES ($1, $2) "
                          "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                          2, p1, &r, err)))
        goto fail;
    snprintf(tenant_id_out, RF_ID_MAX, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%.10s", key_out);
    const char *p2[4] = {id_out, tenant_id_out, hash, prefix};
    if ((rc = rf_db_execp(c,
                          "INSERT INTO api_keys (id, tenant_id, key_hash, prefix) "
                          "VALUES ($1, $2, $3::bytea, $4)",
                          4, p2, NULL, err)) ||
        (rc = rf_db_commit(c, err)))
        goto fail;
    return 0;
fail:
    PQclear(r);
    rf_db_rollback(c);
    return rc;
}

int rf_key_revoke(PGconn *c, const char *id, rf_error *err)
{
    if (!rf_id_valid("key", id))
        return rf_error_field(err, RF_EINVAL, "id", "'%s' is not a key id (key_…)", id);
    PGresult *r;
    const char *p[1] = {id};
    int rc = rf_db_execp(c,
                         "WITH k AS (SELECT id, revoked_at FROM api_keys WHERE id = $1), "
                         "u AS (UPDATE api_keys SET revoked_at = now() WHERE id = $1 "
                         "      AND revoked_at IS NULL RETURNING id), "
                         "n AS (SELECT pg_notify('refinery_keys', id) FROM u) "
                         "SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM u), "
                         "       (SELECT count(*) FROM n)",
                         1, p, &r, err);
    if (rc) {
        PQclear(r);
        return rc;
    }
    int exists = atoi(PQgetvalue(r, 0, 0)), revoked = atoi(PQgetvalue(r, 0, 1));
    PQclear(r);
    if (!exists) return rf_errorf(err, RF_ENOTFOUND, "no key with id %s", id);
    if (!revoked) return rf_errorf(err, RF_ECONFLICT, "key %s is already revoked", id);
    rf_auth_flush();
    return 0;
}

/* A small cache of hash → tenant, so that a request costs one query, not two.
 * Entries live a few seconds; a revocation anywhere flushes every process's
 * cache through NOTIFY refinery_keys (see worker.c's listener). */
#define CACHE_SLOTS 256
#define CACHE_TTL_S 10

typedef struct {
    char hash[67];
    char tenant[RF_ID_MAX];
    time_t expires;
} cache_entry;

static cache_entry g_cache[CACHE_SLOTS];
static pthread_rwlock_t g_cache_lock = PTHREAD_RWLOCK_INITIALIZER;
static unsigned g_cache_epoch;

void rf_auth_flush(void)
{
    pthread_rwlock_wrlock(&g_cache_lock);
    memset(g_cache, 0, sizeof g_cache);
    g_cache_epoch++;
    pthread_rwlock_unlock(&g_cache_lock);
}

static unsigned slot_of(const char *hash)
{
    unsigned h = 2166136261u;
    for (const char *p = hash; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % CACHE_SLOTS;
}

int rf_auth_bearer(PGconn *c, const char *header, char tenant_out[RF_ID_MAX], rf_error *err)
{
    if (!header || strncasecmp(header, "Bearer ", 7))
        return rf_errorf(err, RF_EAUTH, "missing bearer token");
    const char *key = header + 7;
    while (*key == ' ')
        key++;
    size_t len = strlen(key);
    if (len != strlen(KEY_PREFIX) + KEY_RANDOM || strncmp(key, KEY_PREFIX, strlen(KEY_PREFIX)))
        return rf_errorf(err, RF_EAUTH, "invalid API key");
    char hash[67];
    sha256_param(key, hash);
    unsigned slot = slot_of(hash);
    time_t now = time(NULL);

    pthread_rwlock_rdlock(&g_cache_lock);
    unsigned epoch = g_cache_epoch;
    int hit = g_cache[slot].expires > now && !strcmp(g_cache[slot].hash, hash);
    if (hit) snprintf(tenant_out, RF_ID_MAX, "%s", g_cache[slot].tenant);
    pthread_rwlock_unlock(&g_cache_lock);
    if (hit) return 0;

    PGresult *r;
    const char *p[1] = {hash};
    int rc = rf_db_execp(c,
                         "SELECT tenant_id FROM api_keys WHERE key_hash = $1::bytea "
                         "AND revoked_at IS NULL",
                         1, p, &r, err);
    if (rc) {
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return rf_errorf(err, RF_EAUTH, "invalid API key");
    }
    snprintf(tenant_out, RF_ID_MAX, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    pthread_rwlock_wrlock(&g_cache_lock);
    /* A flush that ran while we queried may have been for this very key. */
    if (epoch == g_cache_epoch) {
        snprintf(g_cache[slot].hash, sizeof g_cache[slot].hash, "%s", hash);
        snprintf(g_cache[slot].tenant, RF_ID_MAX, "%s", tenant_out);
        g_cache[slot].expires = now + CACHE_TTL_S;
    }
    pthread_rwlock_unlock(&g_cache_lock);
    return 0;
}
