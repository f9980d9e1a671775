/* safetensors reader (mmap, header fully validated) and writer, plus sharded
 * checkpoints through model.safetensors.index.json. Layout: FORMATS.md
 * "safetensors". */
#ifndef RF_SAFETENSORS_H
#define RF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

/* A header larger than this is refused before it is read: real checkpoints
 * have headers of a few hundred KiB (the reference caps at 100 MB too). */
#define RF_ST_MAX_HEADER (100u * 1024 * 1024)

typedef struct rf_st_entry {
    char *name;
    rf_dtype dtype;
    int ndim;
    int64_t shape[RF_TENSOR_MAX_DIMS];
    uint64_t begin, end; /* relative to the data section */
} rf_st_entry;

typedef struct rf_st_file {
    char *path;
    int fd;
    uint8_t *map;
    size_t size;
    size_t data_off; /* 8 + header length */
    int n;
    rf_st_entry *entries; /* sorted by name, for bsearch */
} rf_st_file;

/* Map and validate path. On error *f is left closed and err names the file
 * and, where one is at fault, the tensor. */
int rf_st_open(rf_st_file *f, const char *path, rf_error *err);
void rf_st_close(rf_st_file *f);
const rf_st_entry *rf_st_find(const rf_st_file *f, const char *name);
/* A borrowed view of the tensor's bytes inside the mapping. */
void rf_st_view(const rf_st_file *f, const rf_st_entry *e, rf_tensor *out);

/* One tensor to write: name and a contiguous tensor. */
typedef struct rf_st_item {
    const char *name;
    const rf_tensor *tensor;
} rf_st_item;

/* Write items to path: header padded with spaces to a multiple of 8, tensors
 * contiguous, larger element sizes first (so each is naturally aligned),
 * "__metadata__": {"format": "pt"}; written to a temporary name in the same
 * folder, fsynced, then renamed over path. */
int rf_st_write(const char *path, const rf_st_item *items, int n, rf_error *err);

/* A checkpoint folder: model.safetensors, or the shards listed by
 * model.safetensors.index.json's weight_map. */
typedef struct rf_st_model {
    int nfiles;
    rf_st_file *files;
} rf_st_model;

int rf_st_model_open(rf_st_model *m, const char *dir, rf_error *err);
void rf_st_model_close(rf_st_model *m);
/* Find a tensor by name in any shard; RF_ENOTFOUND (err naming it) if absent. */
int rf_st_model_get(const rf_st_model *m, const char *name, rf_tensor *out, rf_error *err);
/* Total bytes of tensor data mapped. */
size_t rf_st_model_bytes(const rf_st_model *m);

#endif
