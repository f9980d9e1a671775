/* A sharded checkpoint's model.safetensors.index.json: the input is the
 * index, beside one real shard, in a folder made once per process. */
#include <sys/stat.h>

#include "engine/core/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

static char g_dir[64];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/rf_fuzz_index_%d", (int)getpid());
    mkdir(g_dir, 0700);
    char p[128];
    snprintf(p, sizeof p, "%s/model-00001-of-00001.safetensors", g_dir);
    float v[4] = {1, 2, 3, 4};
    rf_tensor t;
    rf_tensor_view(&t, RF_DTYPE_F32, 2, (int64_t[]){2, 2}, v);
    rf_st_item it = {.name = "w", .tensor = &t};
    rf_error err;
    if (rf_st_write(p, &it, 1, &err)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) setup();
    char p[128];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", g_dir);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    rf_st_model m;
    rf_error err;
    if (rf_st_model_open(&m, g_dir, &err) == 0) {
        rf_tensor t;
        (void)rf_st_model_get(&m, "w", &t, &err);
        (void)rf_st_model_bytes(&m);
        rf_st_model_close(&m);
    }
    return 0;
}
