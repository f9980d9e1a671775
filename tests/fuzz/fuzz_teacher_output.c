/* What a data teacher writes (engine/data/parse): any text, read as
 * question/answer pairs, multiple-choice questions, a list and a judge's
 * score, must yield well-formed items or nothing — never a crash. */
#include <math.h>

#include "engine/data/parse.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    for (int mc = 0; mc < 2; mc++) {
        rf_pairs ps = {0};
        size_t n = rf_parse_pairs(text, mc, &ps);
        if (n != ps.n) abort();
        for (size_t i = 0; i < ps.n; i++) {
            const rf_pair *p = &ps.v[i];
            if (!p->question || !p->answer) abort();
            if (mc) {
                size_t k = json_array_size(p->choices);
                if (k < 2 || k > 8 || p->answer_index < 0 || (size_t)p->answer_index >= k) abort();
            }
        }
        rf_pairs_free(&ps);
    }
    char **items = NULL;
    size_t n = rf_parse_list(text, 16, &items);
    if (n > 16) abort();
    for (size_t i = 0; i < n; i++)
        if (!items[i]) abort();
    rf_parse_list_free(items, n);
    double score;
    if (rf_parse_score(text, &score) && !(score >= 0 && score <= 10)) abort();
    free(text);
    return 0;
}
