/* Models: Hugging Face checkpoint folders registered by path. A path must
 * resolve (symlinks followed) inside one of REFINERY_MODEL_ROOTS, and so must
 * every file served from it; the folder is inspected (engine/model_info.h)
 * before anything is recorded. */
#ifndef RF_MODELS_H
#define RF_MODELS_H

#include <jansson.h>
#include <libpq-fe.h>

#include "engine/core/error.h"

/* roots: colon-separated folders. body: {name, path}. */
int rf_models_register(PGconn *c, const char *tenant, const char *roots, const json_t *body,
                       char **json, rf_error *err);
/* A checkpoint folder a job made: inspected, moved to
 * data_dir/models/<tenant>/<id> (through a temporary, service/sweep.h), and
 * recorded with the job as its source, fenced by the job's lease (owner,
 * attempt; RF_ECONFLICT when lost). When an earlier attempt of the job
 * recorded a model of that name, that model's id is returned and dir is left
 * where it was. */
int rf_models_adopt(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                    const char *owner, int attempt, const char *dir, const char *name,
                    char id_out[40], rf_error *err);
int rf_models_get(PGconn *c, const char *tenant, const char *id, char **json, rf_error *err);
int rf_models_list(PGconn *c, const char *tenant, const char *after, int limit, char **json,
                   rf_error *err);
/* Forget the registration; the files stay where they are. */
int rf_models_delete(PGconn *c, const char *tenant, const char *id, rf_error *err);
/* {"object":"list","data":[{name, bytes}]} of the regular files in the folder. */
int rf_models_files(PGconn *c, const char *tenant, const char *roots, const char *id, char **json,
                    rf_error *err);
/* The path of one file of the model, checked to lie inside the model's folder
 * (and so inside the roots). *path is malloc'd. */
int rf_models_file_path(PGconn *c, const char *tenant, const char *roots, const char *id,
                        const char *name, char **path, rf_error *err);

#endif
