/* config.json of a Llama-family checkpoint (engine/model/llama_config): a
 * config that parses must describe a model whose sizes are consistent, so
 * that nothing downstream divides by zero or overflows an allocation. */
#include "engine/model/llama_config.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *root = json_loadb((const char *)data, size, 0, &je);
    if (!root) return 0;
    rf_llama_config c;
    rf_error err;
    if (rf_llama_config_parse(&c, root, &err) == 0) {
        if (c.dim < 1 || c.n_layers < 1 || c.n_heads < 1 || c.n_kv_heads < 1 || c.head_dim < 1 ||
            c.vocab_size < 1 || c.hidden_dim < 1 || c.n_heads % c.n_kv_heads)
            abort();
        if (c.head_dim % 2 == 0 && c.head_dim <= 4096) {
            float *inv = malloc(sizeof(float) * (size_t)(c.head_dim / 2));
            if (!inv) abort();
            rf_llama_rope_inv_freq(&c, inv);
            free(inv);
        }
    }
    json_decref(root);
    return 0;
}
