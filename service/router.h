/* Routes with path parameters: "/v1/jobs/{id}/cancel". A path that matches a
 * pattern under another method yields the Allow list for a 405. */
#ifndef RF_ROUTER_H
#define RF_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define RF_MAX_PATH_PARAMS 4

typedef struct rf_req rf_req;
typedef void (*rf_handler)(rf_req *req);

/* A route whose body is consumed as it arrives (uploads) instead of being
 * buffered: begin runs once the request is admitted (routed and
 * authenticated, before any body byte), chunk for each piece, the handler at
 * the end, and cleanup always, last (also when the client went away). Each may
 * reply with an error; the rest of the body is then read and dropped. */
typedef struct rf_body_stream {
    void (*begin)(rf_req *req);
    void (*chunk)(rf_req *req, const char *data, size_t n);
    void (*cleanup)(rf_req *req);
} rf_body_stream;

typedef struct rf_route {
    const char *method;  /* "GET", "POST", "DELETE"; GET also answers HEAD */
    const char *pattern; /* segments, "{name}" matches one non-empty segment */
    rf_handler handler;
    bool public_route;            /* true: no API key needed */
    const rf_body_stream *stream; /* NULL: the body is buffered, up to the body cap */
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
