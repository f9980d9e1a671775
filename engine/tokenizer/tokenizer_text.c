#include "engine/tokenizer/tokenizer_text.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum {
    N_PREPEND = 1,
    N_REPLACE,
    N_UNICODE,
    N_LOWER,
    N_STRIP,
    P_SPLIT,
    P_BYTELEVEL,
    P_METASPACE,
};
/* Split behaviours, named as in tokenizer.json. */
enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

/* GPT-2's split regex, which ByteLevel applies when `use_regex` is true. */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static regex_t *re_gpt2, *re_space, *re_word;
static int onig_ok;

/* ---- buffers ---- */

int rf_strbuf_add(rf_strbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return RF_ENOMEM;
        b->s = p, b->cap = cap;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 0;
}

int rf_strbuf_add_org(rf_strbuf *b, const char *s, size_t n, const size_t *org, size_t fill)
{
    if (b->n + n + 1 > b->org_cap) {
        size_t cap = b->org_cap ? b->org_cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        size_t *o = realloc(b->org, cap * sizeof *o);
        if (!o) return RF_ENOMEM;
        b->org = o, b->org_cap = cap;
    }
    size_t at = b->n;
    if (rf_strbuf_add(b, s, n)) return RF_ENOMEM;
    for (size_t i = 0; i < n; i++)
        b->org[at + i] = org ? org[i] : fill;
    return 0;
}

void rf_strbuf_free(rf_strbuf *b)
{
    free(b->s);
    free(b->org);
    memset(b, 0, sizeof *b);
}

int rf_pieces_add_org(rf_pieces *p, const char *s, size_t n, const size_t *org)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        size_t *o = realloc(p->off, cap * sizeof *o);
        if (o) p->off = o;
        size_t *l = realloc(p->len, cap * sizeof *l);
        if (l) p->len = l;
        if (!o || !l) return RF_ENOMEM;
        p->cap = cap;
    }
    p->off[p->n] = p->buf.n;
    p->len[p->n] = n;
    if (org ? rf_strbuf_add_org(&p->buf, s, n, org, 0) : rf_strbuf_add(&p->buf, s, n))
        return RF_ENOMEM;
    p->n++;
    return 0;
}

int rf_pieces_add(rf_pieces *p, const char *s, size_t n)
{
    return rf_pieces_add_org(p, s, n, NULL);
}

void rf_pieces_reset(rf_pieces *p)
{
    p->n = 0;
    p->buf.n = 0;
}

void rf_pieces_free(rf_pieces *p)
{
    rf_strbuf_free(&p->buf);
    free(p->off);
    free(p->len);
    memset(p, 0, sizeof *p);
}

/* ---- Unicode helpers ---- */

/* The byte-level alphabet (GPT-2): printable bytes stand for themselves,
 * the other 68 are shifted to U+0100.. in byte order, so that every byte
 * has a visible, non-space character. Filled once in text_setup. */
static int b2c[256], c2b[512];

static void bytelevel_tables(void)
{
    int k = 0;
    for (int c = 0; c < 512; c++)
        c2b[c] = -1;
    for (int i = 0; i < 256; i++) {
        int printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
        b2c[i] = printable ? i : 256 + k++;
        c2b[b2c[i]] = i;
    }
}

static int byte_to_cp(int b)
{
    return b2c[b];
}
int rf_bytelevel_byte(int32_t cp)
{
    return cp >= 0 && cp < 512 ? c2b[cp] : -1;
}

static regex_t *compile(const char *pat, size_t n, char *why, size_t why_n)
{
    regex_t *re = NULL;
    OnigErrorInfo info;
    /* The reference compiles with the onig crate's defaults: Ruby syntax,
     * capture groups on. */
    int r = onig_new(&re, (const UChar *)pat, (const UChar *)pat + n, ONIG_OPTION_CAPTURE_GROUP,
                     ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
    if (r != ONIG_NORMAL) {
        UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &info);
        snprintf(why, why_n, "%s", (char *)msg);
        return NULL;
    }
    return re;
}

static void text_setup(void)
{
    bytelevel_tables();
    OnigEncoding enc[] = {ONIG_ENCODING_UTF8};
    char why[128];
    if (onig_initialize(enc, 1) != ONIG_NORMAL) return;
    re_gpt2 = compile(GPT2_RE, sizeof GPT2_RE - 1, why, sizeof why);
    re_space = compile("\\s", 2, why, sizeof why);
    re_word = compile("\\w", 2, why, sizeof why);
    onig_ok = re_gpt2 && re_space && re_word;
}

int rf_text_init(rf_error *err)
{
    pthread_once(&onig_once, text_setup);
    return onig_ok ? 0 : rf_errorf(err, RF_EINTERNAL, "Oniguruma failed to initialise");
}

static size_t class_at(regex_t *re, const char *s, const char *end)
{
    if (s >= end) return 0;
    int r = onig_match(re, (const UChar *)s, (const UChar *)end, (const UChar *)s, NULL,
                       ONIG_OPTION_NONE);
    return r > 0 ? (size_t)r : 0;
}

size_t rf_text_space_at(const char *s, const char *end)
{
    return class_at(re_space, s, end);
}
size_t rf_text_word_at(const char *s, const char *end)
{
    return class_at(re_word, s, end);
}

/* Length of the valid UTF-8 sequence at s, or 0 — RFC 3629 bounds, so
 * overlong forms and surrogates are invalid, as in every decoder. */
size_t rf_utf8_valid_at(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) return 0;
    }
    return len;
}

int rf_utf8_lossy(rf_strbuf *out, const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        size_t l = rf_utf8_valid_at(u + i, n - i);
        if (l) {
            i += l;
            continue;
        }
        if (rf_strbuf_add(out, s + run, i - run)) return RF_ENOMEM;
        /* One U+FFFD per maximal invalid prefix (WHATWG / Rust lossy). */
        uint8_t c = u[i];
        size_t skip = 1, want = c >= 0xF0 && c <= 0xF4   ? 4
                                : c >= 0xE0 && c <= 0xEF ? 3
                                : c >= 0xC2 && c <= 0xDF ? 2
                                                         : 1;
        uint8_t lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        uint8_t hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        while (skip < want && i + skip < n && u[i + skip] >= (skip == 1 ? lo : 0x80) &&
               u[i + skip] <= (skip == 1 ? hi : 0xBF))
            skip++;
        if (rf_strbuf_add(out, "\xEF\xBF\xBD", 3)) return RF_ENOMEM;
        i += skip;
        run = i;
    }
    return rf_strbuf_add(out, s + run, n - run);
}

/* ---- patterns ---- */

int rf_pattern_load(rf_pattern *p, json_t *j, const char *field, rf_error *err)
{
    json_t *re = json_object_get(j, "Regex"), *lit = json_object_get(j, "String");
    char why[256];
    if (json_is_string(re)) {
        p->re = compile(json_string_value(re), json_string_length(re), why, sizeof why);
        if (!p->re) return rf_error_field(err, RF_EINVAL, field, "regex does not compile: %s", why);
        return 0;
    }
    if (json_is_string(lit)) {
        p->lit_len = json_string_length(lit);
        p->lit = malloc(p->lit_len + 1);
        if (!p->lit) return rf_errorf(err, RF_ENOMEM, "out of memory");
        memcpy(p->lit, json_string_value(lit), p->lit_len + 1);
        return 0;
    }
    return rf_error_field(err, RF_EINVAL, field,
                          "pattern must be {\"Regex\": …} or {\"String\": …}");
}

/* Next match of p in s[from, n): 1 and [*ms, *me) or 0. Empty matches are
 * skipped, as the reference drops the empty pieces they would make. */
static int pattern_next(const rf_pattern *p, const char *s, size_t n, size_t from, OnigRegion *rg,
                        size_t *ms, size_t *me)
{
    if (p->lit) {
        if (!p->lit_len || from >= n) return 0;
        const char *hit = memmem(s + from, n - from, p->lit, p->lit_len);
        if (!hit) return 0;
        *ms = (size_t)(hit - s), *me = *ms + p->lit_len;
        return 1;
    }
    const UChar *u = (const UChar *)s;
    while (from <= n) {
        int r = onig_search(p->re, u, u + n, u + from, u + n, rg, ONIG_OPTION_NONE);
        if (r < 0) return 0;
        *ms = (size_t)rg->beg[0], *me = (size_t)rg->end[0];
        if (*me > *ms) return 1;
        /* Empty match: step one character past it. */
        from = *ms + 1;
        while (from < n && ((uint8_t)s[from] & 0xC0) == 0x80)
            from++;
    }
    return 0;
}

static void pattern_free(rf_pattern *p)
{
    if (p->re) onig_free(p->re);
    free(p->lit);
}

/* ---- loading ---- */

int rf_text_step_add(rf_text_chain *c, rf_text_step **st, rf_error *err)
{
    rf_text_step *s = realloc(c->steps, (c->n + 1) * sizeof *s);
    if (!s) return rf_errorf(err, RF_ENOMEM, "out of memory");
    c->steps = s;
    *st = &s[c->n++];
    memset(*st, 0, sizeof **st);
    return 0;
}

int rf_text_dup_str(json_t *v, char **out, size_t *n, const char *field, rf_error *err)
{
    if (!json_is_string(v))
        return rf_error_field(err, RF_EINVAL, field, "%s must be a string", field);
    *n = json_string_length(v);
    if (!(*out = malloc(*n + 1))) return rf_errorf(err, RF_ENOMEM, "out of memory");
    memcpy(*out, json_string_value(v), *n + 1);
    return 0;
}

int rf_normalizer_load(rf_text_chain *c, json_t *j, rf_error *err)
{
    if (!j || json_is_null(j)) return 0;
    const char *type = json_string_value(json_object_get(j, "type"));
    rf_text_step *st;
    int rc;
    if (!type) return rf_error_field(err, RF_EINVAL, "normalizer.type", "normalizer has no type");
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "normalizers"), *e;
        size_t i;
        json_array_foreach(list, i, e) if ((rc = rf_normalizer_load(c, e, err))) return rc;
        return 0;
    }
    if ((rc = rf_text_step_add(c, &st, err))) return rc;
    if (!strcmp(type, "Prepend")) {
        st->type = N_PREPEND;
        return rf_text_dup_str(json_object_get(j, "prepend"), &st->a, &st->an, "normalizer.prepend",
                               err);
    }
    if (!strcmp(type, "Replace")) {
        st->type = N_REPLACE;
        if ((rc = rf_pattern_load(&st->pat, json_object_get(j, "pattern"), "normalizer.pattern",
                                  err)))
            return rc;
        return rf_text_dup_str(json_object_get(j, "content"), &st->b, &st->bn, "normalizer.content",
                               err);
    }
    if (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") ||
        !strcmp(type, "NFKD")) {
        st->type = N_UNICODE;
        st->i1 = UTF8PROC_STABLE |
                 (type[2] == 'C' || type[3] == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                 (type[2] == 'K' ? UTF8PROC_COMPAT : 0);
        return 0;
    }
    if (!strcmp(type, "Lowercase")) return st->type = N_LOWER, 0;
    if (!strcmp(type, "Strip")) {
        st->type = N_STRIP;
        st->i1 = json_is_true(json_object_get(j, "strip_left"));
        st->i2 = json_is_true(json_object_get(j, "strip_right"));
        return 0;
    }
    return rf_error_field(err, RF_EUNSUPPORTED, "normalizer.type",
                          "normalizer \"%s\" is not supported", type);
}

static int behavior_of(const char *b)
{
    if (!b) return -1;
    if (!strcmp(b, "Removed")) return B_REMOVED;
    if (!strcmp(b, "Isolated")) return B_ISOLATED;
    if (!strcmp(b, "MergedWithPrevious")) return B_MERGED_PREV;
    if (!strcmp(b, "MergedWithNext")) return B_MERGED_NEXT;
    if (!strcmp(b, "Contiguous")) return B_CONTIGUOUS;
    return -1;
}

int rf_text_prepend_scheme(json_t *j)
{
    const char *s = json_string_value(json_object_get(j, "prepend_scheme"));
    if (s) return !strcmp(s, "first") ? 1 : !strcmp(s, "never") ? 2 : 0;
    /* Older files: add_prefix_space true/false. */
    return json_is_false(json_object_get(j, "add_prefix_space")) ? 2 : 0;
}

int rf_pretok_load(rf_text_chain *c, json_t *j, rf_error *err)
{
    if (!j || json_is_null(j)) return 0;
    const char *type = json_string_value(json_object_get(j, "type"));
    rf_text_step *st;
    int rc;
    if (!type)
        return rf_error_field(err, RF_EINVAL, "pre_tokenizer.type", "pre_tokenizer has no type");
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "pretokenizers"), *e;
        size_t i;
        json_array_foreach(list, i, e) if ((rc = rf_pretok_load(c, e, err))) return rc;
        return 0;
    }
    /* Byte mapping is done once, after the last split; a step that cut
     * the mapped text would see other characters, so refuse that order. */
    if (c->byte_level)
        return rf_error_field(err, RF_EUNSUPPORTED, "pre_tokenizer",
                              "a pre-tokenizer after ByteLevel is not supported");
    if ((rc = rf_text_step_add(c, &st, err))) return rc;
    if (!strcmp(type, "Split")) {
        st->type = P_SPLIT;
        if ((rc = rf_pattern_load(&st->pat, json_object_get(j, "pattern"), "pre_tokenizer.pattern",
                                  err)))
            return rc;
        st->i1 = behavior_of(json_string_value(json_object_get(j, "behavior")));
        if (st->i1 < 0)
            return rf_error_field(err, RF_EINVAL, "pre_tokenizer.behavior",
                                  "unknown Split behavior");
        st->i2 = json_is_true(json_object_get(j, "invert"));
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        st->type = P_BYTELEVEL;
        st->i1 = json_is_true(json_object_get(j, "add_prefix_space"));
        st->i2 = !json_is_false(json_object_get(j, "use_regex"));
        c->byte_level = 1;
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        st->type = P_METASPACE;
        if ((rc = rf_text_dup_str(json_object_get(j, "replacement"), &st->a, &st->an,
                                  "pre_tokenizer.replacement", err)))
            return rc;
        st->i1 = rf_text_prepend_scheme(j);
        st->i2 = !json_is_false(json_object_get(j, "split"));
        return 0;
    }
    return rf_error_field(err, RF_EUNSUPPORTED, "pre_tokenizer.type",
                          "pre-tokenizer \"%s\" is not supported", type);
}

void rf_text_chain_free(rf_text_chain *c)
{
    for (size_t i = 0; i < c->n; i++) {
        pattern_free(&c->steps[i].pat);
        free(c->steps[i].a);
        free(c->steps[i].b);
    }
    free(c->steps);
    memset(c, 0, sizeof *c);
}

/* ---- applying ---- */

/* Append s with every match of p replaced by rep. */
int rf_replace_all(const rf_pattern *p, const char *s, size_t n, const size_t *org, const char *rep,
                   size_t rn, rf_strbuf *out)
{
    OnigRegion *rg = p->re ? onig_region_new() : NULL;
    size_t at = 0, ms, me;
    int rc = 0;
    if (p->re && !rg) return RF_ENOMEM;
    while (!rc && pattern_next(p, s, n, at, rg, &ms, &me)) {
        if (org) /* the replacement stands where its match began */
            rc = rf_strbuf_add_org(out, s + at, ms - at, org + at, 0) ||
                         rf_strbuf_add_org(out, rep, rn, NULL, org[ms])
                     ? RF_ENOMEM
                     : 0;
        else
            rc = rf_strbuf_add(out, s + at, ms - at) || rf_strbuf_add(out, rep, rn) ? RF_ENOMEM : 0;
        at = me;
    }
    if (!rc)
        rc = org ? rf_strbuf_add_org(out, s + at, n - at, org + at, 0)
                 : rf_strbuf_add(out, s + at, n - at);
    if (rg) onig_region_free(rg, 1);
    return rc;
}

/* Unicode's Final_Sigma condition: a cased letter before (skipping
 * case-ignorable marks), none after. */
static int is_cased(utf8proc_int32_t cp)
{
    return utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp || utf8proc_totitle(cp) != cp;
}

static int is_case_ignorable(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK || cp == '\'' || cp == 0x2019 ||
           cp == '.' || cp == ':' || cp == 0xB7;
}

static int final_sigma(const char *s, size_t n, size_t at, size_t len)
{
    int before = 0;
    for (size_t i = at; i > 0;) {
        size_t k = i - 1;
        while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80)
            k--;
        utf8proc_int32_t cp;
        utf8proc_iterate((const utf8proc_uint8_t *)s + k, (utf8proc_ssize_t)(i - k), &cp);
        i = k;
        if (is_case_ignorable(cp)) continue;
        before = is_cased(cp);
        break;
    }
    if (!before) return 0;
    for (size_t i = at + len; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0) break;
        i += (size_t)l;
        if (is_case_ignorable(cp)) continue;
        return !is_cased(cp);
    }
    return 1;
}

/* One normalizer step from (s, org) to out; every output byte gets the
 * original offset of the byte it came from (inserted text: where it was
 * inserted), so that tokens can be traced back to the input. */
static int normalize_step(const rf_text_step *st, const char *s, size_t n, const size_t *org,
                          rf_strbuf *out)
{
    out->n = 0;
    switch (st->type) {
    case N_PREPEND:
        if (!n) return rf_strbuf_add_org(out, "", 0, NULL, 0);
        return rf_strbuf_add_org(out, st->a, st->an, NULL, org[0] | RF_ORG_INSERTED) ||
                       rf_strbuf_add_org(out, s, n, org, 0)
                   ? RF_ENOMEM
                   : 0;
    case N_REPLACE:
        return rf_replace_all(&st->pat, s, n, org, st->b, st->bn, out);
    case N_UNICODE: {
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                          (utf8proc_option_t)st->i1);
        if (r < 0) return r == UTF8PROC_ERROR_NOMEM ? RF_ENOMEM : RF_EINVAL;
        int rc = rf_strbuf_add_org(out, (const char *)dst, (size_t)r, NULL, 0);
        /* Already normal (the usual case): origins carry over exactly;
         * otherwise they are spread in proportion, which keeps them in
         * order and within the text. */
        int same = (size_t)r == n && !memcmp(dst, s, n);
        for (size_t k = 0; !rc && k < (size_t)r; k++)
            out->org[k] = same ? org[k] : org[k * n / (size_t)r];
        free(dst);
        return rc;
    }
    case N_LOWER:
        /* Full lowercasing as the reference (Rust's str::to_lowercase)
         * does it: utf8proc's simple mapping plus the two rules of
         * SpecialCasing.txt that apply without a locale — U+0130 becomes
         * "i" + U+0307, and capital sigma at a word's end becomes U+03C2. */
        for (size_t i = 0; i < n;) {
            utf8proc_int32_t cp, lc;
            utf8proc_ssize_t l =
                utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
            if (l <= 0) return RF_EINVAL;
            utf8proc_uint8_t enc[8];
            utf8proc_ssize_t el;
            if (cp == 0x130) {
                el = utf8proc_encode_char('i', enc);
                el += utf8proc_encode_char(0x307, enc + el);
            } else {
                lc = utf8proc_tolower(cp);
                if (cp == 0x3A3 && final_sigma(s, n, i, (size_t)l)) lc = 0x3C2;
                el = utf8proc_encode_char(lc, enc);
            }
            if (rf_strbuf_add_org(out, (const char *)enc, (size_t)el, NULL, org[i]))
                return RF_ENOMEM;
            i += (size_t)l;
        }
        return rf_strbuf_add_org(out, "", 0, NULL, 0);
    case N_STRIP: {
        size_t b = 0, e = n, l;
        while (st->i1 && b < e && (l = rf_text_space_at(s + b, s + e)))
            b += l;
        /* Trailing: step back over whole characters while they are spaces. */
        while (st->i2 && e > b) {
            size_t k = e - 1;
            while (k > b && ((uint8_t)s[k] & 0xC0) == 0x80)
                k--;
            if (!rf_text_space_at(s + k, s + e)) break;
            e = k;
        }
        return rf_strbuf_add_org(out, s + b, e - b, org + b, 0);
    }
    }
    return RF_EINTERNAL;
}

int rf_normalize(const rf_text_chain *c, const char *s, size_t n, const size_t *org, rf_strbuf *out)
{
    rf_strbuf tmp = {0};
    int rc = 0;
    out->n = 0;
    if ((rc = rf_strbuf_add_org(out, s, n, org, 0))) return rc;
    for (size_t i = 0; i < c->n && !rc; i++) {
        if ((rc = normalize_step(&c->steps[i], out->s, out->n, out->org, &tmp))) break;
        rf_strbuf t = *out;
        *out = tmp, tmp = t;
    }
    rf_strbuf_free(&tmp);
    return rc;
}

/* Cut one piece by a pattern with a Split behaviour, appending to out.
 * The runs (match or not) are folded the way the reference folds them:
 * each either starts a new piece or extends the last one. */
static int split_piece(const rf_pattern *p, int behavior, int invert, const char *s, size_t n,
                       const size_t *org, OnigRegion *rg, rf_pieces *out)
{
    size_t at = 0, ms = 0, me = 0, last_o = 0, last_n = 0;
    int have_last = 0, prev_match = 0, rc;
    for (;;) {
        int found = pattern_next(p, s, n, at, rg, &ms, &me);
        size_t seg[2][2] = {{at, found ? ms : n}, {ms, me}};
        for (int k = 0; k < (found ? 2 : 1); k++) {
            size_t o = seg[k][0], l = seg[k][1] - seg[k][0];
            if (!l) continue;
            int m = (k == 1) != invert, extend;
            if (behavior == B_REMOVED && m) continue;
            switch (behavior) {
            case B_MERGED_PREV:
                extend = m && !prev_match;
                break;
            case B_MERGED_NEXT:
                extend = prev_match;
                break;
            case B_CONTIGUOUS:
                extend = m == prev_match;
                break;
            default:
                extend = 0;
            }
            if (extend && have_last) {
                last_n = o + l - last_o;
            } else {
                if (have_last && (rc = rf_pieces_add_org(out, s + last_o, last_n, org + last_o)))
                    return rc;
                last_o = o, last_n = l, have_last = 1;
            }
            prev_match = m;
        }
        if (!found) break;
        at = me;
    }
    if (have_last && (rc = rf_pieces_add_org(out, s + last_o, last_n, org + last_o))) return rc;
    return 0;
}

static int map_bytes(const char *s, size_t n, const size_t *org, rf_strbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        int cp = byte_to_cp((uint8_t)s[i]);
        char enc[2];
        size_t l = cp < 0x80 ? 1 : 2;
        if (cp < 0x80)
            enc[0] = (char)cp;
        else
            enc[0] = (char)(0xC0 | (cp >> 6)), enc[1] = (char)(0x80 | (cp & 0x3F));
        if (rf_strbuf_add_org(out, enc, l, NULL, org[i])) return RF_ENOMEM;
    }
    return 0;
}

static int pretok_step(const rf_text_step *st, rf_pieces *in, rf_pieces *out, int first,
                       OnigRegion *rg)
{
    rf_strbuf tmp = {0};
    int rc = 0;
    rf_pieces_reset(out);
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = in->buf.s + in->off[i];
        const size_t *org = in->buf.org + in->off[i];
        size_t n = in->len[i], here = n ? org[0] : 0;
        switch (st->type) {
        case P_SPLIT:
            rc = split_piece(&st->pat, st->i1, st->i2, s, n, org, rg, out);
            break;
        case P_BYTELEVEL:
            tmp.n = 0;
            if (st->i1 && (n == 0 || s[0] != ' '))
                rc = rf_strbuf_add_org(&tmp, " ", 1, NULL, here | RF_ORG_INSERTED);
            if (!rc) rc = rf_strbuf_add_org(&tmp, s, n, org, 0);
            if (rc) break;
            if (st->i2) {
                rf_pattern gp = {.re = re_gpt2};
                rc = split_piece(&gp, B_ISOLATED, 0, tmp.s, tmp.n, tmp.org, rg, out);
            } else {
                rc = rf_pieces_add_org(out, tmp.s, tmp.n, tmp.org);
            }
            break;
        case P_METASPACE: {
            tmp.n = 0;
            rf_pattern sp = {.lit = " ", .lit_len = 1};
            int starts = n >= st->an && !memcmp(s, st->a, st->an);
            if (!starts && n && s[0] == ' ') starts = 1; /* the space becomes the replacement */
            if (!starts && (st->i1 == 0 || (st->i1 == 1 && first && i == 0)))
                rc = rf_strbuf_add_org(&tmp, st->a, st->an, NULL, here | RF_ORG_INSERTED);
            if (!rc) rc = rf_replace_all(&sp, s, n, org, st->a, st->an, &tmp);
            if (rc) break;
            if (st->i2) {
                rf_pattern rp = {.lit = st->a, .lit_len = st->an};
                rc = split_piece(&rp, B_MERGED_NEXT, 0, tmp.s, tmp.n, tmp.org, rg, out);
            } else {
                rc = rf_pieces_add_org(out, tmp.s, tmp.n, tmp.org);
            }
            break;
        }
        default:
            rc = RF_EINTERNAL;
        }
    }
    rf_strbuf_free(&tmp);
    return rc;
}

int rf_pretokenize(const rf_text_chain *c, const char *s, size_t n, const size_t *org, int first,
                   rf_pieces *out)
{
    rf_pieces a = {0}, b = {0};
    rf_strbuf mapped = {0};
    OnigRegion *rg = onig_region_new();
    int rc = rg ? rf_pieces_add_org(&a, s, n, org) : RF_ENOMEM;
    for (size_t i = 0; i < c->n && !rc; i++) {
        if ((rc = pretok_step(&c->steps[i], &a, &b, first, rg))) break;
        rf_pieces t = a;
        a = b, b = t;
    }
    for (size_t i = 0; i < a.n && !rc; i++) {
        if (!a.len[i]) continue;
        if (c->byte_level) {
            mapped.n = 0;
            if (!(rc = map_bytes(a.buf.s + a.off[i], a.len[i], a.buf.org + a.off[i], &mapped)))
                rc = rf_pieces_add_org(out, mapped.s, mapped.n, mapped.org);
        } else {
            rc = rf_pieces_add_org(out, a.buf.s + a.off[i], a.len[i], a.buf.org + a.off[i]);
        }
    }
    if (rg) onig_region_free(rg, 1);
    rf_pieces_free(&a);
    rf_pieces_free(&b);
    rf_strbuf_free(&mapped);
    return rc;
}
