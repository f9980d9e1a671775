/* The text stages of a tokenizer.json around its BPE model: normalizer,
 * pre-tokenizer and decoder, each a small list of steps compiled from the
 * JSON once and applied as the reference applies them. Unicode questions
 * (classes, whitespace, normal forms, case) go to Oniguruma and utf8proc. */
#ifndef RF_TOKENIZER_TEXT_H
#define RF_TOKENIZER_TEXT_H

#include <jansson.h>
#include <oniguruma.h>
#include <stddef.h>

#include "engine/error.h"

/* A growable byte string. */
typedef struct rf_strbuf {
    char *s;
    size_t n, cap;
} rf_strbuf;

int rf_strbuf_add(rf_strbuf *b, const char *s, size_t n);

/* Text cut into pieces that live in one buffer. */
typedef struct rf_pieces {
    rf_strbuf buf;
    size_t *off, *len;
    size_t n, cap;
} rf_pieces;

int rf_pieces_add(rf_pieces *p, const char *s, size_t n);
void rf_pieces_reset(rf_pieces *p);
void rf_pieces_free(rf_pieces *p);

/* A Split/Replace pattern: `{"Regex": …}` (Oniguruma) or `{"String": …}`. */
typedef struct rf_pattern {
    regex_t *re;
    char *lit;
    size_t lit_len;
} rf_pattern;

typedef struct rf_text_step {
    int type;
    rf_pattern pat;
    char *a, *b; /* step strings: prepend text, replacement, … */
    size_t an, bn;
    int i1, i2; /* step flags and counts */
} rf_text_step;

typedef struct rf_text_chain {
    rf_text_step *steps;
    size_t n;
    int byte_level; /* pre-tokenizer: words come out `Ġ`-mapped */
} rf_text_chain;

/* Load a `normalizer`, `pre_tokenizer` or `decoder` (JSON null: empty). */
int rf_normalizer_load(rf_text_chain *c, json_t *j, rf_error *err);
int rf_pretok_load(rf_text_chain *c, json_t *j, rf_error *err);
int rf_decoder_load(rf_text_chain *c, json_t *j, rf_error *err);
void rf_text_chain_free(rf_text_chain *c);

/* Normalize s into out (out is overwritten). */
int rf_normalize(const rf_text_chain *c, const char *s, size_t n, rf_strbuf *out);
/* Cut s into words, appended to out, already in the model's alphabet.
 * first: s begins the input (Metaspace's prepend_scheme "first"). */
int rf_pretokenize(const rf_text_chain *c, const char *s, size_t n, int first, rf_pieces *out);
/* Turn token texts into text (out is overwritten), NUL-terminated. */
int rf_decode_chain(const rf_text_chain *c, rf_pieces *toks, rf_strbuf *out);

/* Unicode tests for added tokens' lstrip/rstrip/single_word: the length of
 * the whitespace (or word) character at s[0], or 0. */
int rf_text_init(rf_error *err);
size_t rf_text_space_at(const char *s, const char *end);
size_t rf_text_word_at(const char *s, const char *end);
/* Append s to out with each invalid UTF-8 sequence replaced by U+FFFD,
 * the way the reference's lossy conversion does. */
int rf_utf8_lossy(rf_strbuf *out, const char *s, size_t n);

#endif
