/* Every job type's params validator (the params table, then the runner's
 * own validate), on the same JSON: what POST /v1/jobs runs before anything
 * is stored. */
#include "engine/jobs/job.h"
#include "engine/jobs/testjobs.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int registered;
    if (!registered) {
        rf_runners_register_builtin();
        rf_testjobs_register();
        registered = 1;
    }
    json_error_t je;
    json_t *params = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (!params) return 0;
    const char *types[64];
    int n = rf_runner_types(types, 64);
    for (int i = 0; i < n && i < 64; i++) {
        const rf_runner *r = rf_runner_find(types[i]);
        rf_error err;
        rf_error_clear(&err);
        if (json_is_object(params) && rf_runner_validate(r, params, &err) < 0 && !err.msg[0])
            abort(); /* every refusal says why */
        if (r->params) {
            json_t *d = rf_params_describe(r->params);
            json_decref(d);
        }
    }
    json_decref(params);
    return 0;
}
