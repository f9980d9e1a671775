#include "engine/core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rf_error_clear(rf_error *err)
{
    if (!err) return;
    err->code = 0;
    err->field[0] = '\0';
    err->msg[0] = '\0';
}

int rf_errorf(rf_error *err, int code, const char *fmt, ...)
{
    if (!err) return code;
    /* formatted aside first: the arguments may be err->msg itself */
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err->code = code;
    err->field[0] = '\0';
    memcpy(err->msg, msg, sizeof msg);
    return code;
}

int rf_error_field(rf_error *err, int code, const char *field, const char *fmt, ...)
{
    if (!err) return code;
    /* formatted aside first: field and the arguments may point into err */
    char msg[sizeof err->msg], f[sizeof err->field];
    snprintf(f, sizeof f, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err->code = code;
    memcpy(err->field, f, sizeof f);
    memcpy(err->msg, msg, sizeof msg);
    return code;
}

int rf_error_wrap(rf_error *err, const char *fmt, ...)
{
    if (!err) return RF_EINTERNAL;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

const char *rf_strerror(int code)
{
    switch (code) {
    case RF_OK:
        return "ok";
    case RF_EINVAL:
        return "invalid input";
    case RF_ENOMEM:
        return "out of memory";
    case RF_EIO:
        return "I/O error";
    case RF_ENOTFOUND:
        return "not found";
    case RF_ECONFLICT:
        return "conflict";
    case RF_EDB:
        return "database error";
    case RF_ECANCELED:
        return "canceled";
    case RF_EUNSUPPORTED:
        return "unsupported";
    case RF_EINTERNAL:
        return "internal error";
    case RF_EAUTH:
        return "unauthorized";
    case RF_ETOOBIG:
        return "too large";
    case RF_EWAIT:
        return "waiting for child jobs";
    case RF_ERANGE:
        return "range not satisfiable";
    }
    return "unknown error";
}
