#include "service/model_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "service/log.h"

struct rf_cached_lm {
    rf_cached_lm *next;
    char *dir;
    char *adapter;    /* a LoRA adapter's folder applied to the model, or NULL */
    rf_lm_adapter ad; /* the weights it merged into copies of its own */
    rf_lm lm;
    size_t bytes;
    int refs;
    bool loading;
    unsigned long last_used; /* g_tick when last handed out */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_loaded = PTHREAD_COND_INITIALIZER;
static rf_cached_lm *g_head;
static size_t g_budget = (size_t)8 << 30, g_bytes;
static unsigned long g_tick;
static long g_loads, g_evictions;

void rf_model_cache_init(size_t budget_bytes)
{
    pthread_mutex_lock(&g_lock);
    g_budget = budget_bytes;
    pthread_mutex_unlock(&g_lock);
}

static void unlink_entry(rf_cached_lm *e)
{
    for (rf_cached_lm **pp = &g_head; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            return;
        }
}

/* Caller holds g_lock. Evict idle models, least recently used first, until
 * `incoming` more bytes fit (or nothing idle is left). Returns the victims
 * to free outside the lock (munmap of a large model takes a while). */
static rf_cached_lm *evict_for(size_t incoming)
{
    rf_cached_lm *victims = NULL;
    while (g_bytes + incoming > g_budget) {
        rf_cached_lm *lru = NULL;
        for (rf_cached_lm *e = g_head; e; e = e->next)
            if (!e->loading && e->refs == 0 && (!lru || e->last_used < lru->last_used)) lru = e;
        if (!lru) break;
        unlink_entry(lru);
        g_bytes -= lru->bytes;
        g_evictions++;
        lru->next = victims;
        victims = lru;
    }
    return victims;
}

static void free_entries(rf_cached_lm *e)
{
    while (e) {
        rf_cached_lm *next = e->next;
        rf_log(RF_LOG_INFO, "model cache: unloaded %s%s%s", e->dir, e->adapter ? " + " : "",
               e->adapter ? e->adapter : "");
        rf_lm_free(&e->lm);
        rf_lm_adapter_free(&e->ad);
        free(e->dir);
        free(e->adapter);
        free(e);
        e = next;
    }
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

int rf_model_cache_get(const char *dir, rf_cached_lm **handle, const rf_lm **lm, rf_error *err)
{
    return rf_model_cache_get_adapter(dir, NULL, handle, lm, err);
}

int rf_model_cache_get_adapter(const char *dir, const char *adapter, rf_cached_lm **handle,
                               const rf_lm **lm, rf_error *err)
{
    pthread_mutex_lock(&g_lock);
    for (;;) {
        rf_cached_lm *e = g_head;
        while (e && (strcmp(e->dir, dir) || !same(e->adapter, adapter)))
            e = e->next;
        if (!e) break;
        if (e->loading) { /* someone is loading it: wait, then look again */
            pthread_cond_wait(&g_loaded, &g_lock);
            continue;
        }
        e->refs++;
        e->last_used = ++g_tick;
        pthread_mutex_unlock(&g_lock);
        *handle = e;
        *lm = &e->lm;
        return 0;
    }
    rf_cached_lm *e = calloc(1, sizeof *e);
    if (!e || !(e->dir = strdup(dir)) || (adapter && !(e->adapter = strdup(adapter)))) {
        pthread_mutex_unlock(&g_lock);
        if (e) free(e->dir);
        free(e);
        return rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    e->loading = true;
    e->next = g_head;
    g_head = e;
    pthread_mutex_unlock(&g_lock);

    /* served with bf16 activations, as vLLM serves a W4A16 model in f16/bf16 */
    int rc = rf_lm_load(&e->lm, dir, RF_ACT_BF16, err);
    if (rc == 0 && adapter && (rc = rf_lm_adapter_apply(&e->lm, adapter, &e->ad, err)) < 0) {
        rf_error_wrap(err, "applying the adapter");
        rf_lm_free(&e->lm);
    }

    pthread_mutex_lock(&g_lock);
    rf_cached_lm *victims = NULL;
    if (rc < 0) {
        unlink_entry(e);
    } else {
        e->bytes = rf_lm_bytes(&e->lm) + e->ad.bytes;
        victims = evict_for(e->bytes);
        e->loading = false;
        e->refs = 1;
        e->last_used = ++g_tick;
        g_bytes += e->bytes;
        g_loads++;
    }
    pthread_cond_broadcast(&g_loaded);
    pthread_mutex_unlock(&g_lock);
    free_entries(victims);
    if (rc < 0) {
        free(e->dir);
        free(e->adapter);
        free(e);
        return rc;
    }
    rf_log(RF_LOG_INFO, "model cache: loaded %s%s%s (%.1f MiB)", dir, adapter ? " + " : "",
           adapter ? adapter : "", e->bytes / 1048576.0);
    *handle = e;
    *lm = &e->lm;
    return 0;
}

void rf_model_cache_put(rf_cached_lm *e)
{
    if (!e) return;
    pthread_mutex_lock(&g_lock);
    e->refs--;
    /* Over budget because everything was busy when this one loaded: trim now. */
    rf_cached_lm *victims = evict_for(0);
    pthread_mutex_unlock(&g_lock);
    free_entries(victims);
}

void rf_model_cache_clear(void)
{
    pthread_mutex_lock(&g_lock);
    size_t budget = g_budget;
    g_budget = 0;
    rf_cached_lm *victims = evict_for(0);
    g_budget = budget;
    pthread_mutex_unlock(&g_lock);
    free_entries(victims);
}

void rf_model_cache_stats(int *models, size_t *bytes, long *loads, long *evictions)
{
    pthread_mutex_lock(&g_lock);
    int n = 0;
    for (rf_cached_lm *e = g_head; e; e = e->next)
        n += !e->loading;
    *models = n;
    *bytes = g_bytes;
    *loads = g_loads;
    *evictions = g_evictions;
    pthread_mutex_unlock(&g_lock);
}
