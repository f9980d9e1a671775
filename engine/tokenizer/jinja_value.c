#include "engine/tokenizer/jinja_value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Nesting deeper than this is refused where Python would hit its
 * recursion limit (a template can nest lists through a namespace). */
#define MAX_DEPTH 256

struct rf_jarena_blk {
    rf_jarena_blk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

void *rf_jarena_alloc(rf_jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (a->max && n > a->max - a->used) return NULL;
    rf_jarena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (!(b = malloc(sizeof *b + cap))) return NULL;
        b->used = 0, b->cap = cap, b->next = a->head;
        a->head = b;
    }
    void *p = b->mem + b->used;
    b->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void rf_jarena_free(rf_jarena *a)
{
    while (a->head) {
        rf_jarena_blk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
    a->used = 0;
}

static int toobig(rf_error *err)
{
    return rf_errorf(err, RF_ETOOBIG, "the template needs more memory than a render may use");
}

int rf_jv_str(rf_jarena *a, const char *s, size_t n, rf_jv *out)
{
    rf_jstr *p = rf_jarena_alloc(a, sizeof *p + n + 1);
    if (!p) return RF_ETOOBIG;
    p->n = n;
    if (n) memcpy(p->s, s, n);
    out->t = RF_JV_STR;
    out->u.s = p;
    return 0;
}

int rf_jv_undef(rf_jarena *a, const char *name, size_t n, const char *owner, int unsafe, rf_jv *out)
{
    rf_jundef *u = rf_jarena_alloc(a, sizeof *u + n + 1);
    if (!u) return RF_ETOOBIG;
    char *s = (char *)(u + 1);
    if (n) memcpy(s, name, n);
    u->name = s, u->owner = owner, u->unsafe = unsafe;
    out->t = RF_JV_UNDEF;
    out->u.u = u;
    return 0;
}

int rf_jv_list(rf_jarena *a, int type, size_t cap, rf_jv *out)
{
    rf_jlist *l = rf_jarena_alloc(a, sizeof *l);
    if (!l || (cap && !(l->v = rf_jarena_alloc(a, cap * sizeof *l->v)))) return RF_ETOOBIG;
    l->cap = cap;
    out->t = (unsigned char)type;
    out->u.l = l;
    return 0;
}

int rf_jv_list_push(rf_jarena *a, rf_jlist *l, rf_jv v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        rf_jv *p = rf_jarena_alloc(a, cap * sizeof *p);
        if (!p) return RF_ETOOBIG;
        if (l->n) memcpy(p, l->v, l->n * sizeof *p);
        l->v = p, l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

int rf_jv_dict(rf_jarena *a, int type, size_t cap, rf_jv *out)
{
    rf_jdict *d = rf_jarena_alloc(a, sizeof *d);
    if (!d) return RF_ETOOBIG;
    if (cap && (!(d->k = rf_jarena_alloc(a, cap * sizeof *d->k)) ||
                !(d->v = rf_jarena_alloc(a, cap * sizeof *d->v))))
        return RF_ETOOBIG;
    d->cap = cap;
    out->t = (unsigned char)type;
    out->u.d = d;
    return 0;
}

static int dict_push(rf_jarena *a, rf_jdict *d, rf_jv k, rf_jv v)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 4;
        rf_jv *pk = rf_jarena_alloc(a, cap * sizeof *pk),
              *pv = rf_jarena_alloc(a, cap * sizeof *pv);
        if (!pk || !pv) return RF_ETOOBIG;
        if (d->n) memcpy(pk, d->k, d->n * sizeof *pk), memcpy(pv, d->v, d->n * sizeof *pv);
        d->k = pk, d->v = pv, d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return 0;
}

int rf_jv_dict_set(rf_jarena *a, rf_jdict *d, rf_jv k, rf_jv v)
{
    rf_jv *p = rf_jv_dict_get(d, k);
    if (p) {
        *p = v;
        return 0;
    }
    return dict_push(a, d, k, v);
}

rf_jv *rf_jv_dict_get(const rf_jdict *d, rf_jv k)
{
    if (k.t == RF_JV_STR) return rf_jv_dict_gets(d, k.u.s->s, k.u.s->n);
    for (size_t i = 0; i < d->n; i++)
        if (rf_jv_eq(d->k[i], k)) return &d->v[i];
    return NULL;
}

rf_jv *rf_jv_dict_gets(const rf_jdict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == RF_JV_STR && d->k[i].u.s->n == n && !memcmp(d->k[i].u.s->s, k, n))
            return &d->v[i];
    return NULL;
}

static int from_json(rf_jarena *a, const json_t *j, rf_jv *out, int depth)
{
    if (depth > MAX_DEPTH) return RF_EINVAL;
    int rc;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if ((rc = rf_jv_dict(a, RF_JV_DICT, json_object_size(j), out))) return rc;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            rf_jv kv, vv;
            if ((rc = rf_jv_str(a, k, strlen(k), &kv)) || (rc = from_json(a, v, &vv, depth + 1)) ||
                (rc = dict_push(a, out->u.d, kv, vv)))
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        if ((rc = rf_jv_list(a, RF_JV_LIST, json_array_size(j), out))) return rc;
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            rf_jv vv;
            if ((rc = from_json(a, v, &vv, depth + 1)) || (rc = rf_jv_list_push(a, out->u.l, vv)))
                return rc;
        }
        return 0;
    }
    case JSON_STRING:
        return rf_jv_str(a, json_string_value(j), json_string_length(j), out);
    case JSON_INTEGER:
        *out = rf_jv_int(json_integer_value(j));
        return 0;
    case JSON_REAL:
        *out = rf_jv_float(json_real_value(j));
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        *out = rf_jv_bool(json_is_true(j));
        return 0;
    default:
        *out = rf_jv_none();
        return 0;
    }
}

int rf_jv_from_json(rf_jarena *a, const json_t *j, rf_jv *out)
{
    return from_json(a, j, out, 0);
}

int rf_jv_truthy(rf_jv v)
{
    switch (v.t) {
    case RF_JV_UNDEF:
    case RF_JV_NONE:
        return 0;
    case RF_JV_BOOL:
    case RF_JV_INT:
        return v.u.i != 0;
    case RF_JV_FLOAT:
        return v.u.f != 0.0;
    case RF_JV_STR:
        return v.u.s->n != 0;
    case RF_JV_LIST:
    case RF_JV_TUPLE:
        return v.u.l->n != 0;
    case RF_JV_DICT:
        return v.u.d->n != 0;
    default:
        return 1;
    }
}

static int is_num(rf_jv v)
{
    return v.t == RF_JV_BOOL || v.t == RF_JV_INT || v.t == RF_JV_FLOAT;
}

static double num(rf_jv v)
{
    return v.t == RF_JV_FLOAT ? v.u.f : (double)v.u.i;
}

static int eq(rf_jv a, rf_jv b, int depth)
{
    if (depth > MAX_DEPTH) return 0;
    if (is_num(a) && is_num(b)) {
        if (a.t != RF_JV_FLOAT && b.t != RF_JV_FLOAT) return a.u.i == b.u.i;
        return num(a) == num(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case RF_JV_UNDEF:
    case RF_JV_NONE:
        return 1;
    case RF_JV_STR:
        return a.u.s->n == b.u.s->n && !memcmp(a.u.s->s, b.u.s->s, a.u.s->n);
    case RF_JV_LIST:
    case RF_JV_TUPLE:
        if (a.u.l->n != b.u.l->n) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!eq(a.u.l->v[i], b.u.l->v[i], depth + 1)) return 0;
        return 1;
    case RF_JV_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            rf_jv *o = rf_jv_dict_get(b.u.d, a.u.d->k[i]);
            if (!o || !eq(a.u.d->v[i], *o, depth + 1)) return 0;
        }
        return 1;
    default:
        return a.u.p == b.u.p;
    }
}

int rf_jv_eq(rf_jv a, rf_jv b)
{
    return eq(a, b, 0);
}

static int lt(rf_jv a, rf_jv b, int *out, rf_error *err, int depth)
{
    if (depth > MAX_DEPTH) return rf_errorf(err, RF_EINVAL, "values nested too deeply to compare");
    if (is_num(a) && is_num(b)) {
        if (a.t != RF_JV_FLOAT && b.t != RF_JV_FLOAT)
            *out = a.u.i < b.u.i;
        else
            *out = num(a) < num(b);
        return 0;
    }
    if (a.t == RF_JV_STR && b.t == RF_JV_STR) {
        /* UTF-8 byte order is code point order. */
        size_t n = a.u.s->n < b.u.s->n ? a.u.s->n : b.u.s->n;
        int c = memcmp(a.u.s->s, b.u.s->s, n);
        *out = c < 0 || (c == 0 && a.u.s->n < b.u.s->n);
        return 0;
    }
    if (a.t == b.t && (a.t == RF_JV_LIST || a.t == RF_JV_TUPLE)) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (eq(a.u.l->v[i], b.u.l->v[i], depth + 1)) continue;
            return lt(a.u.l->v[i], b.u.l->v[i], out, err, depth + 1);
        }
        *out = a.u.l->n < b.u.l->n;
        return 0;
    }
    return rf_errorf(err, RF_EINVAL, "'<' not supported between instances of '%s' and '%s'",
                     rf_jv_type_name(a), rf_jv_type_name(b));
}

int rf_jv_lt(rf_jv a, rf_jv b, int *out, rf_error *err)
{
    return lt(a, b, out, err, 0);
}

const char *rf_jv_type_name(rf_jv v)
{
    static const char *const names[] = {
        [RF_JV_UNDEF] = "Undefined", [RF_JV_NONE] = "NoneType", [RF_JV_BOOL] = "bool",
        [RF_JV_INT] = "int",         [RF_JV_FLOAT] = "float",   [RF_JV_STR] = "str",
        [RF_JV_LIST] = "list",       [RF_JV_TUPLE] = "tuple",   [RF_JV_DICT] = "dict",
        [RF_JV_NS] = "Namespace",    [RF_JV_MACRO] = "Macro",   [RF_JV_FUNC] = "function",
        [RF_JV_LOOP] = "LoopContext"};
    return v.t < sizeof names / sizeof *names ? names[v.t] : "?";
}

const char *rf_jv_owner_name(rf_jv v)
{
    static const char *const names[] = {[RF_JV_UNDEF] = "jinja2.runtime.Undefined object",
                                        [RF_JV_NONE] = "None",
                                        [RF_JV_BOOL] = "bool object",
                                        [RF_JV_INT] = "int object",
                                        [RF_JV_FLOAT] = "float object",
                                        [RF_JV_STR] = "str object",
                                        [RF_JV_LIST] = "list object",
                                        [RF_JV_TUPLE] = "tuple object",
                                        [RF_JV_DICT] = "dict object",
                                        [RF_JV_NS] = "jinja2.utils.Namespace object",
                                        [RF_JV_MACRO] = "jinja2.runtime.Macro object",
                                        [RF_JV_FUNC] = "builtin_function_or_method object",
                                        [RF_JV_LOOP] = "jinja2.runtime.LoopContext object"};
    return v.t < sizeof names / sizeof *names ? names[v.t] : "?";
}

int rf_jv_is_seq(rf_jv v)
{
    return v.t == RF_JV_LIST || v.t == RF_JV_TUPLE;
}

int rf_jv_is_map(rf_jv v)
{
    return v.t == RF_JV_DICT || v.t == RF_JV_NS;
}

/* repr() of a str: CPython's quote choice and escapes. */
static int repr_str(rf_jbuf *b, const char *s, size_t n)
{
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    int r = rf_jbuf_addc(b, q);
    for (size_t i = 0; i < n && !r;) {
        uint32_t c;
        size_t k = rf_ju8_dec(s + i, n - i, &c);
        if (c == (uint32_t)q || c == '\\')
            r = rf_jbuf_addc(b, '\\') || rf_jbuf_addc(b, (char)c);
        else if (c == '\t')
            r = rf_jbuf_adds(b, "\\t");
        else if (c == '\n')
            r = rf_jbuf_adds(b, "\\n");
        else if (c == '\r')
            r = rf_jbuf_adds(b, "\\r");
        else if (c < 0x20 || c == 0x7F)
            r = rf_jbuf_addf(b, "\\x%02x", c);
        else if (c < 0x7F || rf_jpy_isprintable(c))
            r = rf_jbuf_add(b, s + i, k);
        else if (c <= 0xFF)
            r = rf_jbuf_addf(b, "\\x%02x", c);
        else if (c <= 0xFFFF)
            r = rf_jbuf_addf(b, "\\u%04x", c);
        else
            r = rf_jbuf_addf(b, "\\U%08x", c);
        i += k;
    }
    return r || rf_jbuf_addc(b, q);
}

static int str_or_repr(rf_jbuf *b, rf_jv v, int repr, rf_error *err, int depth)
{
    if (depth > MAX_DEPTH) return rf_errorf(err, RF_EINVAL, "values nested too deeply to print");
    char f[40];
    int r = 0, rc;
    switch (v.t) {
    case RF_JV_UNDEF:
        r = repr ? rf_jbuf_adds(b, "Undefined") : 0;
        break;
    case RF_JV_NONE:
        r = rf_jbuf_adds(b, "None");
        break;
    case RF_JV_BOOL:
        r = rf_jbuf_adds(b, v.u.i ? "True" : "False");
        break;
    case RF_JV_INT:
        r = rf_jbuf_addf(b, "%lld", v.u.i);
        break;
    case RF_JV_FLOAT:
        rf_jpy_float_repr(v.u.f, f);
        r = rf_jbuf_adds(b, f);
        break;
    case RF_JV_STR:
        r = repr ? repr_str(b, v.u.s->s, v.u.s->n) : rf_jbuf_add(b, v.u.s->s, v.u.s->n);
        break;
    case RF_JV_LIST:
    case RF_JV_TUPLE: {
        int tup = v.t == RF_JV_TUPLE;
        r = rf_jbuf_addc(b, tup ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n && !r; i++) {
            if (i) r = rf_jbuf_adds(b, ", ");
            if (!r && (rc = str_or_repr(b, v.u.l->v[i], 1, err, depth + 1))) return rc;
        }
        if (!r && tup && v.u.l->n == 1) r = rf_jbuf_addc(b, ',');
        if (!r) r = rf_jbuf_addc(b, tup ? ')' : ']');
        break;
    }
    case RF_JV_DICT:
    case RF_JV_NS:
        if (v.t == RF_JV_NS) r = rf_jbuf_adds(b, "<Namespace ");
        if (!r) r = rf_jbuf_addc(b, '{');
        for (size_t i = 0; i < v.u.d->n && !r; i++) {
            if (i) r = rf_jbuf_adds(b, ", ");
            if (!r && (rc = str_or_repr(b, v.u.d->k[i], 1, err, depth + 1))) return rc;
            if (!r) r = rf_jbuf_adds(b, ": ");
            if (!r && (rc = str_or_repr(b, v.u.d->v[i], 1, err, depth + 1))) return rc;
        }
        if (!r) r = rf_jbuf_addc(b, '}');
        if (!r && v.t == RF_JV_NS) r = rf_jbuf_addc(b, '>');
        break;
    default:
        /* Python prints a memory address here: nothing a template can rely on. */
        return rf_errorf(err, RF_EINVAL, "a %s cannot be printed (did you mean to call it?)",
                         rf_jv_type_name(v));
    }
    return r ? toobig(err) : 0;
}

int rf_jv_to_str(rf_jbuf *b, rf_jv v, rf_error *err)
{
    return str_or_repr(b, v, 0, err, 0);
}

int rf_jv_repr(rf_jbuf *b, rf_jv v, rf_error *err)
{
    return str_or_repr(b, v, 1, err, 0);
}

int rf_jv_stringify(rf_jarena *a, rf_jv v, size_t max, rf_jv *out, rf_error *err)
{
    if (v.t == RF_JV_STR) {
        *out = v;
        return 0;
    }
    rf_jbuf b = {.max = max};
    int rc = rf_jv_to_str(&b, v, err);
    if (!rc && rf_jv_str(a, b.s ? b.s : "", b.n, out)) rc = toobig(err);
    rf_jbuf_free(&b);
    return rc;
}

static int json_str(rf_jbuf *b, const char *s, size_t n, int ascii)
{
    /* json.dumps with ensure_ascii=False escapes only these. */
    int r = rf_jbuf_addc(b, '"');
    for (size_t i = 0; i < n && !r; i++) {
        unsigned char c = (unsigned char)s[i];
        if (ascii && c >= 0x80) { /* UTF-16 escapes, surrogate pairs past the BMP */
            uint32_t cp;
            i += rf_ju8_dec(s + i, n - i, &cp) - 1;
            if (cp >= 0x10000)
                r = rf_jbuf_addf(b, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10),
                                 0xDC00 + ((cp - 0x10000) & 0x3FF));
            else
                r = rf_jbuf_addf(b, "\\u%04x", cp);
            continue;
        }
        switch (c) {
        case '"':
            r = rf_jbuf_adds(b, "\\\"");
            break;
        case '\\':
            r = rf_jbuf_adds(b, "\\\\");
            break;
        case '\n':
            r = rf_jbuf_adds(b, "\\n");
            break;
        case '\r':
            r = rf_jbuf_adds(b, "\\r");
            break;
        case '\t':
            r = rf_jbuf_adds(b, "\\t");
            break;
        case '\b':
            r = rf_jbuf_adds(b, "\\b");
            break;
        case '\f':
            r = rf_jbuf_adds(b, "\\f");
            break;
        default:
            r = c < 0x20 ? rf_jbuf_addf(b, "\\u%04x", c) : rf_jbuf_addc(b, (char)c);
        }
    }
    return r || rf_jbuf_addc(b, '"');
}

static int newline(rf_jbuf *b, const rf_jjson_opts *o, int level)
{
    if (!o->indent) return 0;
    int r = rf_jbuf_addc(b, '\n');
    for (int i = 0; i < level && !r; i++)
        r = rf_jbuf_add(b, o->indent, o->indent_n);
    return r;
}

/* A dict key as json.dumps writes it: strings as they are, numbers, bools
 * and None spelled as JSON; anything else is refused, as Python does. */
static int json_key(rf_jbuf *b, rf_jv k, int ascii, rf_error *err)
{
    char f[40];
    switch (k.t) {
    case RF_JV_STR:
        return json_str(b, k.u.s->s, k.u.s->n, ascii) ? toobig(err) : 0;
    case RF_JV_BOOL:
        return json_str(b, k.u.i ? "true" : "false", k.u.i ? 4 : 5, 0) ? toobig(err) : 0;
    case RF_JV_NONE:
        return json_str(b, "null", 4, 0) ? toobig(err) : 0;
    case RF_JV_INT:
        snprintf(f, sizeof f, "%lld", k.u.i);
        return json_str(b, f, strlen(f), 0) ? toobig(err) : 0;
    case RF_JV_FLOAT:
        rf_jpy_float_repr(k.u.f, f);
        return json_str(b, f, strlen(f), 0) ? toobig(err) : 0;
    default:
        return rf_errorf(err, RF_EINVAL, "keys must be str, int, float, bool or None, not %s",
                         rf_jv_type_name(k));
    }
}

static int tojson(rf_jbuf *b, rf_jv v, const rf_jjson_opts *o, rf_error *err, int level)
{
    if (level > MAX_DEPTH) return rf_errorf(err, RF_EINVAL, "values nested too deeply for tojson");
    const char *is = o->item_sep ? o->item_sep : o->indent ? "," : ", ";
    size_t in = o->item_sep ? o->item_n : strlen(is);
    const char *ks = o->key_sep ? o->key_sep : ": ";
    size_t kn = o->key_sep ? o->key_n : 2;
    char f[40];
    int r = 0, rc;
    switch (v.t) {
    case RF_JV_NONE:
        r = rf_jbuf_adds(b, "null");
        break;
    case RF_JV_BOOL:
        r = rf_jbuf_adds(b, v.u.i ? "true" : "false");
        break;
    case RF_JV_INT:
        r = rf_jbuf_addf(b, "%lld", v.u.i);
        break;
    case RF_JV_FLOAT:
        if (isnan(v.u.f))
            strcpy(f, "NaN");
        else if (isinf(v.u.f))
            strcpy(f, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            rf_jpy_float_repr(v.u.f, f);
        r = rf_jbuf_adds(b, f);
        break;
    case RF_JV_STR:
        r = json_str(b, v.u.s->s, v.u.s->n, o->ensure_ascii);
        break;
    case RF_JV_LIST:
    case RF_JV_TUPLE:
        if (!v.u.l->n) {
            r = rf_jbuf_adds(b, "[]");
            break;
        }
        r = rf_jbuf_addc(b, '[') || newline(b, o, level + 1);
        for (size_t i = 0; i < v.u.l->n && !r; i++) {
            if (i) r = rf_jbuf_add(b, is, in) || newline(b, o, level + 1);
            if (!r && (rc = tojson(b, v.u.l->v[i], o, err, level + 1))) return rc;
        }
        if (!r) r = newline(b, o, level) || rf_jbuf_addc(b, ']');
        break;
    case RF_JV_DICT: {
        const rf_jdict *d = v.u.d;
        if (!d->n) {
            r = rf_jbuf_adds(b, "{}");
            break;
        }
        size_t *ord = malloc(d->n * sizeof *ord);
        if (!ord) return toobig(err);
        for (size_t i = 0; i < d->n; i++)
            ord[i] = i;
        if (o->sort_keys) /* insertion sort: stable, and dicts in templates are small */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0; j--) {
                    int less;
                    if ((rc = rf_jv_lt(d->k[ord[j]], d->k[ord[j - 1]], &less, err))) {
                        free(ord);
                        return rc;
                    }
                    if (!less) break;
                    size_t t = ord[j];
                    ord[j] = ord[j - 1], ord[j - 1] = t;
                }
        r = rf_jbuf_addc(b, '{') || newline(b, o, level + 1);
        for (size_t i = 0; i < d->n && !r; i++) {
            if (i) r = rf_jbuf_add(b, is, in) || newline(b, o, level + 1);
            if (!r && ((rc = json_key(b, d->k[ord[i]], o->ensure_ascii, err)) ||
                       (rc = rf_jbuf_add(b, ks, kn) ? toobig(err) : 0) ||
                       (rc = tojson(b, d->v[ord[i]], o, err, level + 1)))) {
                free(ord);
                return rc;
            }
        }
        free(ord);
        if (!r) r = newline(b, o, level) || rf_jbuf_addc(b, '}');
        break;
    }
    default:
        return rf_errorf(err, RF_EINVAL, "Object of type %s is not JSON serializable",
                         rf_jv_type_name(v));
    }
    return r ? toobig(err) : 0;
}

int rf_jv_tojson(rf_jbuf *b, rf_jv v, const rf_jjson_opts *o, rf_error *err)
{
    return tojson(b, v, o, err, 0);
}
