/* Errors name objects by id, never by server path: a last pass over a
 * message that a job or a request will show to its owner, in case a layer
 * below put a path in it. Every path under one of the given folders (the
 * data folder, the model roots) becomes its last component. */
#ifndef RF_SCRUB_H
#define RF_SCRUB_H

#include <stddef.h>

/* folders: colon-separated, as REFINERY_MODEL_ROOTS; NULL or "" entries are
 * skipped. msg is edited in place (it only gets shorter). */
void rf_scrub_paths(char *msg, const char *folders);

#endif
