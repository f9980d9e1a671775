#include "service/infer.h"

#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "service/log.h"
#include "service/model_cache.h"

enum { QUEUED, RUNNING, STREAMING, FINISHED };

struct rf_infer_task {
    rf_infer_task *next; /* queue link */
    struct MHD_Connection *conn;
    int fd;
    char *dir;
    char *adapter; /* a LoRA adapter's folder to apply, or NULL */
    rf_infer_work work;
    void *arg;
    void (*free_arg)(void *);
    /* Guarded by g_lock: */
    int state;
    int refs;       /* the inference thread, the request, the stream body */
    bool suspended; /* the connection is suspended by us */
    bool work_done; /* the work function returned */
    bool body_gone; /* libmicrohttpd freed the stream body */
    bool failed;
    rf_error err;
    char *buf; /* stream bytes not yet read by libmicrohttpd */
    size_t len, off, cap;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_work = PTHREAD_COND_INITIALIZER;
static rf_infer_task *g_head, *g_tail;
static int g_queued, g_max_queue = 64, g_nthreads;
static pthread_t *g_threads;
static atomic_bool g_running;
static bool g_stopping;

/* Caller holds g_lock; the connection is suspended by us, so libmicrohttpd
 * has not closed it. */
static void resume_locked(rf_infer_task *t)
{
    if (!t->suspended) return;
    t->suspended = false;
    MHD_resume_connection(t->conn);
}

/* Caller holds g_lock; returns true when the task is to be freed. */
static bool unref_locked(rf_infer_task *t)
{
    return --t->refs == 0;
}

static void task_free(rf_infer_task *t)
{
    if (t->free_arg) t->free_arg(t->arg);
    free(t->dir);
    free(t->adapter);
    free(t->buf);
    free(t);
}

static void unref(rf_infer_task *t)
{
    pthread_mutex_lock(&g_lock);
    bool last = unref_locked(t);
    pthread_mutex_unlock(&g_lock);
    if (last) task_free(t);
}

static void run_task(rf_infer_task *t)
{
    rf_cached_lm *h = NULL;
    const rf_lm *lm = NULL;
    rf_error err = {0};
    if (rf_infer_gone(t)) {
        rf_errorf(&err, RF_ECANCELED, "the client went away before its turn");
        rf_infer_fail(t, &err);
    } else if (rf_model_cache_get_adapter(t->dir, t->adapter, &h, &lm, &err) < 0) {
        rf_error_wrap(&err, "loading the model");
        rf_infer_fail(t, &err);
    } else {
        t->work(t, lm, t->arg);
        rf_model_cache_put(h);
    }
    pthread_mutex_lock(&g_lock);
    t->work_done = true;
    if (t->state != STREAMING) t->state = FINISHED;
    resume_locked(t); /* the handler answers, or the body reader sees the end */
    bool last = unref_locked(t);
    pthread_mutex_unlock(&g_lock);
    if (last) task_free(t);
}

static void *thread_main(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&g_lock);
        while (!g_head && !g_stopping)
            pthread_cond_wait(&g_work, &g_lock);
        rf_infer_task *t = g_head;
        if (!t) {
            pthread_mutex_unlock(&g_lock);
            return NULL;
        }
        g_head = t->next;
        if (!g_head) g_tail = NULL;
        g_queued--;
        t->state = RUNNING;
        pthread_mutex_unlock(&g_lock);
        run_task(t);
    }
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    return (*end || errno || x < lo || x > hi) ? -1 : x;
}

int rf_infer_start(rf_error *err)
{
    long threads = env_long("REFINERY_INFER_THREADS", 2, 1, 256);
    long queue = env_long("REFINERY_INFER_QUEUE", 64, 1, 1 << 20);
    const char *cb = getenv("REFINERY_MODEL_CACHE_BYTES");
    char *end = NULL;
    errno = 0;
    unsigned long long budget = cb && *cb ? strtoull(cb, &end, 10) : 8ull << 30;
    if (threads < 0)
        return rf_error_field(err, RF_EINVAL, "REFINERY_INFER_THREADS",
                              "REFINERY_INFER_THREADS must be an integer in [1, 256]");
    if (queue < 0)
        return rf_error_field(err, RF_EINVAL, "REFINERY_INFER_QUEUE",
                              "REFINERY_INFER_QUEUE must be a positive integer");
    if (cb && *cb && (*end || errno))
        return rf_error_field(err, RF_EINVAL, "REFINERY_MODEL_CACHE_BYTES",
                              "REFINERY_MODEL_CACHE_BYTES must be a number of bytes");
    rf_model_cache_init((size_t)budget);
    g_max_queue = (int)queue;
    g_stopping = false;
    if (!(g_threads = calloc((size_t)threads, sizeof *g_threads)))
        return rf_errorf(err, RF_ENOMEM, "out of memory");
    for (g_nthreads = 0; g_nthreads < threads; g_nthreads++)
        if (pthread_create(&g_threads[g_nthreads], NULL, thread_main, NULL)) {
            rf_infer_stop();
            return rf_errorf(err, RF_EINTERNAL, "cannot start the inference threads");
        }
    atomic_store(&g_running, true);
    return 0;
}

void rf_infer_stop(void)
{
    pthread_mutex_lock(&g_lock);
    g_stopping = true;
    /* Waiting tasks are answered 503 at once; running ones finish. */
    rf_infer_task *t = g_head, *dropped = NULL;
    g_head = g_tail = NULL;
    g_queued = 0;
    while (t) {
        rf_infer_task *next = t->next;
        rf_errorf(&t->err, RF_ECANCELED, "the server is shutting down");
        t->failed = true;
        t->state = FINISHED;
        t->work_done = true;
        resume_locked(t);
        t->next = dropped;
        dropped = t;
        t = next;
    }
    pthread_cond_broadcast(&g_work);
    pthread_mutex_unlock(&g_lock);
    for (; dropped; dropped = t) {
        t = dropped->next;
        unref(dropped);
    }
    for (int i = 0; i < g_nthreads; i++)
        pthread_join(g_threads[i], NULL);
    free(g_threads);
    g_threads = NULL;
    g_nthreads = 0;
    atomic_store(&g_running, false);
    rf_model_cache_clear();
}

/* ---- handler side -------------------------------------------------------- */

int rf_infer_submit(rf_req *req, const char *dir, rf_infer_work work, void *arg,
                    void (*free_arg)(void *), rf_error *err)
{
    return rf_infer_submit_adapter(req, dir, NULL, work, arg, free_arg, err);
}

int rf_infer_submit_adapter(rf_req *req, const char *dir, const char *adapter, rf_infer_work work,
                            void *arg, void (*free_arg)(void *), rf_error *err)
{
    if (!atomic_load(&g_running))
        return rf_errorf(err, RF_EIO, "inference is not running in this process");
    rf_infer_task *t = calloc(1, sizeof *t);
    if (!t || !(t->dir = strdup(dir)) || (adapter && !(t->adapter = strdup(adapter)))) {
        if (t) free(t->dir);
        free(t);
        return rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    t->fd = ci ? ci->connect_fd : -1;
    t->conn = req->conn;
    t->work = work;
    t->arg = arg;
    t->free_arg = free_arg;
    t->refs = 2; /* the inference thread and the request */
    pthread_mutex_lock(&g_lock);
    if (g_stopping || g_queued >= g_max_queue) {
        pthread_mutex_unlock(&g_lock);
        t->free_arg = NULL;
        task_free(t);
        return rf_errorf(err, RF_ETOOBIG,
                         g_stopping ? "the server is shutting down"
                                    : "too many completions are waiting; retry later");
    }
    /* Suspended before any thread can see the task, so that its resume
     * always finds a suspended connection. */
    t->suspended = true;
    MHD_suspend_connection(req->conn);
    if (g_tail)
        g_tail->next = t;
    else
        g_head = t;
    g_tail = t;
    g_queued++;
    req->stream = t;
    req->deferred = true;
    req->on_end = rf_infer_release; /* the client may leave before the answer */
    pthread_cond_signal(&g_work);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

rf_infer_task *rf_infer_task_of(rf_req *req)
{
    return req->stream;
}

void *rf_infer_arg(rf_infer_task *t)
{
    return t->arg;
}

bool rf_infer_streaming(rf_infer_task *t, const rf_error **err)
{
    pthread_mutex_lock(&g_lock);
    bool s = t->state == STREAMING;
    *err = t->failed ? &t->err : NULL;
    pthread_mutex_unlock(&g_lock);
    return s;
}

void rf_infer_release(rf_req *req)
{
    rf_infer_task *t = req->stream;
    req->stream = NULL;
    if (t) unref(t);
}

static ssize_t body_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    rf_infer_task *t = cls;
    pthread_mutex_lock(&g_lock);
    ssize_t n;
    if (t->off < t->len) {
        size_t k = t->len - t->off < max ? t->len - t->off : max;
        memcpy(out, t->buf + t->off, k);
        t->off += k;
        if (t->off == t->len) t->off = t->len = 0;
        n = (ssize_t)k;
    } else if (t->work_done) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing yet: park the connection until the next emit. */
        t->suspended = true;
        MHD_suspend_connection(t->conn);
        n = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return n;
}

static void body_free(void *cls)
{
    rf_infer_task *t = cls;
    pthread_mutex_lock(&g_lock);
    t->body_gone = true;
    bool last = unref_locked(t);
    pthread_mutex_unlock(&g_lock);
    if (last) task_free(t);
}

void rf_infer_reply_stream(rf_req *req, rf_infer_task *t)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, body_reader, t, body_free);
    if (!resp) {
        rf_reply_problem(req, 500, "cannot create the stream", NULL);
        rf_infer_release(req);
        return;
    }
    req->stream = NULL; /* the request's reference now belongs to the body */
    req->resp = resp;
    req->status = 200;
    rf_reply_header(req, "Content-Type", "text/event-stream");
    rf_reply_header(req, "Cache-Control", "no-cache");
    rf_reply_header(req, "X-Accel-Buffering", "no");
}

/* ---- work side ----------------------------------------------------------- */

void rf_infer_fail(rf_infer_task *t, const rf_error *err)
{
    pthread_mutex_lock(&g_lock);
    t->err = *err;
    t->failed = true;
    pthread_mutex_unlock(&g_lock);
}

void rf_infer_open_stream(rf_infer_task *t)
{
    pthread_mutex_lock(&g_lock);
    t->state = STREAMING;
    resume_locked(t); /* the handler is called again and answers with the body */
    pthread_mutex_unlock(&g_lock);
}

bool rf_infer_emit(rf_infer_task *t, const char *data, size_t n)
{
    pthread_mutex_lock(&g_lock);
    bool ok = !t->body_gone;
    if (ok && t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n)
            cap *= 2;
        char *b = realloc(t->buf, cap);
        if (b) {
            t->buf = b;
            t->cap = cap;
        } else {
            ok = false;
        }
    }
    if (ok) {
        memcpy(t->buf + t->len, data, n);
        t->len += n;
        resume_locked(t);
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

bool rf_infer_gone(rf_infer_task *t)
{
    pthread_mutex_lock(&g_lock);
    /* At shutdown running work ends at its next token, as if its client left. */
    bool gone = t->body_gone || g_stopping;
    pthread_mutex_unlock(&g_lock);
    if (gone) return true;
    if (t->fd < 0) return false;
    struct pollfd p = {.fd = t->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}
