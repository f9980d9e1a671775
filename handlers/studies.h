/* /v1/studies: ask/tell optimisation (service/studies.h). */
#ifndef RF_H_STUDIES_H
#define RF_H_STUDIES_H

#include "service/http.h"

void rf_h_studies_create(rf_req *req);
void rf_h_studies_list(rf_req *req);
void rf_h_studies_get(rf_req *req);
void rf_h_studies_ask(rf_req *req);
void rf_h_studies_trials(rf_req *req);
void rf_h_studies_trial(rf_req *req);
void rf_h_studies_complete(rf_req *req);
void rf_h_studies_fail(rf_req *req);
void rf_h_studies_prune(rf_req *req);
void rf_h_studies_report(rf_req *req);

#endif
