/* Text primitives of the template engine: a bounded byte buffer, UTF-8
 * code points, and the Python str semantics templates observe (isspace,
 * isprintable, case mapping, strip, float repr). Python's rules are the
 * reference because Jinja2 runs on Python str: a chat template that
 * calls .strip() or prints a float gets what CPython 3 gives. */
#ifndef RF_JINJA_TEXT_H
#define RF_JINJA_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte string that refuses to grow past max (0: no cap). */
typedef struct rf_jbuf {
    char *s;
    size_t n, cap, max;
} rf_jbuf;

/* 0, or -1 when over max or out of memory (b is left as it was). */
int rf_jbuf_add(rf_jbuf *b, const char *s, size_t n);
int rf_jbuf_addc(rf_jbuf *b, char c);
int rf_jbuf_adds(rf_jbuf *b, const char *s);
int rf_jbuf_addf(rf_jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rf_jbuf_addcp(rf_jbuf *b, uint32_t cp);
void rf_jbuf_free(rf_jbuf *b);

/* UTF-8 (input already validated): one code point at s, its byte length. */
size_t rf_ju8_dec(const char *s, size_t n, uint32_t *cp);
/* 1 when s[0..n) is valid UTF-8 (RFC 3629: no surrogates, no overlongs). */
int rf_ju8_valid(const char *s, size_t n);
/* Code points in s[0..n). */
size_t rf_ju8_count(const char *s, size_t n);
/* Byte offset of code point k (n when k is past the end). */
size_t rf_ju8_offset(const char *s, size_t n, size_t k);

/* Python's str.isspace() for one code point (bidi WS/B/S or Zs). */
int rf_jpy_isspace(uint32_t cp);
/* Python's str.isprintable() for one code point (repr escapes the rest). */
int rf_jpy_isprintable(uint32_t cp);
/* A line boundary of str.splitlines(). */
int rf_jpy_linebreak(uint32_t cp);
/* Cased letters (for title/islower/isupper) and alphanumerics (\w). */
int rf_jpy_iscased(uint32_t cp);
int rf_jpy_isalnum(uint32_t cp);
int rf_jpy_isalpha(uint32_t cp);
int rf_jpy_isdigit(uint32_t cp);
int rf_jpy_islower_cp(uint32_t cp);
int rf_jpy_isupper_cp(uint32_t cp);

/* str.upper(), str.lower(), str.title(), str.capitalize() appended to b
 * (simple case mappings; see README for the one-to-many ones). */
enum { RF_JCASE_UPPER, RF_JCASE_LOWER, RF_JCASE_TITLE, RF_JCASE_CAPITALIZE };
int rf_jpy_case(rf_jbuf *b, const char *s, size_t n, int how);

/* str.strip/lstrip/rstrip: the kept part [*off, *off + *len). chars NULL:
 * whitespace; else any code point of chars[0..nc). */
void rf_jpy_strip(const char *s, size_t n, const char *chars, size_t nc, int left, int right,
                  size_t *off, size_t *len);

/* repr(float) of CPython: shortest round-trip digits, fixed notation for
 * exponents -4..15, else d.ddde+XX ("inf", "nan" as Python spells them). */
void rf_jpy_float_repr(double x, char out[40]);

#endif
