/* GET /healthz (the process answers) and GET /readyz (the database answers and
 * has every migration this binary knows). Both public. */
#ifndef RF_H_HEALTH_H
#define RF_H_HEALTH_H

#include "service/http.h"

void rf_h_healthz(rf_req *req);
void rf_h_readyz(rf_req *req);
/* GET /metrics: Prometheus text format; public, aggregates only. */
void rf_h_metrics(rf_req *req);
/* GET /openapi.yaml: the contract, as built into the binary. */
void rf_h_openapi(rf_req *req);

#endif
