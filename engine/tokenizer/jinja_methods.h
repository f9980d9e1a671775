/* What a template may call besides filters: Jinja's globals (range, dict,
 * namespace), transformers' (raise_exception, strftime_now), the loop's
 * cycle/changed, and the Python methods of str, dict and list that the
 * immutable sandbox lets through. Methods that would change a list or
 * dict exist but refuse to run, as in ImmutableSandboxedEnvironment. */
#ifndef RF_JINJA_METHODS_H
#define RF_JINJA_METHODS_H

#include "engine/tokenizer/jinja_eval.h"

typedef struct rf_jfunc {
    int id;
    const char *name; /* for messages */
    rf_jv self;       /* the bound object of a method */
} rf_jfunc;

/* Install the global functions into the globals dict. */
int rf_jinja_globals(rf_jctx *x, rf_jdict *g);
/* obj.name when it is a method (or a hidden one): *found = 1 and *out the
 * bound method or the sandbox's unsafe Undefined; *found = 0 otherwise. */
int rf_jinja_method(rf_jctx *x, rf_jv obj, const char *name, size_t n, rf_jv *out, int *found);
int rf_jinja_call_builtin(rf_jctx *x, const rf_jfunc *f, const rf_jargs *args, rf_jv *out);
/* A bound function value (the loop's cycle/changed use it). */
int rf_jinja_bind(rf_jctx *x, int id, const char *name, rf_jv self, rf_jv *out);

/* The loop's own methods (the ids rf_jinja_bind takes for them). */
enum { RF_JM_LOOP_CYCLE = 1000, RF_JM_LOOP_CHANGED };

#endif
