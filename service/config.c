#include "service/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int env_int(const char *name, int def, int lo, int hi, int *out, rf_error *err)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return rf_error_field(err, RF_EINVAL, name, "%s must be an integer in [%d, %d], got '%s'",
                              name, lo, hi, v);
    *out = (int)x;
    return 0;
}

static void env_str(const char *name, const char *def, char *out, size_t cap)
{
    const char *v = getenv(name);
    snprintf(out, cap, "%s", v && *v ? v : def);
}

int rf_config_load(rf_config *cfg, rf_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    env_str("REFINERY_DATABASE_URL", "", cfg->database_url, sizeof cfg->database_url);
    env_str("REFINERY_DATA_DIR", ".run/data", cfg->data_dir, sizeof cfg->data_dir);
    env_str("REFINERY_MIGRATIONS_DIR", "", cfg->migrations_dir, sizeof cfg->migrations_dir);
    env_str("REFINERY_MODEL_ROOTS", "", cfg->model_roots, sizeof cfg->model_roots);
    env_str("REFINERY_TEACHER_URLS", "", cfg->teacher_urls, sizeof cfg->teacher_urls);

    /* REFINERY_LISTEN: "host:port", ":port" or "port". */
    char listen[300];
    env_str("REFINERY_LISTEN", "127.0.0.1:8080", listen, sizeof listen);
    char *colon = strrchr(listen, ':');
    const char *port = colon ? colon + 1 : listen;
    if (colon) {
        *colon = '\0';
        snprintf(cfg->listen_host, sizeof cfg->listen_host, "%s", *listen ? listen : "0.0.0.0");
    } else {
        snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535)
        return rf_error_field(err, RF_EINVAL, "REFINERY_LISTEN",
                              "REFINERY_LISTEN must be host:port, got '%s'",
                              getenv("REFINERY_LISTEN"));
    cfg->listen_port = (int)p;

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers block on the database, so more threads than cores keep both the
     * CPU and PostgreSQL's group commit busy. */
    int threads_def = (int)(ncpu > 0 ? ncpu * 4 : 8);
    if (threads_def < 8) threads_def = 8;
    if (threads_def > 64) threads_def = 64;
    int rc;
    if ((rc = env_int("REFINERY_WORKERS", 1, 0, 256, &cfg->workers, err)) ||
        (rc = env_int("REFINERY_HTTP_THREADS", threads_def, 1, 256, &cfg->http_threads, err)) ||
        (rc = env_int("REFINERY_HTTP_MAX_CONNECTIONS", 1024, 1, 100000, &cfg->http_max_connections,
                      err)) ||
        (rc = env_int("REFINERY_HTTP_TIMEOUT", 60, 1, 86400, &cfg->http_timeout_s, err)) ||
        (rc = env_int("REFINERY_LEASE_MS", 30000, 200, 3600000, &cfg->lease_ms, err)) ||
        (rc = env_int("REFINERY_POLL_MS", 1000, 10, 60000, &cfg->poll_ms, err)) ||
        (rc = env_int("REFINERY_RETRY_BASE_MS", 2000, 0, 3600000, &cfg->retry_base_ms, err)) ||
        (rc = env_int("REFINERY_RETRY_MAX_MS", 600000, 0, 86400000, &cfg->retry_max_ms, err)) ||
        (rc = env_int("REFINERY_SSE_MAX_STREAMS", 256, 1, 100000, &cfg->sse_max_streams, err)) ||
        (rc = env_int("REFINERY_SSE_PING_MS", 15000, 100, 3600000, &cfg->sse_ping_ms, err)) ||
        (rc = env_int("REFINERY_SHUTDOWN_GRACE_MS", 30000, 0, 3600000, &cfg->shutdown_grace_ms,
                      err)) ||
        (rc = env_int("REFINERY_DB_WAIT_S", 0, 0, 86400, &cfg->db_wait_s, err)))
        return rc;

    /* The body cap is a size, not an int: parse it on its own. */
    const char *mb = getenv("REFINERY_MAX_BODY_BYTES");
    cfg->max_body_bytes = 1 << 20;
    if (mb && *mb) {
        errno = 0;
        unsigned long long x = strtoull(mb, &end, 10);
        if (errno || *end || x < 1024 || x > (1ull << 40))
            return rf_error_field(err, RF_EINVAL, "REFINERY_MAX_BODY_BYTES",
                                  "REFINERY_MAX_BODY_BYTES must be a byte count >= 1024, got '%s'",
                                  mb);
        cfg->max_body_bytes = (size_t)x;
    }

    const char *md = getenv("REFINERY_MAX_DATASET_BYTES");
    cfg->max_dataset_bytes = 16ull << 30;
    if (md && *md) {
        errno = 0;
        unsigned long long x = strtoull(md, &end, 10);
        if (errno || *end || x < 1)
            return rf_error_field(err, RF_EINVAL, "REFINERY_MAX_DATASET_BYTES",
                                  "REFINERY_MAX_DATASET_BYTES must be a byte count, got '%s'", md);
        cfg->max_dataset_bytes = x;
    }

    snprintf(cfg->served_roots, sizeof cfg->served_roots, "%s%s%s/models", cfg->model_roots,
             cfg->model_roots[0] ? ":" : "", cfg->data_dir);

    const char *lf = getenv("REFINERY_LOG_FORMAT");
    if (lf && *lf && strcmp(lf, "text") && strcmp(lf, "json"))
        return rf_error_field(err, RF_EINVAL, "REFINERY_LOG_FORMAT",
                              "REFINERY_LOG_FORMAT must be 'text' or 'json', got '%s'", lf);
    cfg->log_json = lf && !strcmp(lf, "json");
    const char *al = getenv("REFINERY_ACCESS_LOG");
    cfg->access_log = !(al && !strcmp(al, "0"));
    const char *tj = getenv("REFINERY_TEST_JOBS");
    cfg->test_jobs = tj && !strcmp(tj, "1");
    return 0;
}
