/* HTTP conditional and range requests for file downloads (RFC 9110 §13, §14):
 * one small module, in the manner of nginx's range filter. Only single byte
 * ranges are served; a multi-range or malformed Range is ignored (the whole
 * representation is sent), as RFC 9110 allows. */
#ifndef RF_RANGE_H
#define RF_RANGE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    RF_RANGE_NONE,          /* send everything: 200 */
    RF_RANGE_PARTIAL,       /* send [start, start+length): 206 */
    RF_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
} rf_range_kind;

typedef struct {
    rf_range_kind kind;
    uint64_t start, length;
} rf_range;

/* header may be NULL. size is the representation's length. */
rf_range rf_range_parse(const char *header, uint64_t size);

/* If-None-Match against our strong ETag ("<quoted>"): true when it matches
 * (the answer is then 304). Handles lists, W/ prefixes (weak comparison, as
 * §13.1.2 asks) and "*". */
bool rf_etag_matches_none(const char *if_none_match, const char *etag);

/* If-Range: true when the Range may be honoured. Only a strong ETag equal to
 * ours validates; a date or anything else means "send everything". */
bool rf_if_range_ok(const char *if_range, const char *etag);

#endif
