/* The GPTQ checkpoint loader's view of one layer (engine/core/gptq_weight):
 * the input is a safetensors file holding l.qweight, l.qzeros, l.scales and
 * l.g_idx; a view that validates must dequantize without reading outside
 * its tensors. */
#include "engine/core/gptq_weight.h"
#include "engine/core/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    rf_st_file f;
    rf_error err;
    if (rf_st_open(&f, path, &err) == 0) {
        static const char *const names[4] = {"l.qweight", "l.qzeros", "l.scales", "l.g_idx"};
        rf_gptq_packed p;
        rf_tensor *dst[4] = {&p.qweight, &p.qzeros, &p.scales, &p.g_idx};
        int found = 0;
        for (int i = 0; i < 4; i++) {
            const rf_st_entry *e = rf_st_find(&f, names[i]);
            if (e) rf_st_view(&f, e, dst[i]), found++;
        }
        rf_gptq_weight w;
        if (found == 4 && rf_gptq_weight_view(&w, &p, "l", &err) == 0 &&
            (size_t)w.N * (size_t)w.K <= (1u << 20) && rf_gptq_weight_prepare(&w, &err) == 0) {
            float *W = malloc(sizeof(float) * (size_t)w.N * (size_t)w.K + 1);
            if (!W) abort();
            rf_gptq_dequant(&w, W);
            free(W);
            rf_gptq_weight_release(&w);
        }
        rf_st_close(&f);
    }
    close(fd);
    return 0;
}
