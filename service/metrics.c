#include "service/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/model_cache.h"

#define MAX_ROUTES 64
#define NSTATUS 600
static const double k_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof k_buckets / sizeof k_buckets[0])

/* Index MAX_ROUTES is "no route matched". */
typedef struct {
    atomic_uint_fast64_t by_status[NSTATUS];
    atomic_uint_fast64_t bucket[NBUCKETS];
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
} route_stats;

static const rf_route *g_routes;
static int g_nroutes;
static route_stats g_stats[MAX_ROUTES + 1];
static atomic_uint_fast64_t g_db_errors, g_artifact_bytes;
static atomic_int g_workers, g_busy;

void rf_metrics_init(const rf_route *routes)
{
    g_routes = routes;
    g_nroutes = 0;
    while (routes && routes[g_nroutes].method && g_nroutes < MAX_ROUTES)
        g_nroutes++;
}

void rf_metrics_request(const rf_route *route, int status, double seconds)
{
    int i = route && g_routes && route >= g_routes && route < g_routes + g_nroutes
                ? (int)(route - g_routes)
                : MAX_ROUTES;
    route_stats *s = &g_stats[i];
    if (status > 0 && status < NSTATUS) atomic_fetch_add(&s->by_status[status], 1);
    for (size_t b = 0; b < NBUCKETS; b++)
        if (seconds <= k_buckets[b]) {
            atomic_fetch_add(&s->bucket[b], 1);
            break;
        }
    atomic_fetch_add(&s->count, 1);
    atomic_fetch_add(&s->sum_us, (uint_fast64_t)(seconds * 1e6));
}

void rf_metrics_db_error(void)
{
    atomic_fetch_add(&g_db_errors, 1);
}

void rf_metrics_artifact_bytes(uint64_t n)
{
    atomic_fetch_add(&g_artifact_bytes, n);
}

void rf_metrics_workers(int delta_total, int delta_busy)
{
    atomic_fetch_add(&g_workers, delta_total);
    atomic_fetch_add(&g_busy, delta_busy);
}

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} buf;

static void add(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static void route_labels(int i, char *out, size_t cap)
{
    if (i == MAX_ROUTES)
        snprintf(out, cap, "route=\"unmatched\",method=\"\"");
    else
        snprintf(out, cap, "route=\"%s\",method=\"%s\"", g_routes[i].pattern, g_routes[i].method);
}

char *rf_metrics_render(PGconn *c)
{
    buf b = {malloc(16384), 0, 16384, 0};
    if (!b.s) return NULL;
    char labels[256];

    add(&b, "# HELP refinery_http_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE refinery_http_requests_total counter\n");
    for (int i = 0; i <= MAX_ROUTES; i++) {
        if (i >= g_nroutes && i != MAX_ROUTES) continue;
        route_labels(i, labels, sizeof labels);
        for (int st = 100; st < NSTATUS; st++) {
            uint_fast64_t n = atomic_load(&g_stats[i].by_status[st]);
            if (n)
                add(&b, "refinery_http_requests_total{%s,status=\"%d\"} %llu\n", labels, st,
                    (unsigned long long)n);
        }
    }
    add(&b, "# HELP refinery_http_request_duration_seconds Time from the first byte of a request "
            "to its response.\n"
            "# TYPE refinery_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= MAX_ROUTES; i++) {
        if (i >= g_nroutes && i != MAX_ROUTES) continue;
        uint_fast64_t count = atomic_load(&g_stats[i].count);
        if (!count) continue;
        route_labels(i, labels, sizeof labels);
        uint_fast64_t cum = 0;
        for (size_t k = 0; k < NBUCKETS; k++) {
            cum += atomic_load(&g_stats[i].bucket[k]);
            add(&b, "refinery_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n", labels,
                k_buckets[k], (unsigned long long)cum);
        }
        add(&b, "refinery_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n", labels,
            (unsigned long long)count);
        add(&b, "refinery_http_request_duration_seconds_sum{%s} %.6f\n", labels,
            atomic_load(&g_stats[i].sum_us) / 1e6);
        add(&b, "refinery_http_request_duration_seconds_count{%s} %llu\n", labels,
            (unsigned long long)count);
    }
    add(&b,
        "# HELP refinery_workers Engine worker threads in this process.\n# TYPE refinery_workers "
        "gauge\n"
        "refinery_workers %d\n",
        atomic_load(&g_workers));
    add(&b,
        "# HELP refinery_workers_busy Worker threads running a job now.\n# TYPE "
        "refinery_workers_busy gauge\n"
        "refinery_workers_busy %d\n",
        atomic_load(&g_busy));
    add(&b,
        "# HELP refinery_artifact_bytes_written_total Bytes stored as artifacts by this process.\n"
        "# TYPE refinery_artifact_bytes_written_total "
        "counter\nrefinery_artifact_bytes_written_total %llu\n",
        (unsigned long long)atomic_load(&g_artifact_bytes));

    int models;
    size_t model_bytes;
    long loads, evictions;
    rf_model_cache_stats(&models, &model_bytes, &loads, &evictions);
    add(&b,
        "# HELP refinery_model_cache_models Models loaded for completions in this process.\n"
        "# TYPE refinery_model_cache_models gauge\nrefinery_model_cache_models %d\n"
        "# HELP refinery_model_cache_bytes Bytes of the models loaded for completions.\n"
        "# TYPE refinery_model_cache_bytes gauge\nrefinery_model_cache_bytes %zu\n"
        "# HELP refinery_model_cache_loads_total Models loaded for completions.\n"
        "# TYPE refinery_model_cache_loads_total counter\nrefinery_model_cache_loads_total %ld\n"
        "# HELP refinery_model_cache_evictions_total Models evicted to stay within the budget.\n"
        "# TYPE refinery_model_cache_evictions_total counter\n"
        "refinery_model_cache_evictions_total %ld\n",
        models, model_bytes, loads, evictions);

    if (c) {
        /* Cluster-wide figures: every process reports the same, from the database. */
        PGresult *r =
            PQexec(c, "SELECT type, status, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2");
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            add(&b, "# HELP refinery_jobs Jobs in the database, by type and status.\n# TYPE "
                    "refinery_jobs gauge\n");
            for (int i = 0; i < PQntuples(r); i++)
                add(&b, "refinery_jobs{type=\"%s\",status=\"%s\"} %s\n", PQgetvalue(r, i, 0),
                    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        } else {
            rf_metrics_db_error();
        }
        PQclear(r);
        r = PQexec(c, "SELECT count(*) FILTER (WHERE run_after <= now()), count(*) FROM jobs WHERE "
                      "status = 'queued'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            add(&b,
                "# HELP refinery_queue_depth Queued jobs runnable now.\n# TYPE "
                "refinery_queue_depth gauge\n"
                "refinery_queue_depth %s\n",
                PQgetvalue(r, 0, 0));
            add(&b,
                "# HELP refinery_queue_waiting Queued jobs waiting for a retry backoff to end.\n"
                "# TYPE refinery_queue_waiting gauge\nrefinery_queue_waiting %lld\n",
                atoll(PQgetvalue(r, 0, 1)) - atoll(PQgetvalue(r, 0, 0)));
        } else {
            rf_metrics_db_error();
        }
        PQclear(r);
    }
    add(&b,
        "# HELP refinery_db_errors_total Database calls that failed in this process.\n"
        "# TYPE refinery_db_errors_total counter\nrefinery_db_errors_total %llu\n",
        (unsigned long long)atomic_load(&g_db_errors));
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
