#include "service/headers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool rf_request_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!(s[n] == '-' || s[n] == '_' || s[n] == '.' || (s[n] >= '0' && s[n] <= '9') ||
              (s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z')) ||
            n >= 64)
            return false;
    return n > 0;
}

bool rf_idempotency_key_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255 || s[0] == ' ' || s[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return false;
    return true;
}

bool rf_parse_int_in(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s) return false;
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p) return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return false;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < lo || x > hi) return false;
    *out = x;
    return true;
}
