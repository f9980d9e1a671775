/* The safetensors header parser and tensor views (engine/core/safetensors):
 * any bytes either open as a file whose every entry views inside the data,
 * or fail with an error. */
#include "engine/core/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    rf_st_file f;
    rf_error err;
    if (rf_st_open(&f, path, &err) == 0) {
        unsigned sum = 0;
        for (int i = 0; i < f.n; i++) {
            rf_tensor t;
            rf_st_view(&f, &f.entries[i], &t);
            size_t bytes = (size_t)rf_tensor_numel(&t) * rf_dtype_size(t.dtype);
            /* touch the first and last byte: a view outside the mapping faults here */
            if (bytes) sum += ((const uint8_t *)t.data)[0] + ((const uint8_t *)t.data)[bytes - 1];
            if (rf_st_find(&f, f.entries[i].name) == NULL) abort();
        }
        /* kept observable, so the reads are not optimised away */
        if (sum == 0xFFFFFFFFu) abort();
        rf_st_close(&f);
    }
    close(fd);
    return 0;
}
