#include "engine/core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const rf_st_entry *)a)->name, ((const rf_st_entry *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const rf_st_entry *x = *(const rf_st_entry *const *)a, *y = *(const rf_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* One header entry: {"dtype": "...", "shape": [...], "data_offsets": [b, e]}. */
static int parse_entry(rf_st_entry *e, const char *name, json_t *v, const char *path, rf_error *err)
{
    if (!json_is_object(v))
        return rf_errorf(err, RF_EINVAL, "%s: tensor '%s': header entry is not an object", path,
                         name);
    const char *dt = json_string_value(json_object_get(v, "dtype"));
    json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
    if (!dt) return rf_errorf(err, RF_EINVAL, "%s: tensor '%s': missing dtype", path, name);
    int d = rf_dtype_parse(dt);
    if (d < 0)
        return rf_errorf(err, RF_EUNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", path, name,
                         dt);
    e->dtype = (rf_dtype)d;
    if (!json_is_array(shape) || json_array_size(shape) > RF_TENSOR_MAX_DIMS)
        return rf_errorf(err, RF_EINVAL,
                         "%s: tensor '%s': shape must be an array of at most %d sizes", path, name,
                         RF_TENSOR_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    /* numel · dtype size must equal the offsets' span; overflow-checked. */
    uint64_t bytes = rf_dtype_size(e->dtype);
    for (int i = 0; i < e->ndim; i++) {
        json_t *s = json_array_get(shape, (size_t)i);
        if (!json_is_integer(s) || json_integer_value(s) < 0)
            return rf_errorf(err, RF_EINVAL,
                             "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name,
                             i);
        e->shape[i] = json_integer_value(s);
        if (e->shape[i] && bytes > UINT64_MAX / (uint64_t)e->shape[i])
            return rf_errorf(err, RF_EINVAL, "%s: tensor '%s': shape overflows", path, name);
        bytes *= (uint64_t)e->shape[i];
    }
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)) ||
        json_integer_value(json_array_get(offs, 0)) < 0 ||
        json_integer_value(json_array_get(offs, 1)) < json_integer_value(json_array_get(offs, 0)))
        return rf_errorf(
            err, RF_EINVAL,
            "%s: tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end", path,
            name);
    e->begin = (uint64_t)json_integer_value(json_array_get(offs, 0));
    e->end = (uint64_t)json_integer_value(json_array_get(offs, 1));
    if (e->end - e->begin != bytes) {
        char sb[96];
        return rf_errorf(
            err, RF_EINVAL,
            "%s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets span %llu", path,
            name, rf_shape_str(e->ndim, e->shape, sb, sizeof sb), rf_dtype_name(e->dtype),
            (unsigned long long)bytes, (unsigned long long)(e->end - e->begin));
    }
    return 0;
}

/* The reference (the safetensors crate) requires the tensors to tile the data
 * section exactly: sorted by offset, each begins where the previous ended and
 * the last ends at the end of the file. */
static int check_layout(rf_st_file *f, rf_error *err)
{
    int rc = 0;
    uint64_t data_size = f->size - f->data_off, pos = 0;
    rf_st_entry **by_off = malloc(sizeof *by_off * (size_t)(f->n ? f->n : 1));
    if (!by_off) return rf_errorf(err, RF_ENOMEM, "%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++)
        by_off[i] = &f->entries[i];
    qsort(by_off, (size_t)f->n, sizeof *by_off, cmp_begin);
    for (int i = 0; i < f->n; i++) {
        rf_st_entry *e = by_off[i];
        if (e->begin < pos) {
            rc = rf_errorf(err, RF_EINVAL, "%s: tensor '%s' overlaps tensor '%s'", f->path, e->name,
                           by_off[i - 1]->name);
            goto out;
        }
        if (e->begin > pos) {
            rc = rf_errorf(err, RF_EINVAL,
                           "%s: tensor '%s': %llu unused bytes before it in the data section",
                           f->path, e->name, (unsigned long long)(e->begin - pos));
            goto out;
        }
        if (e->end > data_size) {
            rc = rf_errorf(
                err, RF_EIO,
                "%s: truncated file: tensor '%s' ends at byte %llu of a %llu-byte data section",
                f->path, e->name, (unsigned long long)e->end, (unsigned long long)data_size);
            goto out;
        }
        pos = e->end;
    }
    if (pos != data_size)
        rc = rf_errorf(err, RF_EINVAL, "%s: %llu trailing bytes after the last tensor", f->path,
                       (unsigned long long)(data_size - pos));
out:
    free(by_off);
    return rc;
}

static int parse_header(rf_st_file *f, rf_error *err)
{
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)f->map[i] << (8 * i); /* little-endian u64 */
    if (n > RF_ST_MAX_HEADER || n > f->size - 8)
        return rf_errorf(err, RF_EINVAL, "%s: bad header: length %llu does not fit a %zu-byte file",
                         f->path, (unsigned long long)n, f->size);
    f->data_off = 8 + (size_t)n;
    json_error_t je;
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return rf_errorf(err, RF_EINVAL, "%s: bad header: %s (byte %d)", f->path, je.text,
                         je.position);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = rf_errorf(err, RF_EINVAL, "%s: bad header: not a JSON object", f->path);
        goto out;
    }
    size_t cap = json_object_size(root);
    f->entries = calloc(cap ? cap : 1, sizeof *f->entries);
    if (!f->entries) {
        rc = rf_errorf(err, RF_ENOMEM, "%s: out of memory", f->path);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                rc = rf_errorf(err, RF_EINVAL, "%s: bad header: __metadata__ is not an object",
                               f->path);
                goto out;
            }
            continue;
        }
        rf_st_entry *e = &f->entries[f->n];
        if ((rc = parse_entry(e, key, v, f->path, err)) < 0) goto out;
        if (!(e->name = strdup(key))) {
            rc = rf_errorf(err, RF_ENOMEM, "%s: out of memory", f->path);
            goto out;
        }
        f->n++;
    }
    qsort(f->entries, (size_t)f->n, sizeof *f->entries, cmp_name);
    rc = check_layout(f, err);
out:
    json_decref(root);
    return rc;
}

int rf_st_open(rf_st_file *f, const char *path, rf_error *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    int rc = 0;
    if (!(f->path = strdup(path))) return rf_errorf(err, RF_ENOMEM, "out of memory");
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        rc = rf_errorf(err, errno == ENOENT ? RF_ENOTFOUND : RF_EIO, "%s: %s", path,
                       strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        rc = rf_errorf(err, RF_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (st.st_size < 8) {
        rc = rf_errorf(err, RF_EINVAL,
                       "%s: bad header: file of %lld bytes is shorter than the 8-byte length", path,
                       (long long)st.st_size);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = rf_errorf(err, RF_EIO, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    if ((rc = parse_header(f, err)) < 0) goto fail;
    return 0;
fail:
    rf_st_close(f);
    return rc;
}

void rf_st_close(rf_st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++)
        free(f->entries[i].name);
    free(f->entries);
    if (f->map) munmap(f->map, f->size);
    if (f->fd >= 0) close(f->fd);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

const rf_st_entry *rf_st_find(const rf_st_file *f, const char *name)
{
    rf_st_entry key = {.name = (char *)name};
    return f->n ? bsearch(&key, f->entries, (size_t)f->n, sizeof key, cmp_name) : NULL;
}

void rf_st_view(const rf_st_file *f, const rf_st_entry *e, rf_tensor *out)
{
    rf_tensor_view(out, e->dtype, e->ndim, e->shape, f->map + f->data_off + e->begin);
}

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int rf_st_write(const char *path, const rf_st_item *items, int n, rf_error *err)
{
    int rc = 0, fd = -1, *order = NULL;
    char *hdr = NULL, *tmp = NULL;
    json_t *root = json_object();
    if (!root) return rf_errorf(err, RF_ENOMEM, "out of memory");
    uint64_t off = 0;
    if (!(order = malloc(sizeof *order * (size_t)(n > 0 ? n : 1)))) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    /* Larger elements first (given order within a size), as the reference
     * writer orders them: after the 8-aligned header every tensor then
     * starts at a multiple of its element size. */
    int no = 0;
    for (size_t es = 8; es >= 1; es /= 2)
        for (int i = 0; i < n; i++)
            if (rf_dtype_size(items[i].tensor->dtype) == es) order[no++] = i;
    if (no != n) {
        rc = rf_errorf(err, RF_EINVAL, "%s: a tensor has an unknown dtype", path);
        goto fail;
    }
    for (int oi = 0; oi < n; oi++) {
        const int i = order[oi];
        const rf_tensor *t = items[i].tensor;
        if (rf_dtype_size(t->dtype) == 0 || !items[i].name ||
            !strcmp(items[i].name, "__metadata__")) {
            rc = rf_errorf(err, RF_EINVAL, "%s: item %d has a bad name or dtype", path, i);
            goto fail;
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t nb = rf_tensor_nbytes(t);
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", rf_dtype_name(t->dtype), "shape",
                              shape, "data_offsets", (json_int_t)off, (json_int_t)(off + nb));
        if (!e || json_object_get(root, items[i].name)) {
            json_decref(e);
            rc = rf_errorf(err, RF_EINVAL, "%s: tensor '%s' given twice", path, items[i].name);
            goto fail;
        }
        if (json_object_set_new(root, items[i].name, e) < 0) {
            rc = rf_errorf(err, RF_ENOMEM, "out of memory");
            goto fail;
        }
        off += nb;
    }
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    char *js = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!js) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    /* Pad with spaces so that the data section starts 8-byte aligned, as the
     * reference writer does. */
    size_t jl = strlen(js), hl = (jl + 7) & ~(size_t)7;
    hdr = malloc(8 + hl);
    if (!hdr) {
        free(js);
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < 8; i++)
        hdr[i] = (char)(((uint64_t)hl >> (8 * i)) & 0xff);
    memcpy(hdr + 8, js, jl);
    memset(hdr + 8 + jl, ' ', hl - jl);
    free(js);

    size_t pl = strlen(path);
    if (!(tmp = malloc(pl + 16))) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0) {
        rc =
            rf_errorf(err, RF_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto fail;
    }
    if (write_all(fd, hdr, 8 + hl) < 0) goto io_fail;
    for (int oi = 0; oi < n; oi++)
        if (write_all(fd, items[order[oi]].tensor->data,
                      rf_tensor_nbytes(items[order[oi]].tensor)) < 0)
            goto io_fail;
    if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) goto io_fail;
    if (close(fd) < 0) {
        fd = -1;
        goto io_fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) goto io_fail;
    free(tmp);
    tmp = NULL;
    /* The rename is durable only once the folder is synced. */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
        int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    goto done;
io_fail:
    rc = rf_errorf(err, RF_EIO, "%s: write failed: %s", path, strerror(errno));
fail:
done:
    if (fd >= 0) close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(hdr);
    free(order);
    json_decref(root);
    return rc;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A shard name from weight_map must be a plain file name in the folder. */
static int safe_shard_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int open_index(rf_st_model *m, const char *dir, const char *index_path, rf_error *err)
{
    json_error_t je;
    int rc = 0;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
    if (!root) return rf_errorf(err, RF_EINVAL, "%s: %s (line %d)", index_path, je.text, je.line);
    json_t *wm = json_object_get(root, "weight_map");
    const char *key;
    json_t *v;
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        rc = rf_error_field(err, RF_EINVAL, "weight_map",
                            "%s: weight_map must be a non-empty object", index_path);
        goto out;
    }
    m->files = calloc(json_object_size(wm), sizeof *m->files);
    if (!m->files) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto out;
    }
    /* Open each distinct shard once, then check every listed tensor is in
     * the shard the map names. */
    json_object_foreach(wm, key, v)
    {
        const char *shard = json_string_value(v);
        if (!safe_shard_name(shard)) {
            rc = rf_error_field(err, RF_EINVAL, "weight_map",
                                "%s: tensor '%s' maps to a bad file name", index_path, key);
            goto out;
        }
        int have = -1;
        for (int i = 0; i < m->nfiles && have < 0; i++) {
            const char *base = strrchr(m->files[i].path, '/');
            if (strcmp(base ? base + 1 : m->files[i].path, shard) == 0) have = i;
        }
        if (have < 0) {
            char *p = join(dir, shard);
            if (!p) {
                rc = rf_errorf(err, RF_ENOMEM, "out of memory");
                goto out;
            }
            rc = rf_st_open(&m->files[m->nfiles], p, err);
            free(p);
            if (rc < 0) goto out;
            have = m->nfiles++;
        }
        if (!rf_st_find(&m->files[have], key)) {
            rc = rf_errorf(err, RF_ENOTFOUND,
                           "%s: tensor '%s' is listed in weight_map but missing from %s",
                           index_path, key, shard);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int rf_st_model_open(rf_st_model *m, const char *dir, rf_error *err)
{
    memset(m, 0, sizeof *m);
    int rc;
    char *index = join(dir, "model.safetensors.index.json");
    char *single = join(dir, "model.safetensors");
    if (!index || !single) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
        goto fail;
    }
    if (access(index, F_OK) == 0) {
        rc = open_index(m, dir, index, err);
    } else if (access(single, F_OK) == 0) {
        if (!(m->files = calloc(1, sizeof *m->files))) {
            rc = rf_errorf(err, RF_ENOMEM, "out of memory");
            goto fail;
        }
        rc = rf_st_open(&m->files[0], single, err);
        if (rc == 0) m->nfiles = 1;
    } else {
        rc = rf_errorf(err, RF_ENOTFOUND,
                       "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    }
    if (rc < 0) goto fail;
    free(index);
    free(single);
    return 0;
fail:
    free(index);
    free(single);
    rf_st_model_close(m);
    return rc;
}

void rf_st_model_close(rf_st_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->nfiles; i++)
        rf_st_close(&m->files[i]);
    free(m->files);
    memset(m, 0, sizeof *m);
}

int rf_st_model_get(const rf_st_model *m, const char *name, rf_tensor *out, rf_error *err)
{
    for (int i = 0; i < m->nfiles; i++) {
        const rf_st_entry *e = rf_st_find(&m->files[i], name);
        if (e) {
            rf_st_view(&m->files[i], e, out);
            return 0;
        }
    }
    return rf_errorf(err, RF_ENOTFOUND, "missing tensor '%s'", name);
}

size_t rf_st_model_bytes(const rf_st_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nfiles; i++)
        n += m->files[i].size - m->files[i].data_off;
    return n;
}
