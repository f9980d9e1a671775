/* Process metrics in the Prometheus text format (version 0.0.4): HTTP requests
 * by route and status, a latency histogram per route, jobs by type and status,
 * queue depth, busy workers, artifact bytes written, database errors. Counters
 * are lock-free atomics; the job figures are read from PostgreSQL at scrape. */
#ifndef RF_METRICS_H
#define RF_METRICS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "service/router.h"

void rf_metrics_init(const rf_route *routes);
/* route NULL: a request that matched no route. */
void rf_metrics_request(const rf_route *route, int status, double seconds);
void rf_metrics_db_error(void);
void rf_metrics_artifact_bytes(uint64_t n);
void rf_metrics_workers(int delta_total, int delta_busy);

/* The whole exposition as text (free it); c may be NULL (then no job figures). */
char *rf_metrics_render(PGconn *c);

#endif
