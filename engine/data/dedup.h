/* rf_dedup: Self-Instruct's near-duplicate filter (FORMATS.md
 * "Self-Instruct") made fast. A new text is a duplicate when its ROUGE-L F1
 * (engine/data/rouge.h) with any text of the comparison set is above the
 * threshold. Candidates come from an inverted index probed with a prefix of
 * the text's tokens, rarest first: a text that shares the L > t*m/(2-t)
 * tokens an F1 above t needs must share one of the first m - L + 1. Then a
 * length bound (F1 <= 2 min(m,n)/(m+n)) and a token-multiset bound (F1 <=
 * 2 |A n B|/(m+n)) discard most candidates before the exact LCS, which is
 * bit-parallel over token ids (Hyyrö 2004: V' = (V + (V & M)) | (V & ~M),
 * LCS = the zero bits of V). The decision is the one of comparing with
 * every text of the set: the bounds skip only comparisons that cannot
 * exceed the threshold (with a margin, so that float rounding of a score
 * that is exactly at the threshold is decided by the exact formula). */
#ifndef RF_DEDUP_H
#define RF_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

typedef struct rf_dedup rf_dedup;

typedef struct rf_dedup_stats {
    uint64_t queries;    /* texts checked */
    uint64_t candidates; /* texts of the set the index proposed (in the length range) */
    uint64_t prefix_cut; /* of those, ruled out by the overlap in the probed tokens */
    uint64_t length_cut; /* texts the index met out of the length range */
    uint64_t bag_cut;    /* ruled out by the token-multiset bound */
    uint64_t lcs;        /* exact LCS computed */
} rf_dedup_stats;

/* threshold in [0, 1]: a text is a duplicate when F1 > threshold. */
int rf_dedup_new(double threshold, rf_dedup **out, rf_error *err);
void rf_dedup_free(rf_dedup *d);

/* Whether text is a duplicate of a text in the set; *match (may be NULL)
 * gets the lowest index of one it duplicates, *score (may be NULL) that
 * F1. The set is not changed. */
int rf_dedup_check(rf_dedup *d, const char *text, bool *dup, size_t *match, double *score,
                   rf_error *err);
/* Add text to the comparison set (index = the set's size before). */
int rf_dedup_add(rf_dedup *d, const char *text, rf_error *err);
/* check, then add when it is not a duplicate: Self-Instruct's greedy step. */
int rf_dedup_offer(rf_dedup *d, const char *text, bool *kept, rf_error *err);
size_t rf_dedup_size(const rf_dedup *d);
void rf_dedup_get_stats(const rf_dedup *d, rf_dedup_stats *out);

#endif
