/* rf_chat: a conversation rendered the way transformers' apply_chat_template
 * renders it, by running the tokenizer's own chat_template (the string, or
 * the list form's "default" / "tool_use" / a named entry) on the template
 * engine (jinja.h), with the special tokens, add_generation_prompt, tools
 * and documents as variables.
 *
 * Answer masks come from the rendering itself: for each assistant message
 * i, P = the messages before it rendered with the generation prompt and
 * F = the messages through it rendered without (less the template's
 * trailer Z, what it renders for no messages, when F ends with it); the
 * answer is F minus P. That is exact when the template is prefix-stable
 * (P is a prefix of F, and F of the whole rendering). When it is not — a
 * template that rewrites earlier turns once later ones follow, as Qwen3
 * drops its think blocks — the answer is kept only where F agrees with the
 * whole rendering, dropped when P does not, and rf_chat_out says so.
 *
 * Four built-in templates ("chatml", "llama3", "llama2", "mistral") stand in
 * only for a tokenizer that ships no chat_template, when the caller names
 * one; they are Jinja text rendered by the same engine. */
#ifndef RF_CHAT_TEMPLATE_H
#define RF_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"

typedef struct rf_chat_template rf_chat_template;

/* A plain message, for callers that hold strings rather than JSON. */
typedef struct rf_chat_msg {
    const char *role, *content;
} rf_chat_msg;

/* [{role, content}, …] from plain messages (NULL out of memory). */
json_t *rf_chat_messages(const rf_chat_msg *m, size_t n);

/* spec NULL: the tokenizer's chat_template. Else a name in its list form
 * ("tool_use" …), a built-in's name, or the text of a template (anything
 * with "{{" or "{%"). RF_EINVAL with line and column for a template that
 * does not parse; RF_EUNSUPPORTED when there is none to use. */
int rf_chat_template_load(const rf_tokenizer *tok, const char *spec, rf_chat_template **out,
                          rf_error *err);
/* The same from tokenizer_config.json's content (NULL: none). */
int rf_chat_template_from_config(const json_t *config, const char *spec, rf_chat_template **out,
                                 rf_error *err);
void rf_chat_template_free(rf_chat_template *t);
/* Whether tokenizer_config.json has a chat_template at all (a base model's
 * usually has none: its data is then plain prompt + response text). */
bool rf_chat_template_present(const rf_tokenizer *tok);
/* Where the template came from: "tokenizer_config.json", "built-in llama2", "given". */
const char *rf_chat_template_origin(const rf_chat_template *t);

typedef struct rf_chat_opts {
    int add_generation_prompt;
    const json_t *tools;     /* NULL: None */
    const json_t *documents; /* NULL: None */
    const json_t *kwargs;    /* more variables (enable_thinking …), or NULL */
    time_t now;              /* strftime_now's clock; 0: now */
} rf_chat_opts;

/* Byte offsets [start, end) of one answer in the rendering. */
typedef struct rf_chat_span {
    size_t start, end;
} rf_chat_span;

typedef struct rf_chat_out {
    char *text; /* NUL-terminated */
    size_t len;
    rf_chat_span *spans;
    size_t n_spans;
    int stable;      /* every answer came out of exact prefix differences */
    size_t unstable; /* assistant messages that did not */
    char note[320];  /* the first of them, what differed and how it was handled */
} rf_chat_out;

/* messages: a JSON array of {role, content, …} passed to the template as is. */
int rf_chat_render(const rf_chat_template *t, const json_t *messages, const rf_chat_opts *o,
                   char **text, size_t *len, rf_error *err);
/* The rendering and its answer spans (see above). */
int rf_chat_render_spans(const rf_chat_template *t, const json_t *messages, const rf_chat_opts *o,
                         rf_chat_out *out, rf_error *err);
void rf_chat_out_free(rf_chat_out *out);

/* A prompt/response row as the one-turn conversation it stands for. */
json_t *rf_chat_prompt_response(const char *prompt, const char *response);

/* Training's answer mask for a rendering encoded with
 * rf_tokenizer_encode_spans: mask[i] = 1 when token i overlaps an answer
 * span (a token that straddles the boundary is part of the answer). */
void rf_chat_answer_mask(const rf_chat_out *chat, const rf_token_span *spans, size_t n,
                         unsigned char *mask);

/* The fuzzing entry point: any bytes as a template and as a JSON context
 * (an object whose "messages" and other keys become the variables), spans
 * included; 0 or an RF_E… code, never a crash or a hang. */
int rf_chat_fuzz(const char *tpl, size_t n, const char *ctx_json, size_t m, rf_error *err);

#endif
