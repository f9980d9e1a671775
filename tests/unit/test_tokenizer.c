/* Tokenizer on small hand-made tokenizer.json files whose right answers can
 * be worked out by hand: merge order, byte fallback, added tokens inside
 * text, decoding and malformed files (chat templates: test_chat_template.c). The real files are
 * compared with the reference in tests/integration/tokenizer.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer.h"

#define DIR "tests/reference/tokenizers/"

static void expect_ids(const rf_tokenizer *t, const char *text, int special, const int32_t *want,
                       size_t n)
{
    int32_t *ids;
    size_t k;
    rf_error err;
    int rc = rf_tokenizer_encode(t, text, strlen(text), special, &ids, &k, &err);
    if (rc) fail_msg("encode \"%s\": %s", text, err.msg);
    if (k != n) {
        for (size_t i = 0; i < k; i++)
            print_message("got[%zu] = %d\n", i, ids[i]);
        fail_msg("encode \"%s\": %zu ids, want %zu", text, k, n);
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] != want[i])
            fail_msg("encode \"%s\": id %zu is %d, want %d", text, i, ids[i], want[i]);
    free(ids);
}
#define EXPECT(t, text, special, ...)                                                              \
    do {                                                                                           \
        const int32_t w_[] = {__VA_ARGS__};                                                        \
        expect_ids(t, text, special, w_, sizeof w_ / sizeof w_[0]);                                \
    } while (0)

static void expect_text(const rf_tokenizer *t, const int32_t *ids, size_t n, int flags,
                        const char *want)
{
    char *text;
    size_t len;
    rf_error err;
    int rc = rf_tokenizer_decode(t, ids, n, flags, &text, &len, &err);
    if (rc) fail_msg("decode: %s", err.msg);
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    free(text);
}

static rf_tokenizer *load_dir(const char *dir)
{
    rf_tokenizer *t;
    rf_error err;
    if (rf_tokenizer_load(dir, &t, &err)) fail_msg("load %s: %s", dir, err.msg);
    return t;
}

/* A tokenizer with no normalizer or pre-tokenizer: the text is one word. */
static rf_tokenizer *load_plain(const char *vocab, const char *merges, const char *model_extra)
{
    char json[2048];
    snprintf(json, sizeof json, "{\"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": %s%s}}",
             vocab, merges, model_extra);
    rf_tokenizer *t;
    rf_error err;
    if (rf_tokenizer_load_json(json, NULL, &t, &err)) fail_msg("load %s: %s", json, err.msg);
    return t;
}

static void test_merge_rank_decides(void **state)
{
    const char *v = "{\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4}";
    rf_tokenizer *t = load_plain(v, "[\"b c\", \"a b\"]", "");
    EXPECT(t, "abc", 0, 0, 4); /* "b c" ranks first */
    rf_tokenizer_free(t);
    t = load_plain(v, "[\"a b\", \"b c\"]", "");
    EXPECT(t, "abc", 0, 3, 2);
    rf_tokenizer_free(t);
    /* The newer spelling of merges as pairs gives the same table. */
    t = load_plain(v, "[[\"a\", \"b\"], [\"b\", \"c\"]]", "");
    EXPECT(t, "abc", 0, 3, 2);
    rf_tokenizer_free(t);
}

static void test_equal_ranks_merge_leftmost_first(void **state)
{
    rf_tokenizer *t = load_plain("{\"a\": 0, \"aa\": 1, \"aaaa\": 2}", "[\"a a\", \"aa aa\"]", "");
    EXPECT(t, "aaa", 0, 1, 0);
    EXPECT(t, "aaaaa", 0, 2, 0);
    EXPECT(t, "aaaaaaa", 0, 2, 1, 0);
    rf_tokenizer_free(t);
}

static void test_ignore_merges_takes_whole_words(void **state)
{
    const char *v = "{\"a\": 0, \"b\": 1, \"c\": 2, \"bc\": 3, \"abc\": 4}";
    rf_tokenizer *t = load_plain(v, "[\"b c\"]", "");
    EXPECT(t, "abc", 0, 0, 3);
    rf_tokenizer_free(t);
    t = load_plain(v, "[\"b c\"]", ", \"ignore_merges\": true");
    EXPECT(t, "abc", 0, 4);
    EXPECT(t, "abcbc", 0, 0, 3, 3);
    rf_tokenizer_free(t);
}

static void test_long_word_is_not_quadratic(void **state)
{
    /* 200k symbols in one word: the heap keeps this well under a second;
     * a rescan-per-merge loop would not finish in the test's time. */
    rf_tokenizer *t = load_plain("{\"a\": 0, \"aa\": 1, \"aaaa\": 2}", "[\"a a\", \"aa aa\"]", "");
    size_t n = 200000;
    char *s = malloc(n + 1);
    memset(s, 'a', n);
    s[n] = '\0';
    int32_t *ids;
    size_t k;
    rf_error err;
    assert_int_equal(rf_tokenizer_encode(t, s, n, 0, &ids, &k, &err), 0);
    assert_int_equal(k, n / 4);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(ids[i], 2);
    free(ids);
    free(s);
    rf_tokenizer_free(t);
}

static void test_bytelevel_words_and_merges(void **state)
{
    rf_tokenizer *t = load_dir(DIR "bytelevel");
    EXPECT(t, "hi test", 1, 10, 17); /* "hi" + "Ġtest" after five merges */
    EXPECT(t, "hi hi", 1, 10, 12);
    EXPECT(t, "\xC3\xA9", 1, 16); /* é: bytes C3 A9 are "Ã©" */
    EXPECT(t, "hi\n", 1, 10, 7);
    EXPECT(t, "", 1);
    assert_int_equal(rf_tokenizer_token_to_id(t, "Ġtest"), 17);
    assert_string_equal(rf_tokenizer_id_to_token(t, 12), "Ġhi");
    assert_null(rf_tokenizer_id_to_token(t, 21));
    assert_int_equal(rf_tokenizer_vocab_size(t), 21);
    rf_tokenizer_free(t);
}

static void test_added_tokens_inside_text(void **state)
{
    rf_tokenizer *t = load_dir(DIR "bytelevel");
    EXPECT(t, "hi<|x|>hi", 0, 10, 18, 10);
    EXPECT(t, "<|x|><|x|>", 0, 18, 18);
    EXPECT(t, "<|x|", 0); /* not a token, and '<', '|', 'x' are not in the vocabulary */
    /* single_word: "hi!" counts only between non-word characters. */
    EXPECT(t, "hi! hi!s", 0, 19, 12, 0, 4);
    /* lstrip/rstrip: the spaces around <m> belong to it. */
    EXPECT(t, "hi  <m>  hi", 0, 10, 20, 10);
    assert_true(rf_tokenizer_is_special(t, 18));
    assert_false(rf_tokenizer_is_special(t, 19));
    assert_int_equal(rf_tokenizer_bos_id(t), 18);
    assert_int_equal(rf_tokenizer_eos_id(t), 20);
    rf_tokenizer_free(t);
}

static void test_bytelevel_decode(void **state)
{
    rf_tokenizer *t = load_dir(DIR "bytelevel");
    const int32_t a[] = {10, 18, 12, 17, 7};
    expect_text(t, a, 5, 0, "hi<|x|> hi test\n");
    expect_text(t, a, 5, RF_DECODE_SKIP_SPECIAL, "hi hi test\n");
    const int32_t e[] = {16};
    expect_text(t, e, 1, 0, "\xC3\xA9");
    /* Half a character decodes to U+FFFD, not to a broken byte. */
    const int32_t half[] = {8, 10};
    expect_text(t, half, 2, 0, "\xEF\xBF\xBDhi");
    expect_text(t, NULL, 0, 0, "");
    const int32_t bad[] = {10, 99};
    char *text;
    rf_error err;
    assert_int_equal(rf_tokenizer_decode(t, bad, 2, 0, &text, NULL, &err), RF_EINVAL);
    assert_non_null(strstr(err.msg, "99"));
    rf_tokenizer_free(t);
}

static void test_sentencepiece_byte_fallback(void **state)
{
    rf_tokenizer *t = load_dir(DIR "spm");
    /* "▁ab▁b" then € (E2 82 AC) has no token of its own: three bytes. */
    EXPECT(t, "ab b\xE2\x82\xAC", 0, 13, 11, 4, 5, 6);
    EXPECT(t, "ab b\xE2\x82\xAC", 1, 1, 13, 11, 4, 5, 6);
    EXPECT(t, "a\nb", 0, 10, 3, 9);
    /* ç has no byte tokens: unk, and neighbouring unknowns fuse. */
    EXPECT(t, "\xC3\xA7", 0, 7, 0);
    EXPECT(t, "\xC3\xA7\xC3\xA7", 0, 7, 0);
    /* The normalizer runs on each stretch between added tokens. */
    EXPECT(t, "a</s>b", 0, 10, 2, 11);
    EXPECT(t, "", 1, 1);
    assert_int_equal(rf_tokenizer_bos_id(t), 1);
    assert_int_equal(rf_tokenizer_eos_id(t), 2);
    rf_tokenizer_free(t);
}

static void test_sentencepiece_decode(void **state)
{
    rf_tokenizer *t = load_dir(DIR "spm");
    const int32_t a[] = {1, 13, 11, 4, 5, 6};
    expect_text(t, a, 6, 0, "<s> ab b\xE2\x82\xAC");
    expect_text(t, a, 6, RF_DECODE_SKIP_SPECIAL, "ab b\xE2\x82\xAC");
    /* Byte tokens that are not valid UTF-8 give one U+FFFD each. */
    const int32_t b[] = {10, 4, 5};
    expect_text(t, b, 3, 0, "a\xEF\xBF\xBD\xEF\xBF\xBD");
    rf_tokenizer_free(t);
}

static void test_round_trip(void **state)
{
    const char *texts[] = {"hi test hi", "hi\n\nhi", "\xC3\xA9hi!"};
    rf_tokenizer *t = load_dir(DIR "bytelevel");
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids;
        size_t k;
        rf_error err;
        assert_int_equal(rf_tokenizer_encode(t, texts[i], strlen(texts[i]), 0, &ids, &k, &err), 0);
        expect_text(t, ids, k, 0, texts[i]);
        free(ids);
    }
    rf_tokenizer_free(t);
}

static void test_invalid_utf8_is_refused(void **state)
{
    rf_tokenizer *t = load_dir(DIR "bytelevel");
    int32_t *ids;
    size_t k;
    rf_error err;
    assert_int_equal(rf_tokenizer_encode(t, "hi\xC3", 3, 0, &ids, &k, &err), RF_EINVAL);
    assert_non_null(strstr(err.msg, "UTF-8"));
    rf_tokenizer_free(t);
}

static void expect_load_error(const char *json, int code, const char *field, const char *words)
{
    rf_tokenizer *t = (rf_tokenizer *)1;
    rf_error err;
    rf_error_clear(&err);
    assert_int_equal(rf_tokenizer_load_json(json, NULL, &t, &err), code);
    assert_null(t);
    if (field) assert_string_equal(err.field, field);
    if (!strstr(err.msg, words)) fail_msg("error \"%s\" does not say \"%s\"", err.msg, words);
}

static void test_malformed_files(void **state)
{
    expect_load_error("{\"model\": ", RF_EINVAL, NULL, "not valid JSON");
    expect_load_error("[]", RF_EINVAL, NULL, "object");
    expect_load_error("{}", RF_EINVAL, "model", "no model");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", RF_EUNSUPPORTED,
                      "model.type", "Unigram");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", RF_EINVAL, "model.vocab",
                      "object");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0, \"b\": \"x\"}, \"merges\": []}}",
                      RF_EINVAL, "model.vocab", "\"b\"");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", RF_EINVAL,
                      "model.vocab", "id 0");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a z\"]}}", RF_EINVAL,
                      "model.merges[0]", "\"z\" is not in the vocabulary");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"aa\"]}}", RF_EINVAL,
                      "model.merges[0]", "two tokens");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a a\"]}}", RF_EINVAL,
                      "model.merges", "\"aa\", which is not in the vocabulary");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                      "{\"type\": \"Split\", "
                      "\"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}",
                      RF_EINVAL, "pre_tokenizer.pattern", "does not compile");
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": "
        "\"Precompiled\"}}",
        RF_EUNSUPPORTED, "normalizer.type", "Precompiled");
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 1}]}",
        RF_EINVAL, "added_tokens[0]", "content");
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"post_processor\": {\"type\": "
        "\"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}], "
        "\"special_tokens\": {}}}",
        RF_EINVAL, "post_processor.special_tokens", "<s>");

    rf_tokenizer *t;
    rf_error err;
    assert_int_equal(rf_tokenizer_load(DIR "no-such-dir", &t, &err), RF_ENOTFOUND);
    assert_non_null(strstr(err.msg, "tokenizer.json"));
}

/* With ignore_merges and no merges, a word is one id exactly when it is in
 * the vocabulary, which makes the pre-tokenizer's cuts visible. */
static rf_tokenizer *load_split(const char *behavior, int invert)
{
    char json[1024];
    snprintf(
        json, sizeof json,
        "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": "
        "\"%s\", "
        "\"invert\": %s}, \"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"merges\": [], "
        "\"vocab\": "
        "{\"a\": 0, \"b\": 1, \"-\": 2, \"a-\": 3, \"b-\": 4, \"-b\": 5, \"--\": 6, \"--a\": 7}}}",
        behavior, invert ? "true" : "false");
    rf_tokenizer *t;
    rf_error err;
    if (rf_tokenizer_load_json(json, NULL, &t, &err)) fail_msg("%s: %s", behavior, err.msg);
    return t;
}

static void test_split_behaviours(void **state)
{
    /* "a-b--a": runs a | - | b | - | - | a, each '-' a match of its own. */
    rf_tokenizer *t = load_split("Isolated", 0);
    EXPECT(t, "a-b--a", 0, 0, 2, 1, 2, 2, 0);
    rf_tokenizer_free(t);
    t = load_split("MergedWithPrevious", 0); /* a match joins the non-match before it */
    EXPECT(t, "a-b--a", 0, 3, 4, 2, 0);
    rf_tokenizer_free(t);
    t = load_split("MergedWithNext", 0); /* everything after a match joins it */
    EXPECT(t, "a-b--a", 0, 0, 5, 7);
    rf_tokenizer_free(t);
    t = load_split("Contiguous", 0); /* adjacent matches join */
    EXPECT(t, "a-b--a", 0, 0, 2, 1, 6, 0);
    rf_tokenizer_free(t);
    t = load_split("Removed", 0);
    EXPECT(t, "a-b--a", 0, 0, 1, 0);
    rf_tokenizer_free(t);
    t = load_split("Removed", 1); /* inverted: the letters are what goes */
    EXPECT(t, "a-b--a", 0, 2, 2, 2);
    rf_tokenizer_free(t);
}

static void test_metaspace_split_and_decode(void **state)
{
    const char *json =
        "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", "
        "\"prepend_scheme\": \"always\", "
        "\"split\": true}, \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", "
        "\"prepend_scheme\": \"always\"}, \"model\": {\"type\": \"BPE\", \"ignore_merges\": true, "
        "\"merges\": [], "
        "\"vocab\": {\"\u2581\": 0, \"a\": 1, \"b\": 2, \"\u2581a\": 3, \"\u2581b\": 4}}}";
    rf_tokenizer *t;
    rf_error err;
    if (rf_tokenizer_load_json(json, NULL, &t, &err)) fail_msg("%s", err.msg);
    EXPECT(t, "a b", 0, 3, 4);
    /* "▁a▁▁b" splits before each ▁ run: "▁a", "▁▁b" (not a token: chars). */
    EXPECT(t, "a  b", 0, 3, 0, 0, 2);
    const int32_t ids[] = {3, 4};
    expect_text(t, ids, 2, 0, "a b");
    rf_tokenizer_free(t);
}

static void expect_spans(const rf_tokenizer *t, const char *text, int special, const size_t *want,
                         size_t n)
{
    int32_t *ids;
    rf_token_span *sp;
    size_t k;
    rf_error err;
    if (rf_tokenizer_encode_spans(t, text, strlen(text), special, &ids, &sp, &k, &err))
        fail_msg("%s", err.msg);
    if (k != n) fail_msg("\"%s\": %zu tokens, want %zu", text, k, n);
    for (size_t i = 0; i < n; i++)
        if (sp[i].start != want[2 * i] || sp[i].end != want[2 * i + 1])
            fail_msg("\"%s\" token %zu: [%zu, %zu), want [%zu, %zu)", text, i, sp[i].start,
                     sp[i].end, want[2 * i], want[2 * i + 1]);
    free(ids);
    free(sp);
}
#define SPANS(t, text, special, ...)                                                               \
    do {                                                                                           \
        const size_t w_[] = {__VA_ARGS__};                                                         \
        expect_spans(t, text, special, w_, sizeof w_ / sizeof w_[0] / 2);                          \
    } while (0)

static void test_token_spans(void **state)
{
    rf_tokenizer *t = load_dir(DIR "bytelevel");
    SPANS(t, "hi test", 0, 0, 2, 2, 7);
    SPANS(t, "\xC3\xA9hi", 0, 0, 2, 2, 4);         /* "Ã©" is two mapped characters, two bytes */
    SPANS(t, "hi  <m>  hi", 0, 0, 2, 2, 9, 9, 11); /* <m> owns the spaces it strips */
    rf_tokenizer_free(t);
    t = load_dir(DIR "spm");
    /* <s> is added, not read: an empty span. "▁ab" is the inserted ▁ plus
     * "ab"; "▁b" starts at the space it replaced; € is three byte tokens. */
    SPANS(t, "ab b\xE2\x82\xAC", 1, 0, 0, 0, 2, 2, 4, 4, 5, 5, 6, 6, 7);
    SPANS(t, "a</s>b", 0, 0, 1, 1, 5, 5, 6);
    rf_tokenizer_free(t);
}

/* A loaded tokenizer is read-only: threads may share it. */
typedef struct shared_job {
    const rf_tokenizer *t;
    const char *text;
    int32_t *ids;
    size_t n;
    int ok;
} shared_job;

static void *encode_many(void *arg)
{
    shared_job *j = arg;
    rf_error err;
    j->ok = 1;
    for (int r = 0; r < 50 && j->ok; r++) {
        int32_t *ids;
        size_t n;
        char *back;
        if (rf_tokenizer_encode(j->t, j->text, strlen(j->text), 1, &ids, &n, &err)) {
            j->ok = 0;
            break;
        }
        back = NULL;
        int decoded = !rf_tokenizer_decode(j->t, ids, n, 0, &back, NULL, &err);
        j->ok =
            n == j->n && !memcmp(ids, j->ids, n * sizeof *ids) && decoded && !strcmp(back, j->text);
        free(back);
        free(ids);
    }
    return NULL;
}

static void test_threads_share_a_tokenizer(void **state)
{
    rf_tokenizer *t = load_dir(DIR "bytelevel");
    const char *texts[] = {"hi test hi<|x|>hi", "\xC3\xA9hi! hi\n\nhi", "hi test\n"};
    shared_job jobs[6];
    pthread_t th[6];
    rf_error err;
    for (int i = 0; i < 6; i++) {
        jobs[i] = (shared_job){.t = t, .text = texts[i % 3]};
        assert_int_equal(rf_tokenizer_encode(t, jobs[i].text, strlen(jobs[i].text), 1, &jobs[i].ids,
                                             &jobs[i].n, &err),
                         0);
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&th[i], NULL, encode_many, &jobs[i]), 0);
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
        free(jobs[i].ids);
    }
    rf_tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_rank_decides),
        cmocka_unit_test(test_equal_ranks_merge_leftmost_first),
        cmocka_unit_test(test_ignore_merges_takes_whole_words),
        cmocka_unit_test(test_long_word_is_not_quadratic),
        cmocka_unit_test(test_bytelevel_words_and_merges),
        cmocka_unit_test(test_added_tokens_inside_text),
        cmocka_unit_test(test_bytelevel_decode),
        cmocka_unit_test(test_sentencepiece_byte_fallback),
        cmocka_unit_test(test_sentencepiece_decode),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_invalid_utf8_is_refused),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_split_behaviours),
        cmocka_unit_test(test_metaspace_split_and_decode),
        cmocka_unit_test(test_token_spans),
        cmocka_unit_test(test_threads_share_a_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
