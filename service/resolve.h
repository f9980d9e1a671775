/* Resolving what job params name — a model by id or name, a dataset by id —
 * to paths, for one tenant. Used when a job is created (a reference that
 * does not resolve is a 422 naming the field) and by the worker's
 * rf_job_ctx.resolve when the runner runs (the object may be gone by then). */
#ifndef RF_RESOLVE_H
#define RF_RESOLVE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "engine/core/error.h"
#include "engine/jobs/job.h"

/* kind "model" or "dataset"; *path malloc'd. RF_ENOTFOUND when the tenant
 * has no such object. */
int rf_resolve(PGconn *c, const char *tenant, const char *kind, const char *ref, char **path,
               rf_error *err);

/* The folder a PEFT loader wants for a train job's adapter: dest is created
 * and holds adapter_config.json and adapter_model.safetensors, linked to the
 * job's artifacts. */
int rf_resolve_adapter(PGconn *c, const char *tenant, const char *job_id, const char *dest,
                       rf_error *err);

/* Check every reference runner->refs declares in params (those present and
 * strings; the runner's validate checks types), then, when they all
 * resolve, the runner's own check of the objects they name (a 422 for
 * what the job cannot do with them). err->field is "params.<field>". */
int rf_resolve_check(PGconn *c, const char *tenant, const rf_runner *runner, const json_t *params,
                     rf_error *err);

#endif
