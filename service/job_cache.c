#include "service/job_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/ids.h"

/* Direct-mapped: a job maps to one slot, a newer job evicts an older one.
 * Objects larger than MAX_JSON (a pipeline's result) are not kept: at most 64 MiB. */
#define SLOTS 4096
#define MAX_JSON 16384

typedef struct {
    char id[RF_ID_MAX];
    char tenant[RF_ID_MAX];
    long long version;
    char *json;   /* NULL: empty */
    unsigned gen; /* notifications that landed on this slot */
} slot;

static slot g_slots[SLOTS];
/* Writer-preferring: glibc's default lets a steady stream of readers (GETs
 * at tens of thousands a second) starve a writer for seconds, and the
 * writers are the listener (which also renews the leases) and the GET that
 * just read the database. */
static pthread_rwlock_t g_lock;
static pthread_once_t g_lock_once = PTHREAD_ONCE_INIT;
/* Guarded by g_lock (written under the write lock, read under either). */
static unsigned long long g_epoch, g_changes;
static bool g_online;

static void lock_init(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&g_lock, &a);
    pthread_rwlockattr_destroy(&a);
}

static void rdlock(void)
{
    pthread_once(&g_lock_once, lock_init);
    pthread_rwlock_rdlock(&g_lock);
}

static void wrlock(void)
{
    pthread_once(&g_lock_once, lock_init);
    pthread_rwlock_wrlock(&g_lock);
}

static int slot_of(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return (int)(h % SLOTS);
}

void rf_job_cache_ticket_take(const char *id, rf_job_cache_ticket *t)
{
    t->slot = id ? slot_of(id) : -1;
    rdlock();
    t->epoch = g_epoch;
    t->changes = g_changes;
    t->gen = t->slot >= 0 ? g_slots[t->slot].gen : 0;
    pthread_rwlock_unlock(&g_lock);
}

char *rf_job_cache_get(const char *tenant, const char *id)
{
    const slot *s = &g_slots[slot_of(id)];
    char *json = NULL;
    rdlock();
    if (g_online && s->json && !strcmp(s->id, id) && !strcmp(s->tenant, tenant))
        json = strdup(s->json);
    pthread_rwlock_unlock(&g_lock);
    return json;
}

static void clear(slot *s)
{
    free(s->json);
    s->json = NULL;
    s->id[0] = s->tenant[0] = '\0';
    s->version = 0;
}

void rf_job_cache_put(const rf_job_cache_ticket *t, const char *tenant, const char *id,
                      long long version, const char *json)
{
    int i = slot_of(id);
    slot *s = &g_slots[i];
    size_t len = strlen(json);
    char *copy = len <= MAX_JSON ? strdup(json) : NULL;
    char *old = NULL;
    wrlock();
    bool same = s->json && !strcmp(s->id, id);
    if (same && s->version >= version) {
        /* as new as what was read, or newer: keep it */
    } else if (copy && g_online && t->epoch == g_epoch &&
               (t->slot >= 0 ? t->slot == i && t->gen == s->gen : t->changes == g_changes)) {
        /* No notification since the read began: nothing it returned was
         * replaced meanwhile by a change we were told of. */
        old = s->json;
        snprintf(s->id, sizeof s->id, "%s", id);
        snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
        s->version = version;
        s->json = copy;
        copy = NULL;
    } else if (same) {
        /* Not storable, but what is cached is older than what the client
         * is about to be shown: it must not be served after it. */
        old = s->json;
        s->json = NULL;
        clear(s);
    }
    pthread_rwlock_unlock(&g_lock);
    free(old);
    free(copy);
}

void rf_job_cache_changed(const char *id)
{
    slot *s = &g_slots[slot_of(id)];
    char *old = NULL;
    wrlock();
    s->gen++;
    g_changes++;
    if (s->json && !strcmp(s->id, id)) {
        old = s->json;
        s->json = NULL;
        clear(s);
    }
    pthread_rwlock_unlock(&g_lock);
    free(old);
}

void rf_job_cache_online(bool up)
{
    wrlock();
    g_online = up;
    g_epoch++;
    for (int i = 0; i < SLOTS; i++)
        clear(&g_slots[i]);
    pthread_rwlock_unlock(&g_lock);
}
