#include "cli/tokenize.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"

static int usage(FILE *f)
{
    fprintf(f, "usage: refinery tokenize --model DIR [--decode] [--no-special] [--skip-special] "
               "[--no-cleanup] [--spans] [--jsonl]\n"
               "                         [--chat [--template NAME|TEXT] [--no-generation-prompt]]\n"
               "  stdin text -> JSON ids; --decode: stdin JSON ids -> text.\n"
               "  --no-special    do not add the post-processor's BOS/EOS when encoding\n"
               "  --skip-special  leave special tokens out when decoding\n"
               "  --no-cleanup    keep the spaces clean_up_tokenization_spaces would remove\n"
               "  --spans         encode to {\"ids\": [...], \"spans\": [[start, end], ...]} (byte "
               "offsets)\n"
               "  --jsonl         one JSON string (or, with --decode, one id array) per line in,\n"
               "                  one JSON result per line out\n"
               "  --chat          stdin is a JSON array of {role, content}; print the prompt the\n"
               "                  model's chat_template renders, ids, answer byte spans and the\n"
               "                  answer mask as JSON. --template: a template of a list-form\n"
               "                  chat_template, a built-in (chatml, llama3, llama2, mistral) or\n"
               "                  a template's text\n");
    return f == stderr ? 2 : 0;
}

static char *read_all(FILE *f, size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (len + 1 < cap) {
            if (ferror(f)) break;
            buf[len] = '\0';
            *n = len;
            return buf;
        }
        char *p = realloc(buf, cap * 2);
        if (!p) break;
        buf = p, cap *= 2;
    }
    free(buf);
    return NULL;
}

static int print_ids(const int32_t *ids, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(i ? ",%d" : "%d", ids[i]);
    puts("]");
    return 0;
}

static int encode_one(const rf_tokenizer *tok, const char *s, size_t n, int special, int with_spans)
{
    int32_t *ids;
    rf_token_span *sp = NULL;
    size_t k;
    rf_error err;
    if (rf_tokenizer_encode_spans(tok, s, n, special, &ids, with_spans ? &sp : NULL, &k, &err)) {
        fprintf(stderr, "refinery tokenize: %s\n", err.msg);
        return 1;
    }
    if (with_spans) {
        /* {"ids": [...], "spans": [[start, end], ...]}: byte offsets in the input. */
        printf("{\"ids\":[");
        for (size_t i = 0; i < k; i++)
            printf(i ? ",%d" : "%d", ids[i]);
        printf("],\"spans\":[");
        for (size_t i = 0; i < k; i++)
            printf(i ? ",[%zu,%zu]" : "[%zu,%zu]", sp[i].start, sp[i].end);
        puts("]}");
    } else {
        print_ids(ids, k);
    }
    free(ids);
    free(sp);
    return 0;
}

/* A JSON array of ids → text; the text is written raw or as a JSON string. */
static int decode_one(const rf_tokenizer *tok, json_t *arr, int flags, int as_json)
{
    rf_error err;
    size_t n = json_array_size(arr), i, len;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    json_t *e;
    char *text;
    if (!ids) return 1;
    if (!json_is_array(arr)) {
        fprintf(stderr, "refinery tokenize: --decode expects a JSON array of ids\n");
        free(ids);
        return 1;
    }
    json_array_foreach(arr, i, e) ids[i] = json_is_integer(e) ? (int32_t)json_integer_value(e) : -1;
    int rc = rf_tokenizer_decode(tok, ids, n, flags, &text, &len, &err);
    free(ids);
    if (rc) {
        fprintf(stderr, "refinery tokenize: %s\n", err.msg);
        return 1;
    }
    if (as_json) {
        json_t *s = json_stringn(text, len);
        char *out = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        if (out) puts(out);
        free(out);
        json_decref(s);
    } else {
        fwrite(text, 1, len, stdout);
    }
    free(text);
    return 0;
}

static int run_chat(const rf_tokenizer *tok, const char *in, const char *spec, int gen_prompt)
{
    json_error_t je;
    json_t *root = json_loads(in, 0, &je);
    json_t *msgs = json_is_object(root) ? json_object_get(root, "messages") : root;
    rf_chat_template *t = NULL;
    rf_chat_out out = {0};
    rf_error err;
    int rc = 1;
    int32_t *ids = NULL;
    rf_token_span *tsp = NULL;
    unsigned char *mask = NULL;
    size_t k = 0;
    if (!json_is_array(msgs)) {
        fprintf(stderr, "refinery tokenize: --chat expects a JSON array of {role, content} (or "
                        "{\"messages\": [...], \"tools\": [...], \"documents\": [...]})\n");
        goto out;
    }
    rf_chat_opts o = {.add_generation_prompt = gen_prompt,
                      .tools = json_object_get(root, "tools"),
                      .documents = json_object_get(root, "documents"),
                      .kwargs = json_object_get(root, "kwargs")};
    if (json_is_null(o.tools)) o.tools = NULL;
    if (json_is_null(o.documents)) o.documents = NULL;
    if (rf_chat_template_load(tok, spec, &t, &err) ||
        rf_chat_render_spans(t, msgs, &o, &out, &err) ||
        rf_tokenizer_encode_spans(tok, out.text, out.len, 0, &ids, &tsp, &k, &err)) {
        fprintf(stderr, "refinery tokenize: %s\n", err.msg);
        goto out;
    }
    if (!(mask = malloc(k + 1))) goto out;
    rf_chat_answer_mask(&out, tsp, k, mask);
    json_t *res = json_object(), *jids = json_array(), *spans = json_array(), *jm = json_array();
    for (size_t j = 0; j < k; j++) {
        json_array_append_new(jids, json_integer(ids[j]));
        json_array_append_new(jm, json_integer(mask[j]));
    }
    for (size_t j = 0; j < out.n_spans; j++)
        json_array_append_new(
            spans, json_pack("[II]", (json_int_t)out.spans[j].start, (json_int_t)out.spans[j].end));
    json_object_set_new(res, "template", json_string(rf_chat_template_origin(t)));
    json_object_set_new(res, "text", json_stringn(out.text, out.len));
    json_object_set_new(res, "ids", jids);
    json_object_set_new(res, "answer_spans", spans);
    json_object_set_new(res, "answer_mask", jm);
    json_object_set_new(res, "prefix_stable", json_boolean(out.stable));
    if (!out.stable) json_object_set_new(res, "note", json_string(out.note));
    char *s = json_dumps(res, JSON_COMPACT);
    if (s) puts(s);
    free(s);
    json_decref(res);
    rc = 0;
out:
    free(ids);
    free(tsp);
    free(mask);
    rf_chat_out_free(&out);
    rf_chat_template_free(t);
    json_decref(root);
    return rc;
}

int rf_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *spec = NULL;
    int decode = 0, special = 1, flags = 0, with_spans = 0, jsonl = 0, chat = 0, gen_prompt = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--decode"))
            decode = 1;
        else if (!strcmp(argv[i], "--no-special"))
            special = 0;
        else if (!strcmp(argv[i], "--skip-special"))
            flags |= RF_DECODE_SKIP_SPECIAL;
        else if (!strcmp(argv[i], "--no-cleanup"))
            flags |= RF_DECODE_NO_CLEANUP;
        else if (!strcmp(argv[i], "--jsonl"))
            jsonl = 1;
        else if (!strcmp(argv[i], "--spans"))
            with_spans = 1;
        else if (!strcmp(argv[i], "--chat"))
            chat = 1;
        else if (!strcmp(argv[i], "--template") && i + 1 < argc)
            spec = argv[++i];
        else if (!strcmp(argv[i], "--no-generation-prompt"))
            gen_prompt = 0;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(stdout);
        else {
            fprintf(stderr, "refinery tokenize: unknown argument '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (!model) return usage(stderr);
    rf_tokenizer *tok;
    rf_error err;
    if (rf_tokenizer_load(model, &tok, &err)) {
        fprintf(stderr, "refinery tokenize: %s\n", err.msg);
        return 1;
    }
    size_t n;
    char *in = read_all(stdin, &n);
    int rc = 1;
    if (!in) {
        fprintf(stderr, "refinery tokenize: cannot read stdin\n");
        goto out;
    }
    if (chat) {
        rc = run_chat(tok, in, spec, gen_prompt);
    } else if (!jsonl && !decode) {
        rc = encode_one(tok, in, n, special, with_spans);
    } else {
        /* One JSON value per line (or the whole input for a plain --decode). */
        rc = 0;
        char *line = in, *end = in + n;
        while (line < end && !rc) {
            char *nl = jsonl ? memchr(line, '\n', (size_t)(end - line)) : NULL;
            size_t ln = nl ? (size_t)(nl - line) : (size_t)(end - line);
            json_error_t je;
            json_t *v = json_loadb(line, ln, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            line += ln + 1;
            if (!v && jsonl && strspn(line - ln - 1, " \t\r") == ln) continue; /* blank line */
            if (!v) {
                fprintf(stderr, "refinery tokenize: bad JSON input: %s\n", je.text);
                rc = 1;
            } else if (decode) {
                rc = decode_one(tok, v, flags, jsonl);
            } else if (!json_is_string(v)) {
                fprintf(stderr, "refinery tokenize: --jsonl expects one JSON string per line\n");
                rc = 1;
            } else {
                rc = encode_one(tok, json_string_value(v), json_string_length(v), special,
                                with_spans);
            }
            json_decref(v);
        }
    }
    fflush(stdout);
out:
    free(in);
    rf_tokenizer_free(tok);
    return rc;
}
