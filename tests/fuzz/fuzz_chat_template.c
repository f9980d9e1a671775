/* Chat templates (engine/tokenizer/jinja*, chat_template): templates come
 * with models tenants register, so any bytes must render or fail with an
 * error, within the engine's limits. The input is the template, then a NUL,
 * then the JSON context (messages, add_generation_prompt, tools, …); both
 * entry points run: the bare renderer and the chat rendering with its
 * answer spans. */
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/jinja.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    const char *ctx = nul ? (const char *)nul + 1 : "";
    size_t m = nul ? size - n - 1 : 0;
    char *out = NULL;
    size_t len = 0;
    rf_error err;
    if (rf_jinja_render_text((const char *)data, n, ctx, m, &out, &len, &err) == 0) {
        if (out && strlen(out) > len) abort(); /* the length covers the text */
        free(out);
    } else if (!err.msg[0]) {
        abort(); /* every failure says why */
    }
    (void)rf_chat_fuzz((const char *)data, n, ctx, m, &err);
    return 0;
}
