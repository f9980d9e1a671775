#include "engine/tokenizer/jinja_filters.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/jinja_methods.h"

enum {
    F_ABS,
    F_ATTR,
    F_CAPITALIZE,
    F_LENGTH,
    F_DEFAULT,
    F_DICTSORT,
    F_ESCAPE,
    F_FIRST,
    F_FLOAT,
    F_INDENT,
    F_INT,
    F_ITEMS,
    F_JOIN,
    F_LAST,
    F_LIST,
    F_LOWER,
    F_MAP,
    F_MAX,
    F_MIN,
    F_REJECT,
    F_REJECTATTR,
    F_REPLACE,
    F_REVERSE,
    F_ROUND,
    F_SAFE,
    F_SELECT,
    F_SELECTATTR,
    F_SORT,
    F_STRING,
    F_SUM,
    F_TITLE,
    F_TOJSON,
    F_TRIM,
    F_UNIQUE,
    F_UPPER,
    F_WORDCOUNT,
};

static const struct {
    const char *name;
    int id;
} filters[] = {
    {"abs", F_ABS},           {"attr", F_ATTR},       {"capitalize", F_CAPITALIZE},
    {"count", F_LENGTH},      {"d", F_DEFAULT},       {"default", F_DEFAULT},
    {"dictsort", F_DICTSORT}, {"e", F_ESCAPE},        {"escape", F_ESCAPE},
    {"first", F_FIRST},       {"float", F_FLOAT},     {"indent", F_INDENT},
    {"int", F_INT},           {"items", F_ITEMS},     {"join", F_JOIN},
    {"last", F_LAST},         {"length", F_LENGTH},   {"list", F_LIST},
    {"lower", F_LOWER},       {"map", F_MAP},         {"max", F_MAX},
    {"min", F_MIN},           {"reject", F_REJECT},   {"rejectattr", F_REJECTATTR},
    {"replace", F_REPLACE},   {"reverse", F_REVERSE}, {"round", F_ROUND},
    {"safe", F_SAFE},         {"select", F_SELECT},   {"selectattr", F_SELECTATTR},
    {"sort", F_SORT},         {"string", F_STRING},   {"sum", F_SUM},
    {"title", F_TITLE},       {"tojson", F_TOJSON},   {"trim", F_TRIM},
    {"unique", F_UNIQUE},     {"upper", F_UPPER},     {"wordcount", F_WORDCOUNT},
};

enum {
    T_BOOLEAN,
    T_CALLABLE,
    T_DEFINED,
    T_DIVISIBLEBY,
    T_EQ,
    T_ESCAPED,
    T_EVEN,
    T_FALSE,
    T_FLOAT,
    T_GE,
    T_GT,
    T_IN,
    T_INTEGER,
    T_ITERABLE,
    T_LE,
    T_LOWER,
    T_LT,
    T_MAPPING,
    T_NE,
    T_NONE,
    T_NUMBER,
    T_ODD,
    T_SAMEAS,
    T_SEQUENCE,
    T_STRING,
    T_TRUE,
    T_UNDEFINED,
    T_UPPER,
};

static const struct {
    const char *name;
    int id;
} tests[] = {
    {"boolean", T_BOOLEAN},
    {"callable", T_CALLABLE},
    {"defined", T_DEFINED},
    {"divisibleby", T_DIVISIBLEBY},
    {"eq", T_EQ},
    {"equalto", T_EQ},
    {"==", T_EQ},
    {"escaped", T_ESCAPED},
    {"even", T_EVEN},
    {"false", T_FALSE},
    {"float", T_FLOAT},
    {"ge", T_GE},
    {">=", T_GE},
    {"gt", T_GT},
    {">", T_GT},
    {"greaterthan", T_GT},
    {"in", T_IN},
    {"integer", T_INTEGER},
    {"iterable", T_ITERABLE},
    {"le", T_LE},
    {"<=", T_LE},
    {"lower", T_LOWER},
    {"lt", T_LT},
    {"<", T_LT},
    {"lessthan", T_LT},
    {"mapping", T_MAPPING},
    {"ne", T_NE},
    {"!=", T_NE},
    {"none", T_NONE},
    {"number", T_NUMBER},
    {"odd", T_ODD},
    {"sameas", T_SAMEAS},
    {"sequence", T_SEQUENCE},
    {"string", T_STRING},
    {"true", T_TRUE},
    {"undefined", T_UNDEFINED},
    {"upper", T_UPPER},
};

int rf_jinja_filter_id(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        if (strlen(filters[i].name) == n && !memcmp(filters[i].name, name, n)) return filters[i].id;
    return -1;
}

int rf_jinja_test_id(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
        if (strlen(tests[i].name) == n && !memcmp(tests[i].name, name, n)) return tests[i].id;
    return -1;
}

/* Arguments after the first `skip` positional ones. */
static rf_jargs rest(const rf_jargs *a, size_t skip)
{
    rf_jargs r = *a;
    r.pos += skip < a->npos ? skip : a->npos;
    r.npos = skip < a->npos ? a->npos - skip : 0;
    return r;
}

/* A method of str called on str(v): the str filters are those methods. */
static int str_call(rf_jctx *x, rf_jv v, const char *method, const rf_jargs *a, rf_jv *out)
{
    rf_jv s, m;
    int rc, found;
    if ((rc = rf_jinja_str(x, v, &s)) ||
        (rc = rf_jinja_method(x, s, method, strlen(method), &m, &found)))
        return rc;
    return rf_jinja_call(x, m, a, out);
}

/* make_attrgetter: "a.b.0" looked up part by part with getitem. */
static int attr_get(rf_jctx *x, rf_jv item, rf_jv attr, int lower, rf_jv dflt, int has_dflt,
                    rf_jv *out)
{
    int rc;
    if (attr.t == RF_JV_INT) {
        if ((rc = rf_jinja_getitem(x, item, attr, out))) return rc;
    } else if (attr.t == RF_JV_STR) {
        const char *p = attr.u.s->s, *e = p + attr.u.s->n;
        *out = item;
        while (p <= e) {
            const char *dot = memchr(p, '.', (size_t)(e - p));
            if (!dot) dot = e;
            rf_jv key;
            char *end;
            char num[32];
            snprintf(num, sizeof num, "%.*s", (int)(dot - p < 31 ? dot - p : 31), p);
            long long k = strtoll(num, &end, 10);
            if (dot > p && !*end && (size_t)(dot - p) < sizeof num)
                key = rf_jv_int(k);
            else if ((rc = rf_jinja_newstr(x, p, (size_t)(dot - p), &key)))
                return rc;
            if ((rc = rf_jinja_getitem(x, *out, key, out))) return rc;
            p = dot + 1;
        }
    } else {
        *out = item;
    }
    if (has_dflt && out->t == RF_JV_UNDEF) *out = dflt;
    if (lower && out->t == RF_JV_STR) {
        rf_jbuf b = {.max = x->lim.max_output};
        if (rf_jpy_case(&b, out->u.s->s, out->u.s->n, RF_JCASE_LOWER)) {
            rf_jbuf_free(&b);
            return rf_jinja_oom(x);
        }
        rc = rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
        rf_jbuf_free(&b);
        return rc;
    }
    return 0;
}

/* Stable sort of idx[0..n) by keys (insertion sort; lists are short). */
static int sort_keys(rf_jctx *x, const rf_jv *keys, size_t *idx, size_t n, int reverse)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            int lt;
            rf_error e;
            if (rf_jv_lt(keys[idx[reverse ? j - 1 : j]], keys[idx[reverse ? j : j - 1]], &lt, &e))
                return rf_jinja_fail(x, RF_EINVAL, "%s", e.msg);
            if (!lt) break;
            size_t t = idx[j];
            idx[j] = idx[j - 1], idx[j - 1] = t;
        }
    return 0;
}

static int get_opt(const rf_jargs *a, size_t i, const char *name, rf_jv dflt, rf_jv *out)
{
    if (!rf_jargs_get(a, i, name, out)) *out = dflt;
    return 0;
}

static int py_float(rf_jv v, double *d)
{
    if (v.t == RF_JV_FLOAT || v.t == RF_JV_INT || v.t == RF_JV_BOOL) {
        *d = v.t == RF_JV_FLOAT ? v.u.f : (double)v.u.i;
        return 1;
    }
    if (v.t != RF_JV_STR) return 0;
    char buf[128];
    size_t off, len, k = 0;
    rf_jpy_strip(v.u.s->s, v.u.s->n, NULL, 0, 1, 1, &off, &len);
    for (size_t i = 0; i < len && k + 1 < sizeof buf; i++)
        if (v.u.s->s[off + i] != '_') buf[k++] = v.u.s->s[off + i];
    buf[k] = '\0';
    if (!k || k + 1 >= sizeof buf || strchr(buf, 'x') || strchr(buf, 'X')) return 0;
    char *end;
    *d = strtod(buf, &end);
    return !*end;
}

static int py_int(rf_jv v, long long base, long long *out)
{
    if (v.t == RF_JV_INT || v.t == RF_JV_BOOL) {
        *out = v.u.i;
        return 1;
    }
    if (v.t == RF_JV_FLOAT) {
        if (!isfinite(v.u.f) || fabs(v.u.f) > 9.2e18) return 0;
        *out = (long long)v.u.f;
        return 1;
    }
    if (v.t != RF_JV_STR) return 0;
    char buf[96];
    size_t off, len, k = 0;
    rf_jpy_strip(v.u.s->s, v.u.s->n, NULL, 0, 1, 1, &off, &len);
    for (size_t i = 0; i < len && k + 1 < sizeof buf; i++)
        if (v.u.s->s[off + i] != '_') buf[k++] = v.u.s->s[off + i];
    buf[k] = '\0';
    char *end;
    if (!k || k + 1 >= sizeof buf) return 0;
    *out = strtoll(buf, &end, (int)base);
    if (!*end) return 1;
    double d; /* Jinja's quirk: "42.23"|int gives 42 */
    if (!py_float(v, &d) || !isfinite(d) || fabs(d) > 9.2e18) return 0;
    *out = (long long)d;
    return 1;
}

static int tojson_filter(rf_jctx *x, rf_jv v, const rf_jargs *a, rf_jv *out)
{
    rf_jv ascii, indent, seps, sortk;
    get_opt(a, 0, "ensure_ascii", rf_jv_bool(0), &ascii);
    get_opt(a, 1, "indent", rf_jv_none(), &indent);
    get_opt(a, 2, "separators", rf_jv_none(), &seps);
    get_opt(a, 3, "sort_keys", rf_jv_bool(0), &sortk);
    rf_jjson_opts o = {.sort_keys = rf_jv_truthy(sortk), .ensure_ascii = rf_jv_truthy(ascii)};
    char spaces[256];
    if (indent.t == RF_JV_INT || indent.t == RF_JV_BOOL) {
        long long k = indent.u.i < 0 ? 0 : indent.u.i;
        if (k > 255) return rf_jinja_fail(x, RF_EUNSUPPORTED, "tojson indent over 255");
        memset(spaces, ' ', (size_t)k);
        o.indent = spaces, o.indent_n = (size_t)k;
    } else if (indent.t == RF_JV_STR) {
        o.indent = indent.u.s->s, o.indent_n = indent.u.s->n;
    } else if (indent.t != RF_JV_NONE) {
        return rf_jinja_fail(x, RF_EINVAL, "tojson indent must be an integer or a string");
    }
    if (seps.t != RF_JV_NONE) {
        if (!rf_jv_is_seq(seps) || seps.u.l->n != 2 || seps.u.l->v[0].t != RF_JV_STR ||
            seps.u.l->v[1].t != RF_JV_STR)
            return rf_jinja_fail(x, RF_EINVAL, "tojson separators must be two strings");
        o.item_sep = seps.u.l->v[0].u.s->s, o.item_n = seps.u.l->v[0].u.s->n;
        o.key_sep = seps.u.l->v[1].u.s->s, o.key_n = seps.u.l->v[1].u.s->n;
    }
    rf_jbuf b = {.max = x->lim.max_output};
    rf_error e;
    int rc = rf_jv_tojson(&b, v, &o, &e);
    if (rc)
        rc = rf_jinja_fail(x, rc, "%s", e.msg);
    else
        rc = rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
    rf_jbuf_free(&b);
    return rc;
}

static int indent_filter(rf_jctx *x, rf_jv v, const rf_jargs *a, rf_jv *out)
{
    rf_jv w, first, blank, s, lines;
    get_opt(a, 0, "width", rf_jv_int(4), &w);
    get_opt(a, 1, "first", rf_jv_bool(0), &first);
    get_opt(a, 2, "blank", rf_jv_bool(0), &blank);
    char sp[256];
    const char *ind = sp;
    size_t in;
    if (w.t == RF_JV_STR) {
        ind = w.u.s->s, in = w.u.s->n;
    } else if (w.t == RF_JV_INT || w.t == RF_JV_BOOL) {
        in = w.u.i < 0 ? 0 : w.u.i > 255 ? 255 : (size_t)w.u.i;
        memset(sp, ' ', in);
    } else {
        return rf_jinja_fail(x, RF_EINVAL, "indent width must be an integer or a string");
    }
    int rc;
    rf_jv nl;
    rf_jargs none = {0};
    if ((rc = rf_jinja_str(x, v, &s)) || (rc = rf_jinja_newstr(x, "\n", 1, &nl)) ||
        (rc = rf_jinja_binop(x, RF_JB_ADD, s, nl, &s)) ||
        (rc = str_call(x, s, "splitlines", &none, &lines)))
        return rc;
    rf_jbuf b = {.max = x->lim.max_output};
    const rf_jlist *l = lines.u.l;
    int r = rf_jv_truthy(first) ? rf_jbuf_add(&b, ind, in) : 0;
    for (size_t i = 0; i < l->n && !r; i++) {
        const rf_jstr *ln = l->v[i].u.s;
        if (i) r = rf_jbuf_addc(&b, '\n');
        if (!r && i && (rf_jv_truthy(blank) || ln->n)) r = rf_jbuf_add(&b, ind, in);
        if (!r) r = rf_jbuf_add(&b, ln->s, ln->n);
    }
    rc = r ? rf_jinja_fail(x, RF_ETOOBIG, "indent would exceed the output limit")
           : rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
    rf_jbuf_free(&b);
    return rc;
}

/* Jinja's title filter: words begin after runs of [-\s({\[<]. */
static int title_filter(rf_jctx *x, rf_jv v, rf_jv *out)
{
    rf_jv s;
    int rc = rf_jinja_str(x, v, &s);
    if (rc) return rc;
    rf_jbuf b = {.max = x->lim.max_output};
    int start = 1, r = 0;
    for (size_t i = 0; i < s.u.s->n && !r;) {
        uint32_t c;
        size_t k = rf_ju8_dec(s.u.s->s + i, s.u.s->n - i, &c);
        int sep = rf_jpy_isspace(c) || (c < 0x80 && strchr("-({[<", (int)c) && c);
        if (sep && !start) start = 1;
        r = rf_jpy_case(&b, s.u.s->s + i, k, start ? RF_JCASE_UPPER : RF_JCASE_LOWER);
        if (!sep) start = 0;
        i += k;
    }
    rc = r ? rf_jinja_oom(x) : rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
    rf_jbuf_free(&b);
    return rc;
}

static int escape_filter(rf_jctx *x, rf_jv v, rf_jv *out)
{
    rf_jv s;
    int rc = rf_jinja_str(x, v, &s), r = 0;
    if (rc) return rc;
    rf_jbuf b = {.max = x->lim.max_output};
    for (size_t i = 0; i < s.u.s->n && !r; i++) {
        char c = s.u.s->s[i];
        r = c == '&'    ? rf_jbuf_adds(&b, "&amp;")
            : c == '<'  ? rf_jbuf_adds(&b, "&lt;")
            : c == '>'  ? rf_jbuf_adds(&b, "&gt;")
            : c == '"'  ? rf_jbuf_adds(&b, "&#34;")
            : c == '\'' ? rf_jbuf_adds(&b, "&#39;")
                        : rf_jbuf_addc(&b, c);
    }
    rc = r ? rf_jinja_oom(x) : rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
    rf_jbuf_free(&b);
    return rc;
}

static int round_filter(rf_jctx *x, rf_jv v, const rf_jargs *a, rf_jv *out)
{
    rf_jv p, m;
    get_opt(a, 0, "precision", rf_jv_int(0), &p);
    get_opt(a, 1, "method", rf_jv_none(), &m);
    double d;
    if (!py_float(v, &d) || v.t == RF_JV_STR || p.t != RF_JV_INT)
        return rf_jinja_fail(x, RF_EINVAL, "round needs a number and an integer precision");
    const char *method = m.t == RF_JV_STR ? m.u.s->s : "common";
    if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
        return rf_jinja_fail(x, RF_EINVAL, "method must be common, ceil or floor");
    if (!strcmp(method, "common")) {
        if (v.t != RF_JV_FLOAT) { /* round(int, n) stays an int */
            *out = rf_jv_int(v.u.i);
            return 0;
        }
        if (p.u.i >= 0 && p.u.i < 30) {
            /* printf rounds the exact binary value, ties to even: Python's round(). */
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)p.u.i, d);
            *out = rf_jv_float(strtod(buf, NULL));
        } else {
            double s = pow(10, (double)p.u.i);
            *out = rf_jv_float(nearbyint(d * s) / s);
        }
        return 0;
    }
    double s = pow(10, (double)p.u.i);
    *out = rf_jv_float((method[0] == 'c' ? ceil(d * s) : floor(d * s)) / s);
    return 0;
}

/* select/reject/selectattr/rejectattr. */
static int select_filter(rf_jctx *x, int id, rf_jv v, const rf_jargs *a, rf_jv *out)
{
    int attr = id == F_SELECTATTR || id == F_REJECTATTR,
        want = id == F_SELECT || id == F_SELECTATTR;
    rf_jv an = rf_jv_none(), tn = rf_jv_none();
    size_t k = 0;
    if (attr && !rf_jargs_get(a, k++, NULL, &an))
        return rf_jinja_fail(x, RF_EINVAL, "Missing parameter for attribute name");
    int has_test = rf_jargs_get(a, k++, NULL, &tn), test = -1, rc;
    if (has_test) {
        if (tn.t != RF_JV_STR || (test = rf_jinja_test_id(tn.u.s->s, tn.u.s->n)) < 0)
            return rf_jinja_fail(x, RF_EINVAL, "no test named '%s'",
                                 tn.t == RF_JV_STR ? tn.u.s->s : "?");
    }
    rf_jargs targs = rest(a, k);
    rf_jlist *l;
    if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
    if (rf_jv_list(x->a, RF_JV_LIST, 0, out)) return rf_jinja_oom(x);
    for (size_t i = 0; i < l->n; i++) {
        rf_jv item = l->v[i], probe = item;
        int ok;
        if (attr && (rc = attr_get(x, item, an, 0, rf_jv_none(), 0, &probe))) return rc;
        if (test >= 0) {
            if ((rc = rf_jinja_test(x, test, probe, &targs, &ok))) return rc;
        } else {
            ok = rf_jv_truthy(probe);
        }
        if (ok == want && rf_jv_list_push(x->a, out->u.l, item)) return rf_jinja_oom(x);
    }
    return 0;
}

static int map_filter(rf_jctx *x, rf_jv v, const rf_jargs *a, rf_jv *out)
{
    rf_jlist *l;
    rf_jv attr, dflt, name;
    int rc, has_attr = 0, has_dflt = 0, fid = -1;
    for (size_t i = 0; i < a->nkw; i++) {
        if (!strcmp(a->kwn[i].s, "attribute")) attr = a->kwv[i], has_attr = 1;
        if (!strcmp(a->kwn[i].s, "default")) dflt = a->kwv[i], has_dflt = 1;
    }
    if (!has_attr) {
        if (!rf_jargs_get(a, 0, NULL, &name) || name.t != RF_JV_STR)
            return rf_jinja_fail(x, RF_EINVAL, "map requires a filter argument");
        if ((fid = rf_jinja_filter_id(name.u.s->s, name.u.s->n)) < 0)
            return rf_jinja_fail(x, RF_EINVAL, "no filter named '%s'", name.u.s->s);
    }
    rf_jargs fargs = rest(a, 1);
    if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
    if (rf_jv_list(x->a, RF_JV_LIST, l->n, out)) return rf_jinja_oom(x);
    for (size_t i = 0; i < l->n; i++) {
        rf_jv r;
        rc = has_attr ? attr_get(x, l->v[i], attr, 0, dflt, has_dflt, &r)
                      : rf_jinja_filter(x, fid, l->v[i], &fargs, &r);
        if (rc) return rc;
        out->u.l->v[out->u.l->n++] = r;
    }
    return 0;
}

/* sort, unique, min, max, dictsort: keys with ignore_case unless case_sensitive. */
static int keyed(rf_jctx *x, int id, rf_jv v, const rf_jargs *a, rf_jv *out)
{
    rf_jv rev = rf_jv_bool(0), cs = rf_jv_bool(0), attr = rf_jv_none(), by = rf_jv_none();
    rf_jlist *l;
    int rc;
    if (id == F_SORT) {
        get_opt(a, 0, "reverse", rf_jv_bool(0), &rev);
        get_opt(a, 1, "case_sensitive", rf_jv_bool(0), &cs);
        get_opt(a, 2, "attribute", rf_jv_none(), &attr);
    } else if (id == F_DICTSORT) {
        get_opt(a, 0, "case_sensitive", rf_jv_bool(0), &cs);
        get_opt(a, 1, "by", rf_jv_none(), &by);
        get_opt(a, 2, "reverse", rf_jv_bool(0), &rev);
        if (!rf_jv_is_map(v)) return rf_jinja_fail(x, RF_EINVAL, "dictsort needs a mapping");
        rf_jv m;
        int found;
        if ((rc = rf_jinja_method(x, v, "items", 5, &m, &found))) return rc;
        rf_jargs none = {0};
        if ((rc = rf_jinja_call(x, m, &none, &v))) return rc;
        attr = rf_jv_int(by.t == RF_JV_STR && !strcmp(by.u.s->s, "value") ? 1 : 0);
    } else {
        get_opt(a, 0, "case_sensitive", rf_jv_bool(0), &cs);
        get_opt(a, 1, "attribute", rf_jv_none(), &attr);
    }
    if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
    rf_jv *keys = rf_jarena_alloc(x->a, (l->n + 1) * sizeof *keys);
    size_t *idx = rf_jarena_alloc(x->a, (l->n + 1) * sizeof *idx);
    if (!keys || !idx) return rf_jinja_oom(x);
    for (size_t i = 0; i < l->n; i++) {
        idx[i] = i;
        if ((rc = attr_get(x, l->v[i], attr, !rf_jv_truthy(cs), rf_jv_none(), 0, &keys[i])))
            return rc;
    }
    if (id == F_UNIQUE) {
        if (rf_jv_list(x->a, RF_JV_LIST, 0, out)) return rf_jinja_oom(x);
        for (size_t i = 0; i < l->n; i++) {
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++)
                seen = rf_jv_eq(keys[j], keys[i]);
            if (!seen && rf_jv_list_push(x->a, out->u.l, l->v[i])) return rf_jinja_oom(x);
        }
        return 0;
    }
    if (id == F_MIN || id == F_MAX) {
        if (!l->n) {
            if (rf_jv_undef(x->a, "", 0, NULL, 0, out)) return rf_jinja_oom(x);
            ((rf_jundef *)out->u.u)->hint = "No aggregated item, sequence was empty.";
            return 0;
        }
        size_t best = 0;
        for (size_t i = 1; i < l->n; i++) {
            int lt;
            rf_error e;
            if (rf_jv_lt(id == F_MIN ? keys[i] : keys[best], id == F_MIN ? keys[best] : keys[i],
                         &lt, &e))
                return rf_jinja_fail(x, RF_EINVAL, "%s", e.msg);
            if (lt) best = i;
        }
        *out = l->v[best];
        return 0;
    }
    if ((rc = sort_keys(x, keys, idx, l->n, rf_jv_truthy(rev)))) return rc;
    if (rf_jv_list(x->a, RF_JV_LIST, l->n, out)) return rf_jinja_oom(x);
    for (size_t i = 0; i < l->n; i++)
        out->u.l->v[out->u.l->n++] = l->v[idx[i]];
    return 0;
}

int rf_jinja_filter(rf_jctx *x, int id, rf_jv v, const rf_jargs *a, rf_jv *out)
{
    rf_jv s, p;
    rf_jlist *l;
    int rc;
    switch (id) {
    case F_ABS:
        if (v.t == RF_JV_INT || v.t == RF_JV_BOOL)
            *out = rf_jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        else if (v.t == RF_JV_FLOAT)
            *out = rf_jv_float(fabs(v.u.f));
        else
            return rf_jinja_fail(x, RF_EINVAL, "bad operand type for abs(): '%s'",
                                 rf_jv_type_name(v));
        return 0;
    case F_ATTR: {
        int found;
        if (!rf_jargs_get(a, 0, "name", &p) || p.t != RF_JV_STR)
            return rf_jinja_fail(x, RF_EINVAL, "attr needs a name");
        if (v.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, v);
        if ((rc = rf_jinja_method(x, v, p.u.s->s, p.u.s->n, out, &found)) || found) return rc;
        return rf_jv_undef(x->a, p.u.s->s, p.u.s->n, rf_jv_owner_name(v), 0, out) ? rf_jinja_oom(x)
                                                                                  : 0;
    }
    case F_CAPITALIZE:
        return str_call(x, v, "capitalize", a, out);
    case F_LENGTH:
        if (v.t == RF_JV_STR)
            *out = rf_jv_int((long long)rf_ju8_count(v.u.s->s, v.u.s->n));
        else if (rf_jv_is_seq(v))
            *out = rf_jv_int((long long)v.u.l->n);
        else if (v.t == RF_JV_DICT)
            *out = rf_jv_int((long long)v.u.d->n);
        else if (v.t == RF_JV_UNDEF)
            *out = rf_jv_int(0);
        else
            return rf_jinja_fail(x, RF_EINVAL, "object of type '%s' has no len()",
                                 rf_jv_type_name(v));
        return 0;
    case F_DEFAULT: {
        rf_jv d, b;
        if (!rf_jargs_get(a, 0, "default_value", &d)) rf_jinja_newstr(x, "", 0, &d);
        get_opt(a, 1, "boolean", rf_jv_bool(0), &b);
        *out = v.t == RF_JV_UNDEF || (rf_jv_truthy(b) && !rf_jv_truthy(v)) ? d : v;
        return 0;
    }
    case F_ESCAPE:
        return escape_filter(x, v, out);
    case F_FIRST:
    case F_LAST:
        if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
        if (!l->n) {
            if (rf_jv_undef(x->a, "", 0, NULL, 0, out)) return rf_jinja_oom(x);
            ((rf_jundef *)out->u.u)->hint = id == F_FIRST ? "No first item, sequence was empty."
                                                          : "No last item, sequence was empty.";
            return 0;
        }
        *out = l->v[id == F_FIRST ? 0 : l->n - 1];
        return 0;
    case F_FLOAT: {
        double d;
        if (!py_float(v, &d)) return get_opt(a, 0, "default", rf_jv_float(0), out);
        *out = rf_jv_float(d);
        return 0;
    }
    case F_INT: {
        rf_jv base;
        long long k;
        get_opt(a, 1, "base", rf_jv_int(10), &base);
        if (!py_int(v, base.t == RF_JV_INT ? base.u.i : 10, &k))
            return get_opt(a, 0, "default", rf_jv_int(0), out);
        *out = rf_jv_int(k);
        return 0;
    }
    case F_INDENT:
        return indent_filter(x, v, a, out);
    case F_ITEMS: {
        int found;
        if (v.t == RF_JV_UNDEF) return rf_jv_list(x->a, RF_JV_LIST, 0, out) ? rf_jinja_oom(x) : 0;
        if (v.t != RF_JV_DICT)
            return rf_jinja_fail(x, RF_EINVAL, "Can only get item pairs from a mapping.");
        rf_jargs none = {0};
        return (rc = rf_jinja_method(x, v, "items", 5, &p, &found))
                   ? rc
                   : rf_jinja_call(x, p, &none, out);
    }
    case F_JOIN: {
        rf_jv d, attr;
        if (!rf_jargs_get(a, 0, "d", &d)) rf_jinja_newstr(x, "", 0, &d);
        int has_attr = rf_jargs_get(a, 1, "attribute", &attr);
        if ((rc = rf_jinja_iterate(x, v, &l)) || (rc = rf_jinja_str(x, d, &d))) return rc;
        rf_jbuf b = {.max = x->lim.max_output};
        for (size_t i = 0; i < l->n; i++) {
            rf_jv item = l->v[i];
            rf_error e;
            if ((has_attr && (rc = attr_get(x, item, attr, 0, rf_jv_none(), 0, &item))) ||
                (i && rf_jbuf_add(&b, d.u.s->s, d.u.s->n) && (rc = rf_jinja_oom(x))) ||
                ((rc = rf_jv_to_str(&b, item, &e)) && (rc = rf_jinja_fail(x, rc, "%s", e.msg)))) {
                rf_jbuf_free(&b);
                return rc;
            }
        }
        rc = rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
        rf_jbuf_free(&b);
        return rc;
    }
    case F_LIST:
        if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
        if (rf_jv_list(x->a, RF_JV_LIST, l->n, out)) return rf_jinja_oom(x);
        if (l->n) memcpy(out->u.l->v, l->v, l->n * sizeof *l->v);
        out->u.l->n = l->n;
        return 0;
    case F_LOWER:
        return str_call(x, v, "lower", a, out);
    case F_UPPER:
        return str_call(x, v, "upper", a, out);
    case F_MAP:
        return map_filter(x, v, a, out);
    case F_MAX:
    case F_MIN:
    case F_SORT:
    case F_UNIQUE:
    case F_DICTSORT:
        return keyed(x, id, v, a, out);
    case F_REJECT:
    case F_REJECTATTR:
    case F_SELECT:
    case F_SELECTATTR:
        return select_filter(x, id, v, a, out);
    case F_REPLACE: {
        rf_jv o, n, c, args[3];
        if (!rf_jargs_get(a, 0, "old", &o) || !rf_jargs_get(a, 1, "new", &n))
            return rf_jinja_fail(x, RF_EINVAL, "replace needs old and new");
        if ((rc = rf_jinja_str(x, o, &args[0])) || (rc = rf_jinja_str(x, n, &args[1]))) return rc;
        get_opt(a, 2, "count", rf_jv_none(), &c);
        args[2] = c.t == RF_JV_NONE ? rf_jv_int(-1) : c;
        rf_jargs r = {args, 3, NULL, NULL, 0};
        return str_call(x, v, "replace", &r, out);
    }
    case F_REVERSE:
        if (v.t == RF_JV_STR) {
            rf_jbuf b = {.max = x->lim.max_output};
            for (size_t e = v.u.s->n; e > 0;) {
                size_t q = e - 1;
                while (q > 0 && ((unsigned char)v.u.s->s[q] & 0xC0) == 0x80)
                    q--;
                if (rf_jbuf_add(&b, v.u.s->s + q, e - q)) {
                    rf_jbuf_free(&b);
                    return rf_jinja_oom(x);
                }
                e = q;
            }
            rc = rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
            rf_jbuf_free(&b);
            return rc;
        }
        if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
        if (rf_jv_list(x->a, RF_JV_LIST, l->n, out)) return rf_jinja_oom(x);
        for (size_t i = l->n; i-- > 0;)
            out->u.l->v[out->u.l->n++] = l->v[i];
        return 0;
    case F_ROUND:
        return round_filter(x, v, a, out);
    case F_SAFE:
    case F_STRING:
        return rf_jinja_str(x, v, out);
    case F_SUM: {
        rf_jv attr, acc;
        int has_attr = rf_jargs_get(a, 0, "attribute", &attr);
        get_opt(a, 1, "start", rf_jv_int(0), &acc);
        if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
        for (size_t i = 0; i < l->n; i++) {
            rf_jv item = l->v[i];
            if ((has_attr && (rc = attr_get(x, item, attr, 0, rf_jv_none(), 0, &item))) ||
                (rc = rf_jinja_binop(x, RF_JB_ADD, acc, item, &acc)))
                return rc;
        }
        *out = acc;
        return 0;
    }
    case F_TITLE:
        return title_filter(x, v, out);
    case F_TOJSON:
        return tojson_filter(x, v, a, out);
    case F_TRIM: {
        rf_jv c = rf_jv_none();
        rf_jargs_get(a, 0, "chars", &c);
        rf_jargs r = {&c, 1, NULL, NULL, 0};
        return str_call(x, v, "strip", &r, out);
    }
    case F_WORDCOUNT: {
        if ((rc = rf_jinja_str(x, v, &s))) return rc;
        long long k = 0;
        int in = 0;
        for (size_t i = 0; i < s.u.s->n;) {
            uint32_t c;
            i += rf_ju8_dec(s.u.s->s + i, s.u.s->n - i, &c);
            int w = c == '_' || rf_jpy_isalnum(c);
            k += w && !in;
            in = w;
        }
        *out = rf_jv_int(k);
        return 0;
    }
    default:
        return rf_jinja_fail(x, RF_EINTERNAL, "unknown filter %d", id);
    }
}

int rf_jinja_test(rf_jctx *x, int id, rf_jv v, const rf_jargs *a, int *out)
{
    rf_jv o = rf_jv_none();
    int has = rf_jargs_get(a, 0, NULL, &o), rc, r;
    rf_error e;
    switch (id) {
    case T_BOOLEAN:
        *out = v.t == RF_JV_BOOL;
        return 0;
    case T_CALLABLE:
        *out = v.t == RF_JV_MACRO || v.t == RF_JV_FUNC || v.t == RF_JV_UNDEF;
        return 0;
    case T_DEFINED:
    case T_UNDEFINED:
        *out = (v.t != RF_JV_UNDEF) == (id == T_DEFINED);
        return 0;
    case T_DIVISIBLEBY:
    case T_EVEN:
    case T_ODD: {
        rf_jv m;
        if (id == T_DIVISIBLEBY && !has)
            return rf_jinja_fail(x, RF_EINVAL, "divisibleby needs a number");
        if ((rc = rf_jinja_binop(x, RF_JB_MOD, v, id == T_DIVISIBLEBY ? o : rf_jv_int(2), &m)))
            return rc;
        *out = rf_jv_eq(m, rf_jv_int(id == T_ODD));
        return 0;
    }
    case T_EQ:
    case T_NE:
        *out = rf_jv_eq(v, o) == (id == T_EQ);
        return 0;
    case T_ESCAPED:
        *out = 0;
        return 0;
    case T_FALSE:
    case T_TRUE:
        *out = v.t == RF_JV_BOOL && v.u.i == (id == T_TRUE);
        return 0;
    case T_FLOAT:
        *out = v.t == RF_JV_FLOAT;
        return 0;
    case T_INTEGER:
        *out = v.t == RF_JV_INT;
        return 0;
    case T_NUMBER:
        *out = v.t == RF_JV_INT || v.t == RF_JV_FLOAT || v.t == RF_JV_BOOL;
        return 0;
    case T_GE:
    case T_GT:
    case T_LE:
    case T_LT: {
        int lt;
        if (v.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, v);
        if (o.t == RF_JV_UNDEF) return rf_jinja_undef_error(x, o);
        int swap = id == T_GT || id == T_LE;
        if (rf_jv_lt(swap ? o : v, swap ? v : o, &lt, &e))
            return rf_jinja_fail(x, RF_EINVAL, "%s", e.msg);
        *out = id == T_LT || id == T_GT ? lt : !lt;
        return 0;
    }
    case T_IN: {
        rf_jlist *l;
        if (o.t == RF_JV_STR) {
            if (v.t != RF_JV_STR)
                return rf_jinja_fail(x, RF_EINVAL, "'in <string>' requires string as left operand");
            *out = !v.u.s->n || memmem(o.u.s->s, o.u.s->n, v.u.s->s, v.u.s->n);
            return 0;
        }
        if (rf_jv_is_map(o)) {
            *out = rf_jv_dict_get(o.u.d, v) != NULL;
            return 0;
        }
        if ((rc = rf_jinja_iterate(x, o, &l))) return rc;
        *out = 0;
        for (size_t i = 0; i < l->n && !*out; i++)
            *out = rf_jv_eq(v, l->v[i]);
        return 0;
    }
    case T_ITERABLE:
        *out = v.t == RF_JV_STR || rf_jv_is_seq(v) || rf_jv_is_map(v) || v.t == RF_JV_UNDEF;
        return 0;
    case T_SEQUENCE:
        *out = v.t == RF_JV_STR || rf_jv_is_seq(v) || v.t == RF_JV_DICT || v.t == RF_JV_UNDEF;
        return 0;
    case T_LOWER:
    case T_UPPER: {
        rf_jv m;
        rf_jargs none = {0};
        if ((rc = str_call(x, v, id == T_LOWER ? "islower" : "isupper", &none, &m))) return rc;
        *out = rf_jv_truthy(m);
        return 0;
    }
    case T_MAPPING:
        *out = v.t == RF_JV_DICT;
        return 0;
    case T_NONE:
        *out = v.t == RF_JV_NONE;
        return 0;
    case T_SAMEAS:
        r = v.t == o.t;
        if (r && (v.t == RF_JV_INT || v.t == RF_JV_BOOL))
            r = v.u.i == o.u.i;
        else if (r && v.t == RF_JV_FLOAT)
            r = v.u.f == o.u.f;
        else if (r && v.t != RF_JV_NONE && v.t != RF_JV_UNDEF)
            r = v.u.p == o.u.p;
        *out = r;
        return 0;
    case T_STRING:
        *out = v.t == RF_JV_STR;
        return 0;
    default:
        return rf_jinja_fail(x, RF_EINTERNAL, "unknown test %d", id);
    }
}
