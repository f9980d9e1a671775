#include "engine/tokenizer/jinja_lex.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    rf_jarena *a;
    const char *s; /* normalized source */
    size_t n, pos;
    rf_jtok *v;
    size_t nt, cap;
    /* line/column cursor, moved forward only */
    size_t at, line_start;
    int line;
    int line_starting; /* the last match ended with a newline (Jinja's line_starting) */
    char stack[256];   /* open brackets inside a tag */
    int depth;
    rf_error *err;
} lexer;

static void where(lexer *L, size_t pos, int *line, int *col)
{
    for (; L->at < pos; L->at++)
        if (L->s[L->at] == '\n') L->line++, L->line_start = L->at + 1;
    *line = L->line;
    *col = (int)rf_ju8_count(L->s + L->line_start, pos - L->line_start) + 1;
}

static int fail(lexer *L, size_t pos, const char *what)
{
    int line, col;
    where(L, pos, &line, &col);
    return rf_errorf(L->err, RF_EINVAL, "template syntax error at line %d, column %d: %s", line,
                     col, what);
}

static int push(lexer *L, int type, size_t pos, const char *s, size_t n, rf_jtok **out)
{
    if (L->nt == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        rf_jtok *p = rf_jarena_alloc(L->a, cap * sizeof *p);
        if (!p) return rf_errorf(L->err, RF_ETOOBIG, "the template is too large");
        if (L->nt) memcpy(p, L->v, L->nt * sizeof *p);
        L->v = p, L->cap = cap;
    }
    rf_jtok *t = &L->v[L->nt++];
    memset(t, 0, sizeof *t);
    t->type = type, t->s = s, t->n = n;
    where(L, pos, &t->line, &t->col);
    if (out) *out = t;
    return 0;
}

/* Python whitespace (\s of re on str) at p, its byte length or 0. */
static size_t space_at(const lexer *L, size_t p)
{
    if (p >= L->n) return 0;
    uint32_t c;
    size_t k = rf_ju8_dec(L->s + p, L->n - p, &c);
    return rf_jpy_isspace(c) ? k : 0;
}

static size_t skip_space(const lexer *L, size_t p)
{
    size_t k;
    while ((k = space_at(L, p)))
        p += k;
    return p;
}

/* Text before a tag, with the tag's whitespace control applied. */
static int data(lexer *L, size_t b, size_t e, char sign, int lstrip)
{
    if (sign == '-') {
        size_t off, len;
        rf_jpy_strip(L->s + b, e - b, NULL, 0, 0, 1, &off, &len);
        e = b + len;
    } else if (sign != '+' && lstrip) {
        size_t l = e;
        while (l > b && L->s[l - 1] != '\n')
            l--;
        if (l > b || L->line_starting) {
            size_t p = l;
            while (p < e && space_at(L, p))
                p += space_at(L, p);
            if (p == e && e > l) e = l;
        }
    }
    return e > b ? push(L, RF_JT_DATA, b, L->s + b, e - b, NULL) : 0;
}

/* After a block or comment end: `-` strips all whitespace, `+` nothing,
 * else trim_blocks takes one newline. */
static size_t after_end(lexer *L, size_t p, char sign, int trim)
{
    size_t q = p;
    if (sign == '-')
        q = skip_space(L, p);
    else if (sign != '+' && trim && q < L->n && L->s[q] == '\n')
        q++;
    size_t last = q > 0 ? q - 1 : 0;
    L->line_starting = q > 0 && L->s[last] == '\n';
    return q;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Python's unicode-escape decoding of a literal's body, as Jinja applies
 * it (after backslashreplace, so a backslash before a non-ASCII character
 * leaves that character spelled as its \x/\u escape). */
static int unescape(lexer *L, size_t b, size_t e, rf_jtok *t)
{
    rf_jbuf o = {0};
    int r = 0;
    const char *s = L->s;
    for (size_t i = b; i < e && !r;) {
        if (s[i] != '\\' || i + 1 >= e) {
            r = rf_jbuf_addc(&o, s[i++]);
            continue;
        }
        char c = s[i + 1];
        i += 2;
        uint32_t cp = 0;
        int nh = 0;
        switch (c) {
        case '\n':
            continue;
        case '\\':
        case '\'':
        case '"':
            r = rf_jbuf_addc(&o, c);
            continue;
        case 'a':
            r = rf_jbuf_addc(&o, 7);
            continue;
        case 'b':
            r = rf_jbuf_addc(&o, 8);
            continue;
        case 'f':
            r = rf_jbuf_addc(&o, 12);
            continue;
        case 'n':
            r = rf_jbuf_addc(&o, '\n');
            continue;
        case 'r':
            r = rf_jbuf_addc(&o, '\r');
            continue;
        case 't':
            r = rf_jbuf_addc(&o, '\t');
            continue;
        case 'v':
            r = rf_jbuf_addc(&o, 11);
            continue;
        case 'x':
            nh = 2;
            break;
        case 'u':
            nh = 4;
            break;
        case 'U':
            nh = 8;
            break;
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int k = 0; k < 2 && i < e && s[i] >= '0' && s[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                r = rf_jbuf_addcp(&o, cp);
            } else if ((unsigned char)c >= 0x80) {
                uint32_t u;
                i += rf_ju8_dec(s + i - 1, e - (i - 1), &u) - 1;
                r = rf_jbuf_addc(&o, '\\') || rf_jbuf_addf(&o,
                                                           u <= 0xFF     ? "x%02x"
                                                           : u <= 0xFFFF ? "u%04x"
                                                                         : "U%08x",
                                                           u);
            } else {
                r = rf_jbuf_addc(&o, '\\') || rf_jbuf_addc(&o, c);
            }
            continue;
        }
        for (int k = 0; k < nh; k++) {
            int h = i < e ? hexval(s[i]) : -1;
            if (h < 0) {
                rf_jbuf_free(&o);
                return fail(L, b, "truncated \\x, \\u or \\U escape in a string");
            }
            cp = cp * 16 + (uint32_t)h, i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            rf_jbuf_free(&o);
            return fail(L, b, "a string escape names no Unicode character (or a surrogate)");
        }
        r = rf_jbuf_addcp(&o, cp);
    }
    if (r) {
        rf_jbuf_free(&o);
        return rf_errorf(L->err, RF_ENOMEM, "out of memory reading the template");
    }
    char *v = rf_jarena_alloc(L->a, o.n + 1);
    if (!v) {
        rf_jbuf_free(&o);
        return rf_errorf(L->err, RF_ETOOBIG, "the template is too large");
    }
    if (o.n) memcpy(v, o.s, o.n);
    t->s = v, t->n = o.n;
    rf_jbuf_free(&o);
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* (\d+_)*\d+ at p: its end, or p. */
static size_t digits(const char *s, size_t n, size_t p)
{
    size_t q = p;
    while (q < n && is_digit(s[q])) {
        while (q < n && is_digit(s[q]))
            q++;
        if (q + 1 < n && s[q] == '_' && is_digit(s[q + 1])) q++;
    }
    return q;
}

static int number(lexer *L, size_t p, size_t *end)
{
    const char *s = L->s;
    size_t n = L->n, q = digits(s, n, p);
    int is_float = 0;
    if (!(p > 0 && s[p - 1] == '.')) { /* float_re's (?<!\.) */
        size_t e = q;
        if (e + 1 < n && s[e] == '.' && is_digit(s[e + 1])) e = digits(s, n, e + 1), is_float = 1;
        if (e < n && (s[e] == 'e' || s[e] == 'E')) {
            size_t x = e + 1;
            if (x < n && (s[x] == '+' || s[x] == '-')) x++;
            if (x < n && is_digit(s[x])) e = digits(s, n, x), is_float = 1;
        }
        if (is_float) q = e;
    }
    char buf[128];
    size_t k = 0;
    if (is_float) {
        for (size_t i = p; i < q && k + 1 < sizeof buf; i++)
            if (s[i] != '_') buf[k++] = s[i];
        buf[k] = '\0';
        rf_jtok *t;
        int rc = push(L, RF_JT_FLOAT, p, s + p, q - p, &t);
        if (!rc) t->f = strtod(buf, NULL);
        *end = q;
        return rc;
    }
    /* integer_re: 0b/0o/0x prefixes, [1-9](_?\d)*, 0(_?0)* */
    int base = 10;
    size_t b = p;
    if (s[p] == '0' && p + 1 < n && strchr("bBoOxX", s[p + 1]) && s[p + 1]) {
        base = strchr("bB", s[p + 1]) ? 2 : strchr("oO", s[p + 1]) ? 8 : 16;
        b = p + 2;
        q = b;
        while (q < n && (hexval(s[q]) >= 0 && hexval(s[q]) < base)) {
            q++;
            if (q + 1 < n && s[q] == '_' && hexval(s[q + 1]) >= 0 && hexval(s[q + 1]) < base) q++;
        }
        if (q == b) q = b = p + 1, base = 10; /* just "0" */
    } else if (s[p] == '0') {
        q = p + 1;
        while (q < n && (s[q] == '0' || (s[q] == '_' && q + 1 < n && s[q + 1] == '0')))
            q++;
    }
    for (size_t i = b; i < q && k + 1 < sizeof buf; i++)
        if (s[i] != '_') buf[k++] = s[i];
    buf[k] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, base);
    if (errno == ERANGE || k + 1 >= sizeof buf)
        return fail(L, p, "integer literal too large (this engine's integers are 64-bit)");
    rf_jtok *t;
    int rc = push(L, RF_JT_INT, p, s + p, q - p, &t);
    if (!rc) t->i = v;
    *end = q;
    return rc;
}

static int name_start(uint32_t c)
{
    return c == '_' || (c < 0x80 ? ((c | 32) >= 'a' && (c | 32) <= 'z') : rf_jpy_isalpha(c));
}

static int name_char(uint32_t c)
{
    return c == '_' || (c < 0x80 ? ((c | 32) >= 'a' && (c | 32) <= 'z') || is_digit((char)c)
                                 : rf_jpy_isalnum(c));
}

static const struct {
    const char *s;
    int op;
} ops[] = {
    {"//", RF_JOP_FLOORDIV}, {"**", RF_JOP_POW},      {"==", RF_JOP_EQ},    {"!=", RF_JOP_NE},
    {">=", RF_JOP_GTEQ},     {"<=", RF_JOP_LTEQ},     {"+", RF_JOP_ADD},    {"-", RF_JOP_SUB},
    {"/", RF_JOP_DIV},       {"*", RF_JOP_MUL},       {"%", RF_JOP_MOD},    {"~", RF_JOP_TILDE},
    {"[", RF_JOP_LBRACKET},  {"]", RF_JOP_RBRACKET},  {"(", RF_JOP_LPAREN}, {")", RF_JOP_RPAREN},
    {"{", RF_JOP_LBRACE},    {"}", RF_JOP_RBRACE},    {">", RF_JOP_GT},     {"<", RF_JOP_LT},
    {"=", RF_JOP_ASSIGN},    {".", RF_JOP_DOT},       {":", RF_JOP_COLON},  {"|", RF_JOP_PIPE},
    {",", RF_JOP_COMMA},     {";", RF_JOP_SEMICOLON},
};

/* The inside of {{ … }} or {% … %}, up to and including its end. */
static int tag(lexer *L, int block, size_t p, size_t *end)
{
    const char *s = L->s;
    size_t n = L->n;
    int rc;
    L->depth = 0;
    for (;;) {
        if (p >= n) return fail(L, p, block ? "unclosed block tag (no %})" : "unclosed {{ … }}");
        if (!L->depth) {
            char sign = 0;
            size_t q = p;
            if (s[q] == '-' || (block && s[q] == '+')) sign = s[q++];
            const char *close = block ? "%}" : "}}";
            if (q + 1 < n && s[q] == close[0] && s[q + 1] == close[1]) {
                if ((rc = push(L, block ? RF_JT_BLOCK_END : RF_JT_VAR_END, p, s + p, 0, NULL)))
                    return rc;
                q += 2;
                if (block) {
                    *end = after_end(L, q, sign, 1);
                } else {
                    *end = sign == '-' ? skip_space(L, q) : q;
                    L->line_starting = *end > 0 && s[*end - 1] == '\n';
                }
                return 0;
            }
        }
        size_t k = space_at(L, p);
        if (k) {
            p = skip_space(L, p);
            L->line_starting = s[p - 1] == '\n';
            continue;
        }
        L->line_starting = 0;
        uint32_t c;
        size_t cl = rf_ju8_dec(s + p, n - p, &c);
        if (is_digit(s[p])) {
            if ((rc = number(L, p, &p))) return rc;
        } else if (name_start(c)) {
            size_t q = p + cl;
            while (q < n) {
                uint32_t d;
                size_t dl = rf_ju8_dec(s + q, n - q, &d);
                if (!name_char(d)) break;
                q += dl;
            }
            if ((rc = push(L, RF_JT_NAME, p, s + p, q - p, NULL))) return rc;
            p = q;
        } else if (s[p] == '\'' || s[p] == '"') {
            size_t q = p + 1;
            while (q < n && s[q] != s[p])
                q += s[q] == '\\' && q + 1 < n ? 2 : 1;
            if (q >= n) return fail(L, p, "unclosed string literal");
            rf_jtok *t;
            if ((rc = push(L, RF_JT_STRING, p, NULL, 0, &t)) || (rc = unescape(L, p + 1, q, t)))
                return rc;
            p = q + 1;
        } else {
            size_t i;
            for (i = 0; i < sizeof ops / sizeof *ops; i++)
                if (!strncmp(s + p, ops[i].s, strlen(ops[i].s))) break;
            if (i == sizeof ops / sizeof *ops) {
                char what[64];
                snprintf(what, sizeof what, "unexpected character '%.*s'", (int)cl, s + p);
                return fail(L, p, what);
            }
            int op = ops[i].op;
            if (op == RF_JOP_LBRACE || op == RF_JOP_LPAREN || op == RF_JOP_LBRACKET) {
                if (L->depth == (int)sizeof L->stack)
                    return fail(L, p, "brackets nested too deeply");
                L->stack[L->depth++] = op == RF_JOP_LBRACE ? '}' : op == RF_JOP_LPAREN ? ')' : ']';
            } else if (op == RF_JOP_RBRACE || op == RF_JOP_RPAREN || op == RF_JOP_RBRACKET) {
                char want[48];
                if (!L->depth) {
                    snprintf(want, sizeof want, "unexpected '%c'", s[p]);
                    return fail(L, p, want);
                }
                if (L->stack[--L->depth] != s[p]) {
                    snprintf(want, sizeof want, "unexpected '%c', expected '%c'", s[p],
                             L->stack[L->depth]);
                    return fail(L, p, want);
                }
            }
            rf_jtok *t;
            if ((rc = push(L, RF_JT_OP, p, s + p, strlen(ops[i].s), &t))) return rc;
            t->op = op;
            p += strlen(ops[i].s);
        }
    }
}

/* {% raw %}: its body is data, up to {% endraw %}. Returns 1 when p starts one. */
static int raw_begin(const lexer *L, size_t p, char *sign, size_t *body)
{
    const char *s = L->s;
    size_t q = p + 2;
    *sign = 0;
    if (q < L->n && (s[q] == '-' || s[q] == '+')) *sign = s[q++];
    q = skip_space(L, q);
    if (q + 3 > L->n || strncmp(s + q, "raw", 3)) return 0;
    q = skip_space(L, q + 3);
    if (q + 2 < L->n && s[q] == '-' && !strncmp(s + q + 1, "%}", 2)) {
        *body = skip_space(L, q + 3);
        return 1;
    }
    if (q + 1 < L->n && !strncmp(s + q, "%}", 2)) {
        *body = q + 2;
        return 1;
    }
    return 0;
}

static int raw(lexer *L, size_t p, size_t *end)
{
    const char *s = L->s;
    for (size_t q = p; q + 1 < L->n; q++) {
        if (s[q] != '{' || s[q + 1] != '%') continue;
        size_t r = q + 2;
        char sign = 0;
        if (r < L->n && (s[r] == '-' || s[r] == '+')) sign = s[r++];
        r = skip_space(L, r);
        if (r + 6 > L->n || strncmp(s + r, "endraw", 6)) continue;
        r = skip_space(L, r + 6);
        char esign = 0;
        if (r < L->n && (s[r] == '-' || s[r] == '+')) esign = s[r++];
        if (r + 1 >= L->n || strncmp(s + r, "%}", 2)) continue;
        int rc = data(L, p, q, sign, 1);
        if (rc) return rc;
        *end = after_end(L, r + 2, esign, 1);
        return 0;
    }
    return fail(L, p, "missing end of raw directive ({% endraw %})");
}

int rf_jinja_lex(rf_jarena *a, const char *src, size_t n, rf_jtoks *out, rf_error *err)
{
    /* Jinja's newline handling: \r\n and \r become \n, one trailing newline
     * is dropped (keep_trailing_newline=False). */
    char *s = rf_jarena_alloc(a, n + 1);
    if (!s) return rf_errorf(err, RF_ETOOBIG, "the template is too large");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[m++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            s[m++] = src[i];
        }
    }
    if (m && s[m - 1] == '\n') m--;
    s[m] = '\0';
    lexer L = {.a = a, .s = s, .n = m, .line = 1, .line_starting = 1, .err = err};
    size_t p = 0;
    int rc;
    while (p < m) {
        size_t q = p;
        while (q + 1 < m &&
               !(s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')))
            q++;
        if (q + 1 >= m) {
            if ((rc = push(&L, RF_JT_DATA, p, s + p, m - p, NULL))) return rc;
            break;
        }
        char kind = s[q + 1], sign = 0;
        size_t body;
        if (kind == '%' && raw_begin(&L, q, &sign, &body)) {
            if ((rc = data(&L, p, q, sign, 1)) || (rc = raw(&L, body, &p))) return rc;
            continue;
        }
        size_t t = q + 2;
        if (t < m && (s[t] == '-' || s[t] == '+')) sign = s[t++];
        if ((rc = data(&L, p, q, sign, kind != '{'))) return rc;
        L.line_starting = 0;
        if (kind == '#') {
            size_t e = t;
            while (e + 1 < m && !(s[e] == '#' && s[e + 1] == '}'))
                e++;
            if (e + 1 >= m) return fail(&L, q, "missing end of comment tag (#})");
            char esign = e > t && (s[e - 1] == '-' || s[e - 1] == '+') ? s[e - 1] : 0;
            p = after_end(&L, e + 2, esign, 1);
            continue;
        }
        if ((rc = push(&L, kind == '%' ? RF_JT_BLOCK_BEGIN : RF_JT_VAR_BEGIN, q, s + q, 0, NULL)) ||
            (rc = tag(&L, kind == '%', t, &p)))
            return rc;
    }
    if ((rc = push(&L, RF_JT_EOF, m, s + m, 0, NULL))) return rc;
    out->v = L.v;
    out->n = L.nt;
    return 0;
}
