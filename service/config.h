/* Process configuration, read once from the environment (DESIGN.md). */
#ifndef RF_CONFIG_H
#define RF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/core/error.h"

typedef struct rf_config {
    char database_url[1024]; /* REFINERY_DATABASE_URL (libpq conninfo or URI) */
    char listen_host[256];   /* REFINERY_LISTEN host part, default 127.0.0.1 */
    int listen_port;         /* REFINERY_LISTEN port part, default 8080 */
    char data_dir[1024];     /* REFINERY_DATA_DIR, default ./.run/data */
    char
        model_roots[4096]; /* REFINERY_MODEL_ROOTS: colon-separated folders models may live under */
    char served_roots[5200];   /* those, plus the store of models jobs made (data_dir/models) */
    char migrations_dir[1024]; /* REFINERY_MIGRATIONS_DIR: override the embedded set */
    int workers;               /* REFINERY_WORKERS, default 1 */
    int http_threads;          /* REFINERY_HTTP_THREADS, default 4×cores in [8, 64] */
    int http_max_connections;  /* REFINERY_HTTP_MAX_CONNECTIONS, default 1024 */
    int http_timeout_s;        /* REFINERY_HTTP_TIMEOUT, idle connection timeout, default 60 */
    size_t max_body_bytes;     /* REFINERY_MAX_BODY_BYTES, default 1 MiB */
    unsigned long long max_dataset_bytes; /* REFINERY_MAX_DATASET_BYTES, default 16 GiB */
    bool log_json;                        /* REFINERY_LOG_FORMAT=json */
    bool access_log;                      /* REFINERY_ACCESS_LOG=0 turns the access log off */
    int lease_ms;                         /* REFINERY_LEASE_MS, default 30000 */
    int poll_ms;             /* REFINERY_POLL_MS, fallback claim polling, default 1000 */
    int retry_base_ms;       /* REFINERY_RETRY_BASE_MS, backoff base, default 2000 */
    int retry_max_ms;        /* REFINERY_RETRY_MAX_MS, backoff cap, default 600000 */
    int shutdown_grace_ms;   /* REFINERY_SHUTDOWN_GRACE_MS, default 30000 */
    int sse_max_streams;     /* REFINERY_SSE_MAX_STREAMS, default 256 */
    int sse_ping_ms;         /* REFINERY_SSE_PING_MS, keep-alive comment interval, default 15000 */
    bool test_jobs;          /* REFINERY_TEST_JOBS=1 registers the test.* job types */
    int db_wait_s;           /* REFINERY_DB_WAIT_S: retry the first connection, default 0 */
    char teacher_urls[4096]; /* REFINERY_TEACHER_URLS: URL prefixes dataset teachers may use */
} rf_config;

/* Fill cfg from the environment; an unparsable value is an error naming the
 * variable. */
int rf_config_load(rf_config *cfg, rf_error *err);

#endif
