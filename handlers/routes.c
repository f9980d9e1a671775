#include "handlers/routes.h"

#include "handlers/health.h"
#include "handlers/jobs.h"

const rf_route rf_routes[] = {
    {"GET", "/healthz", rf_h_healthz, true, NULL},
    {"GET", "/readyz", rf_h_readyz, true, NULL},
    {"POST", "/v1/jobs", rf_h_jobs_create, false, NULL},
    {"GET", "/v1/jobs", rf_h_jobs_list, false, NULL},
    {"GET", "/v1/jobs/{id}", rf_h_jobs_get, false, NULL},
    {"POST", "/v1/jobs/{id}/cancel", rf_h_jobs_cancel, false, NULL},
    {"GET", "/v1/jobs/{id}/events", rf_h_jobs_events, false, NULL},
    {0},
};
