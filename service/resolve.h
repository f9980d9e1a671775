/* Resolving what job params name — a model or a dataset by id or name, an
 * artifact or a teacher cache by id, a train job's adapter by the job's id —
 * to paths, for one tenant. Used when a job is created (a reference that
 * does not resolve is a 422 naming the field) and by the worker's
 * rf_job_ctx.resolve when the runner runs (the object may be gone by then). */
#ifndef RF_RESOLVE_H
#define RF_RESOLVE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "engine/core/error.h"
#include "engine/jobs/job.h"

/* kind "model", "dataset", "artifact", "teacher_cache" or "adapter"; *path
 * malloc'd. RF_ENOTFOUND when the tenant has no such object, RF_EINVAL when
 * it is of the wrong kind (an artifact that is no teacher cache, a job that
 * made no adapter); the message says how to fix it. */
int rf_resolve(PGconn *c, const char *tenant, const char *kind, const char *ref, char **path,
               rf_error *err);

/* The folder a PEFT loader wants for a train job's adapter: dest is created
 * and holds adapter_config.json and adapter_model.safetensors, linked to the
 * job's artifacts. */
int rf_resolve_adapter(PGconn *c, const char *tenant, const char *job_id, const char *dest,
                       rf_error *err);

/* The first queued or running job of the tenant whose params name the
 * object (kind "model" or "dataset", by its id or its name) in a reference
 * param of its type's table, into job (RF_ID_MAX bytes; "" when none). */
int rf_resolve_in_use(PGconn *c, const char *tenant, const char *kind, const char *id,
                      const char *name, char *job, rf_error *err);

/* Check every reference the runner's params table declares in params
 * (those present and strings; the table check comes first), then, when they
 * all resolve, the runner's own check of the objects they name (a 422 for
 * what the job cannot do with them). err->field is "params.<field>". */
int rf_resolve_check(PGconn *c, const char *tenant, const rf_runner *runner, const json_t *params,
                     rf_error *err);

/* What completions serve for a train job's id, as vLLM serves a LoRA
 * adapter under its own name: the job's student (its checkpoint folder) and
 * a folder with the job's PEFT adapter (made under data_dir/adapters once).
 * Both malloc'd. The messages say why not (no such job, not a train job,
 * not finished, no adapter, the student gone). */
int rf_resolve_lora(PGconn *c, const char *tenant, const char *data_dir, const char *job_id,
                    char **base_dir, char **adapter_dir, rf_error *err);

#endif
