/* /v1/jobs: create, list, get, cancel, events. */
#ifndef RF_H_JOBS_H
#define RF_H_JOBS_H

#include "service/http.h"

void rf_h_jobs_create(rf_req *req);
void rf_h_jobs_list(rf_req *req);
void rf_h_jobs_get(rf_req *req);
void rf_h_jobs_cancel(rf_req *req);
void rf_h_jobs_events(rf_req *req);

#endif
