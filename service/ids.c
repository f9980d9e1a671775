#include "service/ids.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "engine/core/error.h"

static const char k_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

int rf_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return RF_EIO;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int rf_random_alnum(char *out, size_t n)
{
    unsigned char r[64];
    for (size_t done = 0; done < n;) {
        size_t want = n - done < sizeof r ? n - done : sizeof r;
        if (rf_random_bytes(r, want)) return RF_EIO;
        /* 252 = 7·36: dropping bytes above it keeps the characters uniform. */
        for (size_t i = 0; i < want; i++)
            if (r[i] < 252) out[done++] = k_alphabet[r[i] % 36];
    }
    out[n] = '\0';
    return 0;
}

int rf_id_new(const char *prefix, char out[RF_ID_MAX])
{
    int n = snprintf(out, RF_ID_MAX, "%s_", prefix);
    if (n < 0 || n + RF_ID_RANDOM_LEN >= RF_ID_MAX) return RF_EINVAL;
    return rf_random_alnum(out + n, RF_ID_RANDOM_LEN);
}

bool rf_id_valid(const char *prefix, const char *s)
{
    size_t pl = strlen(prefix);
    if (!s || strncmp(s, prefix, pl) || s[pl] != '_') return false;
    s += pl + 1;
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z'))) return false;
    return i == RF_ID_RANDOM_LEN;
}

void rf_hex(const unsigned char *in, size_t n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[in[i] >> 4];
        out[2 * i + 1] = h[in[i] & 15];
    }
    out[2 * n] = '\0';
}
