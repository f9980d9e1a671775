/* Reading what a data teacher wrote, tolerantly and without ever failing
 * on the text: JSON (an array of objects or of strings, one object holding
 * such an array, JSON lines), inside ```json fences or not, with prose
 * around it; numbered or bulleted lists; "Q:"/"A:" and
 * "Question:"/"Answer:" blocks (with "Choices:" or "A) …" lines for
 * multiple choice); judge scores as "Score: 8/10", "8/10", {"score": 8}.
 * What cannot be read yields nothing, and the caller counts it. */
#ifndef RF_PARSE_H
#define RF_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct rf_pair {
    char *question;
    char *answer;    /* qa: the answer; multiple choice: the right choice's text */
    json_t *choices; /* multiple choice: an array of strings (owned); NULL for qa */
    int answer_index;
} rf_pair;

typedef struct rf_pairs {
    rf_pair *v;
    size_t n, cap;
} rf_pairs;

void rf_pair_clear(rf_pair *p);
void rf_pairs_free(rf_pairs *p);
/* Move p into ps (p is left empty); false when out of memory. */
bool rf_pairs_push(rf_pairs *ps, rf_pair *p);

/* Append the pairs found in text to out; returns how many. mc: multiple
 * choice (2 to 8 string choices and a valid answer: an index, a letter or
 * the choice's text); otherwise question and answer strings. */
size_t rf_parse_pairs(const char *text, bool mc, rf_pairs *out);

/* The items of a list (JSON array of strings or of objects with a
 * text-like key, or numbered/bulleted lines), at most max; *items is a
 * malloc'd array of malloc'd strings. Returns the count. */
size_t rf_parse_list(const char *text, size_t max, char ***items);
void rf_parse_list_free(char **items, size_t n);

/* A judge's score on a 10-point scale ("4/5" counts as 8). Returns false
 * when none can be read, or it lies outside [0, 10]. */
bool rf_parse_score(const char *text, double *score);

#endif
