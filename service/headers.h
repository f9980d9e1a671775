/* The small request parsers of the HTTP layer that are not Range's: the
 * X-Request-Id and Idempotency-Key headers, and integers in query strings.
 * Pure functions on strings, so the fuzz targets (tests/fuzz/) call them
 * exactly as the server does. */
#ifndef RF_HEADERS_H
#define RF_HEADERS_H

#include <stdbool.h>

/* X-Request-Id: 1 to 64 of [A-Za-z0-9._-]; anything else is replaced by a
 * generated id (never echoed back as given). */
bool rf_request_id_valid(const char *s);

/* Idempotency-Key: 1 to 255 bytes of visible ASCII (RFC 9110 token
 * characters and the other printable ones, no controls, no spaces at
 * either end), as the IETF draft's keys are opaque strings. */
bool rf_idempotency_key_valid(const char *s);

/* A query-string integer: optional sign, decimal digits only, inside
 * [lo, hi]. False (and *out untouched) for anything else. */
bool rf_parse_int_in(const char *s, long long lo, long long hi, long long *out);

#endif
