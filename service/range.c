#include "service/range.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Digits only (no sign, no spaces inside); false on overflow or none. */
static bool parse_u64(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    if (!isdigit((unsigned char)*p)) return false;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return true;
}

rf_range rf_range_parse(const char *h, uint64_t size)
{
    rf_range none = {RF_RANGE_NONE, 0, size};
    if (!h) return none;
    h = skip_ws(h);
    if (strncasecmp(h, "bytes", 5)) return none; /* another unit: ignore */
    const char *p = skip_ws(h + 5);
    if (*p != '=') return none;
    p = skip_ws(p + 1);
    if (strchr(p, ',')) return none; /* several ranges: we send the whole */

    uint64_t first = 0, last = 0;
    bool has_first = parse_u64(&p, &first);
    if (*p != '-') return none;
    p++;
    bool has_last = parse_u64(&p, &last);
    if (*skip_ws(p)) return none;

    rf_range r = {RF_RANGE_PARTIAL, 0, 0};
    if (has_first) {
        if (has_last && last < first) return none; /* invalid: ignore */
        if (first >= size) return (rf_range){RF_RANGE_UNSATISFIABLE, 0, 0};
        uint64_t end = has_last && last < size - 1 ? last : size - 1;
        r.start = first;
        r.length = end - first + 1;
        return r;
    }
    if (!has_last) return none; /* "bytes=-" */
    /* Suffix: the last N bytes. */
    if (last == 0 || size == 0) return (rf_range){RF_RANGE_UNSATISFIABLE, 0, 0};
    r.length = last < size ? last : size;
    r.start = size - r.length;
    return r;
}

/* Walk a comma-separated list of entity tags, comparing each (weakly when
 * weak_ok) with ours. */
static bool list_has(const char *list, const char *etag, bool weak_ok)
{
    size_t elen = strlen(etag);
    const char *p = list;
    for (;;) {
        p = skip_ws(p);
        if (!*p) return false;
        if (*p == '*') return true;
        bool weak = false;
        if (!strncmp(p, "W/", 2)) {
            weak = true;
            p += 2;
        }
        const char *end = p;
        if (*p == '"') {
            end = strchr(p + 1, '"');
            if (!end) return false;
            end++;
        } else {
            while (*end && *end != ',')
                end++;
        }
        if ((size_t)(end - p) == elen && !memcmp(p, etag, elen) && (weak_ok || !weak)) return true;
        p = strchr(end, ',');
        if (!p) return false;
        p++;
    }
}

bool rf_etag_matches_none(const char *inm, const char *etag)
{
    return inm && list_has(inm, etag, true);
}

bool rf_if_range_ok(const char *if_range, const char *etag)
{
    if (!if_range) return true;
    const char *p = skip_ws(if_range);
    if (*p != '"') return false; /* a date, or a weak tag: cannot validate */
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return n == strlen(etag) && !memcmp(p, etag, n);
}
