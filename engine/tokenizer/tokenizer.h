/* rf_tokenizer: Hugging Face `tokenizer.json` (+ `tokenizer_config.json`)
 * for the Llama family — byte-level BPE with the model's own split regex
 * (Llama 3, Qwen2, GPT-2) and SentencePiece-style BPE with `▁` and byte
 * fallback (Llama 2, TinyLlama, Mistral). See FORMATS.md "tokenizer.json".
 *
 * Encoding follows the reference pipeline: added tokens are cut out of the
 * text first, each remaining piece is normalized, pre-tokenized into words
 * and each word is run through BPE; the post-processor then adds BOS/EOS.
 * A loaded tokenizer is read-only, so one may be shared between threads. */
#ifndef RF_TOKENIZER_H
#define RF_TOKENIZER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

typedef struct rf_tokenizer rf_tokenizer;

/* Load DIR/tokenizer.json and, when present, DIR/tokenizer_config.json.
 * Unsupported components are refused here with the JSON path at fault. */
int rf_tokenizer_load(const char *dir, rf_tokenizer **out, rf_error *err);
/* Same from in-memory JSON texts; config_json may be NULL. */
int rf_tokenizer_load_json(const char *tokenizer_json, const char *config_json, rf_tokenizer **out,
                           rf_error *err);
void rf_tokenizer_free(rf_tokenizer *tok);

/* Encode len bytes of UTF-8 text. add_special adds what the post-processor
 * adds (BOS for Llama 2/3.1); special tokens written in the text are always
 * recognised, as the reference does. On success *ids is malloc'd (the caller
 * frees it, also when *n is 0) and *n holds its length. */
int rf_tokenizer_encode(const rf_tokenizer *tok, const char *text, size_t len, int add_special,
                        int32_t **ids, size_t *n, rf_error *err);

/* Where a token came from: input bytes [start, end). Tokens the
 * post-processor adds have empty spans at the start or end; a token made
 * of text the normalizer inserted (Llama 2's leading `▁`) points at the
 * character it was inserted before. */
typedef struct rf_token_span {
    size_t start, end;
} rf_token_span;

/* rf_tokenizer_encode that also returns each token's span in text
 * (*spans malloc'd, *n long) — what answer masks for training are made of. */
int rf_tokenizer_encode_spans(const rf_tokenizer *tok, const char *text, size_t len,
                              int add_special, int32_t **ids, rf_token_span **spans, size_t *n,
                              rf_error *err);

/* Decode flags. */
enum {
    RF_DECODE_SKIP_SPECIAL = 1, /* drop special added tokens */
    RF_DECODE_NO_CLEANUP = 2,   /* ignore clean_up_tokenization_spaces */
};

/* Decode ids into malloc'd, NUL-terminated UTF-8 (*len excludes the NUL;
 * len may be NULL). Invalid UTF-8 from byte tokens becomes U+FFFD, as the
 * reference does. Unless RF_DECODE_NO_CLEANUP, tokenizer_config.json's
 * clean_up_tokenization_spaces (true when absent, as in the reference)
 * removes the space before . ? ! , n't 's 'm 've 're — lossy, so a caller
 * that needs decode(encode(x)) == x passes RF_DECODE_NO_CLEANUP. */
int rf_tokenizer_decode(const rf_tokenizer *tok, const int32_t *ids, size_t n, int flags,
                        char **text, size_t *len, rf_error *err);

/* Vocabulary size: one more than the largest id (model or added token). */
int32_t rf_tokenizer_vocab_size(const rf_tokenizer *tok);
/* Id of a token's exact text (added tokens included), or -1. */
int32_t rf_tokenizer_token_to_id(const rf_tokenizer *tok, const char *token);
/* Token text of an id (as stored: `Ġ`/`▁` spellings), or NULL for a hole. */
const char *rf_tokenizer_id_to_token(const rf_tokenizer *tok, int32_t id);
int rf_tokenizer_is_special(const rf_tokenizer *tok, int32_t id);
/* BOS and EOS as named by tokenizer_config.json (or, without one, by the
 * post-processor's template); -1 when unknown. */
int32_t rf_tokenizer_bos_id(const rf_tokenizer *tok);
int32_t rf_tokenizer_eos_id(const rf_tokenizer *tok);
/* tokenizer_config.json as read (NULL without one): the chat template's
 * source of its templates and special tokens. */
const json_t *rf_tokenizer_config(const rf_tokenizer *tok);
/* tokenizer_config.json's chat_template (the "default" of a list), or NULL. */
const char *rf_tokenizer_chat_template(const rf_tokenizer *tok);
const char *rf_tokenizer_bos_token(const rf_tokenizer *tok);
const char *rf_tokenizer_eos_token(const rf_tokenizer *tok);

#endif
