/* The artifact store: files under REFINERY_DATA_DIR/artifacts/<tenant>/<id>,
 * recorded in the artifacts table only once they are complete and durable. */
#ifndef RF_ARTIFACTS_H
#define RF_ARTIFACTS_H

#include <libpq-fe.h>

#include "engine/error.h"
#include "service/ids.h"

/* Move the finished file at path into the store and record it. The file is
 * hashed and fsynced, renamed into place (same file system: job folders live
 * under the data dir), the folder fsynced, then the row inserted. On failure
 * nothing is registered. */
int rf_artifact_register(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                         const char *kind, const char *path, const char *name,
                         char id_out[RF_ID_MAX], rf_error *err);

#endif
