/* Files compiled into the binary by scripts/embed.sh: migrations/ and
 * openapi/openapi.yaml. The table ends with a zeroed entry. */
#ifndef RF_EMBEDDED_H
#define RF_EMBEDDED_H

#include <stddef.h>

typedef struct rf_embedded_file {
    const char *name; /* path as given to embed.sh, e.g. "migrations/0001_init.sql" */
    const char *data; /* NUL-terminated */
    size_t size;      /* without the terminating NUL */
} rf_embedded_file;

extern const rf_embedded_file rf_embedded_files[];

const rf_embedded_file *rf_embedded_find(const char *name);

#endif
