#include "service/embedded.h"

#include <string.h>

const rf_embedded_file *rf_embedded_find(const char *name)
{
    for (const rf_embedded_file *f = rf_embedded_files; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}
