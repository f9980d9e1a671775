#include "engine/tokenizer/jinja_eval.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/tokenizer/jinja_filters.h"
#include "engine/tokenizer/jinja_methods.h"

/* A break or continue on its way to its loop (not an error). */
#define LOOP_CTL 1

struct rf_jframe {
    rf_jframe *parent;
    rf_jdict vars;
};

typedef struct rf_jmacro rf_jmacro;
struct rf_jmacro {
    const rf_jnode *def; /* MACRO, or the CALLBLOCK a caller() comes from */
    rf_jframe *closure;
    const rf_jmacro *caller; /* the {% call %} block's body, for caller() */
    int varargs, kwargs;     /* the body reads them */
};

static int exec_body(rf_jctx *x, rf_jframe *f, const rf_jnodes *body);
static int eval(rf_jctx *x, rf_jframe *f, const rf_jnode *n, rf_jv *out);

int rf_jinja_fail(rf_jctx *x, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rf_errorf(x->err, code, "template error at line %d, column %d: %s", x->line, x->col,
                     msg);
}

int rf_jinja_oom(rf_jctx *x)
{
    return rf_jinja_fail(x, RF_ETOOBIG, "the render needs more than its %zu bytes of memory",
                         x->lim.max_memory);
}

int rf_jinja_undef_error(rf_jctx *x, rf_jv u)
{
    const rf_jundef *d = u.u.u;
    if (d->hint) return rf_jinja_fail(x, RF_EINVAL, "%s", d->hint);
    if (d->unsafe)
        return rf_jinja_fail(x, RF_EINVAL, "access to attribute '%s' of '%s' is unsafe", d->name,
                             d->owner ? d->owner : "?");
    if (d->owner)
        return rf_jinja_fail(x, RF_EINVAL, "'%s' has no attribute '%s'", d->owner, d->name);
    return rf_jinja_fail(x, RF_EINVAL, "'%s' is undefined", d->name);
}

int rf_jinja_step(rf_jctx *x)
{
    if (++x->steps > x->lim.max_iterations)
        return rf_jinja_fail(x, RF_ETOOBIG,
                             "the template ran more than %ld loop iterations and macro calls",
                             x->lim.max_iterations);
    if ((x->steps & 1023) == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((double)ts.tv_sec + ts.tv_nsec * 1e-9 > x->deadline)
            return rf_jinja_fail(x, RF_ETOOBIG, "the template ran longer than %g seconds",
                                 x->lim.max_seconds);
    }
    return 0;
}

int rf_jinja_newstr(rf_jctx *x, const char *s, size_t n, rf_jv *out)
{
    return rf_jv_str(x->a, s, n, out) ? rf_jinja_oom(x) : 0;
}

int rf_jinja_str(rf_jctx *x, rf_jv v, rf_jv *out)
{
    if (v.t == RF_JV_STR) {
        *out = v;
        return 0;
    }
    rf_error e;
    int rc = rf_jv_stringify(x->a, v, x->lim.max_output, out, &e);
    return rc ? rf_jinja_fail(x, rc, "%s", e.msg) : 0;
}

int rf_jargs_get(const rf_jargs *a, size_t i, const char *name, rf_jv *v)
{
    if (i < a->npos) {
        *v = a->pos[i];
        return 1;
    }
    for (size_t k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwn[k].s, name)) {
            *v = a->kwv[k];
            return 1;
        }
    return 0;
}

static int frame_new(rf_jctx *x, rf_jframe *parent, rf_jframe **out)
{
    rf_jframe *f = rf_jarena_alloc(x->a, sizeof *f);
    *out = f;
    if (!f) return rf_jinja_oom(x);
    f->parent = parent;
    *out = f;
    return 0;
}

static int frame_set(rf_jctx *x, rf_jframe *f, const char *name, size_t n, rf_jv v)
{
    rf_jv *p = rf_jv_dict_gets(&f->vars, name, n);
    if (p) {
        *p = v;
        return 0;
    }
    rf_jv k;
    if (rf_jv_str(x->a, name, n, &k) || rf_jv_dict_set(x->a, &f->vars, k, v))
        return rf_jinja_oom(x);
    return 0;
}

static int lookup(rf_jctx *x, rf_jframe *f, const rf_jname *name, rf_jv *out)
{
    for (; f; f = f->parent) {
        rf_jv *p = rf_jv_dict_gets(&f->vars, name->s, name->n);
        if (p) {
            *out = *p;
            return 0;
        }
    }
    return rf_jv_undef(x->a, name->s, name->n, NULL, 0, out) ? rf_jinja_oom(x) : 0;
}

static int assign(rf_jctx *x, rf_jframe *f, const rf_jnode *t, rf_jv v)
{
    int rc;
    if (t->kind == RF_JN_NAME) return frame_set(x, f, t->name.s, t->name.n, v);
    if (t->kind == RF_JN_NSATTR) {
        rf_jv ns;
        if ((rc = lookup(x, f, &t->a->name, &ns))) return rc;
        if (ns.t != RF_JV_NS)
            return rf_jinja_fail(x, RF_EINVAL, "cannot assign attribute on non-namespace object");
        rf_jv k;
        if (rf_jv_str(x->a, t->name.s, t->name.n, &k) || rf_jv_dict_set(x->a, ns.u.d, k, v))
            return rf_jinja_oom(x);
        return 0;
    }
    rf_jlist *items;
    if ((rc = rf_jinja_iterate(x, v, &items))) return rc;
    if (items->n != t->list.n)
        return rf_jinja_fail(x, RF_EINVAL, "%s values to unpack (expected %zu, got %zu)",
                             items->n < t->list.n ? "not enough" : "too many", t->list.n, items->n);
    for (size_t i = 0; i < items->n; i++)
        if ((rc = assign(x, f, t->list.v[i], items->v[i]))) return rc;
    return 0;
}

int rf_jinja_iterate(rf_jctx *x, rf_jv v, rf_jlist **out)
{
    rf_jv l;
    switch (v.t) {
    case RF_JV_LIST:
    case RF_JV_TUPLE:
        *out = v.u.l;
        return 0;
    case RF_JV_DICT:
    case RF_JV_NS:
        if (rf_jv_list(x->a, RF_JV_LIST, v.u.d->n, &l)) return rf_jinja_oom(x);
        for (size_t i = 0; i < v.u.d->n; i++)
            l.u.l->v[l.u.l->n++] = v.u.d->k[i];
        *out = l.u.l;
        return 0;
    case RF_JV_STR: {
        const rf_jstr *s = v.u.s;
        if (rf_jv_list(x->a, RF_JV_LIST, rf_ju8_count(s->s, s->n), &l)) return rf_jinja_oom(x);
        for (size_t i = 0; i < s->n;) {
            uint32_t c;
            size_t k = rf_ju8_dec(s->s + i, s->n - i, &c);
            if (rf_jv_str(x->a, s->s + i, k, &l.u.l->v[l.u.l->n++])) return rf_jinja_oom(x);
            i += k;
        }
        *out = l.u.l;
        return 0;
    }
    case RF_JV_UNDEF:
        if (rf_jv_list(x->a, RF_JV_LIST, 0, &l)) return rf_jinja_oom(x);
        *out = l.u.l;
        return 0;
    default:
        return rf_jinja_fail(x, RF_EINVAL, "'%s' object is not iterable", rf_jv_type_name(v));
    }
}

static int undef_attr(rf_jctx *x, rf_jv obj, const char *name, size_t n, rf_jv *out)
{
    return rf_jv_undef(x->a, name, n, rf_jv_owner_name(obj), 0, out) ? rf_jinja_oom(x) : 0;
}

static int loop_attr(rf_jctx *x, rf_jv obj, const char *s, rf_jv *out)
{
    rf_jloop *l = (rf_jloop *)obj.u.p;
    long long i = (long long)l->i, n = (long long)l->items->n;
    if (!strcmp(s, "index"))
        *out = rf_jv_int(i + 1);
    else if (!strcmp(s, "index0"))
        *out = rf_jv_int(i);
    else if (!strcmp(s, "revindex"))
        *out = rf_jv_int(n - i);
    else if (!strcmp(s, "revindex0"))
        *out = rf_jv_int(n - i - 1);
    else if (!strcmp(s, "first"))
        *out = rf_jv_bool(i == 0);
    else if (!strcmp(s, "last"))
        *out = rf_jv_bool(i == n - 1);
    else if (!strcmp(s, "length"))
        *out = rf_jv_int(n);
    else if (!strcmp(s, "depth"))
        *out = rf_jv_int(1);
    else if (!strcmp(s, "depth0"))
        *out = rf_jv_int(0);
    else if (!strcmp(s, "previtem") || !strcmp(s, "nextitem")) {
        long long j = s[0] == 'p' ? i - 1 : i + 1;
        if (j >= 0 && j < n) {
            *out = l->items->v[j];
        } else {
            rf_jundef *u = rf_jarena_alloc(x->a, sizeof *u);
            if (!u) return rf_jinja_oom(x);
            u->name = s[0] == 'p' ? "previtem" : "nextitem";
            u->hint = s[0] == 'p' ? "there is no previous item" : "there is no next item";
            out->t = RF_JV_UNDEF, out->u.u = u;
        }
    } else if (!strcmp(s, "cycle") || !strcmp(s, "changed"))
        return rf_jinja_bind(x, s[0] == 'c' && s[1] == 'y' ? RF_JM_LOOP_CYCLE : RF_JM_LOOP_CHANGED,
                             s[1] == 'y' ? "loop.cycle" : "loop.changed", obj, out);
    else
        return undef_attr(x, obj, s, strlen(s), out);
    return 0;
}

int rf_jinja_getattr(rf_jctx *x, rf_jv obj, const char *name, size_t n, rf_jv *out)
{
    int found, rc;
    if (obj.t == RF_JV_UNDEF && n >= 2 && name[0] == '_' && name[1] == '_')
        return rf_jv_undef(x->a, name, n, rf_jv_owner_name(obj), 1, out) ? rf_jinja_oom(x) : 0;
    if (obj.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, obj);
    if (obj.t == RF_JV_LOOP) return loop_attr(x, obj, name, out);
    if ((rc = rf_jinja_method(x, obj, name, n, out, &found)) || found) return rc;
    if (rf_jv_is_map(obj)) {
        rf_jv *p = rf_jv_dict_gets(obj.u.d, name, n);
        if (p) {
            *out = *p;
            return 0;
        }
    }
    return undef_attr(x, obj, name, n, out);
}

/* Python's slice index adjustment (PySlice_AdjustIndices). */
static int slice_bound(rf_jctx *x, rf_jv v, long long def, long long len, long long step,
                       long long *out)
{
    if (v.t == RF_JV_NONE || v.t == RF_JV_UNDEF) {
        *out = def;
        return 0;
    }
    if (v.t != RF_JV_INT && v.t != RF_JV_BOOL) return 1;
    long long i = v.u.i;
    if (i < 0) {
        i += len;
        if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= len) {
        i = step < 0 ? len - 1 : len;
    }
    *out = i;
    return 0;
}

static int slice(rf_jctx *x, rf_jframe *f, rf_jv obj, const rf_jnode *s, rf_jv *out)
{
    rf_jv a = rf_jv_none(), b = rf_jv_none(), c = rf_jv_none();
    int rc;
    if ((s->a && (rc = eval(x, f, s->a, &a))) || (s->b && (rc = eval(x, f, s->b, &b))) ||
        (s->c && (rc = eval(x, f, s->c, &c))))
        return rc;
    if (obj.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, obj);
    long long step = 1, start, stop;
    if (c.t != RF_JV_NONE) {
        if (c.t != RF_JV_INT && c.t != RF_JV_BOOL) return undef_attr(x, obj, "slice", 5, out);
        if (!(step = c.u.i)) return rf_jinja_fail(x, RF_EINVAL, "slice step cannot be zero");
    }
    int is_str = obj.t == RF_JV_STR;
    if (!is_str && !rf_jv_is_seq(obj)) return undef_attr(x, obj, "slice", 5, out);
    long long len =
        is_str ? (long long)rf_ju8_count(obj.u.s->s, obj.u.s->n) : (long long)obj.u.l->n;
    if (slice_bound(x, a, step < 0 ? len - 1 : 0, len, step, &start) ||
        slice_bound(x, b, step < 0 ? -1 : len, len, step, &stop))
        return undef_attr(x, obj, "slice", 5, out);
    if (!is_str) {
        rf_jv l;
        if (rf_jv_list(x->a, obj.t, 0, &l)) return rf_jinja_oom(x);
        for (long long i = start; step > 0 ? i < stop : i > stop; i += step)
            if (rf_jv_list_push(x->a, l.u.l, obj.u.l->v[i])) return rf_jinja_oom(x);
        *out = l;
        return 0;
    }
    /* Strings: by code point; a contiguous slice is one copy. */
    const rf_jstr *str = obj.u.s;
    if (step == 1) {
        if (stop < start) stop = start;
        size_t b0 = rf_ju8_offset(str->s, str->n, (size_t)start);
        size_t b1 = rf_ju8_offset(str->s, str->n, (size_t)stop);
        return rf_jinja_newstr(x, str->s + b0, b1 - b0, out);
    }
    size_t *off = rf_jarena_alloc(x->a, ((size_t)len + 1) * sizeof *off);
    if (!off) return rf_jinja_oom(x);
    for (size_t i = 0, k = 0; k <= (size_t)len; k++) {
        off[k] = i;
        if (i < str->n) {
            uint32_t cp;
            i += rf_ju8_dec(str->s + i, str->n - i, &cp);
        }
    }
    rf_jbuf buf = {.max = x->lim.max_output};
    for (long long i = start; step > 0 ? i < stop : i > stop; i += step)
        if (rf_jbuf_add(&buf, str->s + off[i], off[i + 1] - off[i])) {
            rf_jbuf_free(&buf);
            return rf_jinja_oom(x);
        }
    rc = rf_jinja_newstr(x, buf.s ? buf.s : "", buf.n, out);
    rf_jbuf_free(&buf);
    return rc;
}

int rf_jinja_getitem(rf_jctx *x, rf_jv obj, rf_jv key, rf_jv *out)
{
    if (obj.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, obj);
    if (rf_jv_is_map(obj)) {
        rf_jv *p = rf_jv_dict_get(obj.u.d, key);
        if (p) {
            *out = *p;
            return 0;
        }
    } else if ((rf_jv_is_seq(obj) || obj.t == RF_JV_STR) &&
               (key.t == RF_JV_INT || key.t == RF_JV_BOOL)) {
        int is_str = obj.t == RF_JV_STR;
        long long len =
            is_str ? (long long)rf_ju8_count(obj.u.s->s, obj.u.s->n) : (long long)obj.u.l->n;
        long long i = key.u.i < 0 ? key.u.i + len : key.u.i;
        if (i >= 0 && i < len) {
            if (!is_str) {
                *out = obj.u.l->v[i];
                return 0;
            }
            size_t b = rf_ju8_offset(obj.u.s->s, obj.u.s->n, (size_t)i);
            uint32_t cp;
            return rf_jinja_newstr(x, obj.u.s->s + b,
                                   rf_ju8_dec(obj.u.s->s + b, obj.u.s->n - b, &cp), out);
        }
    }
    if (key.t == RF_JV_STR) return rf_jinja_getattr(x, obj, key.u.s->s, key.u.s->n, out);
    /* Jinja: "'list object' has no element 0" */
    rf_jbuf b = {.max = 200};
    rf_error e;
    rf_jbuf_addf(&b, "'%s' has no element ", rf_jv_owner_name(obj));
    rf_jv_repr(&b, key, &e);
    int rc = rf_jv_undef(x->a, "", 0, rf_jv_owner_name(obj), 0, out);
    char *h = rc ? NULL : rf_jarena_alloc(x->a, b.n + 1);
    if (h) ((rf_jundef *)out->u.u)->hint = memcpy(h, b.s ? b.s : "", b.n);
    rf_jbuf_free(&b);
    return rc || !h ? rf_jinja_oom(x) : 0;
}

static int num_of(rf_jv v, double *d)
{
    if (v.t == RF_JV_FLOAT)
        *d = v.u.f;
    else if (v.t == RF_JV_INT || v.t == RF_JV_BOOL)
        *d = (double)v.u.i;
    else
        return 0;
    return 1;
}

static int is_int(rf_jv v)
{
    return v.t == RF_JV_INT || v.t == RF_JV_BOOL;
}

static int repeat(rf_jctx *x, rf_jv seq, long long k, rf_jv *out)
{
    if (k < 0) k = 0;
    if (seq.t == RF_JV_STR) {
        size_t n = seq.u.s->n;
        if (n && (size_t)k > x->lim.max_output / n)
            return rf_jinja_fail(x, RF_ETOOBIG, "a repeated string would exceed the output limit");
        char *p = rf_jarena_alloc(x->a, n * (size_t)k + 1);
        if (!p) return rf_jinja_oom(x);
        for (long long i = 0; i < k; i++)
            memcpy(p + (size_t)i * n, seq.u.s->s, n);
        return rf_jinja_newstr(x, p, n * (size_t)k, out);
    }
    size_t n = seq.u.l->n;
    if (n && (size_t)k > x->lim.max_output / n)
        return rf_jinja_fail(x, RF_ETOOBIG, "a repeated list would exceed the memory limit");
    if (rf_jv_list(x->a, seq.t, n * (size_t)k, out)) return rf_jinja_oom(x);
    for (long long i = 0; i < k; i++)
        for (size_t j = 0; j < n; j++)
            out->u.l->v[out->u.l->n++] = seq.u.l->v[j];
    return 0;
}

static const char *op_sym(int op)
{
    static const char *const s[] = {"+", "-", "*", "/", "//", "%", "**"};
    return op >= 0 && op <= RF_JB_POW ? s[op] : "?";
}

int rf_jinja_binop(rf_jctx *x, int op, rf_jv a, rf_jv b, rf_jv *out)
{
    if (a.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, a);
    if (b.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, b);
    double fa, fb;
    int na = num_of(a, &fa), nb = num_of(b, &fb);
    if (na && nb) {
        long long r;
        int ints = is_int(a) && is_int(b);
        switch (op) {
        case RF_JB_ADD:
        case RF_JB_SUB:
        case RF_JB_MUL:
            if (ints) {
                int ovf = op == RF_JB_ADD   ? __builtin_add_overflow(a.u.i, b.u.i, &r)
                          : op == RF_JB_SUB ? __builtin_sub_overflow(a.u.i, b.u.i, &r)
                                            : __builtin_mul_overflow(a.u.i, b.u.i, &r);
                if (ovf) return rf_jinja_fail(x, RF_EUNSUPPORTED, "integer overflow (64-bit)");
                *out = rf_jv_int(r);
            } else {
                *out = rf_jv_float(op == RF_JB_ADD ? fa + fb : op == RF_JB_SUB ? fa - fb : fa * fb);
            }
            return 0;
        case RF_JB_DIV:
            if (fb == 0) return rf_jinja_fail(x, RF_EINVAL, "division by zero");
            *out = rf_jv_float(fa / fb);
            return 0;
        case RF_JB_FLOORDIV:
        case RF_JB_MOD:
            if (ints ? b.u.i == 0 : fb == 0)
                return rf_jinja_fail(x, RF_EINVAL, "integer division or modulo by zero");
            if (ints) {
                if (a.u.i == LLONG_MIN && b.u.i == -1)
                    return rf_jinja_fail(x, RF_EUNSUPPORTED, "integer overflow (64-bit)");
                long long q = a.u.i / b.u.i, m = a.u.i % b.u.i;
                if (m && ((m < 0) != (b.u.i < 0))) q--, m += b.u.i; /* Python floors */
                *out = rf_jv_int(op == RF_JB_MOD ? m : q);
            } else {
                double m = fmod(fa, fb);
                if (m && ((m < 0) != (fb < 0))) m += fb;
                *out = rf_jv_float(op == RF_JB_MOD ? m : floor(fa / fb));
            }
            return 0;
        case RF_JB_POW:
            if (ints && b.u.i >= 0) {
                long long base = a.u.i, e = b.u.i;
                r = 1;
                while (e--)
                    if (__builtin_mul_overflow(r, base, &r))
                        return rf_jinja_fail(x, RF_EUNSUPPORTED, "integer overflow (64-bit)");
                *out = rf_jv_int(r);
            } else {
                *out = rf_jv_float(pow(fa, fb));
            }
            return 0;
        }
    }
    if (op == RF_JB_ADD && a.t == b.t && (a.t == RF_JV_STR || rf_jv_is_seq(a))) {
        if (a.t == RF_JV_STR) {
            size_t n = a.u.s->n + b.u.s->n;
            if (n > x->lim.max_output)
                return rf_jinja_fail(x, RF_ETOOBIG, "a string would exceed the output limit");
            char *p = rf_jarena_alloc(x->a, n + 1);
            if (!p) return rf_jinja_oom(x);
            memcpy(p, a.u.s->s, a.u.s->n);
            memcpy(p + a.u.s->n, b.u.s->s, b.u.s->n);
            return rf_jinja_newstr(x, p, n, out);
        }
        if (rf_jv_list(x->a, a.t, a.u.l->n + b.u.l->n, out)) return rf_jinja_oom(x);
        for (size_t i = 0; i < a.u.l->n; i++)
            out->u.l->v[out->u.l->n++] = a.u.l->v[i];
        for (size_t i = 0; i < b.u.l->n; i++)
            out->u.l->v[out->u.l->n++] = b.u.l->v[i];
        return 0;
    }
    if (op == RF_JB_MUL && (a.t == RF_JV_STR || rf_jv_is_seq(a)) && is_int(b))
        return repeat(x, a, b.u.i, out);
    if (op == RF_JB_MUL && (b.t == RF_JV_STR || rf_jv_is_seq(b)) && is_int(a))
        return repeat(x, b, a.u.i, out);
    if (op == RF_JB_MOD && a.t == RF_JV_STR)
        return rf_jinja_fail(x, RF_EUNSUPPORTED,
                             "printf-style '%%' string formatting is not supported by this engine");
    if (op == RF_JB_ADD && a.t == RF_JV_STR)
        return rf_jinja_fail(x, RF_EINVAL, "can only concatenate str (not \"%s\") to str",
                             rf_jv_type_name(b));
    return rf_jinja_fail(x, RF_EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'",
                         op_sym(op), rf_jv_type_name(a), rf_jv_type_name(b));
}

static int contains(rf_jctx *x, rf_jv item, rf_jv c, int *out)
{
    if (c.t == RF_JV_STR) {
        if (item.t != RF_JV_STR)
            return rf_jinja_fail(x, RF_EINVAL,
                                 "'in <string>' requires string as left operand, not %s",
                                 rf_jv_type_name(item));
        *out = item.u.s->n == 0 || memmem(c.u.s->s, c.u.s->n, item.u.s->s, item.u.s->n) != NULL;
        return 0;
    }
    if (rf_jv_is_map(c)) {
        *out = rf_jv_dict_get(c.u.d, item) != NULL;
        return 0;
    }
    rf_jlist *l;
    int rc = rf_jinja_iterate(x, c, &l);
    if (rc) {
        rf_error_clear(x->err);
        return rf_jinja_fail(x, RF_EINVAL, "argument of type '%s' is not iterable",
                             rf_jv_type_name(c));
    }
    *out = 0;
    for (size_t i = 0; i < l->n && !*out; i++)
        *out = rf_jv_eq(item, l->v[i]);
    return 0;
}

static int compare(rf_jctx *x, int op, rf_jv a, rf_jv b, int *out)
{
    int lt, rc;
    switch (op) {
    case RF_JB_EQ:
        *out = rf_jv_eq(a, b);
        return 0;
    case RF_JB_NE:
        *out = !rf_jv_eq(a, b);
        return 0;
    case RF_JB_IN:
    case RF_JB_NOTIN:
        if ((rc = contains(x, a, b, out))) return rc;
        if (op == RF_JB_NOTIN) *out = !*out;
        return 0;
    }
    if (a.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, a);
    if (b.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, b);
    rf_error e;
    if (op == RF_JB_LT || op == RF_JB_GTEQ)
        rc = rf_jv_lt(a, b, &lt, &e);
    else
        rc = rf_jv_lt(b, a, &lt, &e);
    if (rc) return rf_jinja_fail(x, rc, "%s", e.msg);
    *out = op == RF_JB_LT || op == RF_JB_GT ? lt : !lt;
    return 0;
}

/* Capture what body writes into a string value. */
static int capture(rf_jctx *x, rf_jframe *f, const rf_jnodes *body, rf_jv *out)
{
    rf_jbuf *outer = x->out;
    size_t frozen = x->frozen;
    x->frozen += outer->n;
    rf_jbuf b = {.max = x->lim.max_output > x->frozen ? x->lim.max_output - x->frozen : 1};
    x->out = &b;
    int rc = exec_body(x, f, body);
    x->out = outer;
    x->frozen = frozen;
    if (!rc) rc = rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
    rf_jbuf_free(&b);
    return rc;
}

static int uses_name(const rf_jnode *n, const char *name, int depth)
{
    if (!n || depth > 200) return 0;
    if (n->kind == RF_JN_NAME && !strcmp(n->name.s, name)) return 1;
    if (uses_name(n->a, name, depth + 1) || uses_name(n->b, name, depth + 1) ||
        uses_name(n->c, name, depth + 1))
        return 1;
    for (size_t i = 0; i < n->list.n; i++)
        if (uses_name(n->list.v[i], name, depth + 1)) return 1;
    for (size_t i = 0; i < n->list2.n; i++)
        if (uses_name(n->list2.v[i], name, depth + 1)) return 1;
    return 0;
}

static int call_macro(rf_jctx *x, const rf_jmacro *m, const rf_jargs *args, rf_jv *out)
{
    const rf_jnode *d = m->def;
    const char *mname = d->kind == RF_JN_MACRO ? d->name.s : "caller";
    int rc;
    if (x->depth >= x->lim.max_depth)
        return rf_jinja_fail(x, RF_ETOOBIG, "macro calls nested deeper than %d", x->lim.max_depth);
    if ((rc = rf_jinja_step(x))) return rc;
    rf_jframe *f = NULL;
    if ((rc = frame_new(x, m->closure, &f))) return rc;
    size_t np = d->n_names, nd = d->list2.n;
    if (args->npos > np && !m->varargs)
        return rf_jinja_fail(x, RF_EINVAL, "macro '%s' takes not more than %zu argument(s)", mname,
                             np);
    rf_jv kw;
    if (rf_jv_dict(x->a, RF_JV_DICT, 0, &kw)) return rf_jinja_oom(x);
    for (size_t k = 0; k < args->nkw; k++) {
        size_t p = 0;
        while (p < np && strcmp(d->names[p].s, args->kwn[k].s))
            p++;
        if (p == np) {
            if (!m->kwargs)
                return rf_jinja_fail(x, RF_EINVAL, "macro '%s' takes no keyword argument '%s'",
                                     mname, args->kwn[k].s);
            rf_jv key;
            if ((rc = rf_jinja_newstr(x, args->kwn[k].s, args->kwn[k].n, &key))) return rc;
            if (rf_jv_dict_set(x->a, kw.u.d, key, args->kwv[k])) return rf_jinja_oom(x);
        }
    }
    for (size_t p = 0; p < np; p++) {
        rf_jv v;
        if (!rf_jargs_get(args, p, d->names[p].s, &v)) {
            if (p >= np - nd) {
                if ((rc = eval(x, f, d->list2.v[p - (np - nd)], &v))) return rc;
            } else {
                char hint[160];
                snprintf(hint, sizeof hint, "parameter '%s' was not provided", d->names[p].s);
                if (rf_jv_undef(x->a, d->names[p].s, d->names[p].n, NULL, 0, &v))
                    return rf_jinja_oom(x);
                rf_jundef *u = (rf_jundef *)v.u.u;
                char *h = rf_jarena_alloc(x->a, strlen(hint) + 1);
                if (!h) return rf_jinja_oom(x);
                u->hint = strcpy(h, hint);
            }
        }
        if ((rc = frame_set(x, f, d->names[p].s, d->names[p].n, v))) return rc;
    }
    if (m->varargs) {
        rf_jv va;
        if (rf_jv_list(x->a, RF_JV_TUPLE, 0, &va)) return rf_jinja_oom(x);
        for (size_t i = np; i < args->npos; i++)
            if (rf_jv_list_push(x->a, va.u.l, args->pos[i])) return rf_jinja_oom(x);
        if ((rc = frame_set(x, f, "varargs", 7, va))) return rc;
    }
    if (m->kwargs && (rc = frame_set(x, f, "kwargs", 6, kw))) return rc;
    if (m->caller) {
        rf_jv c = {.t = RF_JV_MACRO, .u.p = m->caller};
        if ((rc = frame_set(x, f, "caller", 6, c))) return rc;
    }
    x->depth++;
    rc = capture(x, f, &d->list, out);
    x->depth--;
    if (rc == LOOP_CTL) return rf_jinja_fail(x, RF_EINVAL, "'break' or 'continue' outside a loop");
    return rc;
}

int rf_jinja_call(rf_jctx *x, rf_jv fn, const rf_jargs *args, rf_jv *out)
{
    if (fn.t == RF_JV_MACRO) return call_macro(x, fn.u.p, args, out);
    if (fn.t == RF_JV_FUNC) return rf_jinja_call_builtin(x, fn.u.p, args, out);
    if (fn.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, fn);
    return rf_jinja_fail(x, RF_EINVAL, "'%s' object is not callable", rf_jv_type_name(fn));
}

/* The arguments of a CALL, FILTER or TEST node (after `skip` leading
 * positional slots the caller fills). */
static int eval_args(rf_jctx *x, rf_jframe *f, const rf_jnode *n, rf_jargs *a)
{
    int rc;
    rf_jlist *star = NULL;
    rf_jv sv, kv = {.t = RF_JV_NONE};
    if (n->b) {
        if ((rc = eval(x, f, n->b, &sv)) || (rc = rf_jinja_iterate(x, sv, &star))) return rc;
    }
    if (n->c && (rc = eval(x, f, n->c, &kv))) return rc;
    if (n->c && kv.t != RF_JV_DICT)
        return rf_jinja_fail(x, RF_EINVAL, "argument after ** must be a mapping");
    size_t np = n->list.n + (star ? star->n : 0), nk = n->list2.n + (n->c ? kv.u.d->n : 0);
    rf_jv *pos = rf_jarena_alloc(x->a, (np + 1) * sizeof *pos);
    rf_jv *kwv = rf_jarena_alloc(x->a, (nk + 1) * sizeof *kwv);
    rf_jname *kwn = rf_jarena_alloc(x->a, (nk + 1) * sizeof *kwn);
    if (!pos || !kwv || !kwn) return rf_jinja_oom(x);
    for (size_t i = 0; i < n->list.n; i++)
        if ((rc = eval(x, f, n->list.v[i], &pos[i]))) return rc;
    for (size_t i = 0; star && i < star->n; i++)
        pos[n->list.n + i] = star->v[i];
    for (size_t i = 0; i < n->list2.n; i++) {
        kwn[i] = n->names[i];
        if ((rc = eval(x, f, n->list2.v[i], &kwv[i]))) return rc;
    }
    for (size_t i = 0; n->c && i < kv.u.d->n; i++) {
        rf_jv k = kv.u.d->k[i];
        if (k.t != RF_JV_STR) return rf_jinja_fail(x, RF_EINVAL, "keywords must be strings");
        kwn[n->list2.n + i] = (rf_jname){k.u.s->s, k.u.s->n};
        kwv[n->list2.n + i] = kv.u.d->v[i];
    }
    *a = (rf_jargs){pos, np, kwn, kwv, nk};
    return 0;
}

static int eval(rf_jctx *x, rf_jframe *f, const rf_jnode *n, rf_jv *out)
{
    int rc, t;
    rf_jv a, b;
    rf_jargs args;
    x->line = n->line, x->col = n->col;
    switch (n->kind) {
    case RF_JN_CONST:
        *out = n->value;
        return 0;
    case RF_JN_NAME:
        return lookup(x, f, &n->name, out);
    case RF_JN_TUPLE:
    case RF_JN_LIST:
        if (rf_jv_list(x->a, n->kind == RF_JN_TUPLE ? RF_JV_TUPLE : RF_JV_LIST, n->list.n, out))
            return rf_jinja_oom(x);
        for (size_t i = 0; i < n->list.n; i++)
            if ((rc = eval(x, f, n->list.v[i], &out->u.l->v[out->u.l->n++]))) return rc;
        return 0;
    case RF_JN_DICT:
        if (rf_jv_dict(x->a, RF_JV_DICT, n->list.n, out)) return rf_jinja_oom(x);
        for (size_t i = 0; i < n->list.n; i++) {
            if ((rc = eval(x, f, n->list.v[i], &a)) || (rc = eval(x, f, n->list2.v[i], &b)))
                return rc;
            if (!(a.t == RF_JV_STR || a.t == RF_JV_INT || a.t == RF_JV_FLOAT || a.t == RF_JV_BOOL ||
                  a.t == RF_JV_NONE || a.t == RF_JV_TUPLE))
                return rf_jinja_fail(x, RF_EINVAL, "unhashable type: '%s'", rf_jv_type_name(a));
            if (rf_jv_dict_set(x->a, out->u.d, a, b)) return rf_jinja_oom(x);
        }
        return 0;
    case RF_JN_GETATTR:
        if ((rc = eval(x, f, n->a, &a))) return rc;
        x->line = n->line, x->col = n->col;
        return rf_jinja_getattr(x, a, n->name.s, n->name.n, out);
    case RF_JN_GETITEM:
        if ((rc = eval(x, f, n->a, &a))) return rc;
        if (n->b->kind == RF_JN_SLICE) return slice(x, f, a, n->b, out);
        if ((rc = eval(x, f, n->b, &b))) return rc;
        x->line = n->line, x->col = n->col;
        return rf_jinja_getitem(x, a, b, out);
    case RF_JN_CALL:
        if ((rc = eval(x, f, n->a, &a)) || (rc = eval_args(x, f, n, &args))) return rc;
        x->line = n->line, x->col = n->col;
        return rf_jinja_call(x, a, &args, out);
    case RF_JN_FILTER:
        if ((rc = eval(x, f, n->a, &a)) || (rc = eval_args(x, f, n, &args))) return rc;
        x->line = n->line, x->col = n->col;
        return rf_jinja_filter(x, n->op, a, &args, out);
    case RF_JN_TEST:
        if ((rc = eval(x, f, n->a, &a)) || (rc = eval_args(x, f, n, &args))) return rc;
        x->line = n->line, x->col = n->col;
        if ((rc = rf_jinja_test(x, n->op, a, &args, &t))) return rc;
        *out = rf_jv_bool(t);
        return 0;
    case RF_JN_NOT:
        if ((rc = eval(x, f, n->a, &a))) return rc;
        *out = rf_jv_bool(!rf_jv_truthy(a));
        return 0;
    case RF_JN_NEG:
    case RF_JN_POS:
        if ((rc = eval(x, f, n->a, &a))) return rc;
        if (a.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, a);
        if (n->kind == RF_JN_POS && (is_int(a) || a.t == RF_JV_FLOAT)) {
            *out = a.t == RF_JV_BOOL ? rf_jv_int(a.u.i) : a;
            return 0;
        }
        if (is_int(a) && a.u.i != LLONG_MIN) {
            *out = rf_jv_int(-a.u.i);
            return 0;
        }
        if (a.t == RF_JV_FLOAT) {
            *out = rf_jv_float(-a.u.f);
            return 0;
        }
        return rf_jinja_fail(x, RF_EINVAL, "bad operand type for unary %c: '%s'",
                             n->kind == RF_JN_NEG ? '-' : '+', rf_jv_type_name(a));
    case RF_JN_BIN:
        if ((rc = eval(x, f, n->a, &a))) return rc;
        if (n->op == RF_JB_AND || n->op == RF_JB_OR) {
            if (rf_jv_truthy(a) == (n->op == RF_JB_OR)) {
                *out = a;
                return 0;
            }
            return eval(x, f, n->b, out);
        }
        if ((rc = eval(x, f, n->b, &b))) return rc;
        x->line = n->line, x->col = n->col;
        return rf_jinja_binop(x, n->op, a, b, out);
    case RF_JN_CONCAT: {
        rf_jbuf buf = {.max = x->lim.max_output};
        for (size_t i = 0; i < n->list.n; i++) {
            rf_error e;
            if ((rc = eval(x, f, n->list.v[i], &a)) ||
                (rc = rf_jv_to_str(&buf, a, &e) ? rf_jinja_fail(x, rc, "%s", e.msg) : 0)) {
                rf_jbuf_free(&buf);
                return rc;
            }
        }
        rc = rf_jinja_newstr(x, buf.s ? buf.s : "", buf.n, out);
        rf_jbuf_free(&buf);
        return rc;
    }
    case RF_JN_COMPARE:
        t = 1;
        if ((rc = eval(x, f, n->a, &a))) return rc;
        for (size_t i = 0; i < n->list.n; i++) {
            const rf_jnode *o = n->list.v[i];
            if ((rc = eval(x, f, o->a, &b))) return rc;
            x->line = o->line, x->col = o->col;
            if ((rc = compare(x, o->op, a, b, &t))) return rc;
            if (!t) break;
            a = b;
        }
        *out = rf_jv_bool(t);
        return 0;
    case RF_JN_COND:
        if ((rc = eval(x, f, n->a, &a))) return rc;
        if (rf_jv_truthy(a)) return eval(x, f, n->b, out);
        if (n->c) return eval(x, f, n->c, out);
        return rf_jv_undef(x->a, "", 0, NULL, 0, out) ? rf_jinja_oom(x) : 0;
    default:
        return rf_jinja_fail(x, RF_EINTERNAL, "unknown expression node %d", n->kind);
    }
}

static int output(rf_jctx *x, rf_jv v)
{
    rf_error e;
    int rc = rf_jv_to_str(x->out, v, &e);
    if (rc == RF_ETOOBIG)
        return rf_jinja_fail(x, RF_ETOOBIG, "the rendering exceeds its limit of %zu bytes",
                             x->lim.max_output);
    return rc ? rf_jinja_fail(x, rc, "%s", e.msg) : 0;
}

static int make_macro(rf_jctx *x, rf_jframe *f, const rf_jnode *def, const rf_jmacro *caller,
                      rf_jv *out)
{
    rf_jmacro *m = rf_jarena_alloc(x->a, sizeof *m);
    if (!m) return rf_jinja_oom(x);
    m->def = def, m->closure = f, m->caller = caller;
    for (size_t i = 0; i < def->list.n; i++) {
        m->varargs |= uses_name(def->list.v[i], "varargs", 0);
        m->kwargs |= uses_name(def->list.v[i], "kwargs", 0);
    }
    out->t = RF_JV_MACRO;
    out->u.p = m;
    return 0;
}

/* Apply a filter chain whose innermost operand is NULL to v. */
static int apply_chain(rf_jctx *x, rf_jframe *f, const rf_jnode *chain, rf_jv v, rf_jv *out)
{
    if (!chain) {
        *out = v;
        return 0;
    }
    rf_jv in;
    rf_jargs args;
    int rc;
    if ((rc = apply_chain(x, f, chain->a, v, &in)) || (rc = eval_args(x, f, chain, &args)))
        return rc;
    x->line = chain->line, x->col = chain->col;
    return rf_jinja_filter(x, chain->op, in, &args, out);
}

static int exec_for(rf_jctx *x, rf_jframe *f, const rf_jnode *n)
{
    rf_jv it, v;
    rf_jlist *items;
    int rc;
    if ((rc = eval(x, f, n->b, &it)) || (rc = rf_jinja_iterate(x, it, &items))) return rc;
    if (n->c) { /* {% for x in xs if cond %}: loop.* counts only what passes */
        rf_jv kept;
        if (rf_jv_list(x->a, RF_JV_LIST, 0, &kept)) return rf_jinja_oom(x);
        for (size_t i = 0; i < items->n; i++) {
            rf_jframe *g = NULL;
            if ((rc = rf_jinja_step(x)) || (rc = frame_new(x, f, &g)) ||
                (rc = assign(x, g, n->a, items->v[i])) || (rc = eval(x, g, n->c, &v)))
                return rc;
            if (rf_jv_truthy(v) && rf_jv_list_push(x->a, kept.u.l, items->v[i]))
                return rf_jinja_oom(x);
        }
        items = kept.u.l;
    }
    if (!items->n) {
        rf_jframe *g = NULL;
        return n->list2.n ? (rc = frame_new(x, f, &g)) ? rc : exec_body(x, g, &n->list2) : 0;
    }
    rf_jloop *loop = rf_jarena_alloc(x->a, sizeof *loop);
    if (!loop) return rf_jinja_oom(x);
    loop->items = items;
    rf_jv lv = {.t = RF_JV_LOOP, .u.p = loop};
    for (size_t i = 0; i < items->n; i++) {
        rf_jframe *g = NULL;
        loop->i = i;
        if ((rc = rf_jinja_step(x)) || (rc = frame_new(x, f, &g)) ||
            (rc = frame_set(x, g, "loop", 4, lv)) || (rc = assign(x, g, n->a, items->v[i])))
            return rc;
        rc = exec_body(x, g, &n->list);
        if (rc == LOOP_CTL) {
            int ctl = x->loop_ctl;
            x->loop_ctl = 0;
            if (ctl == 1) break;
            continue;
        }
        if (rc) return rc;
    }
    return 0;
}

static int exec(rf_jctx *x, rf_jframe *f, const rf_jnode *n)
{
    rf_jv v, s;
    rf_jframe *g = NULL;
    int rc;
    x->line = n->line, x->col = n->col;
    switch (n->kind) {
    case RF_JN_DATA:
        if (rf_jbuf_add(x->out, n->name.s, n->name.n))
            return rf_jinja_fail(x, RF_ETOOBIG, "the rendering exceeds its limit of %zu bytes",
                                 x->lim.max_output);
        return 0;
    case RF_JN_OUTPUT:
        return (rc = eval(x, f, n->a, &v)) ? rc : output(x, v);
    case RF_JN_IF:
        if ((rc = eval(x, f, n->a, &v))) return rc;
        return exec_body(x, f, rf_jv_truthy(v) ? &n->list : &n->list2);
    case RF_JN_FOR:
        return exec_for(x, f, n);
    case RF_JN_SET:
        return (rc = eval(x, f, n->b, &v)) ? rc : assign(x, f, n->a, v);
    case RF_JN_SETBLOCK:
        if ((rc = capture(x, f, &n->list, &s)) || (rc = apply_chain(x, f, n->b, s, &v))) return rc;
        return assign(x, f, n->a, v);
    case RF_JN_FILTERBLOCK:
        if ((rc = capture(x, f, &n->list, &s)) || (rc = apply_chain(x, f, n->b, s, &v))) return rc;
        return output(x, v);
    case RF_JN_MACRO:
        return (rc = make_macro(x, f, n, NULL, &v)) ? rc : frame_set(x, f, n->name.s, n->name.n, v);
    case RF_JN_CALLBLOCK: {
        rf_jv caller, fn;
        rf_jargs args;
        if ((rc = make_macro(x, f, n, NULL, &caller)) || (rc = eval(x, f, n->a->a, &fn)) ||
            (rc = eval_args(x, f, n->a, &args)))
            return rc;
        if (fn.t != RF_JV_MACRO)
            return rf_jinja_fail(x, RF_EUNSUPPORTED, "{%% call %%} needs a macro");
        rf_jmacro m = *(const rf_jmacro *)fn.u.p;
        m.caller = caller.u.p;
        return (rc = call_macro(x, &m, &args, &v)) ? rc : output(x, v);
    }
    case RF_JN_WITH: {
        if ((rc = frame_new(x, f, &g))) return rc;
        for (size_t i = 0; i < n->n_names; i++)
            if ((rc = eval(x, f, n->list2.v[i], &v)) ||
                (rc = frame_set(x, g, n->names[i].s, n->names[i].n, v)))
                return rc;
        return exec_body(x, g, &n->list);
    }
    case RF_JN_SCOPE:
        return (rc = frame_new(x, f, &g)) ? rc : exec_body(x, g, &n->list);
    case RF_JN_BREAK:
    case RF_JN_CONTINUE:
        x->loop_ctl = n->kind == RF_JN_BREAK ? 1 : 2;
        return LOOP_CTL;
    default:
        return rf_jinja_fail(x, RF_EINTERNAL, "unknown statement node %d", n->kind);
    }
}

static int exec_body(rf_jctx *x, rf_jframe *f, const rf_jnodes *body)
{
    for (size_t i = 0; i < body->n; i++) {
        int rc = exec(x, f, body->v[i]);
        if (rc) return rc;
    }
    return 0;
}

int rf_jinja_eval(rf_jctx *x, const rf_jnodes *body, const rf_jdict *vars, rf_jbuf *out)
{
    rf_jframe *g = NULL, *top = NULL;
    int rc;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    x->deadline = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + x->lim.max_seconds;
    x->out = out;
    if ((rc = frame_new(x, NULL, &g)) || (rc = rf_jinja_globals(x, &g->vars))) return rc;
    for (size_t i = 0; i < vars->n; i++)
        if (rf_jv_dict_set(x->a, &g->vars, vars->k[i], vars->v[i])) return rf_jinja_oom(x);
    x->globals = g;
    if ((rc = frame_new(x, g, &top))) return rc;
    rc = exec_body(x, top, body);
    if (rc == LOOP_CTL) rc = rf_jinja_fail(x, RF_EINVAL, "'break' or 'continue' outside a loop");
    return rc;
}
