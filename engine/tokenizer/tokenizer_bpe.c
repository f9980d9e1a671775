#include "engine/tokenizer/tokenizer_bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rf_bpe_cand {
    int32_t rank, pos; /* pos: index of the left symbol */
    int32_t left, right;
} rf_bpe_cand;

int rf_idvec_push(rf_idvec *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) return RF_ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 0;
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    /* FNV-1a: token texts are short, and this is not exposed to attackers
     * in a way that matters (the vocabulary is fixed at load). */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_pair(uint64_t k)
{
    k *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

int32_t rf_bpe_lookup(const rf_bpe *m, const char *s, size_t n)
{
    if (!m->slot) return -1;
    for (uint32_t i = hash_bytes(s, n) & m->slot_mask;; i = (i + 1) & m->slot_mask) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        if (m->len[id] == n && !memcmp(m->text + m->off[id], s, n)) return id;
    }
}

static int append_text(rf_bpe *m, int32_t id, const char *s, size_t n)
{
    if (m->text_len + n + 1 > m->text_cap) {
        size_t cap = m->text_cap ? m->text_cap : 4096;
        while (cap < m->text_len + n + 1)
            cap *= 2;
        char *p = realloc(m->text, cap);
        if (!p) return RF_ENOMEM;
        m->text = p;
        m->text_cap = cap;
    }
    if (m->text_len + n + 1 > UINT32_MAX) return RF_ETOOBIG;
    memcpy(m->text + m->text_len, s, n);
    m->text[m->text_len + n] = '\0';
    m->off[id] = (uint32_t)m->text_len;
    m->len[id] = (uint32_t)n;
    m->text_len += n + 1;
    return 0;
}

int rf_bpe_set_text(rf_bpe *m, int32_t id, const char *s, size_t n)
{
    if (id < 0 || id >= m->n_ids) return RF_EINTERNAL;
    if (m->off[id] != UINT32_MAX) return 0;
    return append_text(m, id, s, n);
}

/* A merge's two sides as ids; `"a b"` strings split at their one space. */
static int merge_sides(const rf_bpe *m, json_t *e, size_t k, int32_t *a, int32_t *b, rf_error *err)
{
    const char *l, *r;
    size_t ln, rn;
    char field[64];
    snprintf(field, sizeof field, "model.merges[%zu]", k);
    if (json_is_string(e)) {
        const char *s = json_string_value(e);
        size_t n = json_string_length(e);
        const char *sp = memchr(s, ' ', n);
        if (!sp || sp == s || sp + 1 == s + n || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
            return rf_error_field(err, RF_EINVAL, field,
                                  "merge \"%.60s\" is not two tokens separated by one space", s);
        l = s, ln = (size_t)(sp - s), r = sp + 1, rn = (size_t)(s + n - sp - 1);
    } else if (json_is_array(e) && json_array_size(e) == 2 &&
               json_is_string(json_array_get(e, 0)) && json_is_string(json_array_get(e, 1))) {
        l = json_string_value(json_array_get(e, 0)), ln = json_string_length(json_array_get(e, 0));
        r = json_string_value(json_array_get(e, 1)), rn = json_string_length(json_array_get(e, 1));
    } else {
        return rf_error_field(err, RF_EINVAL, field, "a merge is either \"a b\" or [\"a\", \"b\"]");
    }
    *a = rf_bpe_lookup(m, l, ln);
    *b = rf_bpe_lookup(m, r, rn);
    if (*a < 0 || *b < 0)
        return rf_error_field(err, RF_EINVAL, field, "merge side \"%.*s\" is not in the vocabulary",
                              (int)(*a < 0 ? (ln > 60 ? 60 : ln) : (rn > 60 ? 60 : rn)),
                              *a < 0 ? l : r);
    return 0;
}

static int load_merges(rf_bpe *m, json_t *merges, rf_error *err)
{
    size_t n = json_array_size(merges);
    if (n > INT32_MAX / 4) return rf_errorf(err, RF_ETOOBIG, "too many merges (%zu)", n);
    uint32_t cap = pow2_at_least((uint64_t)n * 2);
    m->mkey = malloc(cap * sizeof *m->mkey);
    m->mrank = malloc(cap * sizeof *m->mrank);
    m->mres = malloc(cap * sizeof *m->mres);
    if (!m->mkey || !m->mrank || !m->mres)
        return rf_errorf(err, RF_ENOMEM, "out of memory for merges");
    memset(m->mrank, 0xff, cap * sizeof *m->mrank);
    m->mmask = cap - 1;
    char *buf = NULL;
    size_t buf_cap = 0;
    int rc = 0;
    for (size_t k = 0; k < n; k++) {
        int32_t a = -1, b = -1;
        if ((rc = merge_sides(m, json_array_get(merges, k), k, &a, &b, err))) goto out;
        size_t need = (size_t)m->len[a] + m->len[b];
        if (need > buf_cap) {
            char *p = realloc(buf, need * 2);
            if (!p) {
                rc = rf_errorf(err, RF_ENOMEM, "out of memory for merges");
                goto out;
            }
            buf = p, buf_cap = need * 2;
        }
        memcpy(buf, m->text + m->off[a], m->len[a]);
        memcpy(buf + m->len[a], m->text + m->off[b], m->len[b]);
        int32_t res = rf_bpe_lookup(m, buf, need);
        if (res < 0) {
            rc = rf_error_field(err, RF_EINVAL, "model.merges",
                                "merge %zu gives \"%.*s\", which is not in the vocabulary", k,
                                (int)(need > 60 ? 60 : need), buf);
            goto out;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        uint32_t i = hash_pair(key) & m->mmask;
        while (m->mrank[i] >= 0 && m->mkey[i] != key)
            i = (i + 1) & m->mmask;
        if (m->mrank[i] >= 0) continue; /* a repeated merge keeps its first (best) rank */
        m->mkey[i] = key;
        m->mrank[i] = (int32_t)k;
        m->mres[i] = res;
        m->n_merges++;
    }
out:
    free(buf);
    return rc;
}

int rf_bpe_load(rf_bpe *m, json_t *model, int32_t max_added_id, rf_error *err)
{
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    for (int i = 0; i < 256; i++)
        m->byte_id[i] = -1;
    const char *type = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_object(model))
        return rf_error_field(err, RF_EINVAL, "model", "tokenizer.json has no model object");
    if (type && strcmp(type, "BPE"))
        return rf_error_field(err, RF_EUNSUPPORTED, "model.type",
                              "model type \"%s\" is not supported (only BPE)", type);
    if (!json_is_object(vocab))
        return rf_error_field(err, RF_EINVAL, "model.vocab", "model.vocab must be an object");
    if (merges && !json_is_array(merges))
        return rf_error_field(err, RF_EINVAL, "model.merges", "model.merges must be an array");
    json_t *v;
    if ((v = json_object_get(model, "dropout")) && !json_is_null(v) && json_number_value(v) != 0.0)
        return rf_error_field(err, RF_EUNSUPPORTED, "model.dropout",
                              "BPE dropout is not supported");
    if ((v = json_object_get(model, "continuing_subword_prefix")) && !json_is_null(v) &&
        json_string_length(v) > 0)
        return rf_error_field(err, RF_EUNSUPPORTED, "model.continuing_subword_prefix",
                              "continuing_subword_prefix is not supported");
    if ((v = json_object_get(model, "end_of_word_suffix")) && !json_is_null(v) &&
        json_string_length(v) > 0)
        return rf_error_field(err, RF_EUNSUPPORTED, "model.end_of_word_suffix",
                              "end_of_word_suffix is not supported");
    m->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    m->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    m->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));

    /* Size the id table from the largest id so that holes are allowed. */
    int32_t max_id = max_added_id;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val)
    {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= INT32_MAX / 2)
            return rf_error_field(err, RF_EINVAL, "model.vocab",
                                  "vocabulary entry \"%.60s\" has no valid id", key);
        if (json_integer_value(val) > max_id) max_id = (int32_t)json_integer_value(val);
    }
    m->n_ids = max_id + 1;
    m->off = malloc((size_t)m->n_ids * sizeof *m->off);
    m->len = calloc((size_t)m->n_ids, sizeof *m->len);
    uint32_t cap = pow2_at_least((uint64_t)json_object_size(vocab) * 2);
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->off || !m->len || !m->slot)
        return rf_errorf(err, RF_ENOMEM, "out of memory for the vocabulary");
    memset(m->off, 0xff, (size_t)m->n_ids * sizeof *m->off);
    memset(m->slot, 0xff, cap * sizeof *m->slot);
    m->slot_mask = cap - 1;
    json_object_foreach(vocab, key, val)
    {
        int32_t id = (int32_t)json_integer_value(val);
        size_t n = strlen(key);
        if (m->off[id] != UINT32_MAX)
            return rf_error_field(err, RF_EINVAL, "model.vocab",
                                  "id %d is given to both \"%.60s\" and \"%.60s\"", id,
                                  m->text + m->off[id], key);
        if (append_text(m, id, key, n))
            return rf_errorf(err, RF_ENOMEM, "out of memory for the vocabulary");
        uint32_t i = hash_bytes(key, n) & m->slot_mask;
        while (m->slot[i] >= 0)
            i = (i + 1) & m->slot_mask;
        m->slot[i] = id;
        m->n_vocab++;
    }
    if (m->byte_fallback) {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            m->byte_id[b] = rf_bpe_lookup(m, name, 6);
        }
    }
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        m->unk_id = rf_bpe_lookup(m, json_string_value(unk), json_string_length(unk));
        if (m->unk_id < 0)
            return rf_error_field(err, RF_EINVAL, "model.unk_token",
                                  "unk_token \"%.60s\" is not in the vocabulary",
                                  json_string_value(unk));
    }
    return merges ? load_merges(m, merges, err) : 0;
}

void rf_bpe_free(rf_bpe *m)
{
    free(m->off);
    free(m->len);
    free(m->text);
    free(m->slot);
    free(m->mkey);
    free(m->mrank);
    free(m->mres);
    memset(m, 0, sizeof *m);
}

void rf_bpe_scratch_free(rf_bpe_scratch *s)
{
    free(s->sym);
    free(s->prev);
    free(s->next);
    free(s->beg);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static int merge_of(const rf_bpe *m, int32_t a, int32_t b, int32_t *rank, int32_t *res)
{
    if (!m->n_merges) return 0;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint32_t i = hash_pair(key) & m->mmask; m->mrank[i] >= 0; i = (i + 1) & m->mmask)
        if (m->mkey[i] == key) {
            *rank = m->mrank[i];
            *res = m->mres[i];
            return 1;
        }
    return 0;
}

static int cand_less(const rf_bpe_cand *x, const rf_bpe_cand *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static int heap_push(rf_bpe_scratch *s, size_t *hn, rf_bpe_cand c)
{
    if (*hn == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        rf_bpe_cand *p = realloc(s->heap, cap * sizeof *p);
        if (!p) return RF_ENOMEM;
        s->heap = p, s->heap_cap = cap;
    }
    size_t i = (*hn)++;
    while (i > 0 && cand_less(&c, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = c;
    return 0;
}

static rf_bpe_cand heap_pop(rf_bpe_scratch *s, size_t *hn)
{
    rf_bpe_cand top = s->heap[0], last = s->heap[--*hn];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!cand_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static int push_pair(const rf_bpe *m, rf_bpe_scratch *s, size_t *hn, int32_t pos)
{
    int32_t nx = s->next[pos], rank, res;
    if (nx < 0 || !merge_of(m, s->sym[pos], s->sym[nx], &rank, &res)) return 0;
    return heap_push(s, hn, (rf_bpe_cand){rank, pos, s->sym[pos], s->sym[nx]});
}

static int utf8_len(uint8_t c)
{
    return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

int rf_bpe_word(const rf_bpe *m, const char *w, size_t n, rf_bpe_scratch *s, rf_idvec *out,
                rf_idvec *spans)
{
    int rc;
    if (n == 0) return 0;
    if (m->ignore_merges) {
        /* ignore_merges (Llama 3): a word that is a token as a whole is taken
         * as it is, even where the merges would have split it differently. */
        int32_t id = rf_bpe_lookup(m, w, n);
        if (id >= 0) {
            if (spans &&
                ((rc = rf_idvec_push(spans, 0)) || (rc = rf_idvec_push(spans, (int32_t)n))))
                return rc;
            return rf_idvec_push(out, id);
        }
    }
    if (n > s->cap) {
        size_t cap = n < 64 ? 64 : n;
        int32_t *a = realloc(s->sym, cap * sizeof *a);
        if (a) s->sym = a;
        int32_t *b = realloc(s->prev, cap * sizeof *b);
        if (b) s->prev = b;
        int32_t *c = realloc(s->next, cap * sizeof *c);
        if (c) s->next = c;
        int32_t *d = realloc(s->beg, cap * sizeof *d);
        if (d) s->beg = d;
        if (!a || !b || !c || !d) return RF_ENOMEM;
        s->cap = cap;
    }
    /* One symbol per character; unknown characters fall back to their
     * `<0xNN>` bytes, else to unk (fused when fuse_unk) — the reference's
     * order of preference. Where the reference would then drop the
     * character silently, this is an error: a text the model never sees
     * whole is not what the user asked for (README "Tokenizers"). */
    /* beg[] keeps where each symbol starts in w, for token offsets. */
    int32_t ns = 0, pending_unk = 0, unk_beg = 0;
#define SYM(id_, at_) (s->sym[ns] = (id_), s->beg[ns++] = (int32_t)(at_))
    for (size_t i = 0; i < n;) {
        size_t cl = (size_t)utf8_len((uint8_t)w[i]);
        if (i + cl > n) cl = n - i;
        int32_t id = rf_bpe_lookup(m, w + i, cl);
        if (id >= 0) {
            if (pending_unk) SYM(m->unk_id, unk_beg), pending_unk = 0;
            SYM(id, i);
        } else {
            int all = m->byte_fallback;
            for (size_t k = 0; all && k < cl; k++)
                all = m->byte_id[(uint8_t)w[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < cl; k++)
                    SYM(m->byte_id[(uint8_t)w[i + k]], i + k);
            } else if (m->unk_id >= 0) {
                if (pending_unk && !m->fuse_unk) SYM(m->unk_id, unk_beg);
                if (!pending_unk || !m->fuse_unk) unk_beg = (int32_t)i;
                pending_unk = 1;
            } else {
                s->unknown = i, s->unknown_len = cl;
                return RF_EINVAL;
            }
        }
        i += cl;
    }
    if (pending_unk) SYM(m->unk_id, unk_beg);
#undef SYM
    for (int32_t i = 0; i < ns; i++)
        s->prev[i] = i - 1, s->next[i] = i + 1 < ns ? i + 1 : -1;

    size_t hn = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        if ((rc = push_pair(m, s, &hn, i))) return rc;
    while (hn) {
        rf_bpe_cand c = heap_pop(s, &hn);
        int32_t nx = s->next[c.pos];
        /* Stale candidates: a side has since merged into a longer token. */
        if (s->sym[c.pos] != c.left || nx < 0 || s->sym[nx] != c.right) continue;
        int32_t rank, res;
        merge_of(m, c.left, c.right, &rank, &res);
        s->sym[c.pos] = res;
        s->sym[nx] = -1;
        s->next[c.pos] = s->next[nx];
        if (s->next[nx] >= 0) s->prev[s->next[nx]] = c.pos;
        if (s->prev[c.pos] >= 0 && (rc = push_pair(m, s, &hn, s->prev[c.pos]))) return rc;
        if ((rc = push_pair(m, s, &hn, c.pos))) return rc;
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = s->next[i]) {
        if ((rc = rf_idvec_push(out, s->sym[i]))) return rc;
        /* A token runs to where the next one begins (a dropped unknown
         * character stays with the token before it). */
        int32_t end = s->next[i] >= 0 ? s->beg[s->next[i]] : (int32_t)n;
        if (spans && ((rc = rf_idvec_push(spans, s->beg[i])) || (rc = rf_idvec_push(spans, end))))
            return rc;
    }
    return 0;
}
