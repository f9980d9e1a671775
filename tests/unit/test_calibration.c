/* Calibration sequences (engine/calibration.h) with the byte-level test
 * tokenizer (ChatML template): dataset rows drawn from the train split only,
 * each the chat-formatted encoding of one row truncated to seq_len, the same
 * for the same seed; text windows are contiguous pieces of the text's
 * encoding; too few rows or too short a text are refused, naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/quant/calibration.h"
#include "engine/tokenizer/chat_template.h"

#define TOK "tests/reference/tokenizers/bytelevel"

static const char *g_rows[] = {
    "{\"prompt\":\"hello there\",\"response\":\"hi\"}",
    "{\"prompt\":\"low lower lowest\",\"response\":\"new newer\"}",
    "{\"prompt\":\"wide\",\"response\":\"wider widest\"}",
    "{\"prompt\":\"validation only\",\"response\":\"never drawn\",\"split\":\"validation\"}",
    "{\"prompt\":\"the end\",\"response\":\"ok\"}",
};

/* The full chat-formatted encoding of train row i. */
static void encode_row(const rf_tokenizer *tok, const char *row, int32_t **ids, size_t *n)
{
    json_t *j = json_loads(row, 0, NULL);
    rf_chat_msg m[2];
    const json_t *msgs = json_object_get(j, "messages");
    if (msgs) {
        for (int i = 0; i < 2; i++) {
            m[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
            m[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
        }
    } else {
        m[0] = (rf_chat_msg){"user", json_string_value(json_object_get(j, "prompt"))};
        m[1] = (rf_chat_msg){"assistant", json_string_value(json_object_get(j, "response"))};
    }
    rf_chat_template *t;
    char *text;
    size_t len;
    rf_error err = {0};
    json_t *jm = rf_chat_messages(m, 2);
    assert_int_equal(rf_chat_template_load(tok, NULL, &t, &err), 0);
    assert_int_equal(rf_chat_render(t, jm, NULL, &text, &len, &err), 0);
    assert_int_equal(rf_tokenizer_encode(tok, text, len, 0, ids, n, &err), 0);
    free(text);
    json_decref(jm);
    rf_chat_template_free(t);
    json_decref(j);
}

static void test_jsonl(void **state)
{
    rf_tokenizer *tok;
    rf_error err = {0};
    assert_int_equal(rf_tokenizer_load(TOK, &tok, &err), 0);
    char path[] = "/tmp/rf_calib_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < 5; i++)
        fprintf(f, "%s\n", g_rows[i]);
    fclose(f);
    const int seq_len = 12;
    rf_calib c, c2;
    if (rf_calib_from_jsonl(tok, path, 3, seq_len, 42, &c, &err)) fail_msg("%s", err.msg);
    assert_int_equal(rf_calib_from_jsonl(tok, path, 3, seq_len, 42, &c2, &err), 0);
    assert_int_equal(c.n, 3);
    size_t off = 0;
    int seen[5] = {0};
    for (int s = 0; s < c.n; s++) {
        assert_int_equal(c.lens[s], c2.lens[s]);
        int match = -1;
        for (int r = 0; r < 5; r++) {
            int32_t *ids;
            size_t n;
            encode_row(tok, g_rows[r], &ids, &n);
            int len = n < (size_t)seq_len ? (int)n : seq_len;
            if (len == c.lens[s] && !memcmp(ids, c.tokens + off, sizeof(int32_t) * len)) match = r;
            free(ids);
        }
        printf("  sample %d: %d tokens, row %d\n", s, c.lens[s], match);
        assert_true(match >= 0 && match != 3); /* never the validation row */
        assert_false(seen[match]);
        seen[match] = 1;
        off += c.lens[s];
    }
    assert_memory_equal(c.tokens, c2.tokens, sizeof(int32_t) * off);
    rf_calib_free(&c2);
    rf_calib_free(&c);
    /* 4 train rows: 5 samples are too many */
    assert_int_equal(rf_calib_from_jsonl(tok, path, 5, seq_len, 1, &c, &err), RF_EINVAL);
    assert_string_equal(err.field, "calibration.samples");
    printf("  %s\n", err.msg);
    unlink(path);
    rf_tokenizer_free(tok);
}

static void test_text(void **state)
{
    rf_tokenizer *tok;
    rf_error err = {0};
    assert_int_equal(rf_tokenizer_load(TOK, &tok, &err), 0);
    char path[] = "/tmp/rf_calib_XXXXXX";
    int fd = mkstemp(path);
    const char *text = "low lower lowest new newer newest wide wider widest hello there";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int32_t *all;
    size_t n;
    assert_int_equal(rf_tokenizer_encode(tok, text, strlen(text), 1, &all, &n, &err), 0);
    rf_calib c;
    assert_int_equal(rf_calib_from_text(tok, path, 4, 5, 7, &c, &err), 0);
    for (int s = 0; s < 4; s++) {
        int found = 0;
        for (size_t st = 0; st + 5 <= n; st++)
            found |= !memcmp(all + st, c.tokens + s * 5, sizeof(int32_t) * 5);
        assert_int_equal(c.lens[s], 5);
        assert_true(found);
    }
    rf_calib_free(&c);
    assert_int_equal(rf_calib_from_text(tok, path, 4, (int)n + 1, 7, &c, &err), RF_EINVAL);
    assert_string_equal(err.field, "calibration.seq_len");
    free(all);
    unlink(path);
    rf_tokenizer_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_jsonl), cmocka_unit_test(test_text)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
