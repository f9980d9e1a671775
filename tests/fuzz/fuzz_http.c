/* The HTTP layer's own parsers: Range against a size, If-None-Match and
 * If-Range against an ETag, ids, X-Request-Id, Idempotency-Key and query
 * integers. The input is split into fields at newlines. */
#include "service/headers.h"
#include "service/ids.h"
#include "service/range.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char *fields[6] = {s, "", "", "", "", ""};
    for (int i = 1; i < 6; i++) {
        char *nl = strchr(fields[i - 1], '\n');
        if (!nl) break;
        *nl = '\0';
        fields[i] = nl + 1;
    }
    static const uint64_t sizes[] = {0, 1, 100, 1ull << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        rf_range r = rf_range_parse(fields[0], sizes[i]);
        if (r.kind == RF_RANGE_PARTIAL &&
            (r.length == 0 || r.start >= sizes[i] || r.length > sizes[i] - r.start))
            abort(); /* a partial range must lie inside the representation */
    }
    static const char etag[] = "\"0123456789abcdef\"";
    (void)rf_etag_matches_none(fields[1], etag);
    (void)rf_if_range_ok(fields[1], etag);
    (void)rf_id_valid("job", fields[2]);
    (void)rf_id_valid("ds", fields[2]);
    if (rf_request_id_valid(fields[3]) && strlen(fields[3]) > 64) abort();
    if (rf_idempotency_key_valid(fields[4]) && strlen(fields[4]) > 255) abort();
    long long v = 0;
    if (rf_parse_int_in(fields[5], -1000, 1000, &v) && (v < -1000 || v > 1000)) abort();
    free(s);
    return 0;
}
