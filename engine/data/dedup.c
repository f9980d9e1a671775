#include "engine/data/dedup.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/rouge.h"

/* Slack on the bounds: a comparison is skipped only when its bound is below
 * the threshold by more than float rounding of the package's formula. */
#define SLACK 1e-9
/* Candidates at which the verification fans out over OpenMP threads. */
#define PAR_MIN 2048

typedef struct posting {
    uint32_t item;
    uint32_t len;   /* the item's token count: the length bound without a lookup */
    uint32_t count; /* the token's occurrences in the item */
} posting;

typedef struct term {
    uint32_t str, len; /* in strs */
    posting *post;     /* the items holding the token; df = n */
    uint32_t n, cap;
} term;

struct rf_dedup {
    double t;
    /* interned tokens */
    char *strs;
    size_t strs_len, strs_cap;
    term *terms;
    size_t nterms, terms_cap;
    uint32_t *table; /* open addressing: term id + 1, 0 empty */
    size_t table_cap;
    /* the comparison set: each item's tokens, and its bag as (id, count) */
    uint32_t *toks, *bag;
    size_t toks_len, toks_cap, bag_len, bag_cap;
    size_t *tok_off, *bag_off;
    uint32_t *tok_n, *bag_n;
    size_t nitems, items_cap;
    /* query scratch: the text's ids, its counts and mask slots by id, the
     * stamp that keeps a candidate from being listed twice */
    uint32_t *q, *qdist, *cnt, *stamp, *cand, *ov; /* ov: overlap in the probed tokens */
    int32_t *slot;
    uint64_t *pm;
    size_t q_len, q_cap, qdist_cap, scratch_terms, stamp_cap, cand_cap, pm_cap;
    uint32_t qid;
    bool failed; /* out of memory while tokenizing */
    rf_dedup_stats st;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * elem);
    if (!n) return false;
    *p = n;
    *cap = c;
    return true;
}

static bool rehash(rf_dedup *d)
{
    size_t cap = d->table_cap ? d->table_cap * 2 : 1024;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t) return false;
    for (size_t i = 0; i < d->nterms; i++) {
        size_t h = hash(d->strs + d->terms[i].str, d->terms[i].len) & (cap - 1);
        while (t[h])
            h = (h + 1) & (cap - 1);
        t[h] = (uint32_t)i + 1;
    }
    free(d->table);
    d->table = t;
    d->table_cap = cap;
    return true;
}

/* The id of a token, interned on first sight; UINT32_MAX when out of memory. */
static uint32_t intern(rf_dedup *d, const char *s, size_t n)
{
    if ((d->nterms + 1) * 2 > d->table_cap && !rehash(d)) return UINT32_MAX;
    size_t h = hash(s, n) & (d->table_cap - 1);
    while (d->table[h]) {
        term *t = &d->terms[d->table[h] - 1];
        if (t->len == n && !memcmp(d->strs + t->str, s, n)) return d->table[h] - 1;
        h = (h + 1) & (d->table_cap - 1);
    }
    if (!grow((void **)&d->strs, &d->strs_cap, d->strs_len + n, 1) ||
        !grow((void **)&d->terms, &d->terms_cap, d->nterms + 1, sizeof *d->terms))
        return UINT32_MAX;
    memcpy(d->strs + d->strs_len, s, n);
    d->terms[d->nterms] = (term){.str = (uint32_t)d->strs_len, .len = (uint32_t)n};
    d->strs_len += n;
    d->table[h] = (uint32_t)d->nterms + 1;
    return (uint32_t)d->nterms++;
}

static void on_token(void *user, const char *tok, size_t len)
{
    rf_dedup *d = user;
    uint32_t id = intern(d, tok, len);
    if (id == UINT32_MAX || !grow((void **)&d->q, &d->q_cap, d->q_len + 1, sizeof *d->q)) {
        d->failed = true;
        return;
    }
    d->q[d->q_len++] = id;
}

/* Tokenize text into d->q and make the per-term scratch cover every id. */
static int tokenize(rf_dedup *d, const char *text, rf_error *err)
{
    d->q_len = 0;
    d->failed = false;
    rf_rouge_tokenize(text, on_token, d);
    if (d->failed) return rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
    if (d->nterms > d->scratch_terms) {
        size_t c = d->scratch_terms ? d->scratch_terms : 1024;
        while (c < d->nterms)
            c *= 2;
        uint32_t *cnt = realloc(d->cnt, c * sizeof *cnt);
        if (cnt) d->cnt = cnt;
        int32_t *slot = realloc(d->slot, c * sizeof *slot);
        if (slot) d->slot = slot;
        if (!cnt || !slot) return rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
        memset(d->cnt + d->scratch_terms, 0, (c - d->scratch_terms) * sizeof *cnt);
        for (size_t i = d->scratch_terms; i < c; i++)
            d->slot[i] = -1;
        d->scratch_terms = c;
    }
    /* the distinct ids with their counts (cnt is all zeros between queries) */
    if (!grow((void **)&d->qdist, &d->qdist_cap, d->q_len, sizeof *d->qdist) && d->q_len)
        return rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
    return 0;
}

int rf_dedup_new(double threshold, rf_dedup **out, rf_error *err)
{
    if (!(threshold >= 0 && threshold <= 1))
        return rf_error_field(err, RF_EINVAL, "dedup.rouge_l",
                              "the ROUGE-L threshold must be in [0, 1]");
    rf_dedup *d = calloc(1, sizeof *d);
    if (!d) return rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
    d->t = threshold;
    *out = d;
    return 0;
}

void rf_dedup_free(rf_dedup *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->nterms; i++)
        free(d->terms[i].post);
    free(d->strs);
    free(d->terms);
    free(d->table);
    free(d->toks);
    free(d->bag);
    free(d->tok_off);
    free(d->bag_off);
    free(d->tok_n);
    free(d->bag_n);
    free(d->q);
    free(d->qdist);
    free(d->cnt);
    free(d->stamp);
    free(d->ov);
    free(d->cand);
    free(d->slot);
    free(d->pm);
    free(d);
}

size_t rf_dedup_size(const rf_dedup *d)
{
    return d->nitems;
}

void rf_dedup_get_stats(const rf_dedup *d, rf_dedup_stats *out)
{
    *out = d->st;
}

static int by_df(const void *a, const void *b, void *arg)
{
    const rf_dedup *d = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint32_t dx = d->terms[x].n, dy = d->terms[y].n;
    return dx < dy ? -1 : dx > dy ? 1 : x < y ? -1 : x > y;
}

/* One candidate item against the query (bag in cnt, masks in pm/slot):
 * the bounds, then the exact F1. Returns the F1, or -1 when a bound ruled
 * it out (*cut says which: 1 length, 2 bag). */
static double verify(const rf_dedup *d, size_t item, size_t m, size_t w, uint64_t *v, int *cut)
{
    size_t n = d->tok_n[item];
    double t = d->t, mn = (double)(m + n);
    size_t lo = m < n ? m : n;
    if (2.0 * (double)lo / mn < t - SLACK) {
        *cut = 1;
        return -1;
    }
    const uint32_t *bag = d->bag + d->bag_off[item];
    size_t inter = 0;
    for (uint32_t k = 0; k < d->bag_n[item]; k++) {
        uint32_t c = d->cnt[bag[2 * k]], cb = bag[2 * k + 1];
        inter += c < cb ? c : cb;
    }
    if (2.0 * (double)inter / mn < t - SLACK) {
        *cut = 2;
        return -1;
    }
    *cut = 0;
    size_t lcs = rf_lcs_bits(d->pm, w, m, d->toks + d->tok_off[item], n, d->slot, v);
    return rf_rouge_f1(lcs, m, n);
}

int rf_dedup_check(rf_dedup *d, const char *text, bool *dup, size_t *match, double *score,
                   rf_error *err)
{
    *dup = false;
    int rc = tokenize(d, text, err);
    if (rc) return rc;
    d->st.queries++;
    size_t m = d->q_len;
    if (!m || !d->nitems) return 0; /* no tokens: F1 0 with everything */
    /* The fewest shared tokens an F1 above t needs: L > t*m/(2-t) (from
     * 2L/(m+n) > t with L <= n). */
    double need = d->t * (double)m / (2.0 - d->t) - SLACK;
    size_t alpha = need < 0 ? 1 : (size_t)floor(need) + 1;
    if (alpha > m) return 0;

    size_t w = (m + 63) / 64, nd = 0;
    for (size_t i = 0; i < m; i++)
        if (d->cnt[d->q[i]]++ == 0) d->qdist[nd++] = d->q[i];
    /* rarest first: the prefix probed below is the first m - alpha + 1 */
    qsort_r(d->qdist, nd, sizeof *d->qdist, by_df, d);
    rc = 0;
    if (!grow((void **)&d->pm, &d->pm_cap, nd * w, sizeof *d->pm)) {
        rc = rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
        goto out;
    }
    memset(d->pm, 0, nd * w * sizeof *d->pm);
    for (size_t k = 0; k < nd; k++)
        d->slot[d->qdist[k]] = (int32_t)k;
    for (size_t i = 0; i < m; i++)
        d->pm[(size_t)d->slot[d->q[i]] * w + i / 64] |= 1ull << (i % 64);

    if (++d->qid == 0) { /* the stamp wrapped: start over */
        memset(d->stamp, 0, d->stamp_cap * sizeof *d->stamp);
        d->qid = 1;
    }
    /* The lengths n an F1 above t allows: 2 min(m, n)/(m + n) > t, i.e.
     * t*m/(2-t) < n < (2-t)*m/t (with the slack, so wider). */
    double nlo = d->t * (double)m / (2.0 - d->t) - 1.0;
    double nhi = d->t > 0 ? (2.0 - d->t) * (double)m / d->t + 1.0 : 1e18;
    size_t prefix = m - alpha + 1, seen = 0, nc = 0, probed = 0;
    uint64_t lcut = 0, bcut = 0, pcut = 0, nlcs = 0;
    for (size_t k = 0; k < nd && seen < prefix; k++) {
        uint32_t id = d->qdist[k], ca = d->cnt[id];
        const term *tm = &d->terms[id];
        seen += ca;
        probed += ca;
        if (!grow((void **)&d->cand, &d->cand_cap, nc + tm->n, sizeof *d->cand)) {
            rc = rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
            goto out;
        }
        for (uint32_t j = 0; j < tm->n; j++) {
            const posting *p = &tm->post[j];
            uint32_t it = p->item, add = ca < p->count ? ca : p->count;
            if (d->stamp[it] == d->qid) {
                if (d->ov[it] != UINT32_MAX) d->ov[it] += add;
                continue;
            }
            d->stamp[it] = d->qid;
            double n = p->len;
            if (n <= nlo || n >= nhi) {
                d->ov[it] = UINT32_MAX; /* out of the length range: never a candidate */
                lcut++;
                continue;
            }
            d->ov[it] = add;
            d->cand[nc++] = it;
        }
    }
    /* The overlap is known for the probed tokens; the others can add at most
     * their own count: a candidate below t even so is out, unread. */
    size_t rest = m - probed, kept_c = 0;
    d->st.candidates += nc;
    for (size_t c = 0; c < nc; c++) {
        uint32_t it = d->cand[c];
        double bound = 2.0 * (double)(d->ov[it] + rest) / (double)(m + d->tok_n[it]);
        if (bound < d->t - SLACK)
            pcut++;
        else
            d->cand[kept_c++] = it;
    }
    d->st.prefix_cut += pcut;
    nc = kept_c;

    /* Verify. The decision is "some candidate is above t", the same in any
     * order; the match reported is the lowest index, also in any order. */
    size_t best = SIZE_MAX;
    double best_f = 0;
    if (nc >= PAR_MIN) {
#pragma omp parallel reduction(+ : lcut, bcut, nlcs)
        {
            uint64_t vs[16], *v = w <= 16 ? vs : malloc(w * sizeof *v);
            size_t my = SIZE_MAX;
            double my_f = 0;
#pragma omp for schedule(static)
            for (size_t c = 0; c < nc; c++) {
                if (!v) continue;
                int cut;
                double f = verify(d, d->cand[c], m, w, v, &cut);
                lcut += cut == 1, bcut += cut == 2, nlcs += cut == 0;
                if (f > d->t && d->cand[c] < my) my = d->cand[c], my_f = f;
            }
#pragma omp critical
            if (my < best) best = my, best_f = my_f;
            if (v != vs) free(v);
        }
    } else {
        uint64_t vs[16], *v = w <= 16 ? vs : malloc(w * sizeof *v);
        if (!v) {
            rc = rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
            goto out;
        }
        for (size_t c = 0; c < nc; c++) {
            int cut;
            double f = verify(d, d->cand[c], m, w, v, &cut);
            lcut += cut == 1, bcut += cut == 2, nlcs += cut == 0;
            if (f > d->t && d->cand[c] < best) best = d->cand[c], best_f = f;
        }
        if (v != vs) free(v);
    }
    d->st.length_cut += lcut, d->st.bag_cut += bcut, d->st.lcs += nlcs;
    if (best != SIZE_MAX) {
        *dup = true;
        if (match) *match = best;
        if (score) *score = best_f;
    }
out:
    for (size_t k = 0; k < nd; k++) {
        d->cnt[d->qdist[k]] = 0;
        d->slot[d->qdist[k]] = -1;
    }
    return rc;
}

int rf_dedup_add(rf_dedup *d, const char *text, rf_error *err)
{
    int rc = tokenize(d, text, err);
    if (rc) return rc;
    size_t m = d->q_len, it = d->nitems;
    if (it >= UINT32_MAX - 1) return rf_errorf(err, RF_ETOOBIG, "dedup: too many texts");
    if (!grow((void **)&d->tok_off, &d->items_cap, it + 1, sizeof *d->tok_off)) goto oom;
    size_t cap = d->items_cap;
    /* the per-item arrays share items_cap */
    size_t *bo = realloc(d->bag_off, cap * sizeof *bo);
    if (bo) d->bag_off = bo;
    uint32_t *tn = realloc(d->tok_n, cap * sizeof *tn);
    if (tn) d->tok_n = tn;
    uint32_t *bn = realloc(d->bag_n, cap * sizeof *bn);
    if (bn) d->bag_n = bn;
    size_t scap = d->stamp_cap;
    if (!bo || !tn || !bn || !grow((void **)&d->stamp, &d->stamp_cap, cap, sizeof *d->stamp))
        goto oom;
    if (d->stamp_cap != scap) {
        uint32_t *ov = realloc(d->ov, d->stamp_cap * sizeof *ov);
        if (!ov) goto oom;
        d->ov = ov;
    }
    if (!grow((void **)&d->toks, &d->toks_cap, d->toks_len + m, sizeof *d->toks) ||
        !grow((void **)&d->bag, &d->bag_cap, d->bag_len + 2 * m, sizeof *d->bag))
        goto oom;
    memset(d->stamp + it, 0, sizeof *d->stamp);
    if (m) memcpy(d->toks + d->toks_len, d->q, m * sizeof *d->q);
    d->tok_off[it] = d->toks_len;
    d->tok_n[it] = (uint32_t)m;
    d->toks_len += m;
    size_t nd = 0;
    for (size_t i = 0; i < m; i++)
        if (d->cnt[d->q[i]]++ == 0) d->qdist[nd++] = d->q[i];
    d->bag_off[it] = d->bag_len;
    d->bag_n[it] = (uint32_t)nd;
    rc = 0;
    for (size_t k = 0; k < nd; k++) {
        uint32_t id = d->qdist[k];
        term *tm = &d->terms[id];
        d->bag[d->bag_len++] = id;
        d->bag[d->bag_len++] = d->cnt[id];
        if (!rc && tm->n == tm->cap) {
            uint32_t c = tm->cap ? tm->cap * 2 : 4;
            posting *p = realloc(tm->post, c * sizeof *p);
            if (!p)
                rc = rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
            else
                tm->post = p, tm->cap = c;
        }
        if (!rc) tm->post[tm->n++] = (posting){(uint32_t)it, (uint32_t)m, d->cnt[id]};
        d->cnt[id] = 0;
    }
    if (!rc) d->nitems++;
    return rc;
oom:
    return rf_errorf(err, RF_ENOMEM, "dedup: out of memory");
}

int rf_dedup_offer(rf_dedup *d, const char *text, bool *kept, rf_error *err)
{
    bool dup;
    int rc = rf_dedup_check(d, text, &dup, NULL, NULL, err);
    if (rc) return rc;
    *kept = !dup;
    return dup ? 0 : rf_dedup_add(d, text, err);
}
