#include "engine/tokenizer/jinja_methods.h"

#include <string.h>
#include <time.h>

enum {
    /* globals */
    G_RANGE,
    G_DICT,
    G_NAMESPACE,
    G_RAISE,
    G_STRFTIME,
    /* str */
    S_STRIP,
    S_LSTRIP,
    S_RSTRIP,
    S_SPLIT,
    S_RSPLIT,
    S_SPLITLINES,
    S_STARTSWITH,
    S_ENDSWITH,
    S_UPPER,
    S_LOWER,
    S_TITLE,
    S_CAPITALIZE,
    S_REPLACE,
    S_FIND,
    S_RFIND,
    S_INDEX,
    S_RINDEX,
    S_COUNT,
    S_JOIN,
    S_ISDIGIT,
    S_ISALPHA,
    S_ISALNUM,
    S_ISSPACE,
    S_ISLOWER,
    S_ISUPPER,
    S_REMOVEPREFIX,
    S_REMOVESUFFIX,
    S_PARTITION,
    S_RPARTITION,
    /* dict */
    D_ITEMS,
    D_KEYS,
    D_VALUES,
    D_GET,
    D_COPY,
    /* list */
    L_INDEX,
    L_COUNT,
    L_COPY,
    /* real Python methods this engine does not run */
    X_UNSUPPORTED,
};

static const struct {
    const char *name;
    int id;
} str_methods[] = {
    {"strip", S_STRIP},
    {"lstrip", S_LSTRIP},
    {"rstrip", S_RSTRIP},
    {"split", S_SPLIT},
    {"rsplit", S_RSPLIT},
    {"splitlines", S_SPLITLINES},
    {"startswith", S_STARTSWITH},
    {"endswith", S_ENDSWITH},
    {"upper", S_UPPER},
    {"lower", S_LOWER},
    {"casefold", S_LOWER},
    {"title", S_TITLE},
    {"capitalize", S_CAPITALIZE},
    {"replace", S_REPLACE},
    {"find", S_FIND},
    {"rfind", S_RFIND},
    {"index", S_INDEX},
    {"rindex", S_RINDEX},
    {"count", S_COUNT},
    {"join", S_JOIN},
    {"isdigit", S_ISDIGIT},
    {"isdecimal", S_ISDIGIT},
    {"isnumeric", S_ISDIGIT},
    {"isalpha", S_ISALPHA},
    {"isalnum", S_ISALNUM},
    {"isspace", S_ISSPACE},
    {"islower", S_ISLOWER},
    {"isupper", S_ISUPPER},
    {"removeprefix", S_REMOVEPREFIX},
    {"removesuffix", S_REMOVESUFFIX},
    {"partition", S_PARTITION},
    {"rpartition", S_RPARTITION},
    {"center", X_UNSUPPORTED},
    {"encode", X_UNSUPPORTED},
    {"expandtabs", X_UNSUPPORTED},
    {"format", X_UNSUPPORTED},
    {"format_map", X_UNSUPPORTED},
    {"isascii", X_UNSUPPORTED},
    {"isidentifier", X_UNSUPPORTED},
    {"isprintable", X_UNSUPPORTED},
    {"istitle", X_UNSUPPORTED},
    {"ljust", X_UNSUPPORTED},
    {"maketrans", X_UNSUPPORTED},
    {"rjust", X_UNSUPPORTED},
    {"swapcase", X_UNSUPPORTED},
    {"translate", X_UNSUPPORTED},
    {"zfill", X_UNSUPPORTED},
};

static const struct {
    const char *name;
    int id; /* -1: changes the object, hidden by the immutable sandbox */
} dict_methods[] = {{"items", D_ITEMS}, {"keys", D_KEYS}, {"values", D_VALUES},
                    {"get", D_GET},     {"copy", D_COPY}, {"fromkeys", X_UNSUPPORTED},
                    {"clear", -1},      {"pop", -1},      {"popitem", -1},
                    {"setdefault", -1}, {"update", -1}},
  list_methods[] = {{"index", L_INDEX}, {"count", L_COUNT}, {"copy", L_COPY}, {"append", -1},
                    {"extend", -1},     {"insert", -1},     {"pop", -1},      {"remove", -1},
                    {"reverse", -1},    {"sort", -1},       {"clear", -1}};

int rf_jinja_bind(rf_jctx *x, int id, const char *name, rf_jv self, rf_jv *out)
{
    rf_jfunc *f = rf_jarena_alloc(x->a, sizeof *f);
    if (!f) return rf_jinja_oom(x);
    f->id = id, f->name = name, f->self = self;
    out->t = RF_JV_FUNC;
    out->u.p = f;
    return 0;
}

int rf_jinja_globals(rf_jctx *x, rf_jdict *g)
{
    static const struct {
        const char *name;
        int id;
    } gl[] = {{"range", G_RANGE},
              {"dict", G_DICT},
              {"namespace", G_NAMESPACE},
              {"raise_exception", G_RAISE},
              {"strftime_now", G_STRFTIME}};
    for (size_t i = 0; i < sizeof gl / sizeof *gl; i++) {
        rf_jv k, v;
        int rc;
        if ((rc = rf_jinja_newstr(x, gl[i].name, strlen(gl[i].name), &k)) ||
            (rc = rf_jinja_bind(x, gl[i].id, gl[i].name, rf_jv_none(), &v)))
            return rc;
        if (rf_jv_dict_set(x->a, g, k, v)) return rf_jinja_oom(x);
    }
    return 0;
}

int rf_jinja_method(rf_jctx *x, rf_jv obj, const char *name, size_t n, rf_jv *out, int *found)
{
    *found = 0;
    const char *owner = obj.t == RF_JV_STR    ? "str object"
                        : obj.t == RF_JV_DICT ? "dict object"
                        : rf_jv_is_seq(obj)   ? "list object"
                                              : NULL;
    if (!owner || memchr(name, '\0', n)) return 0;
    if (n >= 2 && name[0] == '_' && name[1] == '_') {
        /* Python objects all have dunder attributes; the sandbox hides them. */
        *found = 1;
        return rf_jv_undef(x->a, name, n, owner, 1, out) ? rf_jinja_oom(x) : 0;
    }
    if (obj.t == RF_JV_STR) {
        for (size_t i = 0; i < sizeof str_methods / sizeof *str_methods; i++)
            if (strlen(str_methods[i].name) == n && !memcmp(str_methods[i].name, name, n)) {
                *found = 1;
                return rf_jinja_bind(x, str_methods[i].id, str_methods[i].name, obj, out);
            }
        return 0;
    }
    int d = obj.t == RF_JV_DICT;
    size_t k =
        d ? sizeof dict_methods / sizeof *dict_methods : sizeof list_methods / sizeof *list_methods;
    for (size_t i = 0; i < k; i++) {
        const char *m = d ? dict_methods[i].name : list_methods[i].name;
        int id = d ? dict_methods[i].id : list_methods[i].id;
        if (strlen(m) != n || memcmp(m, name, n)) continue;
        *found = 1;
        if (id < 0) return rf_jv_undef(x->a, name, n, owner, 1, out) ? rf_jinja_oom(x) : 0;
        if (obj.t == RF_JV_TUPLE && id == L_COPY) return *found = 0, 0;
        return rf_jinja_bind(x, id, m, obj, out);
    }
    return 0;
}

static int need_str(rf_jctx *x, const rf_jfunc *f, rf_jv v, const char *what)
{
    if (v.t == RF_JV_STR) return 0;
    return rf_jinja_fail(x, RF_EINVAL, "%s() argument %s must be str, not %s", f->name, what,
                         rf_jv_type_name(v));
}

static int push_str(rf_jctx *x, rf_jlist *l, const char *s, size_t n)
{
    rf_jv v;
    int rc = rf_jinja_newstr(x, s, n, &v);
    if (!rc && rf_jv_list_push(x->a, l, v)) rc = rf_jinja_oom(x);
    return rc;
}

/* str.split / str.rsplit (sep NULL: runs of whitespace). */
static int split(rf_jctx *x, const rf_jstr *s, const rf_jstr *sep, long long maxsplit, int right,
                 rf_jv *out)
{
    int rc;
    if (rf_jv_list(x->a, RF_JV_LIST, 0, out)) return rf_jinja_oom(x);
    rf_jlist *l = out->u.l;
    const char *p = s->s;
    size_t n = s->n;
    if (sep && !sep->n) return rf_jinja_fail(x, RF_EINVAL, "empty separator");
    if (right) {
        /* Collect from the right, then reverse. */
        size_t e = n;
        while (e > 0) {
            if (!sep) {
                size_t off, len;
                rf_jpy_strip(p, e, NULL, 0, 0, 1, &off, &len);
                e = len;
                if (!e) break;
                if (maxsplit == 0) {
                    if ((rc = push_str(x, l, p, e))) return rc;
                    break;
                }
                size_t b = e;
                while (b > 0) {
                    size_t q = b - 1;
                    while (q > 0 && ((unsigned char)p[q] & 0xC0) == 0x80)
                        q--;
                    uint32_t c;
                    rf_ju8_dec(p + q, b - q, &c);
                    if (rf_jpy_isspace(c)) break;
                    b = q;
                }
                if ((rc = push_str(x, l, p + b, e - b))) return rc;
                e = b, maxsplit--;
            } else {
                const char *hit = NULL;
                if (maxsplit != 0)
                    for (size_t i = e >= sep->n ? e - sep->n + 1 : 0; i-- > 0;)
                        if (!memcmp(p + i, sep->s, sep->n)) {
                            hit = p + i;
                            break;
                        }
                if (!hit) {
                    if ((rc = push_str(x, l, p, e))) return rc;
                    break;
                }
                size_t b = (size_t)(hit - p) + sep->n;
                if ((rc = push_str(x, l, p + b, e - b))) return rc;
                e = (size_t)(hit - p), maxsplit--;
                if (!e) {
                    if ((rc = push_str(x, l, p, 0))) return rc;
                    break;
                }
            }
        }
        for (size_t i = 0; i < l->n / 2; i++) {
            rf_jv t = l->v[i];
            l->v[i] = l->v[l->n - 1 - i], l->v[l->n - 1 - i] = t;
        }
        return 0;
    }
    size_t b = 0;
    for (;;) {
        if (!sep) {
            size_t off, len;
            rf_jpy_strip(p + b, n - b, NULL, 0, 1, 0, &off, &len);
            b += off;
            if (b >= n) return 0;
            if (maxsplit == 0) return push_str(x, l, p + b, n - b);
            size_t e = b;
            while (e < n) {
                uint32_t c;
                size_t k = rf_ju8_dec(p + e, n - e, &c);
                if (rf_jpy_isspace(c)) break;
                e += k;
            }
            if ((rc = push_str(x, l, p + b, e - b))) return rc;
            b = e, maxsplit--;
        } else {
            const char *hit = maxsplit != 0 ? memmem(p + b, n - b, sep->s, sep->n) : NULL;
            if (!hit) return push_str(x, l, p + b, n - b);
            if ((rc = push_str(x, l, p + b, (size_t)(hit - p) - b))) return rc;
            b = (size_t)(hit - p) + sep->n, maxsplit--;
        }
    }
}

static int splitlines(rf_jctx *x, const rf_jstr *s, int keep, rf_jv *out)
{
    int rc;
    if (rf_jv_list(x->a, RF_JV_LIST, 0, out)) return rf_jinja_oom(x);
    size_t b = 0, i = 0;
    while (i < s->n) {
        uint32_t c;
        size_t k = rf_ju8_dec(s->s + i, s->n - i, &c);
        if (!rf_jpy_linebreak(c)) {
            i += k;
            continue;
        }
        size_t e = i + k;
        if (c == '\r' && e < s->n && s->s[e] == '\n') e++;
        if ((rc = push_str(x, out->u.l, s->s + b, (keep ? e : i) - b))) return rc;
        b = i = e;
    }
    return b < s->n ? push_str(x, out->u.l, s->s + b, s->n - b) : 0;
}

static int affix(rf_jctx *x, const rf_jfunc *f, const rf_jstr *s, rf_jv a, int end, int *out)
{
    int rc;
    if (a.t == RF_JV_TUPLE) {
        *out = 0;
        for (size_t i = 0; i < a.u.l->n && !*out; i++)
            if ((rc = affix(x, f, s, a.u.l->v[i], end, out))) return rc;
        return 0;
    }
    if (a.t != RF_JV_STR)
        return rf_jinja_fail(x, RF_EINVAL, "%s first arg must be str or a tuple of str, not %s",
                             f->name, rf_jv_type_name(a));
    size_t m = a.u.s->n;
    *out = m <= s->n && !memcmp(end ? s->s + s->n - m : s->s, a.u.s->s, m);
    return 0;
}

static int char_class(const rf_jstr *s, int id)
{
    if (!s->n) return 0;
    int cased = 0;
    for (size_t i = 0; i < s->n;) {
        uint32_t c;
        i += rf_ju8_dec(s->s + i, s->n - i, &c);
        switch (id) {
        case S_ISDIGIT:
            if (!rf_jpy_isdigit(c)) return 0;
            break;
        case S_ISALPHA:
            if (!rf_jpy_isalpha(c)) return 0;
            break;
        case S_ISALNUM:
            if (!rf_jpy_isalnum(c)) return 0;
            break;
        case S_ISSPACE:
            if (!rf_jpy_isspace(c)) return 0;
            break;
        case S_ISLOWER:
            if (rf_jpy_isupper_cp(c)) return 0;
            cased |= rf_jpy_islower_cp(c);
            break;
        default:
            if (rf_jpy_islower_cp(c)) return 0;
            cased |= rf_jpy_isupper_cp(c);
        }
    }
    return id == S_ISLOWER || id == S_ISUPPER ? cased : 1;
}

static int str_method(rf_jctx *x, const rf_jfunc *f, const rf_jargs *a, rf_jv *out)
{
    const rf_jstr *s = f->self.u.s;
    rf_jv v = rf_jv_none(), w = rf_jv_none(), c = rf_jv_none();
    int have = rf_jargs_get(a, 0, NULL, &v), rc;
    rf_jargs_get(a, 1, NULL, &w);
    rf_jbuf b = {.max = x->lim.max_output};
    switch (f->id) {
    case S_STRIP:
    case S_LSTRIP:
    case S_RSTRIP: {
        rf_jargs_get(a, 0, "chars", &v);
        if (v.t != RF_JV_NONE && (rc = need_str(x, f, v, "1"))) return rc;
        size_t off, len;
        int chars = v.t == RF_JV_STR;
        rf_jpy_strip(s->s, s->n, chars ? v.u.s->s : NULL, chars ? v.u.s->n : 0, f->id != S_RSTRIP,
                     f->id != S_LSTRIP, &off, &len);
        return rf_jinja_newstr(x, s->s + off, len, out);
    }
    case S_SPLIT:
    case S_RSPLIT:
        rf_jargs_get(a, 0, "sep", &v);
        c = rf_jv_int(-1);
        rf_jargs_get(a, 1, "maxsplit", &c);
        if (v.t != RF_JV_NONE && (rc = need_str(x, f, v, "1"))) return rc;
        if (c.t != RF_JV_INT) return rf_jinja_fail(x, RF_EINVAL, "maxsplit must be an integer");
        return split(x, s, v.t == RF_JV_STR ? v.u.s : NULL, c.u.i, f->id == S_RSPLIT, out);
    case S_SPLITLINES:
        rf_jargs_get(a, 0, "keepends", &v);
        return splitlines(x, s, rf_jv_truthy(v), out);
    case S_STARTSWITH:
    case S_ENDSWITH: {
        int r;
        if (!have) return rf_jinja_fail(x, RF_EINVAL, "%s() takes at least 1 argument", f->name);
        if (a->npos > 1)
            return rf_jinja_fail(x, RF_EUNSUPPORTED, "%s() with start/end is not supported",
                                 f->name);
        if ((rc = affix(x, f, s, v, f->id == S_ENDSWITH, &r))) return rc;
        *out = rf_jv_bool(r);
        return 0;
    }
    case S_UPPER:
    case S_LOWER:
    case S_TITLE:
    case S_CAPITALIZE: {
        int how = f->id == S_UPPER   ? RF_JCASE_UPPER
                  : f->id == S_LOWER ? RF_JCASE_LOWER
                  : f->id == S_TITLE ? RF_JCASE_TITLE
                                     : RF_JCASE_CAPITALIZE;
        if (rf_jpy_case(&b, s->s, s->n, how)) {
            rf_jbuf_free(&b);
            return rf_jinja_oom(x);
        }
        break;
    }
    case S_REPLACE: {
        c = rf_jv_int(-1);
        rf_jargs_get(a, 2, "count", &c);
        if ((rc = need_str(x, f, v, "1")) || (rc = need_str(x, f, w, "2"))) return rc;
        if (c.t != RF_JV_INT) return rf_jinja_fail(x, RF_EINVAL, "count must be an integer");
        const rf_jstr *old = v.u.s, *nw = w.u.s;
        long long k = c.u.i;
        size_t i = 0;
        int r = 0;
        if (!old->n) { /* Python inserts between every character */
            while (!r && i <= s->n) {
                if (k-- != 0) r = rf_jbuf_add(&b, nw->s, nw->n);
                if (i == s->n) break;
                uint32_t cp;
                size_t l = rf_ju8_dec(s->s + i, s->n - i, &cp);
                r = r || rf_jbuf_add(&b, s->s + i, l);
                i += l;
            }
        } else {
            while (!r) {
                const char *h = k != 0 ? memmem(s->s + i, s->n - i, old->s, old->n) : NULL;
                if (!h) {
                    r = rf_jbuf_add(&b, s->s + i, s->n - i);
                    break;
                }
                r = rf_jbuf_add(&b, s->s + i, (size_t)(h - s->s) - i) ||
                    rf_jbuf_add(&b, nw->s, nw->n);
                i = (size_t)(h - s->s) + old->n, k--;
            }
        }
        if (r) {
            rf_jbuf_free(&b);
            return rf_jinja_fail(x, RF_ETOOBIG, "replace() would exceed the output limit");
        }
        break;
    }
    case S_FIND:
    case S_RFIND:
    case S_INDEX:
    case S_RINDEX:
    case S_COUNT: {
        if ((rc = need_str(x, f, v, "1"))) return rc;
        if (a->npos > 1)
            return rf_jinja_fail(x, RF_EUNSUPPORTED, "%s() with start/end is not supported",
                                 f->name);
        const rf_jstr *sub = v.u.s;
        if (f->id == S_COUNT) {
            long long k = 0;
            if (!sub->n)
                k = (long long)rf_ju8_count(s->s, s->n) + 1;
            else
                for (const char *p = s->s;
                     (p = memmem(p, s->n - (size_t)(p - s->s), sub->s, sub->n)); p += sub->n)
                    k++;
            *out = rf_jv_int(k);
            return 0;
        }
        long long at = -1;
        int rev = f->id == S_RFIND || f->id == S_RINDEX;
        if (sub->n <= s->n)
            for (size_t i = 0; i + sub->n <= s->n; i++) {
                size_t j = rev ? s->n - sub->n - i : i;
                if (!memcmp(s->s + j, sub->s, sub->n)) {
                    at = (long long)rf_ju8_count(s->s, j);
                    break;
                }
            }
        if (at < 0 && (f->id == S_INDEX || f->id == S_RINDEX))
            return rf_jinja_fail(x, RF_EINVAL, "substring not found");
        *out = rf_jv_int(at);
        return 0;
    }
    case S_JOIN: {
        rf_jlist *l;
        if (!have) return rf_jinja_fail(x, RF_EINVAL, "join() takes exactly one argument");
        if ((rc = rf_jinja_iterate(x, v, &l))) return rc;
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != RF_JV_STR) {
                rf_jbuf_free(&b);
                return rf_jinja_fail(x, RF_EINVAL,
                                     "sequence item %zu: expected str instance, %s found", i,
                                     rf_jv_type_name(l->v[i]));
            }
            if ((i && rf_jbuf_add(&b, s->s, s->n)) ||
                rf_jbuf_add(&b, l->v[i].u.s->s, l->v[i].u.s->n)) {
                rf_jbuf_free(&b);
                return rf_jinja_fail(x, RF_ETOOBIG, "join() would exceed the output limit");
            }
        }
        break;
    }
    case S_ISDIGIT:
    case S_ISALPHA:
    case S_ISALNUM:
    case S_ISSPACE:
    case S_ISLOWER:
    case S_ISUPPER:
        *out = rf_jv_bool(char_class(s, f->id));
        return 0;
    case S_REMOVEPREFIX:
    case S_REMOVESUFFIX: {
        if ((rc = need_str(x, f, v, "1"))) return rc;
        int r, end = f->id == S_REMOVESUFFIX;
        affix(x, f, s, v, end, &r);
        size_t m = r ? v.u.s->n : 0;
        return rf_jinja_newstr(x, end ? s->s : s->s + m, s->n - m, out);
    }
    case S_PARTITION:
    case S_RPARTITION: {
        if ((rc = need_str(x, f, v, "1"))) return rc;
        if (!v.u.s->n) return rf_jinja_fail(x, RF_EINVAL, "empty separator");
        const char *h = NULL;
        if (f->id == S_PARTITION)
            h = memmem(s->s, s->n, v.u.s->s, v.u.s->n);
        else
            for (size_t i = s->n >= v.u.s->n ? s->n - v.u.s->n + 1 : 0; i-- > 0 && !h;)
                if (!memcmp(s->s + i, v.u.s->s, v.u.s->n)) h = s->s + i;
        if (rf_jv_list(x->a, RF_JV_TUPLE, 3, out)) return rf_jinja_oom(x);
        size_t at = h ? (size_t)(h - s->s) : f->id == S_PARTITION ? s->n : 0;
        size_t sl = h ? v.u.s->n : 0;
        if ((rc = push_str(x, out->u.l, s->s, at)) ||
            (rc = push_str(x, out->u.l, h ? v.u.s->s : "", sl)) ||
            (rc = push_str(x, out->u.l, s->s + at + sl, s->n - at - sl)))
            return rc;
        return 0;
    }
    default:
        return rf_jinja_fail(x, RF_EUNSUPPORTED, "str.%s() is not supported by this engine",
                             f->name);
    }
    rc = rf_jinja_newstr(x, b.s ? b.s : "", b.n, out);
    rf_jbuf_free(&b);
    return rc;
}

static int items(rf_jctx *x, const rf_jdict *d, int which, rf_jv *out)
{
    if (rf_jv_list(x->a, RF_JV_LIST, d->n, out)) return rf_jinja_oom(x);
    for (size_t i = 0; i < d->n; i++) {
        if (which == D_KEYS) {
            out->u.l->v[out->u.l->n++] = d->k[i];
        } else if (which == D_VALUES) {
            out->u.l->v[out->u.l->n++] = d->v[i];
        } else {
            rf_jv t;
            if (rf_jv_list(x->a, RF_JV_TUPLE, 2, &t)) return rf_jinja_oom(x);
            t.u.l->v[0] = d->k[i], t.u.l->v[1] = d->v[i], t.u.l->n = 2;
            out->u.l->v[out->u.l->n++] = t;
        }
    }
    return 0;
}

static int range(rf_jctx *x, const rf_jargs *a, rf_jv *out)
{
    long long v[3] = {0, 0, 1};
    if (a->npos < 1 || a->npos > 3 || a->nkw)
        return rf_jinja_fail(x, RF_EINVAL, "range() takes 1 to 3 integer arguments");
    for (size_t i = 0; i < a->npos; i++) {
        if (a->pos[i].t != RF_JV_INT && a->pos[i].t != RF_JV_BOOL)
            return rf_jinja_fail(x, RF_EINVAL, "'%s' object cannot be interpreted as an integer",
                                 rf_jv_type_name(a->pos[i]));
        v[a->npos == 1 ? 1 : i] = a->pos[i].u.i;
    }
    if (!v[2]) return rf_jinja_fail(x, RF_EINVAL, "range() arg 3 must not be zero");
    double n = v[2] > 0 ? ((double)v[1] - (double)v[0]) / (double)v[2]
                        : ((double)v[0] - (double)v[1]) / -(double)v[2];
    /* Jinja's sandbox refuses ranges over MAX_RANGE (100000) items. */
    if (n > 100000)
        return rf_jinja_fail(x, RF_ETOOBIG,
                             "range too big: the sandbox blocks ranges larger than 100000");
    if (rf_jv_list(x->a, RF_JV_LIST, 0, out)) return rf_jinja_oom(x);
    for (long long i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2])
        if (rf_jv_list_push(x->a, out->u.l, rf_jv_int(i))) return rf_jinja_oom(x);
    return 0;
}

static int make_dict(rf_jctx *x, const rf_jargs *a, int type, rf_jv *out)
{
    if (rf_jv_dict(x->a, type, 0, out)) return rf_jinja_oom(x);
    if (a->npos > 1) return rf_jinja_fail(x, RF_EINVAL, "expected at most 1 positional argument");
    if (a->npos == 1) {
        if (!rf_jv_is_map(a->pos[0]))
            return rf_jinja_fail(x, RF_EUNSUPPORTED, "only a mapping can be given positionally");
        const rf_jdict *d = a->pos[0].u.d;
        for (size_t i = 0; i < d->n; i++)
            if (rf_jv_dict_set(x->a, out->u.d, d->k[i], d->v[i])) return rf_jinja_oom(x);
    }
    for (size_t i = 0; i < a->nkw; i++) {
        rf_jv k;
        int rc = rf_jinja_newstr(x, a->kwn[i].s, a->kwn[i].n, &k);
        if (rc) return rc;
        if (rf_jv_dict_set(x->a, out->u.d, k, a->kwv[i])) return rf_jinja_oom(x);
    }
    return 0;
}

static int loop_method(rf_jctx *x, const rf_jfunc *f, const rf_jargs *a, rf_jv *out)
{
    rf_jloop *l = (rf_jloop *)f->self.u.p;
    if (f->id == RF_JM_LOOP_CYCLE) {
        if (!a->npos) return rf_jinja_fail(x, RF_EINVAL, "no items for cycling given");
        *out = a->pos[l->i % a->npos];
        return 0;
    }
    rf_jv t;
    if (rf_jv_list(x->a, RF_JV_TUPLE, a->npos, &t)) return rf_jinja_oom(x);
    for (size_t i = 0; i < a->npos; i++)
        t.u.l->v[t.u.l->n++] = a->pos[i];
    *out = rf_jv_bool(!l->changed_set || !rf_jv_eq(l->last_changed, t));
    l->last_changed = t, l->changed_set = 1;
    return 0;
}

int rf_jinja_call_builtin(rf_jctx *x, const rf_jfunc *f, const rf_jargs *a, rf_jv *out)
{
    rf_jv v;
    int rc;
    switch (f->id) {
    case G_RANGE:
        return range(x, a, out);
    case G_DICT:
        return make_dict(x, a, RF_JV_DICT, out);
    case G_NAMESPACE:
        return make_dict(x, a, RF_JV_NS, out);
    case G_RAISE: {
        rf_jv msg;
        if (!rf_jargs_get(a, 0, "message", &v)) v = rf_jv_none();
        if ((rc = rf_jinja_str(x, v, &msg))) return rc;
        rc = rf_jinja_fail(x, RF_EINVAL, "the chat template raised an error: %s", msg.u.s->s);
        x->raised = 1;
        return rc;
    }
    case G_STRFTIME: {
        if (!rf_jargs_get(a, 0, "format", &v) || v.t != RF_JV_STR)
            return rf_jinja_fail(x, RF_EINVAL, "strftime_now() takes a format string");
        struct tm tm;
        char buf[512];
        localtime_r(&x->now, &tm);
        size_t n = v.u.s->n ? strftime(buf, sizeof buf, v.u.s->s, &tm) : 0;
        return rf_jinja_newstr(x, buf, n, out);
    }
    case RF_JM_LOOP_CYCLE:
    case RF_JM_LOOP_CHANGED:
        return loop_method(x, f, a, out);
    case D_ITEMS:
    case D_KEYS:
    case D_VALUES:
        return items(x, f->self.u.d, f->id, out);
    case D_GET: {
        if (!rf_jargs_get(a, 0, NULL, &v))
            return rf_jinja_fail(x, RF_EINVAL, "get expected at least 1 argument, got 0");
        rf_jv *p = rf_jv_dict_get(f->self.u.d, v);
        if (p)
            *out = *p;
        else if (!rf_jargs_get(a, 1, NULL, out))
            *out = rf_jv_none();
        return 0;
    }
    case D_COPY:
    case L_COPY:
        *out = f->self;
        return 0;
    case L_INDEX:
    case L_COUNT: {
        if (!rf_jargs_get(a, 0, NULL, &v))
            return rf_jinja_fail(x, RF_EINVAL, "%s() takes exactly one argument", f->name);
        const rf_jlist *l = f->self.u.l;
        long long k = 0;
        for (size_t i = 0; i < l->n; i++)
            if (rf_jv_eq(l->v[i], v)) {
                if (f->id == L_INDEX) {
                    *out = rf_jv_int((long long)i);
                    return 0;
                }
                k++;
            }
        if (f->id == L_INDEX) return rf_jinja_fail(x, RF_EINVAL, "value is not in list");
        *out = rf_jv_int(k);
        return 0;
    }
    default:
        if (f->self.t == RF_JV_STR) return str_method(x, f, a, out);
        return rf_jinja_fail(x, RF_EUNSUPPORTED, "%s() is not supported by this engine", f->name);
    }
}
