/* rf_jinja: a Jinja2-compatible template engine for chat templates,
 * configured as transformers configures Jinja2 for apply_chat_template:
 * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
 * extensions=[loopcontrols]) with transformers' tojson, raise_exception
 * and strftime_now (and its {% generation %} tag, rendered as its body).
 *
 * Templates come from tenants, so everything here is built for hostile
 * input: a compile error names line and column, a render is bounded
 * (rf_jlimits) and fails with a sentence instead of crashing or hanging,
 * and a template sees nothing but the variables it is given. A compiled
 * template is read-only and may be rendered from several threads at once. */
#ifndef RF_JINJA_H
#define RF_JINJA_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/tokenizer/jinja_eval.h"

/* Templates longer than this are refused (chat templates are a few KiB). */
#define RF_JINJA_MAX_SOURCE (4u << 20)

typedef struct rf_jinja rf_jinja;

/* Parse src (UTF-8). RF_EINVAL names line and column of a syntax error. */
int rf_jinja_compile(const char *src, size_t n, rf_jinja **out, rf_error *err);
void rf_jinja_free(rf_jinja *t);

/* The limits a render gets unless told otherwise: 8 MiB of output, 256 MiB
 * of values, a million loop iterations and macro calls, macros 64 deep, 10 s. */
void rf_jinja_default_limits(rf_jlimits *lim);

typedef struct rf_jinja_opts {
    const rf_jlimits *limits; /* NULL: the defaults */
    time_t now;               /* strftime_now's clock; 0: time(NULL) */
} rf_jinja_opts;

/* Render with vars (a JSON object: each key a variable). *out is malloc'd
 * and NUL-terminated; *raised tells a raise_exception() from other errors
 * (may be NULL). */
int rf_jinja_render(const rf_jinja *t, const json_t *vars, const rf_jinja_opts *o, char **out,
                    size_t *len, int *raised, rf_error *err);

/* The fuzzing entry point: any bytes as template and as JSON context (an
 * object, else no variables). Returns 0 or an RF_E… code; never crashes,
 * never runs past the default limits. */
int rf_jinja_render_text(const char *tpl, size_t n, const char *ctx_json, size_t m, char **out,
                         size_t *len, rf_error *err);

#endif
