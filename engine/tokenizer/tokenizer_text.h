/* The text stages of a tokenizer.json around its BPE model: normalizer,
 * pre-tokenizer and decoder, each a small list of steps compiled from the
 * JSON once and applied as the reference applies them. Unicode questions
 * (classes, whitespace, normal forms, case) go to Oniguruma and utf8proc. */
#ifndef RF_TOKENIZER_TEXT_H
#define RF_TOKENIZER_TEXT_H

#include <jansson.h>
#include <oniguruma.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

/* A growable byte string; org, when filled, holds for each byte the offset
 * in the caller's input that it stands for (see rf_strbuf_add_org). */
typedef struct rf_strbuf {
    char *s;
    size_t n, cap;
    size_t *org;
    size_t org_cap;
} rf_strbuf;

int rf_strbuf_add(rf_strbuf *b, const char *s, size_t n);
/* Origins of text that was inserted (a prepended `▁` or space) rather than
 * derived from input: the offset it was inserted at, with this bit set. */
#define RF_ORG_INSERTED ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* Append with origins: org[i] for byte i, or fill for all when org is NULL. */
int rf_strbuf_add_org(rf_strbuf *b, const char *s, size_t n, const size_t *org, size_t fill);
void rf_strbuf_free(rf_strbuf *b);

/* Text cut into pieces that live in one buffer. */
typedef struct rf_pieces {
    rf_strbuf buf;
    size_t *off, *len;
    size_t n, cap;
} rf_pieces;

int rf_pieces_add(rf_pieces *p, const char *s, size_t n);
int rf_pieces_add_org(rf_pieces *p, const char *s, size_t n, const size_t *org);
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

/* Load a `normalizer` or `pre_tokenizer` (JSON null: empty). */
int rf_normalizer_load(rf_text_chain *c, json_t *j, rf_error *err);
int rf_pretok_load(rf_text_chain *c, json_t *j, rf_error *err);
void rf_text_chain_free(rf_text_chain *c);

/* Normalize s (whose bytes stand at input offsets org) into out, which is
 * overwritten and carries the origins on. */
int rf_normalize(const rf_text_chain *c, const char *s, size_t n, const size_t *org,
                 rf_strbuf *out);
/* Cut s into words, appended to out, already in the model's alphabet.
 * first: s begins the input (Metaspace's prepend_scheme "first"). */
int rf_pretokenize(const rf_text_chain *c, const char *s, size_t n, const size_t *org, int first,
                   rf_pieces *out);

/* Unicode tests for added tokens' lstrip/rstrip/single_word: the length of
 * the whitespace (or word) character at s[0], or 0. */
int rf_text_init(rf_error *err);
size_t rf_text_space_at(const char *s, const char *end);
size_t rf_text_word_at(const char *s, const char *end);
/* Append s to out with each invalid UTF-8 sequence replaced by U+FFFD,
 * the way the reference's lossy conversion does. */
int rf_utf8_lossy(rf_strbuf *out, const char *s, size_t n);

/* Shared with the decoder (engine/tokenizer_decode.c). */
int rf_text_step_add(rf_text_chain *c, rf_text_step **st, rf_error *err);
int rf_text_dup_str(json_t *v, char **out, size_t *n, const char *field, rf_error *err);
int rf_text_prepend_scheme(json_t *j); /* Metaspace: 0 always, 1 first, 2 never */
int rf_pattern_load(rf_pattern *p, json_t *j, const char *field, rf_error *err);
/* Append s to out with every match of p replaced by rep. */
int rf_replace_all(const rf_pattern *p, const char *s, size_t n, const size_t *org, const char *rep,
                   size_t rn, rf_strbuf *out);
/* Length of the valid UTF-8 sequence at s (RFC 3629), or 0. */
size_t rf_utf8_valid_at(const uint8_t *s, size_t n);
/* The byte a byte-level alphabet character stands for, or -1. */
int rf_bytelevel_byte(int32_t cp);

#endif
