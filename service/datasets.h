/* Datasets: JSONL uploads streamed to disk while each line is validated
 * (engine/dataset.h), never held whole in memory; a bad upload stores
 * nothing. Files live at REFINERY_DATA_DIR/datasets/<tenant>/<id>.jsonl. */
#ifndef RF_DATASETS_H
#define RF_DATASETS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/core/error.h"

typedef struct rf_upload rf_upload;

/* Open a temporary file for a new dataset. */
int rf_upload_begin(const char *data_dir, const char *tenant, const char *name, uint64_t max_bytes,
                    rf_upload **out, rf_error *err);
/* Take the next piece of the body. After the first error it only counts
 * bytes; the error is reported by rf_upload_finish. */
void rf_upload_feed(rf_upload *u, const char *data, size_t n);
/* Validate the last line, make the file durable, move it into place and
 * record it. On failure err names the line (*line, 0 when none) and field. */
int rf_upload_finish(rf_upload *u, PGconn *c, char **json, uint64_t *line, rf_error *err);
/* Remove the temporary file if the upload did not finish, and free. */
void rf_upload_free(rf_upload *u);

int rf_datasets_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err);
int rf_datasets_list(PGconn *c, const char *tenant, const char *after, int limit, char **json,
                     rf_error *err);
/* RF_ECONFLICT while a queued or running job refers to it. */
int rf_datasets_delete(PGconn *c, const char *tenant, const char *id, rf_error *err);

/* A JSONL file a job wrote: every line checked, moved to
 * data_dir/datasets/<tenant>/<id>.jsonl and recorded with the job as its
 * source. The same content from the same job again (a rescued attempt)
 * gives the dataset recorded the first time. */
int rf_datasets_adopt(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                      const char *path, const char *name, char id_out[40], rf_error *err);

typedef struct rf_dataset_file {
    char *path, *sha256, *name;
} rf_dataset_file;
int rf_datasets_file(PGconn *c, const char *tenant, const char *id, rf_dataset_file *f,
                     rf_error *err);
void rf_dataset_file_free(rf_dataset_file *f);

#endif
