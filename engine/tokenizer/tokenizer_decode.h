/* The `decoder` of a tokenizer.json: token texts back to text, step by
 * step as the reference's decode_chain (ByteLevel, Replace, ByteFallback,
 * Fuse, Strip, Metaspace). */
#ifndef RF_TOKENIZER_DECODE_H
#define RF_TOKENIZER_DECODE_H

#include <jansson.h>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer_text.h"

/* Load a `decoder` (JSON null: tokens are joined with spaces). */
int rf_decoder_load(rf_text_chain *c, json_t *j, rf_error *err);
/* Turn token texts into text (out is overwritten), NUL-terminated; toks is
 * used as scratch. */
int rf_decode_chain(const rf_text_chain *c, rf_pieces *toks, rf_strbuf *out);

#endif
