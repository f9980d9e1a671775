/* POST /v1/completions and POST /v1/chat/completions, OpenAI-compatible:
 * `model` is a registered model's id or name (the tenant's own); max_tokens,
 * temperature, top_p, top_k, seed, stop, n, logprobs (top_logprobs for chat),
 * stream (Server-Sent Events `data: {…}` chunks, then `data: [DONE]`,
 * stream_options.include_usage) and usage. The request is checked here, on
 * the HTTP thread; tokenising and generation run on an inference thread
 * (service/infer.h) while the connection waits suspended. */
#ifndef RF_H_COMPLETIONS_H
#define RF_H_COMPLETIONS_H

#include "service/http.h"

void rf_h_completions(rf_req *req);
void rf_h_chat_completions(rf_req *req);

#endif
