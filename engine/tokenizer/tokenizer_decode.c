#include "engine/tokenizer/tokenizer_decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { D_BYTELEVEL = 1, D_REPLACE, D_BYTEFALLBACK, D_FUSE, D_STRIP, D_METASPACE };

int rf_decoder_load(rf_text_chain *c, json_t *j, rf_error *err)
{
    if (!j || json_is_null(j)) return 0;
    const char *type = json_string_value(json_object_get(j, "type"));
    rf_text_step *st;
    int rc;
    if (!type) return rf_error_field(err, RF_EINVAL, "decoder.type", "decoder has no type");
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "decoders"), *e;
        size_t i;
        json_array_foreach(list, i, e) if ((rc = rf_decoder_load(c, e, err))) return rc;
        return 0;
    }
    if ((rc = rf_text_step_add(c, &st, err))) return rc;
    if (!strcmp(type, "ByteLevel")) return st->type = D_BYTELEVEL, 0;
    if (!strcmp(type, "ByteFallback")) return st->type = D_BYTEFALLBACK, 0;
    if (!strcmp(type, "Fuse")) return st->type = D_FUSE, 0;
    if (!strcmp(type, "Replace")) {
        st->type = D_REPLACE;
        if ((rc = rf_pattern_load(&st->pat, json_object_get(j, "pattern"), "decoder.pattern", err)))
            return rc;
        return rf_text_dup_str(json_object_get(j, "content"), &st->b, &st->bn, "decoder.content",
                               err);
    }
    if (!strcmp(type, "Strip")) {
        st->type = D_STRIP;
        if ((rc = rf_text_dup_str(json_object_get(j, "content"), &st->a, &st->an, "decoder.content",
                                  err)))
            return rc;
        st->i1 = (int)json_integer_value(json_object_get(j, "start"));
        st->i2 = (int)json_integer_value(json_object_get(j, "stop"));
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        st->type = D_METASPACE;
        if ((rc = rf_text_dup_str(json_object_get(j, "replacement"), &st->a, &st->an,
                                  "decoder.replacement", err)))
            return rc;
        st->i1 = rf_text_prepend_scheme(j);
        return 0;
    }
    return rf_error_field(err, RF_EUNSUPPORTED, "decoder.type", "decoder \"%s\" is not supported",
                          type);
}

/* ---- decoding ---- */

static int32_t next_cp(const char *s, size_t n, size_t *i)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t l =
        utf8proc_iterate((const utf8proc_uint8_t *)s + *i, (utf8proc_ssize_t)(n - *i), &cp);
    if (l <= 0) {
        (*i)++;
        return -1;
    }
    *i += (size_t)l;
    return cp;
}

static int byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char ch = s[k];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* One decoder step over the token list `in`, written to `out`; the steps
 * are those of the reference's decode_chain. */
static int decode_step(const rf_text_step *st, rf_pieces *in, rf_pieces *out)
{
    rf_strbuf t = {0};
    int rc = 0;
    rf_pieces_reset(out);
    switch (st->type) {
    case D_BYTELEVEL:
        /* Each token maps back to bytes if all its characters are in the
         * alphabet, else stays as it is (added tokens); then lossy UTF-8. */
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->buf.s + in->off[i];
            size_t n = in->len[i], j = 0, mark = t.n;
            int ok = 1;
            while (j < n && ok) {
                int b = rf_bytelevel_byte(next_cp(s, n, &j));
                if (b < 0)
                    ok = 0;
                else {
                    char ch = (char)b;
                    rc = rf_strbuf_add(&t, &ch, 1);
                }
            }
            if (!ok) t.n = mark, rc = rf_strbuf_add(&t, s, n);
        }
        if (!rc) {
            rf_strbuf u = {0};
            rc = rf_utf8_lossy(&u, t.s ? t.s : "", t.n);
            if (!rc) rc = rf_pieces_add(out, u.s ? u.s : "", u.n);
            free(u.s);
        }
        break;
    case D_REPLACE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            t.n = 0;
            rc = rf_replace_all(&st->pat, in->buf.s + in->off[i], in->len[i], NULL, st->b, st->bn,
                                &t);
            if (!rc) rc = rf_pieces_add(out, t.s, t.n);
        }
        break;
    case D_BYTEFALLBACK: {
        size_t run = 0; /* byte tokens gathered in t */
        for (size_t i = 0; i <= in->n && !rc; i++) {
            int b = i < in->n ? byte_token(in->buf.s + in->off[i], in->len[i]) : -1;
            if (b >= 0) {
                char ch = (char)b;
                rc = rf_strbuf_add(&t, &ch, 1);
                run++;
                continue;
            }
            if (run) {
                size_t j = 0;
                while (j < t.n && rf_utf8_valid_at((const uint8_t *)t.s + j, t.n - j))
                    j += rf_utf8_valid_at((const uint8_t *)t.s + j, t.n - j);
                if (j == t.n)
                    rc = rf_pieces_add(out, t.s, t.n);
                else
                    for (size_t k = 0; k < run && !rc; k++)
                        rc = rf_pieces_add(out, "\xEF\xBF\xBD", 3);
                t.n = 0, run = 0;
            }
            if (!rc && i < in->n) rc = rf_pieces_add(out, in->buf.s + in->off[i], in->len[i]);
        }
        break;
    }
    case D_FUSE:
        for (size_t i = 0; i < in->n && !rc; i++)
            rc = rf_strbuf_add(&t, in->buf.s + in->off[i], in->len[i]);
        if (!rc) rc = rf_pieces_add(out, t.s ? t.s : "", t.n);
        break;
    case D_STRIP:
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->buf.s + in->off[i];
            size_t b = 0, e = in->len[i];
            for (int k = 0; k < st->i1 && e - b >= st->an && !memcmp(s + b, st->a, st->an); k++)
                b += st->an;
            for (int k = 0; k < st->i2 && e - b >= st->an && !memcmp(s + e - st->an, st->a, st->an);
                 k++)
                e -= st->an;
            rc = rf_pieces_add(out, s + b, e - b);
        }
        break;
    case D_METASPACE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->buf.s + in->off[i];
            size_t n = in->len[i];
            t.n = 0;
            for (size_t j = 0; j < n && !rc;) {
                if (n - j >= st->an && !memcmp(s + j, st->a, st->an)) {
                    /* The reference drops every replacement of the first
                     * token when a prefix was prepended, not just one. */
                    if (!(i == 0 && st->i1 != 2)) rc = rf_strbuf_add(&t, " ", 1);
                    j += st->an;
                } else {
                    rc = rf_strbuf_add(&t, s + j, 1);
                    j++;
                }
            }
            if (!rc) rc = rf_pieces_add(out, t.s ? t.s : "", t.n);
        }
        break;
    default:
        rc = RF_EINTERNAL;
    }
    free(t.s);
    return rc;
}

int rf_decode_chain(const rf_text_chain *c, rf_pieces *toks, rf_strbuf *out)
{
    rf_pieces tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < c->n && !rc; i++) {
        if ((rc = decode_step(&c->steps[i], toks, &tmp))) break;
        rf_pieces t = *toks;
        *toks = tmp, tmp = t;
    }
    out->n = 0;
    /* Without a decoder the reference joins tokens with spaces. */
    for (size_t i = 0; i < toks->n && !rc; i++) {
        if (!c->n && i && (rc = rf_strbuf_add(out, " ", 1))) break;
        rc = rf_utf8_lossy(out, toks->buf.s + toks->off[i], toks->len[i]);
    }
    if (!rc) rc = rf_strbuf_add(out, "", 0);
    rf_pieces_free(&tmp);
    return rc;
}
