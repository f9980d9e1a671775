/* refinery sample DIR: everything the README's examples need, made by
 * refinery itself, in seconds: a small Llama checkpoint of random weights
 * (engine/model/llama_init) with a byte-level BPE tokenizer whose merges are
 * learned here from the sample text, and two datasets (question/answer rows
 * with a validation split, multiple-choice rows). Every byte has a token, so
 * no text is refused; the weights are untrained, so what the model writes
 * is noise until a train job has run on it. */
#include "cli/sample.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model/llama_init.h"

#define MERGES 96

/* GPT-2's byte-to-unicode table (FORMATS.md "tokenizer.json"): printable
 * bytes stand for themselves, the others for code points from 256 up. */
static void byte_chars(char sym[256][4])
{
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)k++;
        if (cp < 0x80)
            snprintf(sym[b], 4, "%c", (char)cp);
        else
            snprintf(sym[b], 4, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
    }
}

typedef struct word {
    char **sym; /* the word's symbols, byte-level spelled */
    int n, count;
} word;

typedef struct words {
    word *w;
    int n, cap;
} words;

static int kind(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? 1 : c >= '0' && c <= '9' ? 2 : 3;
}

/* Words as the byte-level pre-tokenizer splits plain ASCII: a run of
 * letters, of digits or of other characters, a space joining the run after
 * it. */
static int add_text(words *ws, const char *t, char sym[256][4])
{
    for (size_t i = 0; t[i];) {
        size_t a = i;
        if (t[i] == ' ' && t[i + 1] && t[i + 1] != ' ') i++;
        int k = kind((unsigned char)t[i]);
        while (t[i] && t[i] != ' ' && kind((unsigned char)t[i]) == k)
            i++;
        if (i == a) i++;
        int found = -1;
        for (int w = 0; w < ws->n && found < 0; w++) {
            if (ws->w[w].n != (int)(i - a)) continue;
            bool same = true;
            for (size_t c = a; c < i && same; c++)
                same = !strcmp(ws->w[w].sym[c - a], sym[(unsigned char)t[c]]);
            if (same) found = w;
        }
        if (found >= 0) {
            ws->w[found].count++;
            continue;
        }
        if (ws->n == ws->cap) {
            ws->cap = ws->cap ? 2 * ws->cap : 256;
            word *g = realloc(ws->w, sizeof *g * (size_t)ws->cap);
            if (!g) return -1;
            ws->w = g;
        }
        word *w = &ws->w[ws->n++];
        w->n = (int)(i - a), w->count = 1;
        if (!(w->sym = calloc((size_t)w->n, sizeof *w->sym))) return -1;
        for (size_t c = a; c < i; c++)
            if (!(w->sym[c - a] = strdup(sym[(unsigned char)t[c]]))) return -1;
    }
    return 0;
}

/* One BPE merge step (Sennrich et al.): the most frequent adjacent pair,
 * ties to the first in text order, merged everywhere. 0 when none is left. */
static int merge_step(words *ws, char *left, char *right, size_t cap)
{
    int best = 0;
    left[0] = right[0] = '\0';
    for (int a = 0; a < ws->n; a++)
        for (int i = 0; i + 1 < ws->w[a].n; i++) {
            const char *l = ws->w[a].sym[i], *r = ws->w[a].sym[i + 1];
            if (strlen(l) + strlen(r) >= cap) continue;
            if (!strcmp(l, left) && !strcmp(r, right)) continue;
            int count = 0;
            for (int b = 0; b < ws->n; b++)
                for (int j = 0; j + 1 < ws->w[b].n; j++)
                    if (!strcmp(ws->w[b].sym[j], l) && !strcmp(ws->w[b].sym[j + 1], r))
                        count += ws->w[b].count;
            if (count > best) {
                best = count;
                snprintf(left, cap, "%s", l), snprintf(right, cap, "%s", r);
            }
        }
    if (best < 2) return 0;
    for (int a = 0; a < ws->n; a++) {
        word *w = &ws->w[a];
        for (int i = 0; i + 1 < w->n; i++)
            if (!strcmp(w->sym[i], left) && !strcmp(w->sym[i + 1], right)) {
                char *m = malloc(strlen(left) + strlen(right) + 1);
                if (!m) return -1;
                strcpy(m, left), strcat(m, right);
                free(w->sym[i]), free(w->sym[i + 1]);
                w->sym[i] = m;
                memmove(w->sym + i + 1, w->sym + i + 2, sizeof *w->sym * (size_t)(w->n - i - 2));
                w->n--;
            }
    }
    return 1;
}

static void words_free(words *ws)
{
    for (int a = 0; a < ws->n; a++) {
        for (int i = 0; i < ws->w[a].n; i++)
            free(ws->w[a].sym[i]);
        free(ws->w[a].sym);
    }
    free(ws->w);
}

static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

/* tokenizer.json: 256 byte tokens, the learned merges, three special tokens. */
static json_t *tokenizer_json(const char *text, int *vocab_size)
{
    char sym[256][4];
    byte_chars(sym);
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    int id = 0;
    for (int b = 0; b < 256; b++)
        json_object_set_new(vocab, sym[b], json_integer(id++));
    words ws = {0};
    if (add_text(&ws, text, sym) == 0)
        for (int m = 0; m < MERGES; m++) {
            char l[64], r[64];
            if (merge_step(&ws, l, r, sizeof l) != 1) break;
            char pair[130], joined[130];
            snprintf(pair, sizeof pair, "%s %s", l, r);
            snprintf(joined, sizeof joined, "%s%s", l, r);
            json_array_append_new(merges, json_string(pair));
            if (!json_object_get(vocab, joined))
                json_object_set_new(vocab, joined, json_integer(id++));
        }
    words_free(&ws);
    for (int s = 0; s < 3; s++) {
        json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", id, "content",
                                               specials[s], "single_word", 0, "lstrip", 0, "rstrip",
                                               0, "normalized", 0, "special", 1));
        json_object_set_new(vocab, specials[s], json_integer(id++));
    }
    *vocab_size = id;
    json_t *bl = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                           "trim_offsets", 1, "use_regex", 1);
    return json_pack("{s:s,s:n,s:n,s:o,s:n,s:O,s:o,s:{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b,s:o,s:o}}",
                     "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer",
                     "pre_tokenizer", bl, "decoder", bl, "model", "type", "BPE", "dropout",
                     "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                     "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
}

/* The two datasets: sums as question and answer (a validation split of
 * its own), and multiple-choice comparisons for evaluate's accuracy. */
static int write_datasets(const char *dir, char **text)
{
    char path[4096];
    size_t cap = 1 << 16, n = 0;
    char *t = malloc(cap);
    if (!t) return -1;
    t[0] = '\0';
    snprintf(path, sizeof path, "%s/qa.jsonl", dir);
    FILE *f = fopen(path, "w");
    if (!f) return free(t), -1;
    for (int i = 0; i < 40; i++) {
        int a = (i * 7) % 10, b = (i * 3 + 1) % 10;
        char q[64], r[64];
        snprintf(q, sizeof q, "What is %d plus %d?", a, b);
        snprintf(r, sizeof r, "%d plus %d is %d.", a, b, a + b);
        json_t *row = json_pack("{s:s,s:s}", "prompt", q, "response", r);
        if (i % 5 == 4) json_object_set_new(row, "split", json_string("validation"));
        char *s = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(f, "%s\n", s);
        n += (size_t)snprintf(t + n, cap - n, "%s %s\n", q, r);
        free(s);
        json_decref(row);
    }
    if (fclose(f)) return free(t), -1;
    snprintf(path, sizeof path, "%s/mc.jsonl", dir);
    if (!(f = fopen(path, "w"))) return free(t), -1;
    for (int i = 0; i < 12; i++) {
        int a = i % 10, b = (i * 5 + 3) % 10;
        if (a == b) b = (b + 1) % 10;
        char q[64], c0[16], c1[16];
        snprintf(q, sizeof q, "Which is larger, %d or %d?", a, b);
        snprintf(c0, sizeof c0, "%d", a), snprintf(c1, sizeof c1, "%d", b);
        json_t *row =
            json_pack("{s:s,s:[s,s],s:i}", "prompt", q, "choices", c0, c1, "answer", a > b ? 0 : 1);
        char *s = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(f, "%s\n", s);
        n += (size_t)snprintf(t + n, cap - n, "%s %s %s\n", q, c0, c1);
        free(s);
        json_decref(row);
    }
    *text = t;
    return fclose(f) ? -1 : 0;
}

static int write_json(const char *dir, const char *name, json_t *j)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = json_dump_file(j, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: refinery sample DIR [--seed N]\n"
                    "  writes DIR/model (a small Llama of random weights with its tokenizer),\n"
                    "  DIR/qa.jsonl (question/answer rows) and DIR/mc.jsonl (multiple choice)\n");
    return 2;
}

int rf_cmd_sample(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            return usage();
    }
    if (!dir) return usage();
    char model[4096];
    snprintf(model, sizeof model, "%s/model", dir);
    struct stat st;
    if (!stat(model, &st)) {
        fprintf(stderr, "refinery sample: %s exists already; give a new folder\n", model);
        return 1;
    }
    if ((mkdir(dir, 0755) && errno != EEXIST) || mkdir(model, 0755)) {
        fprintf(stderr, "refinery sample: cannot create %s: %s\n", model, strerror(errno));
        return 1;
    }
    char *text = NULL;
    if (write_datasets(dir, &text) < 0) {
        fprintf(stderr, "refinery sample: cannot write the datasets in %s\n", dir);
        free(text);
        return 1;
    }
    /* the chat template's own words are text the tokenizer sees too */
    size_t tl = strlen(text);
    char *all = realloc(text, tl + 64);
    if (all) strcat(all, " user assistant system\n"), text = all;
    int vocab = 0;
    json_t *tok = tokenizer_json(text, &vocab);
    free(text);
    const int eos = vocab - 1, bos = vocab - 3; /* <|im_end|>, <|endoftext|> */
    /* dims 64, 64, 128: group 64 divides every input, and fits vLLM's kernels */
    json_t *cfg = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:s,s:b,s:i,s:i,s:s}",
                            "architectures", "LlamaForCausalLM", "model_type", "llama",
                            "hidden_size", 64, "intermediate_size", 128, "num_hidden_layers", 2,
                            "num_attention_heads", 4, "num_key_value_heads", 2, "vocab_size", vocab,
                            "max_position_embeddings", 256, "rms_norm_eps", 1e-5, "rope_theta",
                            10000.0, "hidden_act", "silu", "tie_word_embeddings", 0, "bos_token_id",
                            bos, "eos_token_id", eos, "torch_dtype", "float32");
    rf_error err = {0};
    int rc = rf_llama_init_random(model, cfg, seed, &err);
    json_decref(cfg);
    if (rc < 0) {
        json_decref(tok);
        fprintf(stderr, "refinery sample: %s\n", err.msg);
        return 1;
    }
    json_t *tcfg = json_pack(
        "{s:s,s:s,s:s,s:b}", "bos_token", "<|endoftext|>", "eos_token", "<|im_end|>",
        "chat_template",
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
        "%}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        "clean_up_tokenization_spaces", 0);
    json_t *gen = json_pack("{s:i,s:i}", "bos_token_id", bos, "eos_token_id", eos);
    if (write_json(model, "tokenizer.json", tok) ||
        write_json(model, "tokenizer_config.json", tcfg) ||
        write_json(model, "generation_config.json", gen)) {
        fprintf(stderr, "refinery sample: cannot write the tokenizer files in %s\n", model);
        return 1;
    }
    printf("%s/model          a Llama of 2 layers, hidden 64, vocabulary %d (random weights)\n"
           "%s/qa.jsonl       40 question/answer rows (8 of them the validation split)\n"
           "%s/mc.jsonl       12 multiple-choice rows\n",
           dir, vocab, dir, dir);
    return 0;
}
