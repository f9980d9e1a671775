#include "service/artifacts.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/db.h"

/* SHA-256 of an open file as hex, read in 1 MiB pieces. */
static int hash_fd(int fd, char hex[65], long long *bytes, rf_error *err)
{
    static _Thread_local unsigned char buf[1 << 20];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        return rf_errorf(err, RF_ENOMEM, "cannot start a SHA-256 digest");
    }
    *bytes = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            EVP_MD_CTX_free(md);
            return rf_errorf(err, RF_EIO, "reading the artifact failed: %s", strerror(errno));
        }
        if (n == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        *bytes += n;
    }
    unsigned char out[32];
    unsigned int len;
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
    rf_hex(out, 32, hex);
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int rf_artifact_register(PGconn *c, const char *data_dir, const char *tenant, const char *job_id,
                         const char *kind, const char *path, const char *name,
                         char id_out[RF_ID_MAX], rf_error *err)
{
    if (!name || !*name || strlen(name) > 255 || strchr(name, '/'))
        return rf_error_field(err, RF_EINVAL, "name", "artifact name must be 1 to 255 characters without '/'");
    char dir[1200], dest[1300], hex[65];
    long long bytes = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rf_errorf(err, RF_EIO, "cannot open artifact %s: %s", path, strerror(errno));
    int rc = hash_fd(fd, hex, &bytes, err);
    if (!rc && fsync(fd)) rc = rf_errorf(err, RF_EIO, "fsync of %s failed: %s", path, strerror(errno));
    close(fd);
    if (rc) return rc;

    if (rf_id_new("art", id_out)) return rf_errorf(err, RF_EIO, "the system's random source failed");
    snprintf(dir, sizeof dir, "%s/artifacts", data_dir);
    mkdir(dir, 0750);
    snprintf(dir, sizeof dir, "%s/artifacts/%s", data_dir, tenant);
    if (mkdir(dir, 0750) && errno != EEXIST)
        return rf_errorf(err, RF_EIO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(dest, sizeof dest, "%s/%s", dir, id_out);
    if (rename(path, dest))
        return rf_errorf(err, RF_EIO, "cannot move %s into the artifact store: %s", path, strerror(errno));
    if (fsync_path(dir, O_RDONLY | O_DIRECTORY)) {
        rc = rf_errorf(err, RF_EIO, "fsync of %s failed: %s", dir, strerror(errno));
        goto undo;
    }
    char b[32];
    snprintf(b, sizeof b, "%lld", bytes);
    const char *p[8] = {id_out, tenant, job_id, kind, name, b, hex, dest};
    rc = rf_db_exec(c,
                    "INSERT INTO artifacts (id, tenant_id, job_id, kind, name, bytes, sha256, path)"
                    " VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8)",
                    8, p, NULL, err);
    if (!rc) return 0;
undo:
    /* Not recorded: put the file back where the runner left it. */
    if (rename(dest, path)) unlink(dest);
    return rc;
}
