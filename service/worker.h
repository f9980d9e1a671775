/* Engine worker threads and the one listener thread of a process.
 *
 * Workers claim jobs of the types registered in this process and run their
 * runners, each on its own database connection. The listener owns one more
 * connection: it LISTENs (new jobs wake idle workers, cancels reach the
 * running runner, key revocations flush the auth cache), extends the leases of
 * this process's jobs, and rescues jobs whose workers died anywhere. */
#ifndef RF_WORKER_H
#define RF_WORKER_H

#include "engine/core/error.h"
#include "service/config.h"

typedef struct rf_workers rf_workers;

/* Start cfg->workers workers (possibly none) and the listener. */
int rf_workers_start(const rf_config *cfg, rf_workers **out, rf_error *err);

/* Stop claiming; ask running jobs to stop at a safe point and hand them back
 * to the queue; wait up to grace_ms; release whatever is still held. */
void rf_workers_stop(rf_workers *w, int grace_ms);

/* Number of workers running a job now (for /metrics and tests). */
int rf_workers_busy(const rf_workers *w);

#endif
