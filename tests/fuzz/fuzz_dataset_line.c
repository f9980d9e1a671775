/* The dataset line checker (engine/core/dataset): every upload line and
 * every dataset a job writes goes through it. */
#include "engine/core/dataset.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *line = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!line) return 0;
    rf_dataset_stats st;
    memset(&st, 0, sizeof st);
    rf_error err;
    (void)rf_dataset_check(line, &st, &err);
    json_decref(line);
    return 0;
}
