#include "service/router.h"

#include <stdio.h>
#include <string.h>

/* Match path against pattern segment by segment, capturing {params}. */
static bool match_path(const char *pattern, const char *path, rf_match *m)
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/') return false;
        p++;
        s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), sl = se ? (size_t)(se - s) : strlen(s);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0 || sl >= sizeof m->params[0] || np == RF_MAX_PATH_PARAMS) return false;
            memcpy(m->params[np], s, sl);
            m->params[np][sl] = '\0';
            np++;
        } else if (pl != sl || memcmp(p, s, pl)) {
            return false;
        }
        p += pl;
        s += sl;
    }
    if (*p || *s) return false;
    m->nparams = np;
    return true;
}

bool rf_route_match(const rf_route *routes, const char *method, const char *path, rf_match *m)
{
    m->route = NULL;
    m->allow[0] = '\0';
    const char *want = strcmp(method, "HEAD") ? method : "GET";
    size_t alen = 0;
    for (const rf_route *r = routes; r->method; r++) {
        rf_match tmp;
        if (!match_path(r->pattern, path, &tmp)) continue;
        if (!strcmp(r->method, want)) {
            memcpy(m->params, tmp.params, sizeof tmp.params);
            m->nparams = tmp.nparams;
            m->route = r;
            return true;
        }
        if (!strstr(m->allow, r->method) && alen + strlen(r->method) + 3 < sizeof m->allow)
            alen += (size_t)snprintf(m->allow + alen, sizeof m->allow - alen, "%s%s",
                                     alen ? ", " : "", r->method);
    }
    return false;
}
