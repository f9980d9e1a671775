/* The filters of the Self-Instruct and Alpaca reference implementations
 * (FORMATS.md "Self-Instruct"): instructions of too few or too many words,
 * a blacklisted word (whole word, case-insensitive), starting with
 * punctuation, a non-ASCII character or "Write a program"; outputs that
 * are empty, equal the input, or end with ':'. */
#ifndef RF_FILTERS_H
#define RF_FILTERS_H

#include <stddef.h>

typedef struct rf_filter_opts {
    int min_words; /* fewest words an instruction keeps (Self-Instruct drops <= 3: 4) */
    int max_words; /* most (150) */
    const char *const *blacklist; /* NULL: rf_filter_blacklist */
    size_t n_blacklist;
} rf_filter_opts;

/* Self-Instruct's list with Alpaca's additions. */
extern const char *const rf_filter_blacklist[];
extern const size_t rf_filter_blacklist_n;

/* NULL when the pair passes, else the reason: "too_short", "too_long",
 * "blacklisted", "starts_with_punctuation", "starts_non_ascii",
 * "write_a_program", "empty_output", "output_equals_input",
 * "output_ends_with_colon". */
const char *rf_filter_pair(const rf_filter_opts *o, const char *instruction, const char *output);

#endif
