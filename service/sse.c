#include "service/sse.h"
#include "engine/core/util.h"

#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "service/db.h"
#include "service/jobs.h"
#include "service/log.h"

typedef struct stream {
    struct stream *next;
    struct MHD_Connection *conn;
    int fd; /* the client's socket, watched while suspended */
    char job_id[RF_ID_MAX];
    long long last_id; /* last event id sent */
    /* Guarded by g_lock: */
    bool suspended, pending, ping, closing, hangup;
    double last_sent; /* monotonic seconds */
    /* Set by libmicrohttpd's free callback; the watcher frees the stream. */
    atomic_bool dead;
    char *buf; /* formatted, not yet sent */
    size_t len, off, cap;
    bool final_seen; /* the job is in a final state: end once drained */
} stream;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static stream *g_streams;
static atomic_int g_active;
static int g_max = 256, g_ping_ms = 15000;
static int g_wake_fd = -1;
static pthread_t g_thread;
static atomic_bool g_running, g_stopping;

static void poke(void)
{
    uint64_t one = 1;
    ssize_t w = write(g_wake_fd, &one, sizeof one);
    (void)w;
}

/* Caller holds g_lock. Resuming is only ever done on a suspended connection,
 * and a suspended connection cannot be closed meanwhile: MHD does not look at
 * it until it is resumed. */
static void resume_locked(stream *s)
{
    if (!s->suspended) return;
    s->suspended = false;
    MHD_resume_connection(s->conn);
}

int rf_sse_active(void)
{
    return atomic_load(&g_active);
}

void rf_sse_notify(const char *job_id)
{
    if (!atomic_load(&g_active)) return;
    pthread_mutex_lock(&g_lock);
    for (stream *s = g_streams; s; s = s->next)
        if (!atomic_load(&s->dead) && (!job_id || !strcmp(s->job_id, job_id))) {
            s->pending = true;
            resume_locked(s);
        }
    pthread_mutex_unlock(&g_lock);
}

/* ---- producing the bytes (on libmicrohttpd's threads) ------------------- */

static int append(stream *s, const char *data, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 8192;
        while (cap < s->len + n)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b) return -1;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    return 0;
}

/* Fetch what happened since last_id and format it. */
static int refill(stream *s)
{
    rf_error err;
    PGconn *c = rf_db_thread(&err);
    if (!c) return -1;
    char after[32];
    snprintf(after, sizeof after, "%lld", s->last_id);
    PGresult *r;
    if (rf_db_execp(c,
                    "SELECT e.id, e.kind, (SELECT row_to_json(o) FROM (SELECT e.id, 'job.event' AS"
                    "  object, e.job_id, e.kind, e.data,"
                    "  extract(epoch from e.created_at)::bigint AS created_at) o)::text,"
                    "  j.status IN ('succeeded', 'failed', 'cancelled')"
                    " FROM jobs j LEFT JOIN LATERAL (SELECT * FROM job_events"
                    "  WHERE job_id = j.id AND id > $2::bigint ORDER BY id LIMIT 200) e ON true"
                    " WHERE j.id = $1 ORDER BY e.id",
                    2, (const char *[]){s->job_id, after}, &r, &err)) {
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    if (n == 0) { /* the job is gone */
        PQclear(r);
        s->final_seen = true;
        return 0;
    }
    int rc = 0, got = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (PQgetisnull(r, i, 0)) continue;
        char head[160];
        int hl = snprintf(head, sizeof head, "id: %s\nevent: %s\ndata: ", PQgetvalue(r, i, 0),
                          PQgetvalue(r, i, 1));
        rc = append(s, head, (size_t)hl) ||
             append(s, PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2)) || append(s, "\n\n", 2);
        s->last_id = atoll(PQgetvalue(r, i, 0));
        got++;
    }
    /* Final only once every event is out: a full page means there may be more. */
    if (PQgetvalue(r, 0, 3)[0] == 't' && got < 200) s->final_seen = true;
    PQclear(r);
    /* The job as new as the events about to be sent, for the cache: a client
     * that sees an event never reads an older job after it (job_cache.h). */
    if (got) rf_jobs_feed(c, s->job_id);
    return rc;
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    stream *s = cls;
    for (;;) {
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(out, s->buf + s->off, n);
            s->off += n;
            if (s->off == s->len) s->off = s->len = 0;
            s->last_sent = rf_now_s();
            return (ssize_t)n;
        }
        pthread_mutex_lock(&g_lock);
        bool hangup = s->hangup, closing = s->closing, ping = s->ping;
        s->pending = s->ping = false;
        pthread_mutex_unlock(&g_lock);
        if (hangup) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->final_seen || closing) return MHD_CONTENT_READER_END_OF_STREAM;
        if (refill(s)) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->len) continue;
        if (s->final_seen) return MHD_CONTENT_READER_END_OF_STREAM;
        if (ping && append(s, ": ping\n\n", 8) == 0) continue;

        /* Nothing to say: park the connection, unless news came meanwhile. */
        pthread_mutex_lock(&g_lock);
        if (s->pending || s->closing || s->hangup) {
            pthread_mutex_unlock(&g_lock);
            continue;
        }
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&g_lock);
        poke(); /* the watcher adds this socket to its poll set */
        return 0;
    }
}

static void on_free(void *cls)
{
    stream *s = cls;
    atomic_store(&s->dead, true);
    atomic_fetch_sub(&g_active, 1); /* the slot is free at once */
    poke();
}

void rf_sse_reply(rf_req *req, const char *job_id, long long after)
{
    if (!atomic_load(&g_running) || atomic_load(&g_stopping)) {
        rf_reply_problem(req, 503, "event streams are not available now", NULL);
        rf_reply_header(req, "Retry-After", "5");
        return;
    }
    if (atomic_fetch_add(&g_active, 1) >= g_max) {
        atomic_fetch_sub(&g_active, 1);
        rf_reply_problem(req, 503, "too many event streams are open; retry later or poll", NULL);
        rf_reply_header(req, "Retry-After", "5");
        return;
    }
    stream *s = calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_sub(&g_active, 1);
        rf_reply_problem(req, 500, "out of memory", NULL);
        return;
    }
    s->conn = req->conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    snprintf(s->job_id, sizeof s->job_id, "%s", job_id);
    s->last_id = after;
    s->last_sent = rf_now_s();
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, on_free);
    if (!resp) {
        free(s);
        atomic_fetch_sub(&g_active, 1);
        rf_reply_problem(req, 500, "cannot create the stream", NULL);
        return;
    }
    pthread_mutex_lock(&g_lock);
    s->next = g_streams;
    g_streams = s;
    pthread_mutex_unlock(&g_lock);
    req->resp = resp;
    req->status = 200;
    rf_reply_header(req, "Content-Type", "text/event-stream");
    rf_reply_header(req, "Cache-Control", "no-cache");
    rf_reply_header(req, "X-Accel-Buffering", "no");
}

/* ---- the watcher: hang-ups, keep-alives, freeing ------------------------ */

static void *watcher(void *arg)
{
    (void)arg;
    struct pollfd *fds = NULL;
    stream **who = NULL;
    size_t cap = 0;
    while (!atomic_load(&g_stopping)) {
        size_t n = 1;
        double now = rf_now_s();
        pthread_mutex_lock(&g_lock);
        /* Free what libmicrohttpd is done with; list what sleeps. */
        for (stream **pp = &g_streams; *pp;) {
            stream *s = *pp;
            if (atomic_load(&s->dead)) {
                *pp = s->next;
                free(s->buf);
                free(s);
                continue;
            }
            if (s->suspended && now - s->last_sent >= g_ping_ms / 1000.0) {
                s->ping = true;
                s->last_sent = now;
                resume_locked(s);
            }
            pp = &s->next;
        }
        size_t count = 0;
        for (stream *s = g_streams; s; s = s->next)
            count++;
        if (count + 1 > cap) {
            cap = (count + 1) * 2;
            struct pollfd *f = realloc(fds, cap * sizeof *fds);
            stream **w = realloc(who, cap * sizeof *who);
            if (f) fds = f;
            if (w) who = w;
            if (!f || !w) cap = 0;
        }
        if (cap) {
            fds[0] = (struct pollfd){.fd = g_wake_fd, .events = POLLIN};
            for (stream *s = g_streams; s; s = s->next)
                if (s->suspended && s->fd >= 0) {
                    fds[n] = (struct pollfd){.fd = s->fd, .events = POLLRDHUP};
                    who[n++] = s;
                }
        }
        pthread_mutex_unlock(&g_lock);
        if (!cap) {
            usleep(100000);
            continue;
        }
        int ready = poll(fds, n, 1000 < g_ping_ms ? 1000 : g_ping_ms);
        if (ready <= 0) continue;
        if (fds[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(g_wake_fd, &v, sizeof v);
            (void)r;
        }
        pthread_mutex_lock(&g_lock);
        for (size_t i = 1; i < n; i++)
            if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                /* Still suspended means still alive in MHD's eyes: safe to resume. */
                if (!who[i]->suspended) continue;
                who[i]->hangup = true;
                resume_locked(who[i]);
            }
        pthread_mutex_unlock(&g_lock);
    }
    free(fds);
    free(who);
    return NULL;
}

int rf_sse_start(int max_streams, int ping_ms, rf_error *err)
{
    g_max = max_streams;
    g_ping_ms = ping_ms;
    g_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g_wake_fd < 0) return rf_errorf(err, RF_EIO, "eventfd failed: %s", strerror(errno));
    atomic_store(&g_stopping, false);
    if (pthread_create(&g_thread, NULL, watcher, NULL)) {
        close(g_wake_fd);
        return rf_errorf(err, RF_EINTERNAL, "cannot start the event-stream thread");
    }
    atomic_store(&g_running, true);
    return 0;
}

void rf_sse_stop(void)
{
    if (!atomic_load(&g_running)) return;
    /* Every stream ends cleanly, so that the server can stop. */
    pthread_mutex_lock(&g_lock);
    for (stream *s = g_streams; s; s = s->next)
        if (!atomic_load(&s->dead)) {
            s->closing = true;
            resume_locked(s);
        }
    pthread_mutex_unlock(&g_lock);
    atomic_store(&g_stopping, true);
    poke();
    pthread_join(g_thread, NULL);
    atomic_store(&g_running, false);
}
