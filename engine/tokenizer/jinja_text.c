#include "engine/tokenizer/jinja_text.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int rf_jbuf_add(rf_jbuf *b, const char *s, size_t n)
{
    if (b->max && n > b->max - b->n) return -1;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return -1;
        b->s = p, b->cap = cap;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 0;
}

int rf_jbuf_addc(rf_jbuf *b, char c)
{
    return rf_jbuf_add(b, &c, 1);
}

int rf_jbuf_adds(rf_jbuf *b, const char *s)
{
    return rf_jbuf_add(b, s, strlen(s));
}

int rf_jbuf_addf(rf_jbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof tmp) return -1;
    return rf_jbuf_add(b, tmp, (size_t)k);
}

int rf_jbuf_addcp(rf_jbuf *b, uint32_t cp)
{
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, u);
    return rf_jbuf_add(b, (const char *)u, (size_t)k);
}

void rf_jbuf_free(rf_jbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}

size_t rf_ju8_dec(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = u[0] < 0x80 ? 1 : u[0] < 0xE0 ? 2 : u[0] < 0xF0 ? 3 : 4;
    if (len > n) len = n;
    uint32_t c = len == 1 ? u[0] : len == 2 ? u[0] & 0x1F : len == 3 ? u[0] & 0x0F : u[0] & 0x07;
    for (size_t i = 1; i < len; i++)
        c = (c << 6) | (u[i] & 0x3F);
    *cp = c;
    return len;
}

int rf_ju8_valid(const char *s, size_t n)
{
    /* utf8proc_iterate refuses surrogates and overlongs, as RFC 3629 does. */
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

size_t rf_ju8_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t rf_ju8_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (i < n && k) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        k--;
    }
    return i;
}

int rf_jpy_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

int rf_jpy_isprintable(uint32_t c)
{
    if (c == ' ') return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
        return 0;
    default:
        return 1;
    }
}

int rf_jpy_linebreak(uint32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
}

int rf_jpy_iscased(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

int rf_jpy_isalpha(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int rf_jpy_isdigit(uint32_t c)
{
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
}

int rf_jpy_isalnum(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return rf_jpy_isalpha(c) || k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL ||
           k == UTF8PROC_CATEGORY_NO;
}

int rf_jpy_islower_cp(uint32_t c)
{
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_LL;
}

int rf_jpy_isupper_cp(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT;
}

/* The one-to-many mappings of SpecialCasing.txt that text is likely to
 * meet (CPython applies them all; the rest map one to one). */
static const char *special_upper(uint32_t c)
{
    switch (c) {
    case 0xDF:
        return "SS";
    case 0x149:
        return "\xCA\xBCN";
    case 0xFB00:
        return "FF";
    case 0xFB01:
        return "FI";
    case 0xFB02:
        return "FL";
    case 0xFB03:
        return "FFI";
    case 0xFB04:
        return "FFL";
    case 0xFB05:
    case 0xFB06:
        return "ST";
    default:
        return NULL;
    }
}

/* Σ lowercases to final ς after a cased letter and before none (Unicode's
 * Final_Sigma, as CPython's lower() applies it). */
static int final_sigma(const char *s, size_t n, size_t at, size_t len)
{
    int before = 0, after = 0;
    for (size_t p = at; p > 0;) {
        size_t q = p - 1;
        while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80)
            q--;
        uint32_t c;
        rf_ju8_dec(s + q, p - q, &c);
        if (utf8proc_category((utf8proc_int32_t)c) != UTF8PROC_CATEGORY_MN) {
            before = rf_jpy_iscased(c);
            break;
        }
        p = q;
    }
    for (size_t p = at + len; p < n;) {
        uint32_t c;
        p += rf_ju8_dec(s + p, n - p, &c);
        if (utf8proc_category((utf8proc_int32_t)c) != UTF8PROC_CATEGORY_MN) {
            after = rf_jpy_iscased(c);
            break;
        }
    }
    return before && !after;
}

int rf_jpy_case(rf_jbuf *b, const char *s, size_t n, int how)
{
    int prev_cased = 0, first = 1;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t at = i, k = rf_ju8_dec(s + i, n - i, &c);
        i += k;
        utf8proc_int32_t o = (utf8proc_int32_t)c;
        const char *sp;
        switch (how) {
        case RF_JCASE_UPPER:
            if ((sp = special_upper(c))) {
                if (rf_jbuf_adds(b, sp)) return -1;
                continue;
            }
            o = utf8proc_toupper(o);
            break;
        case RF_JCASE_LOWER:
            if (c == 0x130) { /* İ → i + combining dot above */
                if (rf_jbuf_adds(b, "i\xCC\x87")) return -1;
                continue;
            }
            o = c == 0x3A3 && final_sigma(s, n, at, k) ? 0x3C2 : utf8proc_tolower(o);
            break;
        case RF_JCASE_TITLE:
            /* CPython's title(): lower after a cased letter, else titlecase. */
            o = prev_cased ? utf8proc_tolower(o) : utf8proc_totitle(o);
            prev_cased = rf_jpy_iscased(c);
            break;
        default:
            o = first ? utf8proc_totitle(o) : utf8proc_tolower(o);
            break;
        }
        first = 0;
        if (rf_jbuf_addcp(b, (uint32_t)o)) return -1;
    }
    return 0;
}

static int in_set(uint32_t c, const char *chars, size_t nc)
{
    if (!chars) return rf_jpy_isspace(c);
    for (size_t i = 0; i < nc;) {
        uint32_t d;
        i += rf_ju8_dec(chars + i, nc - i, &d);
        if (d == c) return 1;
    }
    return 0;
}

void rf_jpy_strip(const char *s, size_t n, const char *chars, size_t nc, int left, int right,
                  size_t *off, size_t *len)
{
    size_t b = 0, e = n;
    while (left && b < e) {
        uint32_t c;
        size_t k = rf_ju8_dec(s + b, e - b, &c);
        if (!in_set(c, chars, nc)) break;
        b += k;
    }
    while (right && e > b) {
        size_t p = e - 1;
        while (p > b && ((unsigned char)s[p] & 0xC0) == 0x80)
            p--;
        uint32_t c;
        rf_ju8_dec(s + p, e - p, &c);
        if (!in_set(c, chars, nc)) break;
        e = p;
    }
    *off = b;
    *len = e - b;
}

void rf_jpy_float_repr(double x, char out[40])
{
    if (isnan(x)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(x)) {
        strcpy(out, x < 0 ? "-inf" : "inf");
        return;
    }
    /* Shortest precision that reads back as the same double (what CPython's
     * repr does with David Gay's algorithm), as d.ddde±XX. */
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    char *o = out;
    const char *m = e;
    if (*m == '-') *o++ = *m++;
    char digits[24];
    size_t nd = 0;
    for (; *m && *m != 'e'; m++)
        if (*m != '.') digits[nd++] = *m;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int exp = atoi(m + 1);
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++)
                *o++ = (size_t)i < nd ? digits[i] : '0';
            *o++ = '.';
            if ((size_t)exp + 1 >= nd)
                *o++ = '0';
            else
                for (size_t i = (size_t)exp + 1; i < nd; i++)
                    *o++ = digits[i];
        } else {
            *o++ = '0', *o++ = '.';
            for (int i = 0; i < -exp - 1; i++)
                *o++ = '0';
            for (size_t i = 0; i < nd; i++)
                *o++ = digits[i];
        }
        *o = '\0';
        return;
    }
    *o++ = digits[0];
    if (nd > 1) {
        *o++ = '.';
        for (size_t i = 1; i < nd; i++)
            *o++ = digits[i];
    }
    snprintf(o, 12, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
}
