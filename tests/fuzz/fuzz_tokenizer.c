/* tokenizer.json and tokenizer_config.json: the input is both, separated by
 * the first NUL byte (no NUL: a tokenizer.json alone). A tokenizer that
 * loads must encode and decode without faults, its own bytes included. */
#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *all = fuzz_cstr(data, size);
    size_t n1 = strlen(all);
    const char *config = n1 < size ? all + n1 + 1 : NULL;
    rf_tokenizer *tok = NULL;
    rf_error err;
    if (rf_tokenizer_load_json(all, config, &tok, &err) == 0) {
        static const char *const texts[] = {"Hello, world! 123", "  a\tb\n\nc  ", "héllo 😀 ✓",
                                            "<|begin_of_text|>x<s></s>", ""};
        for (size_t i = 0; i < sizeof texts / sizeof *texts + 1; i++) {
            const char *t = i < sizeof texts / sizeof *texts ? texts[i] : all;
            size_t len = strlen(t) > 256 ? 256 : strlen(t);
            for (int special = 0; special < 2; special++) {
                int32_t *ids = NULL;
                size_t n = 0;
                if (rf_tokenizer_encode(tok, t, len, special, &ids, &n, &err) == 0) {
                    char *out = NULL;
                    size_t out_len = 0;
                    if (rf_tokenizer_decode(tok, ids, n, 0, &out, &out_len, &err) == 0) free(out);
                    free(ids);
                }
            }
        }
        int32_t V = rf_tokenizer_vocab_size(tok);
        for (int32_t id = 0; id < V && id < 64; id++)
            (void)rf_tokenizer_id_to_token(tok, id);
        rf_tokenizer_free(tok);
    }
    free(all);
    return 0;
}
