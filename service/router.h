/* Routes with path parameters: "/v1/jobs/{id}/cancel". A path that matches a
 * pattern under another method yields the Allow list for a 405. */
#ifndef RF_ROUTER_H
#define RF_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define RF_MAX_PATH_PARAMS 4

typedef struct rf_req rf_req;
typedef void (*rf_handler)(rf_req *req);

typedef struct rf_route {
    const char *method;  /* "GET", "POST", "DELETE"; GET also answers HEAD */
    const char *pattern; /* segments, "{name}" matches one non-empty segment */
    rf_handler handler;
    bool public_route;   /* true: no API key needed */
    const char *name;    /* label for logs and metrics: the pattern by default */
} rf_route;

typedef struct rf_match {
    const rf_route *route;
    int nparams;
    char params[RF_MAX_PATH_PARAMS][128];
    char allow[64]; /* when route is NULL but the path exists: "GET, POST" */
} rf_match;

/* routes ends with a zeroed entry. Returns true when a route matched. */
bool rf_route_match(const rf_route *routes, const char *method, const char *path, rf_match *m);

#endif
