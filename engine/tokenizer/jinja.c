#include "engine/tokenizer/jinja.h"

#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/jinja_lex.h"
#include "engine/tokenizer/jinja_parse.h"

struct rf_jinja {
    rf_jarena arena; /* tokens, tree and constants */
    rf_jnodes body;
};

int rf_jinja_compile(const char *src, size_t n, rf_jinja **out, rf_error *err)
{
    *out = NULL;
    if (n > RF_JINJA_MAX_SOURCE)
        return rf_errorf(err, RF_ETOOBIG, "the template is %zu bytes, over the %u-byte limit", n,
                         RF_JINJA_MAX_SOURCE);
    if (!rf_ju8_valid(src, n)) return rf_errorf(err, RF_EINVAL, "the template is not valid UTF-8");
    if (memchr(src, '\0', n))
        return rf_errorf(err, RF_EINVAL, "the template contains a NUL character");
    rf_jinja *t = calloc(1, sizeof *t);
    if (!t) return rf_errorf(err, RF_ENOMEM, "out of memory compiling the template");
    /* Tokens and nodes are at most a few per source byte. */
    t->arena.max = 64 * n + (1u << 20);
    rf_jtoks toks;
    int rc = rf_jinja_lex(&t->arena, src, n, &toks, err);
    if (!rc) rc = rf_jinja_parse(&t->arena, &toks, &t->body, err);
    if (rc) {
        rf_jinja_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void rf_jinja_free(rf_jinja *t)
{
    if (!t) return;
    rf_jarena_free(&t->arena);
    free(t);
}

void rf_jinja_default_limits(rf_jlimits *lim)
{
    lim->max_output = 8u << 20;
    lim->max_memory = 256u << 20;
    lim->max_iterations = 1000000;
    lim->max_depth = 64;
    lim->max_seconds = 10;
}

int rf_jinja_render(const rf_jinja *t, const json_t *vars, const rf_jinja_opts *o, char **out,
                    size_t *len, int *raised, rf_error *err)
{
    rf_jlimits lim;
    if (o && o->limits)
        lim = *o->limits;
    else
        rf_jinja_default_limits(&lim);
    *out = NULL;
    if (len) *len = 0;
    if (raised) *raised = 0;
    rf_jarena a = {.max = lim.max_memory};
    rf_jctx x = {.a = &a, .lim = lim, .now = o && o->now ? o->now : time(NULL), .err = err};
    rf_jbuf b = {.max = lim.max_output};
    rf_jv ctx;
    int rc = 0;
    if (vars && json_is_object(vars)) {
        if (rf_jv_from_json(&a, vars, &ctx))
            rc = rf_errorf(err, RF_ETOOBIG, "the template's variables are too large or too deep");
    } else if (rf_jv_dict(&a, RF_JV_DICT, 0, &ctx)) {
        rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    }
    if (!rc) rc = rf_jinja_eval(&x, &t->body, ctx.u.d, &b);
    if (!rc && rf_jbuf_add(&b, "", 0)) rc = rf_errorf(err, RF_ENOMEM, "out of memory");
    rf_jarena_free(&a);
    if (rc) {
        if (raised) *raised = x.raised;
        rf_jbuf_free(&b);
        return rc;
    }
    *out = b.s;
    if (len) *len = b.n;
    return 0;
}

int rf_jinja_render_text(const char *tpl, size_t n, const char *ctx_json, size_t m, char **out,
                         size_t *len, rf_error *err)
{
    rf_jinja *t;
    *out = NULL;
    int rc = rf_jinja_compile(tpl, n, &t, err);
    if (rc) return rc;
    json_t *vars = ctx_json ? json_loadb(ctx_json, m, JSON_REJECT_DUPLICATES, NULL) : NULL;
    rc = rf_jinja_render(t, vars, NULL, out, len, NULL, err);
    json_decref(vars);
    rf_jinja_free(t);
    return rc;
}
