#include "engine/data/parse.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void rf_pair_clear(rf_pair *p)
{
    free(p->question);
    free(p->answer);
    json_decref(p->choices);
    memset(p, 0, sizeof *p);
}

void rf_pairs_free(rf_pairs *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        rf_pair_clear(&ps->v[i]);
    free(ps->v);
    memset(ps, 0, sizeof *ps);
}

bool rf_pairs_push(rf_pairs *ps, rf_pair *p)
{
    if (ps->n == ps->cap) {
        size_t c = ps->cap ? ps->cap * 2 : 8;
        rf_pair *v = realloc(ps->v, c * sizeof *v);
        if (!v) return false;
        ps->v = v, ps->cap = c;
    }
    ps->v[ps->n++] = *p;
    memset(p, 0, sizeof *p);
    return true;
}

/* ---- small text helpers ---------------------------------------------------- */

/* A trimmed copy of s[0, n): whitespace, and the Markdown emphasis and
 * quotes a teacher wraps items in, gone from both ends. */
static char *trimmed(const char *s, size_t n)
{
    for (;;) {
        size_t before = n;
        while (n && (isspace((unsigned char)*s) || *s == '*' || *s == '"' || *s == '`'))
            s++, n--;
        while (n && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '*' || s[n - 1] == '"' ||
                     s[n - 1] == '`'))
            n--;
        if (n == before) break;
    }
    return strndup(s, n);
}

/* The JSON inside the first ``` fence (its language tag skipped), or NULL. */
static char *fenced(const char *text)
{
    const char *a = strstr(text, "```");
    if (!a) return NULL;
    a += 3;
    const char *nl = strchr(a, '\n');
    if (!nl) return NULL;
    const char *b = strstr(nl + 1, "```");
    size_t n = b ? (size_t)(b - (nl + 1)) : strlen(nl + 1); /* an unclosed fence: the rest */
    return strndup(nl + 1, n);
}

/* The first JSON value of text that starts at one of its '[' or '{' (the
 * first of each kind tried), or NULL. */
static json_t *first_json(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (v && (json_is_array(v) || json_is_object(v))) return v;
    json_decref(v);
    const char *starts[2] = {strchr(text, '['), strchr(text, '{')};
    if (starts[0] && starts[1] && starts[1] < starts[0]) {
        const char *t = starts[0];
        starts[0] = starts[1], starts[1] = t;
    }
    for (int i = 0; i < 2; i++) {
        if (!starts[i]) continue;
        v = json_loads(starts[i], JSON_DISABLE_EOF_CHECK, NULL);
        if (v) return v;
    }
    return NULL;
}

static const json_t *get_any(const json_t *o, const char *const *keys)
{
    for (int i = 0; keys[i]; i++) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)o, k, v) if (!strcasecmp(k, keys[i])) return v;
    }
    return NULL;
}

/* A string, or a number written out, as a trimmed malloc'd string. */
static char *text_of(const json_t *v)
{
    if (json_is_string(v)) return trimmed(json_string_value(v), json_string_length(v));
    if (json_is_integer(v) || json_is_real(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        return s;
    }
    return NULL;
}

/* ---- pairs ----------------------------------------------------------------- */

static const char *const q_keys[] = {"question", "q",     "instruction", "prompt",
                                     "input",    "query", NULL};
static const char *const a_keys[] = {"answer", "a", "response", "output", "completion", NULL};
static const char *const c_keys[] = {"choices", "options", NULL};
static const char *const i_keys[] = {"answer_index", "correct", "label", "answer", NULL};

/* The index an answer names: an integer, a digit string, a letter (A = 0),
 * or the text of a choice; -1 when none fits. */
static int answer_index(const json_t *a, const json_t *choices)
{
    int n = (int)json_array_size(choices);
    if (json_is_integer(a)) {
        json_int_t i = json_integer_value(a);
        return i >= 0 && i < n ? (int)i : -1;
    }
    if (!json_is_string(a)) return -1;
    char *s = trimmed(json_string_value(a), json_string_length(a));
    if (!s) return -1;
    int idx = -1;
    size_t len = strlen(s);
    for (int i = 0; i < n && idx < 0; i++)
        if (!strcasecmp(s, json_string_value(json_array_get(choices, (size_t)i)))) idx = i;
    /* "B", "B)", "(B)", "2" */
    const char *p = s;
    if (idx < 0 && *p == '(') p++, len--;
    if (idx < 0 && len >= 1 && (len == 1 || p[1] == ')' || p[1] == '.' || p[1] == ':')) {
        if (toupper((unsigned char)p[0]) >= 'A' && toupper((unsigned char)p[0]) < 'A' + n)
            idx = toupper((unsigned char)p[0]) - 'A';
        else if (isdigit((unsigned char)p[0]) && p[0] - '0' < n)
            idx = p[0] - '0';
    }
    free(s);
    return idx;
}

/* Choices as an array of at least 2 non-empty strings (an object's values
 * in order also do), or NULL. */
static json_t *choices_of(const json_t *c)
{
    if (!c) return NULL;
    json_t *out = json_array();
    size_t i;
    const char *k;
    json_t *v;
    if (json_is_array(c)) {
        json_array_foreach((json_t *)c, i, v)
        {
            char *s = text_of(v);
            if (s && *s) json_array_append_new(out, json_string(s));
            free(s);
        }
    } else if (json_is_object(c)) {
        json_object_foreach((json_t *)c, k, v)
        {
            char *s = text_of(v);
            if (s && *s) json_array_append_new(out, json_string(s));
            free(s);
        }
    }
    size_t n = json_array_size(out);
    if (n < 2 || n > 8 || n != (json_is_array(c) ? json_array_size(c) : json_object_size(c))) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static bool pair_from_object(const json_t *o, bool mc, rf_pairs *out)
{
    rf_pair p = {0};
    p.question = text_of(get_any(o, q_keys));
    if (!p.question || !*p.question) goto no;
    if (mc) {
        if (!(p.choices = choices_of(get_any(o, c_keys)))) goto no;
        p.answer_index = answer_index(get_any(o, i_keys), p.choices);
        if (p.answer_index < 0) goto no;
        p.answer = strdup(json_string_value(json_array_get(p.choices, (size_t)p.answer_index)));
    } else {
        p.answer = text_of(get_any(o, a_keys));
        if (!p.answer) goto no;
    }
    if (!p.answer) goto no;
    return rf_pairs_push(out, &p);
no:
    rf_pair_clear(&p);
    return false;
}

static size_t from_blocks(const char *text, bool mc, rf_pairs *out);

static size_t from_json(const json_t *v, bool mc, rf_pairs *out, int depth)
{
    size_t n = 0, i;
    json_t *e;
    if (depth > 3) return 0;
    if (json_is_array(v)) {
        json_array_foreach((json_t *)v, i, e)
        {
            if (json_is_object(e))
                n += pair_from_object(e, mc, out);
            else if (json_is_string(e)) /* "Q: … A: …" inside a string */
                n += from_blocks(json_string_value(e), mc, out);
        }
        return n;
    }
    if (!json_is_object(v)) return 0;
    /* {"pairs": [...]} and the like */
    const char *k;
    json_object_foreach((json_t *)v, k,
                        e) if (json_is_array(e) && json_array_size(e) &&
                               json_is_object(json_array_get(e, 0))) return from_json(e, mc, out,
                                                                                      depth + 1);
    return pair_from_object(v, mc, out);
}

static size_t from_json_lines(const char *text, bool mc, rf_pairs *out)
{
    size_t n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *s = p;
        while (len && isspace((unsigned char)*s))
            s++, len--;
        if (len && *s == '{') {
            json_t *v = json_loadb(s, len, 0, NULL);
            if (json_is_object(v)) n += pair_from_object(v, mc, out);
            json_decref(v);
        }
        p = nl ? nl + 1 : p + strlen(p);
    }
    return n;
}

/* The rest of a line after a label such as "Q:", "Question 2:", "**A:**",
 * "1. Q:" (case-insensitive), or NULL when the line has none of labels. */
static const char *after_label(const char *line, const char *const *labels)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t' || *p == '*' || *p == '#' || *p == '-')
        p++;
    if (isdigit((unsigned char)*p)) { /* "1. Q: …" */
        const char *d = p;
        while (isdigit((unsigned char)*d))
            d++;
        if (*d == '.' || *d == ')') {
            d++;
            while (*d == ' ')
                d++;
            p = d;
        }
    }
    for (int i = 0; labels[i]; i++) {
        size_t k = strlen(labels[i]);
        if (strncasecmp(p, labels[i], k)) continue;
        const char *r = p + k;
        while (isdigit((unsigned char)*r) || *r == ' ')
            r++;
        while (*r == '*')
            r++;
        if (*r != ':') continue;
        r++;
        while (*r == '*' || *r == ' ' || *r == '\t')
            r++;
        return r;
    }
    return NULL;
}

static const char *const q_labels[] = {"question", "q", NULL};
static const char *const a_labels[] = {"answer", "a", NULL};
static const char *const c_labels[] = {"choices", "options", NULL};

typedef struct block {
    char *q, *a;
    json_t *choices;
} block;

static void append(char **dst, const char *s, size_t n)
{
    size_t old = *dst ? strlen(*dst) : 0;
    char *d = realloc(*dst, old + n + 2);
    if (!d) return;
    if (old) d[old++] = '\n';
    memcpy(d + old, s, n);
    d[old + n] = '\0';
    *dst = d;
}

static size_t close_block(block *b, bool mc, rf_pairs *out)
{
    size_t n = 0;
    if (b->q && b->a) {
        json_t *o = json_object();
        json_object_set_new(o, "question", json_string(b->q));
        json_object_set_new(o, "answer", json_string(b->a));
        if (b->choices) json_object_set(o, "choices", b->choices);
        n = pair_from_object(o, mc, out);
        json_decref(o);
    }
    free(b->q);
    free(b->a);
    json_decref(b->choices);
    memset(b, 0, sizeof *b);
    return n;
}

/* "A) text", "(b) text", "C. text": a choice line; its text, or NULL. */
static const char *choice_line(const char *line)
{
    const char *p = line;
    while (*p == ' ' || *p == '-' || *p == '*')
        p++;
    if (*p == '(') p++;
    if (!(toupper((unsigned char)*p) >= 'A' && toupper((unsigned char)*p) <= 'H')) return NULL;
    if (p[1] != ')' && p[1] != '.') return NULL;
    p += 2;
    while (*p == ' ')
        p++;
    return *p ? p : NULL;
}

static size_t from_blocks(const char *text, bool mc, rf_pairs *out)
{
    block b = {0};
    size_t n = 0;
    int in = 0; /* 1: in a question, 2: in an answer */
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        p = nl ? nl + 1 : p + len;
        if (!line) break;
        const char *r, *c;
        if ((r = after_label(line, q_labels))) {
            n += close_block(&b, mc, out);
            b.q = trimmed(r, strlen(r));
            in = 1;
        } else if (b.q && (r = after_label(line, a_labels))) {
            free(b.a);
            b.a = trimmed(r, strlen(r));
            in = 2;
        } else if (mc && b.q && (r = after_label(line, c_labels))) {
            json_t *arr = json_array();
            for (const char *s = r; *s;) {
                const char *bar = strchr(s, '|');
                size_t k = bar ? (size_t)(bar - s) : strlen(s);
                char *t = trimmed(s, k);
                if (t && *t) json_array_append_new(arr, json_string(t));
                free(t);
                s = bar ? bar + 1 : s + k;
            }
            json_decref(b.choices);
            b.choices = arr;
        } else if (mc && in == 1 && (c = choice_line(line))) {
            if (!b.choices) b.choices = json_array();
            char *t = trimmed(c, strlen(c));
            if (t) json_array_append_new(b.choices, json_string(t));
            free(t);
        } else if (in) {
            char *t = trimmed(line, len);
            if (t && *t) append(in == 1 ? &b.q : &b.a, t, strlen(t));
            free(t);
        }
        free(line);
    }
    n += close_block(&b, mc, out);
    return n;
}

size_t rf_parse_pairs(const char *text, bool mc, rf_pairs *out)
{
    if (!text) return 0;
    char *inner = fenced(text);
    const char *src = inner ? inner : text;
    /* One JSON value, or JSON lines (whose first line alone is also one
     * value): whichever reads more. */
    rf_pairs a = {0}, b = {0};
    json_t *v = first_json(src);
    if (v) from_json(v, mc, &a, 0);
    json_decref(v);
    from_json_lines(src, mc, &b);
    rf_pairs *best = b.n > a.n ? &b : &a;
    if (!best->n) from_blocks(text, mc, best);
    size_t n = 0;
    for (size_t i = 0; i < best->n; i++)
        n += rf_pairs_push(out, &best->v[i]);
    rf_pairs_free(&a);
    rf_pairs_free(&b);
    free(inner);
    return n;
}

/* ---- lists ----------------------------------------------------------------- */

static const char *const item_keys[] = {"subtopic", "sub_topic", "topic", "name",
                                        "title",    "text",      NULL};

static void push_item(char ***items, size_t *n, size_t max, char *s)
{
    if (!s || !*s || *n >= max) {
        free(s);
        return;
    }
    for (size_t i = 0; i < *n; i++)
        if (!strcasecmp((*items)[i], s)) { /* the same sub-topic twice: once */
            free(s);
            return;
        }
    char **v = realloc(*items, (*n + 1) * sizeof *v);
    if (!v) {
        free(s);
        return;
    }
    *items = v;
    v[(*n)++] = s;
}

size_t rf_parse_list(const char *text, size_t max, char ***items)
{
    *items = NULL;
    size_t n = 0;
    if (!text) return 0;
    char *inner = fenced(text);
    json_t *v = first_json(inner ? inner : text);
    json_t *arr = json_is_array(v) ? v : NULL;
    if (json_is_object(v)) { /* {"subtopics": [...]} */
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) if (json_is_array(e)) arr = e;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const json_t *s = json_is_object(e) ? get_any(e, item_keys) : e;
        push_item(items, &n, max, json_is_string(s) ? text_of(s) : NULL);
    }
    json_decref(v);
    free(inner);
    if (n) return n;
    /* "1. x", "2) y", "- z", "* w", "• v" */
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *s = p, *end = p + len;
        p = nl ? nl + 1 : end;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        const char *d = s;
        while (d < end && isdigit((unsigned char)*d))
            d++;
        if (d > s && d < end && (*d == '.' || *d == ')'))
            s = d + 1;
        else if (s < end && (*s == '-' || (*s == '*' && s + 1 < end && s[1] == ' ')))
            s++;
        else if (end - s >= 3 && !memcmp(s, "\xE2\x80\xA2", 3)) /* • */
            s += 3;
        else
            continue;
        push_item(items, &n, max, trimmed(s, (size_t)(end - s)));
    }
    return n;
}

void rf_parse_list_free(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

/* ---- scores ---------------------------------------------------------------- */

/* A number at s, then an optional "/den" or "out of den": the score on 10. */
static bool number_at(const char *s, double *out)
{
    char *end;
    double x = strtod(s, &end);
    if (end == s || !isfinite(x)) return false;
    const char *p = end;
    while (*p == ' ')
        p++;
    double den = 10;
    if (*p == '/') {
        double d = strtod(p + 1, &end);
        if (end != p + 1 && d > 0) den = d;
    } else if (!strncasecmp(p, "out of", 6)) {
        double d = strtod(p + 6, &end);
        if (end != p + 6 && d > 0) den = d;
    }
    *out = x * 10 / den;
    return true;
}

bool rf_parse_score(const char *text, double *score)
{
    if (!text) return false;
    double s = NAN;
    char *inner = fenced(text);
    json_t *v = first_json(inner ? inner : text);
    free(inner);
    if (json_is_object(v)) {
        static const char *const keys[] = {"score", "rating", NULL};
        const json_t *x = get_any(v, keys);
        if (json_is_number(x)) s = json_number_value(x);
        if (json_is_string(x)) number_at(json_string_value(x), &s);
    }
    json_decref(v);
    for (const char *p = text; isnan(s) && (p = strcasestr(p, "score")); p += 5) {
        const char *q = p + 5;
        while (*q == ' ' || *q == ':' || *q == '=' || *q == '*' || *q == '"')
            q++;
        if (isdigit((unsigned char)*q)) number_at(q, &s);
    }
    for (const char *p = text; isnan(s) && (p = strchr(p, '/')); p++) { /* "8/10" anywhere */
        const char *q = p;
        while (q > text && (isdigit((unsigned char)q[-1]) || q[-1] == '.'))
            q--;
        if (q < p && isdigit((unsigned char)p[1])) number_at(q, &s);
    }
    if (isnan(s)) { /* a bare number first: "8" */
        const char *q = text;
        while (isspace((unsigned char)*q))
            q++;
        if (isdigit((unsigned char)*q)) number_at(q, &s);
    }
    if (isnan(s) || s < 0 || s > 10) return false;
    *score = s;
    return true;
}
