/* Server-Sent Events for a job's events (GET /v1/jobs/{id}/events with
 * Accept: text/event-stream). A stream never parks a pool thread: when it has
 * nothing to send its connection is suspended, and resumed when the listener
 * hears NOTIFY refinery_events for its job, when its client hangs up (one
 * thread polls the suspended sockets), for a keep-alive comment, or at
 * shutdown. Each event goes out with `id:` (its event id, so Last-Event-ID
 * resumes), `event:` (its kind) and `data:` (the event object); the stream
 * closes after the job reaches a final state and its last event is sent. */
#ifndef RF_SSE_H
#define RF_SSE_H

#include "service/http.h"

/* Start the hang-up watcher. max_streams caps concurrent streams. */
int rf_sse_start(int max_streams, int ping_ms, rf_error *err);
/* End every stream (at shutdown) and stop the watcher. */
void rf_sse_stop(void);

/* Answer req with a stream of job_id's events after event id `after`; the job
 * must already be known to belong to the tenant. 503 + Retry-After past the cap. */
void rf_sse_reply(rf_req *req, const char *job_id, long long after);

/* A job has new events (the payload of NOTIFY refinery_events); NULL: any
 * job may have (notifications were missed while the listener reconnected). */
void rf_sse_notify(const char *job_id);

/* Streams open now. */
int rf_sse_active(void);

#endif
