/* Keeping the data folder to what the database records, after crashes.
 *
 * A job's outputs enter a store (artifacts/<tenant>/, models/<tenant>/) in
 * three moves: renamed in as ".tmp.<job id>.<object id>", recorded (the
 * row), renamed to "<object id>". A process killed between two moves leaves
 * a temporary that says what to do: its row exists → finish the move; no row
 * and the job no longer runs → remove it (no attempt of that job can still
 * record it: the record is fenced by the job's lease). A job's own folder
 * (jobs/<id>/: its checkpoints and half-written files) goes once the job
 * has ended. Uploads of datasets write "datasets/<tenant>/.tmp.<id>" while
 * the body streams in: one not written for an hour is a crash leftover. */
#ifndef RF_SWEEP_H
#define RF_SWEEP_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "engine/core/error.h"

typedef struct rf_sweep_stats {
    int finished;   /* temporaries whose row existed: moved into place */
    int removed;    /* temporaries, orphans and job folders removed */
    int missing;    /* recorded artifacts and datasets whose file is missing (reported) */
    int unrecorded; /* artifact files without a row (full sweep: removed) */
} rf_sweep_stats;

/* Sweep the whole data folder: temporaries and job folders as above; when
 * full (at start), also report recorded files that are missing and remove
 * artifact files no row names (left by a crash between replacing an
 * artifact's row and removing its old file). */
int rf_sweep_data(PGconn *c, const char *data_dir, bool full, rf_sweep_stats *st, rf_error *err);

/* One job has ended (a final state recorded): its temporaries and its
 * folder, at once. Best effort; failures are logged. */
void rf_sweep_job(PGconn *c, const char *data_dir, const char *tenant, const char *job_id);

/* Remove a file or a folder and everything under it; 0 or -1 (errno). */
int rf_remove_tree(const char *path);

#endif
