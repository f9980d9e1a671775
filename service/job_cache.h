/* Job objects kept in memory by an API process, so that polling a job
 * (GET /v1/jobs/{id}) costs no database round trip while nothing changed.
 *
 * Invalidation: every change to a job row bumps its `version` and sends
 * NOTIFY refinery_job with its id, from a trigger (migrations/0010), so no
 * writer can forget. The process's listener (service/worker.c) drops the
 * entry on each notification. While the listener's connection is down the
 * cache is flushed and bypassed (nothing served, nothing stored), and it is
 * flushed again once LISTEN is back: a change committed while nobody
 * listened is then read from the database.
 *
 * What a client of one API process can rely on (the guarantee):
 *   - it never reads a job older than one it was shown before by this
 *     process: every job object this process reads from the database (GET,
 *     list, cancel, the Idempotency-Key replay, the events list and stream)
 *     is offered to the cache with its version before it is sent, and the
 *     cache keeps the higher version or drops the entry;
 *   - so once its own write is acknowledged (cancel), or once it has seen an
 *     event of a change (the event row commits with the change, or after
 *     it), it reads that state or a later one;
 *   - a read that started before a change and ends after its notification
 *     was handled is not stored (the ticket below), so the cache cannot go
 *     back to a state that a notification removed;
 *   - a change made anywhere (another process, psql) is seen once this
 *     process's listener has its notification: usually milliseconds. Across
 *     several API processes behind one address a client may so see an older
 *     state from a second process than from the first one, for that long;
 *     nothing here depends on timing for the guarantees above.
 * Tenancy: an entry is served only to the tenant that owns the job; any
 * other tenant's request goes to the database (and finds nothing). */
#ifndef RF_JOB_CACHE_H
#define RF_JOB_CACHE_H

#include <stdbool.h>

/* Taken before a read from the database; says whether what the read
 * returns may still be stored afterwards. */
typedef struct rf_job_cache_ticket {
    unsigned long long epoch;   /* flushes */
    unsigned long long changes; /* notifications, for a read of many jobs */
    unsigned gen;               /* notifications on the slot, for a read of one */
    int slot;                   /* -1: a read of many jobs */
} rf_job_cache_ticket;

/* For a read of one job (id) or, with id NULL, of any number of them. */
void rf_job_cache_ticket_take(const char *id, rf_job_cache_ticket *t);

/* The job's object (free it), or NULL: not cached, another tenant's, or the
 * cache is bypassed. */
char *rf_job_cache_get(const char *tenant, const char *id);

/* The object read from the database at version, after t was taken. */
void rf_job_cache_put(const rf_job_cache_ticket *t, const char *tenant, const char *id,
                      long long version, const char *json);

/* NOTIFY refinery_job: the row of id changed or went. */
void rf_job_cache_changed(const char *id);

/* The listener lost (false) or re-established (true) its LISTEN: either way
 * everything cached goes; while false nothing is served or stored. */
void rf_job_cache_online(bool up);

#endif
