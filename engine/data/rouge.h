/* ROUGE-L as the `rouge_score` package computes it with use_stemmer=False
 * (FORMATS.md "Self-Instruct"): the text lowercased as Python's str.lower()
 * does, every run of characters outside [a-z0-9] a space, split on
 * whitespace; F1 = 2PR/(P+R) of the longest common subsequence of the two
 * token lists, computed in the same double operations as the package so
 * that a score exactly at the threshold falls on the same side.
 */
#ifndef RF_ROUGE_H
#define RF_ROUGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

/* Calls fn(user, token, len) for each token of text (NUL-terminated
 * UTF-8), lowercased; token is not NUL-terminated. Returns the count. */
typedef void (*rf_rouge_token_fn)(void *user, const char *token, size_t len);
size_t rf_rouge_tokenize(const char *text, rf_rouge_token_fn fn, void *user);

/* LCS length of two id sequences (bit-parallel, any lengths). */
size_t rf_lcs_ids(const uint32_t *a, size_t m, const uint32_t *b, size_t n);
/* The bit-parallel core, with a the bit side (m tokens, w = ceil(m/64)
 * words per mask): pm[k*w ..] is the mask of the positions of a's distinct
 * token k, slot[id] the k of token id (-1 when a lacks it), b the other
 * sequence's ids. v: w words of scratch. Hyyrö (2004), "Bit-parallel
 * LCS-length computation revisited": V = ~0; per token of b, with M its
 * mask, V = (V + (V & M)) | (V & ~M); LCS = the zero bits of V's low m. */
size_t rf_lcs_bits(const uint64_t *pm, size_t w, size_t m, const uint32_t *b, size_t n,
                   const int32_t *slot, uint64_t *v);
/* The package's F1 from an LCS length and the two token counts (0 when
 * either is empty). */
double rf_rouge_f1(size_t lcs, size_t m, size_t n);
/* ROUGE-L F1 of two texts. */
double rf_rouge_l(const char *a, const char *b);

#endif
