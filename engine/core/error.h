/* rf_error: every fallible function returns 0 or a negative RF_E… code and
 * fills an rf_error with a sentence a person can act on (and, for validation
 * errors, the field at fault). Library code never prints and exits. */
#ifndef RF_ERROR_H
#define RF_ERROR_H

#include <stddef.h>

enum {
    RF_OK = 0,
    RF_EINVAL = -1,       /* bad input: the caller can fix it */
    RF_ENOMEM = -2,       /* out of memory */
    RF_EIO = -3,          /* file or socket I/O failed */
    RF_ENOTFOUND = -4,    /* no such object (or not visible to this tenant) */
    RF_ECONFLICT = -5,    /* the object's state forbids the request */
    RF_EDB = -6,          /* the database failed */
    RF_ECANCELED = -7,    /* stopped because a cancel or shutdown was asked */
    RF_EUNSUPPORTED = -8, /* valid, but not something we implement */
    RF_EINTERNAL = -9,    /* an invariant broke: a bug */
    RF_EAUTH = -10,       /* missing or bad credentials */
    RF_ETOOBIG = -11,     /* over a configured size limit */
    RF_ERANGE = -12,      /* unsatisfiable range */
    /* Not a failure: a parent job's runner returns it to leave its worker and
     * wait until one of its child jobs ends (engine/jobs/job.h). */
    RF_EWAIT = -13,
};

typedef struct rf_error {
    int code;
    char field[128]; /* JSON path of the field at fault, "" when none */
    char msg[512];
} rf_error;

/* Fill err (which may be NULL) and return code, so that `return rf_errorf(…)` reads. */
int rf_errorf(rf_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, naming the field at fault. */
int rf_error_field(rf_error *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefix an existing message with context: "loading x: <old message>". */
int rf_error_wrap(rf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rf_error_clear(rf_error *err);
const char *rf_strerror(int code);

#endif
