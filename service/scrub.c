#include "service/scrub.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Where a path written into a sentence ends. */
static bool path_end(char c)
{
    return c == '\0' || c == ' ' || c == '\'' || c == '"' || c == ',' || c == ':' || c == ';' ||
           c == ')' || c == '\n' || c == '\t';
}

/* Replace each path that starts with prefix (n bytes, no trailing '/') by
 * its last component. */
static void scrub_one(char *msg, const char *prefix, size_t n)
{
    char *p = msg;
    while ((p = strstr(p, prefix))) {
        /* "/data2" is not under "/data", nor is "a/data" a path of it */
        if ((p[n] != '/' && !path_end(p[n])) || (p > msg && !path_end(p[-1]))) {
            p += n;
            continue;
        }
        char *end = p + n;
        while (!path_end(*end))
            end++;
        char *stop = end;
        while (stop > p + 1 && stop[-1] == '/')
            stop--;
        char *keep = stop;
        while (keep > p && keep[-1] != '/')
            keep--;
        size_t klen = (size_t)(stop - keep);
        memmove(p, keep, klen);
        memmove(p + klen, end, strlen(end) + 1);
        p += klen;
    }
}

void rf_scrub_paths(char *msg, const char *folders)
{
    if (!msg || !folders) return;
    const char *f = folders;
    while (*f) {
        const char *colon = strchr(f, ':');
        size_t n = colon ? (size_t)(colon - f) : strlen(f);
        while (n > 1 && f[n - 1] == '/')
            n--;
        if (n > 1 && f[0] == '/') {
            char prefix[1024];
            if (n < sizeof prefix) {
                memcpy(prefix, f, n);
                prefix[n] = '\0';
                scrub_one(msg, prefix, n);
            }
        }
        if (!colon) break;
        f = colon + 1;
    }
}
