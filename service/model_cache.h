/* Loaded models for the completions endpoints, by checkpoint folder, within
 * a memory budget (REFINERY_MODEL_CACHE_BYTES, default 8 GiB): a model in
 * use is never evicted; when a load would pass the budget, the least
 * recently used idle models go first. A model past the budget on its own is
 * still served, alone. Loading runs on the caller's thread (an inference
 * thread) outside the lock; a second request for a model being loaded
 * waits for that load instead of starting another. */
#ifndef RF_MODEL_CACHE_H
#define RF_MODEL_CACHE_H

#include <stddef.h>

#include "engine/core/error.h"
#include "engine/model/lm.h"
#include "engine/model/lm_adapter.h"

typedef struct rf_cached_lm rf_cached_lm;

void rf_model_cache_init(size_t budget_bytes);
/* Drop every idle model (at shutdown; models in use stay until put). */
void rf_model_cache_clear(void);

/* The model at dir, loaded if need be; *lm stays valid until the put. */
int rf_model_cache_get(const char *dir, rf_cached_lm **handle, const rf_lm **lm, rf_error *err);
/* The same with the LoRA adapter in the folder adapter applied (NULL: none);
 * cached apart from the base alone, under both folders (engine/model/lm_adapter.h). */
int rf_model_cache_get_adapter(const char *dir, const char *adapter, rf_cached_lm **handle,
                               const rf_lm **lm, rf_error *err);
void rf_model_cache_put(rf_cached_lm *handle);

/* Models loaded now and their bytes (for /metrics and tests). */
void rf_model_cache_stats(int *models, size_t *bytes, long *loads, long *evictions);

#endif
