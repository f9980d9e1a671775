/* Process log: one line per record on stderr, as text or JSON
 * (REFINERY_LOG_FORMAT). Thread-safe: each line is one write(2). */
#ifndef RF_LOG_H
#define RF_LOG_H

#include <stdbool.h>

typedef enum { RF_LOG_DEBUG, RF_LOG_INFO, RF_LOG_WARN, RF_LOG_ERROR } rf_log_level;

void rf_log_init(bool json);
void rf_log(rf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One access-log line per HTTP request. */
void rf_log_access(const char *request_id, const char *method, const char *path, int status,
                   double ms, const char *tenant);

#endif
