#include "engine/data/filters.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

const char *const rf_filter_blacklist[] = {
    "image", "images", "graph", "graphs", "picture", "pictures", "file",  "files",     "map",
    "maps",  "draw",   "plot",  "go to",  "video",   "audio",    "music", "flowchart", "diagram"};
const size_t rf_filter_blacklist_n = sizeof rf_filter_blacklist / sizeof *rf_filter_blacklist;

/* Python's str.split(): runs of whitespace. */
static int words(const char *s)
{
    int n = 0;
    bool in = false;
    for (; *s; s++) {
        bool sp = isspace((unsigned char)*s);
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

/* A word character as Python's \w sees ASCII (letters, digits, '_'); any
 * byte of a non-ASCII character counts as one, as \w matches most of them. */
static bool wordch(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

/* re.search(r"\b" + w + r"\b", s, re.I) for an ASCII w. */
static bool has_word(const char *s, const char *w)
{
    size_t k = strlen(w), n = strlen(s);
    for (size_t i = 0; k && i + k <= n; i++) {
        if (strncasecmp(s + i, w, k)) continue;
        if (i > 0 && wordch((unsigned char)s[i - 1])) continue;
        if (i + k < n && wordch((unsigned char)s[i + k])) continue;
        return true;
    }
    return false;
}

static const char *skip_space(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

const char *rf_filter_pair(const rf_filter_opts *o, const char *instruction, const char *output)
{
    const char *in = skip_space(instruction ? instruction : "");
    int w = words(in);
    if (w < o->min_words) return "too_short";
    if (w > o->max_words) return "too_long";
    const char *const *bl = o->blacklist ? o->blacklist : rf_filter_blacklist;
    size_t nb = o->blacklist ? o->n_blacklist : rf_filter_blacklist_n;
    for (size_t i = 0; i < nb; i++)
        if (has_word(in, bl[i])) return "blacklisted";
    if ((unsigned char)*in >= 0x80) return "starts_non_ascii";
    if (ispunct((unsigned char)*in)) return "starts_with_punctuation";
    if (!strncmp(in, "Write a program", 15)) return "write_a_program";
    const char *out = skip_space(output ? output : "");
    size_t n = strlen(out);
    while (n && isspace((unsigned char)out[n - 1]))
        n--;
    if (!n) return "empty_output";
    size_t ni = strlen(in);
    while (ni && isspace((unsigned char)in[ni - 1]))
        ni--;
    if (n == ni && !memcmp(in, out, n)) return "output_equals_input";
    if (out[n - 1] == ':') return "output_ends_with_colon";
    return NULL;
}
