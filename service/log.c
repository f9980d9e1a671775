#include "service/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static bool g_json;

void rf_log_init(bool json)
{
    g_json = json;
}

static const char *level_name(rf_log_level l)
{
    switch (l) {
    case RF_LOG_DEBUG:
        return "debug";
    case RF_LOG_INFO:
        return "info";
    case RF_LOG_WARN:
        return "warn";
    case RF_LOG_ERROR:
        return "error";
    }
    return "info";
}

static void timestamp(char *buf, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Emit one record; fields is a JSON object that the line is built from. */
static void emit(rf_log_level level, const char *msg, json_t *fields)
{
    char ts[40], line[4096];
    timestamp(ts, sizeof ts);
    int n;
    if (g_json) {
        json_t *o = fields ? fields : json_object();
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "level", json_string(level_name(level)));
        if (msg) json_object_set_new(o, "msg", json_string(msg));
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        n = snprintf(line, sizeof line, "%s\n", s ? s : "{}");
        free(s);
        if (!fields) json_decref(o);
    } else {
        n = snprintf(line, sizeof line, "%s %-5s %s", ts, level_name(level), msg ? msg : "");
        const char *k;
        json_t *v;
        if (fields) json_object_foreach(fields, k, v)
            {
                char *s =
                    json_is_string(v)
                        ? NULL
                        : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
                if (n < (int)sizeof line)
                    n += snprintf(line + n, sizeof line - n, " %s=%s", k,
                                  s ? s : json_string_value(v));
                free(s);
            }
        if (n >= (int)sizeof line - 1) n = sizeof line - 2;
        line[n++] = '\n';
        line[n] = '\0';
    }
    if (n > (int)sizeof line - 1) n = sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void rf_log(rf_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, msg, NULL);
}

void rf_log_access(const char *request_id, const char *method, const char *path, int status,
                   double ms, const char *tenant)
{
    json_t *f = json_object();
    json_object_set_new(f, "request_id", json_string(request_id));
    json_object_set_new(f, "method", json_string(method));
    json_object_set_new(f, "path", json_string(path));
    json_object_set_new(f, "status", json_integer(status));
    json_object_set_new(f, "ms", json_real(ms));
    if (tenant && *tenant) json_object_set_new(f, "tenant", json_string(tenant));
    emit(RF_LOG_INFO, "request", f);
    json_decref(f);
}
