/* /v1/models: register a checkpoint folder, list, get, files, download, delete. */
#ifndef RF_H_MODELS_H
#define RF_H_MODELS_H

#include "service/http.h"

void rf_h_models_create(rf_req *req);
void rf_h_models_list(rf_req *req);
void rf_h_models_get(rf_req *req);
void rf_h_models_delete(rf_req *req);
void rf_h_models_files(rf_req *req);
void rf_h_models_file(rf_req *req);

#endif
