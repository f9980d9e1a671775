/* Serving a stored file: ETag (its SHA-256), If-None-Match → 304,
 * Accept-Ranges, a single Range → 206 or 416, If-Range, Content-Disposition,
 * sent from the file descriptor (sendfile), never copied into memory. */
#ifndef RF_DOWNLOAD_H
#define RF_DOWNLOAD_H

#include <stdbool.h>

#include "service/http.h"

typedef struct rf_file_info {
    const char *path;
    const char *etag; /* the entity tag's opaque part (a SHA-256, say), quoted on the wire */
    const char *name; /* for Content-Disposition */
    const char *content_type;
    bool show; /* Content-Disposition inline (a page to open), not attachment */
} rf_file_info;

void rf_reply_download(rf_req *req, const rf_file_info *f);

#endif
