#include "handlers/routes.h"

#include "handlers/artifacts.h"
#include "handlers/completions.h"
#include "handlers/datasets.h"
#include "handlers/health.h"
#include "handlers/models.h"
#include "handlers/jobs.h"
#include "handlers/job_types.h"
#include "handlers/studies.h"

const rf_route rf_routes[] = {
    {"GET", "/healthz", rf_h_healthz, true, NULL},
    {"GET", "/readyz", rf_h_readyz, true, NULL},
    {"GET", "/metrics", rf_h_metrics, true, NULL},
    {"GET", "/openapi.yaml", rf_h_openapi, true, NULL},
    {"POST", "/v1/jobs", rf_h_jobs_create, false, NULL},
    {"GET", "/v1/jobs", rf_h_jobs_list, false, NULL},
    {"GET", "/v1/jobs/{id}", rf_h_jobs_get, false, NULL},
    {"POST", "/v1/jobs/{id}/cancel", rf_h_jobs_cancel, false, NULL},
    {"GET", "/v1/jobs/{id}/events", rf_h_jobs_events, false, NULL},
    {"GET", "/v1/jobs/{id}/artifacts", rf_h_jobs_artifacts, false, NULL},
    {"GET", "/v1/jobs/{id}/report", rf_h_jobs_report, false, NULL},
    {"GET", "/v1/job-types", rf_h_job_types_list, false, NULL},
    {"GET", "/v1/job-types/{type}", rf_h_job_types_get, false, NULL},
    {"POST", "/v1/datasets", rf_h_datasets_create, false, &rf_h_datasets_upload_stream},
    {"GET", "/v1/datasets", rf_h_datasets_list, false, NULL},
    {"GET", "/v1/datasets/{id}", rf_h_datasets_get, false, NULL},
    {"DELETE", "/v1/datasets/{id}", rf_h_datasets_delete, false, NULL},
    {"GET", "/v1/datasets/{id}/content", rf_h_datasets_content, false, NULL},
    {"POST", "/v1/models", rf_h_models_create, false, NULL},
    {"GET", "/v1/models", rf_h_models_list, false, NULL},
    {"GET", "/v1/models/{id}", rf_h_models_get, false, NULL},
    {"DELETE", "/v1/models/{id}", rf_h_models_delete, false, NULL},
    {"GET", "/v1/models/{id}/files", rf_h_models_files, false, NULL},
    {"GET", "/v1/models/{id}/files/{name}", rf_h_models_file, false, NULL},
    {"GET", "/v1/artifacts/{id}", rf_h_artifacts_get, false, NULL},
    {"GET", "/v1/artifacts/{id}/content", rf_h_artifacts_content, false, NULL},
    {"POST", "/v1/studies", rf_h_studies_create, false, NULL},
    {"GET", "/v1/studies", rf_h_studies_list, false, NULL},
    {"GET", "/v1/studies/{id}", rf_h_studies_get, false, NULL},
    {"POST", "/v1/studies/{id}/trials", rf_h_studies_ask, false, NULL},
    {"GET", "/v1/studies/{id}/trials", rf_h_studies_trials, false, NULL},
    {"GET", "/v1/studies/{id}/trials/{number}", rf_h_studies_trial, false, NULL},
    {"POST", "/v1/studies/{id}/trials/{number}/complete", rf_h_studies_complete, false, NULL},
    {"POST", "/v1/studies/{id}/trials/{number}/fail", rf_h_studies_fail, false, NULL},
    {"POST", "/v1/studies/{id}/trials/{number}/prune", rf_h_studies_prune, false, NULL},
    {"POST", "/v1/studies/{id}/trials/{number}/report", rf_h_studies_report, false, NULL},
    {"POST", "/v1/completions", rf_h_completions, false, NULL},
    {"POST", "/v1/chat/completions", rf_h_chat_completions, false, NULL},
    {0},
};
