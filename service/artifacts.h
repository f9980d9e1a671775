/* The artifact store: files under REFINERY_DATA_DIR/artifacts/<tenant>/<id>,
 * recorded in the artifacts table only once they are complete and durable. */
#ifndef RF_ARTIFACTS_H
#define RF_ARTIFACTS_H

#include <libpq-fe.h>

#include "engine/core/error.h"
#include "service/ids.h"

/* Move the finished file at path into the store and record it for job_id,
 * fenced by its lease (owner, attempt): RF_ECONFLICT, nothing recorded, when
 * the job is no longer this attempt's. The file is hashed and fsynced,
 * renamed into the store as a temporary (same file system: job folders live
 * under the data dir), the row inserted, the file renamed to its id
 * (service/sweep.h finishes what a crash interrupts). An artifact of the
 * same name that an earlier attempt of the job recorded is replaced. On
 * failure nothing is registered and the file is back at path. */
int rf_artifact_register(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                         const char *owner, int attempt, const char *kind, const char *path,
                         const char *name, char id_out[RF_ID_MAX], rf_error *err);

/* The artifact object as JSON text (free it); RF_ENOTFOUND for another
 * tenant's or an unknown id. */
int rf_artifacts_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err);
/* {"object":"list","data":[…]} of a job's artifacts, oldest first. */
int rf_artifacts_of_job(PGconn *c, const char *tenant, const char *job_id, char **json,
                        rf_error *err);

/* What a download needs; strings owned by the struct (rf_artifact_file_free). */
typedef struct rf_artifact_file {
    char *path, *sha256, *name, *content_type;
} rf_artifact_file;
int rf_artifacts_file(PGconn *c, const char *tenant, const char *id, rf_artifact_file *f,
                      rf_error *err);
void rf_artifact_file_free(rf_artifact_file *f);
/* The artifact named name of kind kind that job_id registered (the
 * pipeline's report.html): RF_ENOTFOUND naming the job when it has none. */
int rf_artifacts_of_job_named(PGconn *c, const char *tenant, const char *job_id, const char *kind,
                              const char *name, rf_artifact_file *f, rf_error *err);

#endif
