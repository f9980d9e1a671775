/* /v1/job-types: every registered job type with its description and its
 * params (types, defaults, limits, references), from the same tables the
 * validators check, so that the two cannot drift. */
#ifndef RF_H_JOB_TYPES_H
#define RF_H_JOB_TYPES_H

#include "service/http.h"

void rf_h_job_types_list(rf_req *req);
void rf_h_job_types_get(rf_req *req);

#endif
