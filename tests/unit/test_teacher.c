/* engine/data teachers and the dataset job's params: the in-process teacher
 * decoding several requests as one batch gives, for each, what rf_complete
 * gives for it alone (greedy and sampled with the same seed); a prompt past
 * the context fails that request only; the URL allow-list's boundaries; an
 * endpoint that refuses connections fails after its retries; the params
 * checks (allow-list, api_key_env, placeholders, the teacher's shape). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/teacher.h"
#include "engine/data/teacher_http.h"
#include "engine/data/teacher_lm.h"
#include "engine/generate/complete.h"
#include "engine/jobs/dataset.h"
#include "engine/jobs/dataset_params.h"
#include "engine/model/lm.h"

#define FIX "tests/reference/fixtures/llama_f32_gqa"
#define TOK "tests/reference/tokenizers/bytelevel"

static char g_dir[PATH_MAX], g_model[PATH_MAX];

static void link_in(const char *from, const char *name)
{
    char src[PATH_MAX], rel[PATH_MAX], dst[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/%s", from, name);
    assert_non_null(realpath(rel, src));
    snprintf(dst, sizeof dst, "%s/%s", g_model, name);
    assert_int_equal(symlink(src, dst), 0);
}

static int setup(void **state)
{
    const char *base = getenv("REFINERY_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/teacher-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_model, sizeof g_model, "%s/model", g_dir);
    if (mkdir(g_model, 0750)) return -1;
    link_in(FIX, "config.json");
    link_in(FIX, "model.safetensors");
    link_in(TOK, "tokenizer.json");
    link_in(TOK, "tokenizer_config.json");
    return 0;
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *const prompts[] = {"hi", "this is a test", "the", "hi! this is", "e"};
#define NP 5

static void check_against_complete(double temperature)
{
    rf_error err;
    rf_teacher *t;
    assert_int_equal(rf_teacher_lm_new(g_model, "tiny", 3, &t, &err), 0);
    rf_chat_msg m[NP];
    rf_teacher_request q[NP];
    for (int i = 0; i < NP; i++) {
        m[i] = (rf_chat_msg){"user", prompts[i]};
        q[i] = (rf_teacher_request){&m[i], 1};
    }
    rf_teacher_sampling sp = {.temperature = temperature, .top_p = 1, .max_tokens = 12, .seed = 7};
    rf_teacher_reply out[NP];
    assert_int_equal(t->chat(t, q, NP, &sp, out, &err), 0);

    rf_lm lm;
    assert_int_equal(rf_lm_load(&lm, g_model, RF_ACT_F32, &err), 0);
    for (int i = 0; i < NP; i++) {
        int32_t *ids;
        size_t n;
        assert_int_equal(rf_lm_encode_chat(&lm, &m[i], 1, NULL, &ids, &n, &err), 0);
        rf_complete_params p = {
            .max_tokens = 12,
            .n = 1,
            .sampling = {.temperature = (float)temperature, .top_p = 1, .seed = 7 + (uint64_t)i},
            .top_logprobs = -1};
        rf_complete_result res;
        assert_int_equal(rf_complete(&lm, ids, (int)n, &p, NULL, NULL, &res, &err), 0);
        assert_int_equal(out[i].rc, 0);
        assert_string_equal(out[i].text, res.choices[0].text);
        assert_string_equal(out[i].finish,
                            res.choices[0].finish == RF_FINISH_LENGTH ? "length" : "stop");
        assert_int_equal(out[i].prompt_tokens, (long)n);
        assert_int_equal(out[i].completion_tokens, res.completion_tokens);
        rf_complete_result_free(&res);
        free(ids);
        rf_teacher_reply_clear(&out[i]);
    }
    rf_lm_free(&lm);
    rf_teacher_free(t);
}

static void test_lm_batch_equals_complete_greedy(void **state)
{
    check_against_complete(0);
}

static void test_lm_batch_equals_complete_sampled(void **state)
{
    check_against_complete(0.9);
}

static void test_lm_prompt_past_context(void **state)
{
    rf_error err;
    rf_teacher *t;
    assert_int_equal(rf_teacher_lm_new(g_model, "tiny", 4, &t, &err), 0);
    char long_prompt[2000] = "";
    for (int i = 0; i < 200; i++) /* varied bytes: far more tokens than the 128 positions */
        snprintf(long_prompt + strlen(long_prompt), sizeof long_prompt - strlen(long_prompt),
                 "%c%d ", 'a' + i % 26, i);
    rf_chat_msg m[2] = {{"user", long_prompt}, {"user", "hi"}};
    rf_teacher_request q[2] = {{&m[0], 1}, {&m[1], 1}};
    rf_teacher_sampling sp = {.temperature = 0, .top_p = 1, .max_tokens = 4};
    rf_teacher_reply out[2];
    assert_int_equal(t->chat(t, q, 2, &sp, out, &err), 0);
    assert_int_equal(out[0].rc, RF_EINVAL);
    assert_non_null(strstr(out[0].err.msg, "context"));
    assert_int_equal(out[1].rc, 0); /* the other request is unharmed */
    assert_non_null(out[1].text);
    rf_teacher_reply_clear(&out[0]);
    rf_teacher_reply_clear(&out[1]);
    rf_teacher_free(t);
}

static void test_url_allowed(void **state)
{
    const char *ok = "http://127.0.0.1:8000/v1, https://api.example.com/";
    assert_true(rf_teacher_url_allowed("http://127.0.0.1:8000/v1", ok));
    assert_true(rf_teacher_url_allowed("http://127.0.0.1:8000/v1/", ok));
    assert_true(rf_teacher_url_allowed("https://api.example.com/v1", ok));
    assert_false(rf_teacher_url_allowed("http://127.0.0.1:80001/v1", ok));
    assert_false(rf_teacher_url_allowed("http://127.0.0.1:8000/v10", ok));
    assert_false(rf_teacher_url_allowed("http://127.0.0.1:8000@evil.example/v1", ok));
    assert_false(rf_teacher_url_allowed("https://api.example.com.evil.example/v1", ok));
    assert_false(rf_teacher_url_allowed("file:///etc/passwd", "file:///"));
    assert_false(rf_teacher_url_allowed("http://10.0.0.1/v1", ""));
    assert_false(rf_teacher_url_allowed("http://10.0.0.1/v1", NULL));
    assert_true(rf_teacher_url_allowed("http://127.0.0.1:41000/v1", "http://127.0.0.1:"));
}

static void test_http_refused_after_retries(void **state)
{
    rf_error err;
    rf_teacher *t;
    /* port 1 on loopback: nothing listens, the connection is refused */
    rf_teacher_http_opts o = {.base_url = "http://127.0.0.1:1/v1",
                              .model = "m",
                              .timeout_s = 2,
                              .max_retries = 2,
                              .concurrency = 2,
                              .backoff_base_s = 0.01};
    assert_int_equal(rf_teacher_http_new(&o, &t, &err), 0);
    assert_string_equal(t->name, "m at http://127.0.0.1:1/v1");
    rf_teacher_sampling sp = {.temperature = 0, .top_p = 1, .max_tokens = 4};
    rf_teacher_reply r;
    assert_int_equal(rf_teacher_ask(t, "hi", &sp, &r, &err), 0);
    assert_int_equal(r.rc, RF_EIO);
    assert_int_equal(r.retries, 2);
    assert_non_null(strstr(r.err.msg, "after 2 retries"));
    assert_null(r.text);
    rf_teacher_reply_clear(&r);
    rf_teacher_free(t);
}

static json_t *params_with(const char *teacher_json, const char *extra)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"teacher\": %s, \"task\": {\"name\": \"t\", \"seed_prompts\": [\"a b c d\"]}%s%s}",
             teacher_json, extra ? ", " : "", extra ? extra : "");
    json_t *p = json_loads(buf, 0, NULL);
    assert_non_null(p);
    return p;
}

static void expect(const char *teacher_json, const char *extra, int rc, const char *field,
                   const char *msg_part)
{
    json_t *p = params_with(teacher_json, extra);
    rf_error err = {0};
    int got = rf_runner_validate(&rf_dataset_runner, p, &err);
    if (got != rc) fail_msg("%s %s: rc %d (%s), want %d", teacher_json, extra, got, err.msg, rc);
    if (field) assert_string_equal(err.field, field);
    if (msg_part && !strstr(err.msg, msg_part)) fail_msg("'%s' lacks '%s'", err.msg, msg_part);
    json_decref(p);
}

static void test_params(void **state)
{
    const char *ep = "{\"base_url\": \"http://127.0.0.1:9/v1\", \"model\": \"m\"}";
    rf_dataset_configure(NULL, true);
    expect("\"tiny\"", NULL, 0, NULL, NULL);
    expect(ep, NULL, RF_EINVAL, "teacher.base_url", "REFINERY_TEACHER_URLS");
    rf_dataset_configure("http://127.0.0.1:9/v1", true);
    expect(ep, NULL, 0, NULL, NULL);
    expect("{\"base_url\": \"http://127.0.0.1:99/v1\", \"model\": \"m\"}", NULL, RF_EINVAL,
           "teacher.base_url", "not under any prefix");
    expect("{\"base_url\": \"http://127.0.0.1:9/v1\", \"model\": \"m\", \"api_key_env\": "
           "\"RF_UNIT_NO_SUCH_VAR\"}",
           NULL, RF_EINVAL, "teacher.api_key_env", "RF_UNIT_NO_SUCH_VAR is not set");
    setenv("RF_UNIT_KEY", "k", 1);
    expect("{\"base_url\": \"http://127.0.0.1:9/v1\", \"model\": \"m\", \"api_key_env\": "
           "\"RF_UNIT_KEY\"}",
           NULL, 0, NULL, NULL);
    /* where the workers run elsewhere, the variable is theirs to have */
    rf_dataset_configure("http://127.0.0.1:9/v1", false);
    expect("{\"base_url\": \"http://127.0.0.1:9/v1\", \"model\": \"m\", \"api_key_env\": "
           "\"RF_UNIT_NO_SUCH_VAR\"}",
           NULL, 0, NULL, NULL);
    expect("{\"base_url\": \"http://127.0.0.1:9/v1\", \"model\": \"m\", \"api_key_env\": \"1x\"}",
           NULL, RF_EINVAL, "teacher.api_key_env", NULL);
    expect("{\"model\": \"m\"}", NULL, RF_EINVAL, "teacher.base_url", NULL);
    expect("[1]", NULL, RF_EINVAL, "teacher", NULL);
    expect("\"tiny\"", "\"prompts\": {\"judge\": \"{question} {score}\"}", RF_EINVAL,
           "prompts.judge", "{score}");
    expect("\"tiny\"", "\"prompts\": {\"pairs\": \"JSON like {\\\"q\\\": 1} is text: {n}\"}", 0,
           NULL, NULL);
    expect("\"tiny\"",
           "\"judge\": {\"model\": "
           "{\"base_url\": \"http://10.1.1.1/v1\", "
           "\"model\": \"m\"}}",
           RF_EINVAL, "judge.model.base_url", NULL);
    expect("\"tiny\"", "\"split\": {\"validation\": 0.5, \"test\": 0.5}", RF_EINVAL, "split", NULL);
    expect("\"tiny\"", "\"filters\": {\"min_words\": 10, \"max_words\": 5}", RF_EINVAL,
           "filters.min_words", NULL);
    expect("\"tiny\"", "\"dedup\": {\"rouge_l\": 1.5}", RF_EINVAL, "dedup.rouge_l", NULL);
    rf_dataset_configure(NULL, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lm_batch_equals_complete_greedy),
        cmocka_unit_test(test_lm_batch_equals_complete_sampled),
        cmocka_unit_test(test_lm_prompt_past_context),
        cmocka_unit_test(test_url_allowed),
        cmocka_unit_test(test_http_refused_after_retries),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
