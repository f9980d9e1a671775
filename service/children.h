/* Jobs that run other jobs, on PostgreSQL (DESIGN.md "Jobs that run other
 * jobs"; the schema and its invariants: migrations/0006_child_jobs.sql; the
 * runner's side: engine/jobs/job.h).
 *
 * A parent submits children (rf_children_submit), reads them
 * (rf_children_list), and parks (rf_children_park): status 'waiting', no
 * lease, no worker. A child that ends writes a wake row in its own
 * transaction (a trigger) and NOTIFYs refinery_wake; rf_children_reconcile,
 * which every process's listener runs on that notification and on its
 * rescue tick, re-queues woken parents, passes a parent's cancel on to its
 * children, and ends a cancelled parent once its children have stopped. */
#ifndef RF_CHILDREN_H
#define RF_CHILDREN_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "service/queue.h"

/* Submit child `key` of parent j (held by owner): the child's params are
 * checked by its type's runner and its references resolved for the tenant.
 * An existing key answers the existing child (*created false). RF_ECANCELED
 * when the parent was asked to stop, RF_ECONFLICT when its lease was lost. */
int rf_children_submit(PGconn *c, const rf_claimed_job *j, const char *owner, const char *key,
                       const char *type, const json_t *params, const json_t *metadata,
                       char id_out[RF_ID_MAX], bool *created, rf_error *err);

/* The children of parent j, oldest first, as job.h's children() describes.
 * Wake rows of j seen now are consumed (j must be held by owner). */
int rf_children_list(PGconn *c, const rf_claimed_job *j, const char *owner, json_t **out,
                     rf_error *err);

/* Park parent j after its runner returned RF_EWAIT (or stopped for a cancel):
 * 'waiting' while a child it waits on runs, 'queued' at once when a child
 * ended meanwhile or none is left, 'cancelled' when cancelled and no child
 * runs. wake_after_ms > 0 re-queues it after that long anyway. *status gets
 * the state it was left in (16 bytes). RF_ECONFLICT when the lease was lost. */
int rf_children_park(PGconn *c, const rf_claimed_job *j, const char *owner, long long wake_after_ms,
                     char status[16], rf_error *err);

/* One round of the reconciler (see above); *changed counts the jobs it moved. */
int rf_children_reconcile(PGconn *c, int *changed, rf_error *err);

/* Wake rows whose parent has finished: dropped (the rescue tick). */
int rf_children_sweep(PGconn *c, rf_error *err);

#endif
