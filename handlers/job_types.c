#include "handlers/job_types.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jobs/job.h"

static json_t *describe(const rf_runner *r)
{
    return json_pack("{s:s,s:s,s:s,s:o}", "id", r->type, "object", "job_type", "description",
                     r->description ? r->description : "", "params",
                     r->params ? rf_params_describe(r->params) : json_array());
}

static void reply(rf_req *req, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    if (!s) {
        rf_reply_problem(req, 500, "out of memory describing the job types", NULL);
        return;
    }
    rf_reply_json_text(req, 200, s);
}

void rf_h_job_types_list(rf_req *req)
{
    const char *names[64];
    int n = rf_runner_types(names, 64);
    json_t *data = json_array();
    for (int i = 0; i < n && i < 64; i++)
        json_array_append_new(data, describe(rf_runner_find(names[i])));
    reply(req, json_pack("{s:s,s:o,s:b}", "object", "list", "data", data, "has_more", 0));
}

void rf_h_job_types_get(rf_req *req)
{
    const char *type = rf_req_param(req, 0);
    const rf_runner *r = rf_runner_find(type);
    if (!r) {
        const char *names[64];
        int n = rf_runner_types(names, 64);
        char known[1024] = "";
        size_t len = 0;
        for (int i = 0; i < n && i < 64 && len < sizeof known; i++)
            len +=
                (size_t)snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", names[i]);
        rf_error e;
        rf_errorf(&e, RF_ENOTFOUND, "no job type '%s'; this server runs %s", type,
                  n ? known : "none (no job types are enabled)");
        rf_reply_error(req, &e);
        return;
    }
    reply(req, describe(r));
}
