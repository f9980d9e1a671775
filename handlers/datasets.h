/* /v1/datasets: upload (streamed JSONL), list, get, content, delete. */
#ifndef RF_H_DATASETS_H
#define RF_H_DATASETS_H

#include "service/http.h"

extern const rf_body_stream rf_h_datasets_upload_stream;
void rf_h_datasets_create(rf_req *req);
void rf_h_datasets_list(rf_req *req);
void rf_h_datasets_get(rf_req *req);
void rf_h_datasets_content(rf_req *req);
void rf_h_datasets_delete(rf_req *req);

#endif
