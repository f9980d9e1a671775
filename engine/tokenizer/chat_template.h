/* rf_chat: chat formatting for the common template families, written out
 * in C rather than by running the Jinja template: Llama 3 (3.0, and 3.1/3.2
 * with their dated system header), Llama 2, ChatML (Qwen) and Mistral. The
 * family is recognised from tokenizer_config.json's chat_template by its
 * distinctive markers, or named by the caller. */
#ifndef RF_CHAT_TEMPLATE_H
#define RF_CHAT_TEMPLATE_H

#include <stddef.h>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"

typedef enum rf_chat_family {
    RF_CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|> */
    RF_CHAT_LLAMA31, /* the same with "Cutting Knowledge Date" system header */
    RF_CHAT_LLAMA2,  /* <s>[INST] <<SYS>>…<</SYS>> … [/INST] answer </s> */
    RF_CHAT_CHATML,  /* <|im_start|>role\n…<|im_end|>\n (Qwen's default system) */
    RF_CHAT_MISTRAL, /* <s>[INST] … [/INST]answer</s> */
} rf_chat_family;

typedef struct rf_chat_msg {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} rf_chat_msg;

/* Byte offsets [start, end) in the formatted text of one assistant answer,
 * its end-of-turn token included (the model must learn to stop). */
typedef struct rf_chat_span {
    size_t start, end;
} rf_chat_span;

typedef struct rf_chat_out {
    char *text; /* NUL-terminated */
    size_t len;
    rf_chat_span *spans;
    size_t n_spans;
} rf_chat_out;

/* "llama3", "llama3.1", "llama2", "chatml" (or "qwen"), "mistral". */
int rf_chat_family_parse(const char *name, rf_chat_family *out, rf_error *err);
const char *rf_chat_family_name(rf_chat_family f);
/* From the tokenizer's chat_template; RF_EUNSUPPORTED names what is missing. */
int rf_chat_family_detect(const rf_tokenizer *tok, rf_chat_family *out, rf_error *err);

/* Format a conversation. The text already holds BOS where the family puts
 * it, so encode it with add_special = 0. add_generation_prompt appends the
 * assistant header for families that have one. */
int rf_chat_format(const rf_tokenizer *tok, rf_chat_family f, const rf_chat_msg *msgs, size_t n,
                   int add_generation_prompt, rf_chat_out *out, rf_error *err);
void rf_chat_out_free(rf_chat_out *out);

/* Training's answer mask for a formatted chat encoded with
 * rf_tokenizer_encode_spans: mask[i] = 1 when token i overlaps an answer
 * span (a token that straddles the boundary, like Llama 2's "▁Hello", is
 * part of the answer), else 0. */
void rf_chat_answer_mask(const rf_chat_out *chat, const rf_token_span *spans, size_t n,
                         unsigned char *mask);

#endif
