#include "engine/data/rouge.h"

#include <stdlib.h>
#include <string.h>

/* ---- tokens ---------------------------------------------------------------
 * rouge_score: text.lower(), re.sub("[^a-z0-9]+", " "), split, keep
 * tokens matching ^[a-z0-9]+$. So a token is a maximal run of ASCII
 * letters and digits of the lowercased text. Only two characters outside
 * ASCII lowercase into ASCII letters (Python's str.lower over all of
 * Unicode): U+0130 'İ' → "i" + U+0307 (a combining dot, which separates)
 * and U+212A KELVIN SIGN → "k". Everything else outside ASCII separates. */

static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int n = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (!n) {
        *cp = 0xFFFD; /* a stray continuation byte: a separator */
        return 1;
    }
    uint32_t v = c & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return (size_t)i;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return (size_t)n;
}

size_t rf_rouge_tokenize(const char *text, rf_rouge_token_fn fn, void *user)
{
    const unsigned char *s = (const unsigned char *)text;
    char buf[256];
    size_t len = 0, count = 0;
    char *big = NULL; /* tokens longer than buf */
    size_t big_cap = 0;
#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (len) {                                                                                 \
            fn(user, big ? big : buf, len);                                                        \
            count++;                                                                               \
            len = 0;                                                                               \
        }                                                                                          \
    } while (0)
#define PUSH(ch)                                                                                   \
    do {                                                                                           \
        if (len + 1 > sizeof buf && !big) {                                                        \
            big_cap = 1024;                                                                        \
            big = malloc(big_cap);                                                                 \
            if (!big) return count;                                                                \
            memcpy(big, buf, len);                                                                 \
        } else if (big && len + 1 > big_cap) {                                                     \
            char *nb = realloc(big, big_cap * 2);                                                  \
            if (!nb) {                                                                             \
                free(big);                                                                         \
                return count;                                                                      \
            }                                                                                      \
            big = nb;                                                                              \
            big_cap *= 2;                                                                          \
        }                                                                                          \
        (big ? big : buf)[len++] = (ch);                                                           \
    } while (0)
    while (*s) {
        uint32_t cp;
        s += utf8_next(s, &cp);
        if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
            PUSH((char)cp);
        } else if (cp >= 'A' && cp <= 'Z') {
            PUSH((char)(cp - 'A' + 'a'));
        } else if (cp == 0x212A) {
            PUSH('k');
        } else if (cp == 0x130) {
            PUSH('i');
            FLUSH();
        } else {
            FLUSH();
        }
        if (big && !len) {
            free(big);
            big = NULL;
        }
    }
    FLUSH();
    free(big);
#undef PUSH
#undef FLUSH
    return count;
}

/* ---- LCS and F1 ------------------------------------------------------------ */

size_t rf_lcs_bits(const uint64_t *pm, size_t w, size_t m, const uint32_t *b, size_t n,
                   const int32_t *slot, uint64_t *v)
{
    for (size_t i = 0; i < w; i++)
        v[i] = ~0ull;
    for (size_t j = 0; j < n; j++) {
        int32_t k = slot[b[j]];
        if (k < 0) continue; /* U = 0: V unchanged */
        const uint64_t *M = pm + (size_t)k * w;
        unsigned carry = 0;
        for (size_t i = 0; i < w; i++) {
            uint64_t u = v[i] & M[i], sum;
            unsigned c1 = __builtin_add_overflow(v[i], u, &sum);
            unsigned c2 = __builtin_add_overflow(sum, (uint64_t)carry, &sum);
            carry = c1 | c2;
            v[i] = sum | (v[i] & ~M[i]);
        }
    }
    size_t zeros = 0;
    for (size_t i = 0; i < w; i++) {
        uint64_t x = ~v[i];
        if (i == w - 1 && m % 64) x &= (1ull << (m % 64)) - 1;
        zeros += (size_t)__builtin_popcountll(x);
    }
    return zeros;
}

size_t rf_lcs_ids(const uint32_t *a, size_t m, const uint32_t *b, size_t n)
{
    if (!m || !n) return 0;
    size_t w = (m + 63) / 64;
    /* a's distinct tokens get local ids 0..k-1 (linear search: this entry
     * point is for single pairs; rf_dedup keeps its own tables); b's tokens
     * are mapped to them, k standing for "not in a". */
    uint32_t *ids = malloc(m * sizeof *ids), *bl = malloc(n * sizeof *bl);
    uint64_t *pm = calloc(m * w, sizeof *pm), *v = malloc(w * sizeof *v);
    int32_t *slot = malloc((m + 1) * sizeof *slot);
    size_t k = 0, out = 0;
    if (!ids || !bl || !pm || !v || !slot) goto done;
    for (size_t i = 0; i < m; i++) {
        size_t s = 0;
        while (s < k && ids[s] != a[i])
            s++;
        if (s == k) ids[k++] = a[i];
        pm[s * w + i / 64] |= 1ull << (i % 64);
    }
    for (size_t s = 0; s < k; s++)
        slot[s] = (int32_t)s;
    slot[k] = -1;
    for (size_t j = 0; j < n; j++) {
        size_t s = 0;
        while (s < k && ids[s] != b[j])
            s++;
        bl[j] = (uint32_t)s;
    }
    out = rf_lcs_bits(pm, w, m, bl, n, slot, v);
done:
    free(ids);
    free(bl);
    free(pm);
    free(v);
    free(slot);
    return out;
}

double rf_rouge_f1(size_t lcs, size_t m, size_t n)
{
    /* rouge_score's _score_lcs: precision = lcs / len(prediction), recall =
     * lcs / len(target), fmeasure = 2 * precision * recall / (precision +
     * recall), the same operations in the same order (F1 is symmetric: 2p
     * is exact and products commute). */
    if (!m || !n) return 0;
    double p = (double)lcs / (double)n, r = (double)lcs / (double)m;
    return p + r > 0 ? 2 * p * r / (p + r) : 0;
}

typedef struct idvec {
    uint32_t *v;
    size_t n, cap;
    /* interning for rf_rouge_l: strings of the two texts */
    char **strs;
    size_t nstr, capstr;
} idvec;

static void collect(void *user, const char *tok, size_t len)
{
    idvec *x = user;
    size_t id = 0;
    while (id < x->nstr && !(strlen(x->strs[id]) == len && !memcmp(x->strs[id], tok, len)))
        id++;
    if (id == x->nstr) {
        if (x->nstr == x->capstr) {
            size_t c = x->capstr ? x->capstr * 2 : 16;
            char **ns = realloc(x->strs, c * sizeof *ns);
            if (!ns) return;
            x->strs = ns, x->capstr = c;
        }
        if (!(x->strs[x->nstr] = strndup(tok, len))) return;
        x->nstr++;
    }
    if (x->n == x->cap) {
        size_t c = x->cap ? x->cap * 2 : 32;
        uint32_t *nv = realloc(x->v, c * sizeof *nv);
        if (!nv) return;
        x->v = nv, x->cap = c;
    }
    x->v[x->n++] = (uint32_t)id;
}

double rf_rouge_l(const char *a, const char *b)
{
    idvec x = {0};
    rf_rouge_tokenize(a, collect, &x);
    size_t m = x.n;
    rf_rouge_tokenize(b, collect, &x);
    size_t n = x.n - m;
    double f = rf_rouge_f1(rf_lcs_ids(x.v, m, x.v + m, n), m, n);
    for (size_t i = 0; i < x.nstr; i++)
        free(x.strs[i]);
    free(x.strs);
    free(x.v);
    return f;
}
