/* Inference threads for the completions endpoints. Engine work never runs
 * on an HTTP pool thread: a handler submits a task and its connection is
 * suspended; an inference thread takes the model from the cache
 * (service/model_cache.h), runs the task's work function, and resumes the
 * connection, whose handler is then called again to answer with what the
 * work left (rf_infer_task_of tells it which call it is in). A streaming task
 * instead asks for its stream to open: the handler answers 200 with a
 * text/event-stream body fed by rf_infer_emit; while nothing is buffered the
 * connection is suspended again, and each emit resumes it (the pattern of
 * service/sse.c). A client that hangs up is noticed between tokens
 * (rf_infer_gone), so that its work stops.
 *
 * Environment: REFINERY_INFER_THREADS (default 2), REFINERY_INFER_QUEUE
 * (tasks waiting, default 64; 503 past it), REFINERY_MODEL_CACHE_BYTES. */
#ifndef RF_INFER_H
#define RF_INFER_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/model/lm.h"
#include "service/http.h"

typedef struct rf_infer_task rf_infer_task;

/* Runs on an inference thread. It ends by returning; before that it either
 * fails (rf_infer_fail), or leaves its result in arg, or opens a stream. */
typedef void (*rf_infer_work)(rf_infer_task *t, const rf_lm *lm, void *arg);

int rf_infer_start(rf_error *err);
/* Fail what waits (RF_ECANCELED), end what runs at its next token, stop the
 * threads, empty the cache. Call it before the HTTP server stops: it resumes
 * suspended connections so that they can be answered. */
void rf_infer_stop(void);

/* ---- handler side ---- */
/* Queue work on the model in dir; suspends the connection. arg (freed with
 * free_arg when the task ends) is the work's own state. On failure nothing
 * is suspended and arg is not taken. */
int rf_infer_submit(rf_req *req, const char *dir, rf_infer_work work, void *arg,
                    void (*free_arg)(void *), rf_error *err);
/* The same on the model in dir with the LoRA adapter in the folder adapter
 * applied (cached apart from dir alone). */
int rf_infer_submit_adapter(rf_req *req, const char *dir, const char *adapter, rf_infer_work work,
                            void *arg, void (*free_arg)(void *), rf_error *err);
/* The task this request submitted, NULL on the first call of the handler. */
rf_infer_task *rf_infer_task_of(rf_req *req);
void *rf_infer_arg(rf_infer_task *t);
/* After resumption: true when the work opened a stream; else it finished,
 * and *err (when it failed) says why. */
bool rf_infer_streaming(rf_infer_task *t, const rf_error **err);
/* Answer with the stream (status 200, text/event-stream). */
void rf_infer_reply_stream(rf_req *req, rf_infer_task *t);
/* The handler is done with the task (non-streaming reply built). */
void rf_infer_release(rf_req *req);

/* ---- work side ---- */
void rf_infer_fail(rf_infer_task *t, const rf_error *err);
/* Open the stream; what is emitted afterwards is the body. */
void rf_infer_open_stream(rf_infer_task *t);
/* Append bytes to the stream; false once the client has gone. */
bool rf_infer_emit(rf_infer_task *t, const char *data, size_t n);
/* The client closed its connection. */
bool rf_infer_gone(rf_infer_task *t);

#endif
