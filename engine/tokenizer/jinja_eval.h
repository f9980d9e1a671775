/* The evaluator: walks a parsed template with Jinja2's runtime semantics
 * in ImmutableSandboxedEnvironment — scopes (a for loop's body and a
 * macro's are their own, an if's is not; namespace() objects are shared),
 * Undefined for missing names (printing nothing, failing when used),
 * attribute lookup that tries the Python attribute first and then the
 * item (and the reverse for subscripts), and no access to anything but the
 * data given and the documented methods.
 *
 * A render is bounded: output bytes, arena bytes, loop iterations, call
 * depth and wall time each end it with an error, never a crash or a hang. */
#ifndef RF_JINJA_EVAL_H
#define RF_JINJA_EVAL_H

#include <stddef.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/tokenizer/jinja_ast.h"

typedef struct rf_jlimits {
    size_t max_output;   /* bytes of the rendering (and of any captured block) */
    size_t max_memory;   /* arena bytes for the render's values */
    long max_iterations; /* loop iterations and macro calls, all together */
    int max_depth;       /* nested macro calls */
    double max_seconds;  /* wall time */
} rf_jlimits;

typedef struct rf_jframe rf_jframe;

/* A for loop's state, what `loop` reads. */
typedef struct rf_jloop {
    rf_jlist *items;
    size_t i;
    rf_jv last_changed; /* loop.changed()'s memory */
    int changed_set;
} rf_jloop;

typedef struct rf_jctx {
    rf_jarena *a;
    rf_jframe *globals;
    rf_jbuf *out;
    size_t frozen; /* bytes held by outer buffers while a block is captured */
    rf_jlimits lim;
    long steps;
    int depth;
    double deadline;
    time_t now; /* strftime_now's clock */
    int line, col;
    int raised;   /* the error came from raise_exception() */
    int loop_ctl; /* 1: break, 2: continue, on its way to the loop */
    rf_error *err;
} rf_jctx;

/* A call's arguments, evaluated. */
typedef struct rf_jargs {
    const rf_jv *pos;
    size_t npos;
    const rf_jname *kwn;
    const rf_jv *kwv;
    size_t nkw;
} rf_jargs;

/* Argument i (positional) or name (keyword), *v filled; 1 when given. */
int rf_jargs_get(const rf_jargs *a, size_t i, const char *name, rf_jv *v);

/* Render body with the given variables (a dict: the template's context). */
int rf_jinja_eval(rf_jctx *x, const rf_jnodes *body, const rf_jdict *vars, rf_jbuf *out);

/* An error at the node being evaluated: "template error at line L, column C: …". */
int rf_jinja_fail(rf_jctx *x, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The error of using an undefined value. */
int rf_jinja_undef_error(rf_jctx *x, rf_jv u);
/* An allocation failed past the arena's cap. */
int rf_jinja_oom(rf_jctx *x);

/* Jinja's getattr (attribute, then item) and getitem (item, then attribute). */
int rf_jinja_getattr(rf_jctx *x, rf_jv obj, const char *name, size_t n, rf_jv *out);
int rf_jinja_getitem(rf_jctx *x, rf_jv obj, rf_jv key, rf_jv *out);
/* Call a macro or built-in. */
int rf_jinja_call(rf_jctx *x, rf_jv fn, const rf_jargs *args, rf_jv *out);
/* Items of an iterable as a list (str: characters, dict: keys, Undefined: none). */
int rf_jinja_iterate(rf_jctx *x, rf_jv v, rf_jlist **out);
/* str(v) as a value, within the output limit. */
int rf_jinja_str(rf_jctx *x, rf_jv v, rf_jv *out);
/* A new string value. */
int rf_jinja_newstr(rf_jctx *x, const char *s, size_t n, rf_jv *out);
/* One more unit of work; fails past the iteration or time limit. */
int rf_jinja_step(rf_jctx *x);
/* Binary operators, shared with filters (sum). */
int rf_jinja_binop(rf_jctx *x, int op, rf_jv a, rf_jv b, rf_jv *out);

#endif
