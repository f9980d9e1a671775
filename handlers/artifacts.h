/* /v1/artifacts/{id}, /v1/artifacts/{id}/content, /v1/jobs/{id}/artifacts. */
#ifndef RF_H_ARTIFACTS_H
#define RF_H_ARTIFACTS_H

#include "service/http.h"

void rf_h_artifacts_get(rf_req *req);
void rf_h_artifacts_content(rf_req *req);
void rf_h_jobs_artifacts(rf_req *req);

/* GET /v1/jobs/{id}/report: a pipeline job's HTML report, to open in a browser. */
void rf_h_jobs_report(rf_req *req);

#endif
