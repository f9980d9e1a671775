#include "service/download.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/log.h"
#include "service/range.h"

/* attachment; filename="plain"; filename*=UTF-8''percent-encoded (RFC 6266). */
static void disposition(const char *name, bool show, char *out, size_t cap)
{
    char plain[256], enc[768];
    size_t p = 0, e = 0;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        if (p + 1 < sizeof plain)
            plain[p++] = (*c < 0x20 || *c >= 0x7f || *c == '"' || *c == '\\') ? '_' : (char)*c;
        bool safe = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || strchr("!#$&+-.^_`|~", *c);
        if (e + 4 < sizeof enc) {
            if (safe && *c)
                enc[e++] = (char)*c;
            else
                e += (size_t)snprintf(enc + e, sizeof enc - e, "%%%02X", *c);
        }
    }
    plain[p] = enc[e] = '\0';
    snprintf(out, cap, "%s; filename=\"%s\"; filename*=UTF-8''%s", show ? "inline" : "attachment",
             plain, enc);
}

void rf_reply_download(rf_req *req, const rf_file_info *f)
{
    char etag[80], cd[1100], cr[96];
    snprintf(etag, sizeof etag, "\"%s\"", f->etag);
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        rf_log(RF_LOG_ERROR, "request %s: stored file %s is unreadable: %s", req->request_id,
               f->path, strerror(errno));
        if (fd >= 0) close(fd);
        rf_reply_problem(req, 500, "the stored file is missing or unreadable; see the server log",
                         NULL);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    disposition(f->name, f->show, cd, sizeof cd);

    if (rf_etag_matches_none(rf_req_header(req, "If-None-Match"), etag)) {
        close(fd);
        rf_reply_empty(req, 304);
        rf_reply_header(req, "ETag", etag);
        return;
    }
    rf_range r = rf_range_parse(rf_req_header(req, "Range"), size);
    if (r.kind != RF_RANGE_NONE && !rf_if_range_ok(rf_req_header(req, "If-Range"), etag))
        r = (rf_range){RF_RANGE_NONE, 0, size};
    if (r.kind == RF_RANGE_UNSATISFIABLE) {
        close(fd);
        char detail[96];
        snprintf(detail, sizeof detail, "the range is outside the %" PRIu64 " bytes of the file",
                 size);
        rf_reply_problem(req, 416, detail, "Range");
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, size);
        rf_reply_header(req, "Content-Range", cr);
        return;
    }
    if (r.kind == RF_RANGE_PARTIAL) {
        rf_reply_fd(req, 206, fd, r.start, r.length, f->content_type);
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, r.start,
                 r.start + r.length - 1, size);
        rf_reply_header(req, "Content-Range", cr);
    } else {
        rf_reply_fd(req, 200, fd, 0, size, f->content_type);
    }
    rf_reply_header(req, "ETag", etag);
    rf_reply_header(req, "Accept-Ranges", "bytes");
    rf_reply_header(req, "Content-Disposition", cd);
}
