#include "engine/tokenizer/tokenizer.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer_bpe.h"
#include "engine/tokenizer/tokenizer_decode.h"
#include "engine/tokenizer/tokenizer_text.h"

/* An entry of tokenizer.json's `added_tokens`. */
typedef struct rf_added {
    int32_t id;
    char *content;
    size_t len;
    int special, lstrip, rstrip, single_word, normalized;
} rf_added;

/* Added tokens of one kind (matched on raw or on normalized text), sorted
 * by first byte then longest first, so that the first hit at a position is
 * the leftmost-longest match the reference's Aho-Corasick finds. */
typedef struct rf_added_set {
    int32_t *idx; /* indices into rf_tokenizer.added */
    size_t n;
    size_t start[257];
} rf_added_set;

struct rf_tokenizer {
    rf_bpe bpe;
    rf_text_chain norm, pretok, dec;
    rf_added *added;
    size_t n_added;
    rf_added_set raw, normed;
    uint8_t *special;         /* per id: 1 when a special added token */
    int32_t *prefix, *suffix; /* what the post-processor puts around a sequence */
    size_t n_prefix, n_suffix;
    char *bos, *eos, *chat_template;
    json_t *config; /* tokenizer_config.json as read, for the chat template's variables */
    int32_t bos_id, eos_id;
    int cleanup; /* tokenizer_config.json's clean_up_tokenization_spaces */
};

/* A stretch of input: an added token (id >= 0) or text to tokenize. */
typedef struct seg {
    int32_t id;
    size_t off, len;
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
} segs;

static int segs_push(segs *s, int32_t id, size_t off, size_t len)
{
    if (id < 0 && !len) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        seg *p = realloc(s->v, cap * sizeof *p);
        if (!p) return RF_ENOMEM;
        s->v = p, s->cap = cap;
    }
    s->v[s->n++] = (seg){id, off, len};
    return 0;
}

/* ---- loading ---- */

static const rf_added *g_sort_added; /* qsort has no context argument in C11 */

static int cmp_added(const void *a, const void *b)
{
    const rf_added *x = &g_sort_added[*(const int32_t *)a], *y = &g_sort_added[*(const int32_t *)b];
    uint8_t cx = (uint8_t)x->content[0], cy = (uint8_t)y->content[0];
    if (cx != cy) return cx < cy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

static int build_set(rf_tokenizer *t, rf_added_set *set, int normalized)
{
    set->idx = malloc((t->n_added + 1) * sizeof *set->idx);
    if (!set->idx) return RF_ENOMEM;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len && !!t->added[i].normalized == normalized)
            set->idx[set->n++] = (int32_t)i;
    static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&sort_lock);
    g_sort_added = t->added;
    qsort(set->idx, set->n, sizeof *set->idx, cmp_added);
    pthread_mutex_unlock(&sort_lock);
    size_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < set->n && (uint8_t)t->added[set->idx[k]].content[0] < b)
            k++;
        set->start[b] = k;
    }
    return 0;
}

static int load_added(rf_tokenizer *t, json_t *list, int32_t *max_id, rf_error *err)
{
    *max_id = -1;
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list))
        return rf_error_field(err, RF_EINVAL, "added_tokens", "added_tokens must be an array");
    t->added = calloc(json_array_size(list) + 1, sizeof *t->added);
    if (!t->added) return rf_errorf(err, RF_ENOMEM, "out of memory");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_t *id = json_object_get(e, "id"), *c = json_object_get(e, "content");
        char field[64];
        snprintf(field, sizeof field, "added_tokens[%zu]", i);
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= INT32_MAX / 2 || !json_is_string(c) || !json_string_length(c))
            return rf_error_field(err, RF_EINVAL, field,
                                  "an added token needs an id and a non-empty content");
        rf_added *a = &t->added[t->n_added++];
        a->id = (int32_t)json_integer_value(id);
        a->len = json_string_length(c);
        if (!(a->content = malloc(a->len + 1))) return rf_errorf(err, RF_ENOMEM, "out of memory");
        memcpy(a->content, json_string_value(c), a->len + 1);
        a->special = json_is_true(json_object_get(e, "special"));
        a->lstrip = json_is_true(json_object_get(e, "lstrip"));
        a->rstrip = json_is_true(json_object_get(e, "rstrip"));
        a->single_word = json_is_true(json_object_get(e, "single_word"));
        a->normalized = json_is_true(json_object_get(e, "normalized"));
        if (a->id > *max_id) *max_id = a->id;
    }
    return 0;
}

static int32_t lookup_added(const rf_tokenizer *t, const char *s, size_t n)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, s, n)) return t->added[i].id;
    return -1;
}

int32_t rf_tokenizer_token_to_id(const rf_tokenizer *t, const char *token)
{
    size_t n = strlen(token);
    int32_t id = lookup_added(t, token, n);
    return id >= 0 ? id : rf_bpe_lookup(&t->bpe, token, n);
}

static int ids_append(int32_t **v, size_t *n, json_t *ids, const char *field, rf_error *err)
{
    size_t i;
    json_t *e;
    json_array_foreach(ids, i, e)
    {
        if (!json_is_integer(e))
            return rf_error_field(err, RF_EINVAL, field, "ids must be integers");
        int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
        if (!p) return rf_errorf(err, RF_ENOMEM, "out of memory");
        *v = p;
        p[(*n)++] = (int32_t)json_integer_value(e);
    }
    return 0;
}

/* Bert/Roberta processing: [cls] A [sep], each given as ["text", id]. */
static int load_cls_sep(rf_tokenizer *t, json_t *pp, rf_error *err)
{
    json_t *cls = json_object_get(pp, "cls"), *sep = json_object_get(pp, "sep");
    if (!json_is_integer(json_array_get(cls, 1)) || !json_is_integer(json_array_get(sep, 1)))
        return rf_error_field(err, RF_EINVAL, "post_processor",
                              "cls and sep must be [\"token\", id]");
    json_t *a = json_pack("[O]", json_array_get(cls, 1)),
           *b = json_pack("[O]", json_array_get(sep, 1));
    int rc = a && b ? 0 : rf_errorf(err, RF_ENOMEM, "out of memory");
    if (!rc) rc = ids_append(&t->prefix, &t->n_prefix, a, "post_processor.cls", err);
    if (!rc) rc = ids_append(&t->suffix, &t->n_suffix, b, "post_processor.sep", err);
    json_decref(a);
    json_decref(b);
    return rc;
}

static int load_post(rf_tokenizer *t, json_t *pp, rf_error *err)
{
    if (!pp || json_is_null(pp)) return 0;
    const char *type = json_string_value(json_object_get(pp, "type"));
    int rc;
    if (!type)
        return rf_error_field(err, RF_EINVAL, "post_processor.type", "post_processor has no type");
    if (!strcmp(type, "ByteLevel")) return 0; /* only trims offsets; ids are untouched */
    if (!strcmp(type, "Sequence")) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(pp, "processors"), i,
                           e) if ((rc = load_post(t, e, err))) return rc;
        return 0;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing"))
        return load_cls_sep(t, pp, err);
    if (strcmp(type, "TemplateProcessing"))
        return rf_error_field(err, RF_EUNSUPPORTED, "post_processor.type",
                              "post-processor \"%s\" is not supported", type);
    /* TemplateProcessing: the `single` template, e.g. [<s>, $A]; each
     * SpecialToken names an entry of special_tokens holding its ids. */
    json_t *single = json_object_get(pp, "single"),
           *specials = json_object_get(pp, "special_tokens"), *item;
    size_t i;
    int seen_seq = 0;
    if (!json_is_array(single))
        return rf_error_field(err, RF_EINVAL, "post_processor.single",
                              "TemplateProcessing needs a single template");
    json_array_foreach(single, i, item)
    {
        json_t *sp = json_object_get(item, "SpecialToken");
        if (json_object_get(item, "Sequence")) {
            seen_seq = 1;
            continue;
        }
        const char *name = json_string_value(json_object_get(sp, "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids))
            return rf_error_field(err, RF_EINVAL, "post_processor.special_tokens",
                                  "template token \"%s\" has no ids in special_tokens",
                                  name ? name : "?");
        if ((rc = seen_seq ? ids_append(&t->suffix, &t->n_suffix, ids,
                                        "post_processor.special_tokens", err)
                           : ids_append(&t->prefix, &t->n_prefix, ids,
                                        "post_processor.special_tokens", err)))
            return rc;
    }
    return 0;
}

/* bos_token / eos_token are a string or {"content": …} in tokenizer_config.json. */
static int config_token(json_t *v, char **out)
{
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return 0;
    return (*out = strdup(json_string_value(v))) ? 0 : RF_ENOMEM;
}

static int load_config(rf_tokenizer *t, const char *config_json, rf_error *err)
{
    json_error_t je;
    /* model_max_length is often 1e30 written as an integer: read numbers as reals. */
    json_t *c = json_loads(config_json, JSON_DECODE_INT_AS_REAL, &je);
    int rc = 0;
    if (!c)
        return rf_errorf(err, RF_EINVAL, "tokenizer_config.json: %s at line %d", je.text, je.line);
    json_t *tpl = json_object_get(c, "chat_template");
    if (json_is_array(tpl)) {
        /* Several named templates: the one called "default" is the chat one. */
        size_t i;
        json_t *e, *found = NULL;
        json_array_foreach(
            tpl, i, e) if (!strcmp(json_string_value(json_object_get(e, "name")) ?: "", "default"))
            found = json_object_get(e, "template");
        tpl = found;
    }
    if (json_is_string(tpl) && !(t->chat_template = strdup(json_string_value(tpl)))) rc = RF_ENOMEM;
    if (json_is_boolean(json_object_get(c, "clean_up_tokenization_spaces")))
        t->cleanup = json_is_true(json_object_get(c, "clean_up_tokenization_spaces"));
    if (!rc) rc = config_token(json_object_get(c, "bos_token"), &t->bos);
    if (!rc) rc = config_token(json_object_get(c, "eos_token"), &t->eos);
    t->config = c;
    return rc ? rf_errorf(err, rc, "out of memory") : 0;
}

int rf_tokenizer_load_json(const char *tokenizer_json, const char *config_json, rf_tokenizer **out,
                           rf_error *err)
{
    json_error_t je;
    json_t *root = NULL;
    int32_t max_added;
    int rc;
    rf_tokenizer *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) return rf_errorf(err, RF_ENOMEM, "out of memory");
    t->bos_id = t->eos_id = -1;
    t->cleanup = 1;
    if ((rc = rf_text_init(err))) goto fail;
    if (!(root = json_loads(tokenizer_json, 0, &je))) {
        rc = rf_errorf(err, RF_EINVAL, "tokenizer.json is not valid JSON: %s at line %d", je.text,
                       je.line);
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = rf_errorf(err, RF_EINVAL, "tokenizer.json must hold an object");
        goto fail;
    }
    if ((rc = load_added(t, json_object_get(root, "added_tokens"), &max_added, err))) goto fail;
    if ((rc = rf_bpe_load(&t->bpe, json_object_get(root, "model"), max_added, err))) goto fail;
    for (size_t i = 0; i < t->n_added; i++)
        if ((rc = rf_bpe_set_text(&t->bpe, t->added[i].id, t->added[i].content, t->added[i].len)))
            goto nomem;
    if (!(t->special = calloc((size_t)t->bpe.n_ids, 1))) goto nomem;
    for (size_t i = 0; i < t->n_added; i++)
        t->special[t->added[i].id] |= (uint8_t)t->added[i].special;
    if (build_set(t, &t->raw, 0) || build_set(t, &t->normed, 1)) goto nomem;
    if ((rc = rf_normalizer_load(&t->norm, json_object_get(root, "normalizer"), err))) goto fail;
    if ((rc = rf_pretok_load(&t->pretok, json_object_get(root, "pre_tokenizer"), err))) goto fail;
    if ((rc = rf_decoder_load(&t->dec, json_object_get(root, "decoder"), err))) goto fail;
    if ((rc = load_post(t, json_object_get(root, "post_processor"), err))) goto fail;
    for (size_t i = 0; i < t->n_prefix + t->n_suffix; i++) {
        int32_t id = i < t->n_prefix ? t->prefix[i] : t->suffix[i - t->n_prefix];
        if (id < 0 || id >= t->bpe.n_ids || !rf_bpe_text(&t->bpe, id)) {
            rc = rf_error_field(err, RF_EINVAL, "post_processor",
                                "post-processor id %d is not a token", id);
            goto fail;
        }
    }
    if (config_json && (rc = load_config(t, config_json, err))) goto fail;
    if (t->bos)
        t->bos_id = rf_tokenizer_token_to_id(t, t->bos);
    else if (t->n_prefix)
        t->bos_id = t->prefix[0];
    if (t->eos) t->eos_id = rf_tokenizer_token_to_id(t, t->eos);
    json_decref(root);
    *out = t;
    return 0;
nomem:
    rc = rf_errorf(err, RF_ENOMEM, "out of memory loading the tokenizer");
fail:
    json_decref(root);
    rf_tokenizer_free(t);
    return rc;
}

static char *read_file(const char *path, rf_error *err, int *rc)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        *rc = rf_errorf(err, RF_ENOTFOUND, "cannot open %s", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0) goto io;
    long sz = ftell(f);
    rewind(f);
    if (!(buf = malloc((size_t)sz + 1))) {
        fclose(f);
        *rc = rf_errorf(err, RF_ENOMEM, "out of memory reading %s", path);
        return NULL;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) goto io;
    buf[sz] = '\0';
    fclose(f);
    return buf;
io:
    free(buf);
    fclose(f);
    *rc = rf_errorf(err, RF_EIO, "cannot read %s", path);
    return NULL;
}

int rf_tokenizer_load(const char *dir, rf_tokenizer **out, rf_error *err)
{
    char path[4096];
    int rc = 0;
    *out = NULL;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *tj = read_file(path, err, &rc);
    if (!tj) return rc;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *probe = fopen(path, "rb");
    char *cj = NULL;
    if (probe) {
        fclose(probe);
        if (!(cj = read_file(path, err, &rc))) {
            free(tj);
            return rc;
        }
    }
    rc = rf_tokenizer_load_json(tj, cj, out, err);
    if (rc) rf_error_wrap(err, "loading the tokenizer in %s", dir);
    free(tj);
    free(cj);
    return rc;
}

void rf_tokenizer_free(rf_tokenizer *t)
{
    if (!t) return;
    rf_bpe_free(&t->bpe);
    rf_text_chain_free(&t->norm);
    rf_text_chain_free(&t->pretok);
    rf_text_chain_free(&t->dec);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->raw.idx);
    free(t->normed.idx);
    free(t->special);
    free(t->prefix);
    free(t->suffix);
    free(t->bos);
    free(t->eos);
    free(t->chat_template);
    json_decref(t->config);
    free(t);
}

/* ---- encoding ---- */

static size_t char_start_before(const char *s, size_t i)
{
    do
        i--;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

/* Cut s[0, n) at the added tokens of `set`, appending stretches to out
 * (offsets relative to base). lstrip/rstrip swallow the whitespace beside
 * a token; single_word tokens only count between non-word characters. */
static int split_added(const rf_tokenizer *t, const rf_added_set *set, const char *s, size_t n,
                       size_t base, segs *out)
{
    size_t done = 0, i = 0;
    int rc;
    while (i < n) {
        uint8_t b = (uint8_t)s[i];
        const rf_added *hit = NULL;
        for (size_t k = set->start[b]; k < set->start[b + 1]; k++) {
            const rf_added *a = &t->added[set->idx[k]];
            if (a->len <= n - i && !memcmp(s + i, a->content, a->len)) {
                hit = a;
                break;
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        size_t ms = i, me = i + hit->len;
        if (hit->single_word &&
            ((ms > 0 && rf_text_word_at(s + char_start_before(s, ms), s + ms)) ||
             rf_text_word_at(s + me, s + n))) {
            i = me;
            continue;
        }
        if (hit->lstrip)
            while (ms > done) {
                size_t p = char_start_before(s, ms);
                if (p < done || !rf_text_space_at(s + p, s + ms)) break;
                ms = p;
            }
        if (hit->rstrip) {
            size_t l;
            while (me < n && (l = rf_text_space_at(s + me, s + n)))
                me += l;
        }
        if ((rc = segs_push(out, -1, base + done, ms - done))) return rc;
        if ((rc = segs_push(out, hit->id, base + ms, me - ms))) return rc;
        done = i = me;
    }
    return segs_push(out, -1, base + done, n - done);
}

static int utf8_ok(const char *s, size_t n)
{
    rf_strbuf probe = {0};
    /* Lossy conversion changes nothing exactly when s is valid UTF-8. */
    int ok = !rf_utf8_lossy(&probe, s, n) && probe.n == n;
    free(probe.s);
    return ok;
}

/* Normalize, pre-tokenize and BPE one stretch of plain text. */
/* The state of one encode call: outputs and scratch reused across words. */
typedef struct enc {
    rf_idvec ids;
    rf_token_span *sp; /* NULL unless the caller wants offsets */
    size_t sp_n, sp_cap;
    int want_spans;
    rf_strbuf nbuf;  /* normalized text, with origins */
    rf_pieces words; /* pre-tokenized words, with origins */
    rf_bpe_scratch sc;
    rf_idvec wsp; /* token ranges inside one word */
    size_t *org;  /* identity origins of the current stretch */
    size_t org_cap;
} enc;

static int emit(enc *e, int32_t id, size_t start, size_t end)
{
    if (rf_idvec_push(&e->ids, id)) return RF_ENOMEM;
    if (!e->want_spans) return 0;
    if (e->sp_n == e->sp_cap) {
        size_t cap = e->sp_cap ? e->sp_cap * 2 : 64;
        rf_token_span *p = realloc(e->sp, cap * sizeof *p);
        if (!p) return RF_ENOMEM;
        e->sp = p, e->sp_cap = cap;
    }
    e->sp[e->sp_n++] = (rf_token_span){start, end};
    return 0;
}

/* A token's span from the origins of its bytes: from the first to the last
 * byte that came from the input; a token made only of inserted text gets
 * an empty span where it was inserted. */
static rf_token_span span_of(const size_t *org, size_t a, size_t z)
{
    size_t first = z, last = z;
    for (size_t k = a; k < z; k++)
        if (!(org[k] & RF_ORG_INSERTED)) {
            if (first == z) first = k;
            last = k;
        }
    if (first == z) {
        size_t at = org[a] & ~RF_ORG_INSERTED;
        return (rf_token_span){at, at};
    }
    return (rf_token_span){org[first], org[last] + 1};
}

/* Normalize, pre-tokenize and BPE the plain text text[off, off + len).
 * Every byte carries its input offset through the stages, so that each
 * token can be traced back to the input bytes it stands for. */
static int encode_text(const rf_tokenizer *t, enc *e, const char *text, size_t off, size_t len,
                       int first)
{
    int rc;
    if (len > e->org_cap) {
        size_t *o = realloc(e->org, len * sizeof *o);
        if (!o) return RF_ENOMEM;
        e->org = o, e->org_cap = len;
    }
    for (size_t k = 0; k < len; k++)
        e->org[k] = off + k;
    const char *txt = text + off;
    const size_t *torg = e->org;
    size_t tn = len;
    if (t->norm.n) {
        if ((rc = rf_normalize(&t->norm, txt, len, e->org, &e->nbuf))) return rc;
        txt = e->nbuf.s, tn = e->nbuf.n, torg = e->nbuf.org;
    }
    segs inner = {0};
    if ((rc = split_added(t, &t->normed, txt, tn, 0, &inner))) goto out;
    for (size_t i = 0; i < inner.n && !rc; i++) {
        size_t o = inner.v[i].off, l = inner.v[i].len;
        if (inner.v[i].id >= 0) {
            rf_token_span sp = span_of(torg, o, o + l);
            rc = emit(e, inner.v[i].id, sp.start, sp.end);
            continue;
        }
        rf_pieces_reset(&e->words);
        if ((rc = rf_pretokenize(&t->pretok, txt + o, l, torg + o, first && o == 0, &e->words)))
            break;
        for (size_t w = 0; w < e->words.n && !rc; w++) {
            const size_t *worg = e->words.buf.org + e->words.off[w];
            size_t before = e->ids.n;
            e->wsp.n = 0;
            rc = rf_bpe_word(&t->bpe, e->words.buf.s + e->words.off[w], e->words.len[w], &e->sc,
                             &e->ids, e->want_spans ? &e->wsp : NULL);
            if (rc || !e->want_spans) continue;
            /* rf_bpe_word pushed the ids; record their spans beside them. */
            size_t added = e->ids.n - before;
            e->ids.n = before;
            for (size_t k = 0; k < added && !rc; k++) {
                rf_token_span sp =
                    span_of(worg, (size_t)e->wsp.v[2 * k], (size_t)e->wsp.v[2 * k + 1]);
                rc = emit(e, e->ids.v[before + k], sp.start, sp.end);
            }
        }
    }
out:
    free(inner.v);
    return rc;
}

int rf_tokenizer_encode_spans(const rf_tokenizer *t, const char *text, size_t len, int add_special,
                              int32_t **ids, rf_token_span **spans, size_t *n, rf_error *err)
{
    enc e = {.want_spans = spans != NULL};
    segs top = {0};
    int rc = 0;
    *ids = NULL;
    if (spans) *spans = NULL;
    *n = 0;
    if (!utf8_ok(text, len)) return rf_errorf(err, RF_EINVAL, "text to encode is not valid UTF-8");
    for (size_t i = 0; add_special && i < t->n_prefix && !rc; i++)
        rc = emit(&e, t->prefix[i], 0, 0);
    if (!rc) rc = split_added(t, &t->raw, text, len, 0, &top);
    for (size_t i = 0; i < top.n && !rc; i++) {
        const seg *g = &top.v[i];
        if (g->id >= 0)
            rc = emit(&e, g->id, g->off, g->off + g->len);
        else
            rc = encode_text(t, &e, text, g->off, g->len, g->off == 0);
    }
    for (size_t i = 0; add_special && i < t->n_suffix && !rc; i++)
        rc = emit(&e, t->suffix[i], len, len);
    /* Non-NULL arrays, even when empty. */
    if (!rc && !e.ids.v) rc = rf_idvec_push(&e.ids, 0), e.ids.n = 0;
    if (!rc && spans && !e.sp && !(e.sp = malloc(sizeof *e.sp))) rc = RF_ENOMEM;
    free(top.v);
    rf_strbuf_free(&e.nbuf);
    rf_pieces_free(&e.words);
    rf_bpe_scratch_free(&e.sc);
    free(e.wsp.v);
    free(e.org);
    if (rc) {
        free(e.ids.v);
        free(e.sp);
        if (rc == RF_ENOMEM) return rf_errorf(err, rc, "out of memory while encoding");
        return rf_errorf(err, rc, "encoding failed: the text could not be normalized");
    }
    *ids = e.ids.v;
    if (spans) *spans = e.sp;
    *n = e.ids.n;
    return 0;
}

int rf_tokenizer_encode(const rf_tokenizer *t, const char *text, size_t len, int add_special,
                        int32_t **ids, size_t *n, rf_error *err)
{
    return rf_tokenizer_encode_spans(t, text, len, add_special, ids, NULL, n, err);
}

/* ---- decoding ---- */

/* transformers' clean_up_tokenization: these replacements, in this order. */
static int cleanup_spaces(rf_strbuf *b)
{
    static const char *const from[] = {" .",   " ?",  " !",  " ,",   " ' ",
                                       " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
        size_t fl = strlen(from[k]), tl = strlen(to[k]), w = 0, r = 0;
        /* Every replacement is shorter than its pattern, so in place works. */
        while (r < b->n) {
            if (b->n - r >= fl && !memcmp(b->s + r, from[k], fl)) {
                memmove(b->s + w, to[k], tl);
                w += tl, r += fl;
            } else {
                b->s[w++] = b->s[r++];
            }
        }
        b->n = w;
        b->s[w] = '\0';
    }
    return 0;
}

int rf_tokenizer_decode(const rf_tokenizer *t, const int32_t *ids, size_t n, int flags, char **text,
                        size_t *len, rf_error *err)
{
    rf_pieces toks = {0};
    rf_strbuf out = {0};
    int rc = 0;
    *text = NULL;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *s = rf_bpe_text(&t->bpe, ids[i]);
        if (!s) {
            rc = rf_errorf(err, RF_EINVAL, "token id %d (position %zu) is not in the vocabulary",
                           ids[i], i);
            goto fail;
        }
        if ((flags & RF_DECODE_SKIP_SPECIAL) && t->special[ids[i]]) continue;
        rc = rf_pieces_add(&toks, s, t->bpe.len[ids[i]]);
    }
    if (!rc) rc = rf_decode_chain(&t->dec, &toks, &out);
    if (!rc && !out.s) rc = rf_strbuf_add(&out, "", 0);
    if (!rc && t->cleanup && !(flags & RF_DECODE_NO_CLEANUP)) rc = cleanup_spaces(&out);
    if (rc) {
        rc = rf_errorf(err, rc, "out of memory while decoding");
        goto fail;
    }
    rf_pieces_free(&toks);
    *text = out.s;
    if (len) *len = out.n;
    return 0;
fail:
    rf_pieces_free(&toks);
    free(out.s);
    return rc;
}

/* ---- lookups ---- */

int32_t rf_tokenizer_vocab_size(const rf_tokenizer *t)
{
    return t->bpe.n_ids;
}
const char *rf_tokenizer_id_to_token(const rf_tokenizer *t, int32_t id)
{
    return rf_bpe_text(&t->bpe, id);
}
int rf_tokenizer_is_special(const rf_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->bpe.n_ids && t->special[id];
}
int32_t rf_tokenizer_bos_id(const rf_tokenizer *t)
{
    return t->bos_id;
}
int32_t rf_tokenizer_eos_id(const rf_tokenizer *t)
{
    return t->eos_id;
}
const json_t *rf_tokenizer_config(const rf_tokenizer *t)
{
    return t->config;
}

const char *rf_tokenizer_chat_template(const rf_tokenizer *t)
{
    return t->chat_template;
}
const char *rf_tokenizer_bos_token(const rf_tokenizer *t)
{
    return t->bos;
}
const char *rf_tokenizer_eos_token(const rf_tokenizer *t)
{
    return t->eos;
}
