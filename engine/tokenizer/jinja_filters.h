/* Jinja2's built-in filters and tests (filters.py, tests.py) that chat
 * templates use, with transformers' tojson in place of Jinja's. The
 * parser resolves a name to an id once; the evaluator calls by id. */
#ifndef RF_JINJA_FILTERS_H
#define RF_JINJA_FILTERS_H

#include <stddef.h>

#include "engine/tokenizer/jinja_eval.h"

/* Id of a filter or test, or -1 when Jinja has none by that name (or this
 * engine leaves it out: the README lists which). */
int rf_jinja_filter_id(const char *name, size_t n);
int rf_jinja_test_id(const char *name, size_t n);

/* Apply filter id to v with the call's arguments. */
int rf_jinja_filter(rf_jctx *x, int id, rf_jv v, const rf_jargs *args, rf_jv *out);
/* Test id on v: *out receives the answer. */
int rf_jinja_test(rf_jctx *x, int id, rf_jv v, const rf_jargs *args, int *out);

#endif
