/* rf_complete, rf_eval_dataset and `refinery generate`/`eval` on the
 * llama_f32_gqa fixture with the bytelevel test tokenizer: greedy equals the
 * reference continuation, seeded sampling is reproducible, stop strings cut
 * the text (also in what is streamed), top log-probabilities are right, and
 * every metric agrees with a computation from full-sequence logits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/generate/complete.h"
#include "engine/core/dataset.h"
#include "engine/eval/eval_dataset.h"
#include "cli/generate.h"

#define FIX "tests/reference/fixtures/llama_f32_gqa"
#define TOK "tests/reference/tokenizers/bytelevel"

static char g_dir[PATH_MAX], g_model[PATH_MAX];
static rf_lm g_lm;

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
    snprintf(g_dir, sizeof g_dir, "%s/complete-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_model, sizeof g_model, "%s/model", g_dir);
    if (mkdir(g_model, 0750)) return -1;
    link_in(FIX, "config.json");
    link_in(FIX, "model.safetensors");
    link_in(FIX, "expected.safetensors");
    link_in(TOK, "tokenizer.json");
    link_in(TOK, "tokenizer_config.json");
    rf_error err = {0};
    if (rf_lm_load(&g_lm, g_model, RF_ACT_F32, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    rf_lm_free(&g_lm);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_greedy_is_reference(void **state)
{
    rf_st_file exp;
    rf_error err = {0};
    assert_int_equal(rf_st_open(&exp, FIX "/expected.safetensors", &err), 0);
    rf_tensor ids, greedy;
    rf_st_view(&exp, rf_st_find(&exp, "input_ids"), &ids);
    rf_st_view(&exp, rf_st_find(&exp, "greedy"), &greedy);
    rf_complete_params p = {.max_tokens = (int)greedy.shape[0],
                            .n = 2,
                            .sampling = {.temperature = 0, .top_p = 1},
                            .top_logprobs = 3};
    rf_complete_result r;
    assert_int_equal(rf_complete(&g_lm, ids.data, (int)ids.shape[0], &p, NULL, NULL, &r, &err), 0);
    assert_int_equal(r.prompt_tokens, ids.shape[0]);
    assert_int_equal(r.completion_tokens, 2 * greedy.shape[0]);
    for (int s = 0; s < 2; s++) {
        assert_int_equal(r.choices[s].finish, RF_FINISH_LENGTH);
        assert_memory_equal(r.choices[s].ids, greedy.data, sizeof(int) * (size_t)greedy.shape[0]);
        /* greedy: the chosen token is the most likely one */
        for (int i = 0; i < r.choices[s].n_tokens; i++) {
            const rf_complete_token *t = &r.choices[s].lp[i];
            assert_int_equal(t->n_top, 3);
            assert_int_equal(t->top[0].id, t->id);
            assert_float_equal(t->top[0].logprob, t->logprob, 1e-6);
            assert_true(t->top[0].logprob >= t->top[1].logprob);
            assert_true(t->top[1].logprob >= t->top[2].logprob);
            assert_true(t->logprob < 0);
        }
    }
    rf_complete_result_free(&r);
    rf_st_close(&exp);
}

static void test_top_logprobs_by_hand(void **state)
{
    /* log softmax of [0, ln 3, 0, ln 4]: sum of exp = 1+3+1+4 = 9 */
    const float lg[4] = {0, logf(3), 0, logf(4)};
    rf_token_logprob top[3];
    rf_top_logprobs(lg, 4, 3, top);
    assert_int_equal(top[0].id, 3);
    assert_int_equal(top[1].id, 1);
    assert_int_equal(top[2].id, 0); /* ties: the lower id */
    assert_float_equal(top[0].logprob, log(4.0 / 9), 1e-6);
    assert_float_equal(top[1].logprob, log(3.0 / 9), 1e-6);
    assert_float_equal(top[2].logprob, log(1.0 / 9), 1e-6);
}

typedef struct sink {
    char text[4][512];
    size_t len[4];
    int tokens[4], finals[4];
} sink;

static bool collect(void *ctx, int seq, const char *text, size_t len, int first, int n,
                    const rf_complete_choice *c, bool final)
{
    sink *k = ctx;
    assert_int_equal(first, k->tokens[seq]);
    k->tokens[seq] += n;
    memcpy(k->text[seq] + k->len[seq], text, len);
    k->len[seq] += len;
    k->finals[seq] += final;
    return true;
}

static int complete_text(const char *prompt, uint64_t seed, const char *stop, int n,
                         rf_complete_result *r, sink *k)
{
    int32_t *ids;
    size_t ni;
    rf_error err = {0};
    assert_int_equal(rf_lm_encode_prompt(&g_lm, prompt, &ids, &ni, &err), 0);
    const char *stops[1] = {stop};
    rf_complete_params p = {.max_tokens = 40,
                            .n = n,
                            .sampling = {.temperature = 1.5f, .top_p = 1, .seed = seed},
                            .stop = stops,
                            .n_stop = stop ? 1 : 0,
                            .top_logprobs = -1};
    int rc = rf_complete(&g_lm, ids, (int)ni, &p, k ? collect : NULL, k, r, &err);
    free(ids);
    return rc;
}

static void test_sampling_and_stop_strings(void **state)
{
    rf_complete_result a, b, c;
    sink k = {0};
    assert_int_equal(complete_text("this is the test", 1, NULL, 2, &a, NULL), 0);
    assert_int_equal(complete_text("this is the test", 1, NULL, 1, &b, NULL), 0);
    /* the same seed gives the same tokens, alone or first in a batch; the
     * second continuation (seed + 1) differs */
    assert_memory_equal(a.choices[0].ids, b.choices[0].ids, sizeof(int) * 40);
    assert_true(memcmp(a.choices[0].ids, a.choices[1].ids, sizeof(int) * 40) != 0);
    /* pick a stop string from the text itself: its second character */
    const char *text = b.choices[0].text;
    assert_true(b.choices[0].len >= 2);
    char stop[2] = {text[1], 0};
    size_t cut = (size_t)(strchr(text, text[1]) - text);
    assert_int_equal(complete_text("this is the test", 1, stop, 1, &c, &k), 0);
    assert_int_equal(c.choices[0].finish, RF_FINISH_STOP);
    assert_int_equal(c.choices[0].len, cut);
    assert_memory_equal(c.choices[0].text, text, cut);
    /* what was streamed is exactly the final text, ended once */
    assert_int_equal(k.len[0], cut);
    assert_memory_equal(k.text[0], text, cut);
    assert_int_equal(k.finals[0], 1);
    assert_int_equal(k.tokens[0], c.choices[0].n_tokens);
    assert_true(c.choices[0].n_tokens < 40);
    rf_complete_result_free(&a);
    rf_complete_result_free(&b);
    rf_complete_result_free(&c);
}

static void test_complete_errors(void **state)
{
    int ids[2] = {5, 6};
    rf_complete_result r;
    rf_error err = {0};
    rf_complete_params p = {
        .max_tokens = 200, .n = 1, .sampling = {.top_p = 1}, .top_logprobs = -1};
    assert_int_equal(rf_complete(&g_lm, ids, 2, &p, NULL, NULL, &r, &err), RF_EINVAL);
    assert_string_equal(err.field, "max_tokens");
    p.max_tokens = 4;
    p.n = 17;
    assert_int_equal(rf_complete(&g_lm, ids, 2, &p, NULL, NULL, &r, &err), RF_EINVAL);
    assert_string_equal(err.field, "n");
    p.n = 1;
    p.sampling.top_p = 0;
    assert_int_equal(rf_complete(&g_lm, ids, 2, &p, NULL, NULL, &r, &err), RF_EINVAL);
    assert_string_equal(err.field, "top_p");
}

/* Σ log p(target | context) from one full-sequence forward, the context and
 * target joined by delim (" " plain, "" chat). */
static double score_with(const char *ctx, const char *delim, const char *target, int special,
                         int *n_target)
{
    int32_t *c, *w;
    size_t nc, nw;
    char whole[1024];
    snprintf(whole, sizeof whole, "%s%s%s", ctx, delim, target);
    assert_int_equal(rf_tokenizer_encode(g_lm.tok, ctx, strlen(ctx), special, &c, &nc, NULL), 0);
    assert_int_equal(rf_tokenizer_encode(g_lm.tok, whole, strlen(whole), special, &w, &nw, NULL),
                     0);
    const int V = g_lm.model.config.vocab_size;
    rf_llama_acts a = {0};
    float *lg = malloc(sizeof(float) * nw * (size_t)V);
    int zero = 0;
    assert_int_equal(rf_llama_acts_init(&a, &g_lm.model.config, 1, (int)nw, (int)nw, NULL), 0);
    assert_int_equal(rf_llama_forward(&g_lm.model, &a, 1, (int)nw, w, &zero, lg, true, NULL), 0);
    double sum = 0;
    for (size_t i = nc; i < nw; i++)
        sum += rf_logprob(lg + (i - 1) * V, V, w[i]);
    *n_target = (int)(nw - nc);
    rf_llama_acts_free(&a);
    free(lg);
    free(c);
    free(w);
    return sum;
}

static double score(const char *ctx, const char *target, int *n_target)
{
    return score_with(ctx, " ", target, 1, n_target);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_eval_metrics(void **state)
{
    /* exact match: the row whose response is the greedy continuation */
    int32_t *ids;
    size_t ni;
    rf_complete_result g;
    rf_error err = {0};
    assert_int_equal(rf_lm_encode_prompt(&g_lm, "this is", &ids, &ni, &err), 0);
    rf_complete_params gp = {.max_tokens = 4, .n = 1, .sampling = {.top_p = 1}, .top_logprobs = -1};
    assert_int_equal(rf_complete(&g_lm, ids, (int)ni, &gp, NULL, NULL, &g, &err), 0);
    free(ids);
    assert_true(g.choices[0].len > 0);
    char path[PATH_MAX + 16], lines[2048];
    snprintf(path, sizeof path, "%s/d.jsonl", g_dir);
    snprintf(lines, sizeof lines,
             "{\"prompt\":\"this is\",\"response\":\"the test\"}\n"
             "\n"
             "{\"prompt\":\"hi\",\"response\":\"test\",\"split\":\"validation\"}\n"
             "{\"prompt\":\"this\",\"choices\":[\"is\",\"test\",\"hi!\"],\"answer\":1}\n"
             "{\"prompt\":\"the\",\"choices\":[\"test\",\"hi\"],\"answer\":0}\n"
             "{\"prompt\":\"this is\",\"response\":\" %s \"}\n",
             g.choices[0].text);
    write_file(path, lines);
    rf_complete_result_free(&g);

    rf_eval_opts o = {.metrics = RF_METRIC_PERPLEXITY | RF_METRIC_ACCURACY | RF_METRIC_EXACT_MATCH,
                      .split = -1,
                      .max_new_tokens = 4};
    json_t *m;
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &m, &err), 0);
    /* perplexity from scratch over the three response rows */
    int n1, n2, n3, nc;
    double s = score("this is", "the test", &n1) + score("hi", "test", &n2);
    /* the EM row's target as written in the file */
    json_t *line6 = NULL;
    {
        FILE *f = fopen(path, "r");
        char buf[1024];
        for (int i = 0; i < 6 && fgets(buf, sizeof buf, f); i++)
            if (i == 5) line6 = json_loads(buf, 0, NULL);
        fclose(f);
    }
    s += score("this is", json_string_value(json_object_get(line6, "response")), &n3);
    json_decref(line6);
    double ppl = exp(-s / (n1 + n2 + n3));
    assert_int_equal(json_integer_value(json_object_get(m, "rows")), 5);
    assert_int_equal(json_integer_value(json_object_get(m, "perplexity_tokens")), n1 + n2 + n3);
    assert_float_equal(json_real_value(json_object_get(m, "perplexity")), ppl, ppl * 1e-4);
    /* accuracy: each choice scored from scratch, acc and acc_norm picked here */
    const char *q[2] = {"this", "the"};
    const char *ch[2][3] = {{"is", "test", "hi!"}, {"test", "hi", NULL}};
    int answer[2] = {1, 0}, acc = 0, acc_norm = 0;
    for (int r = 0; r < 2; r++) {
        int best = 0, best_norm = 0;
        double ll[3], norm[3];
        for (int c = 0; c < 3 && ch[r][c]; c++) {
            ll[c] = score(q[r], ch[r][c], &nc);
            norm[c] = ll[c] / (double)strlen(ch[r][c]);
            if (ll[c] > ll[best]) best = c;
            if (norm[c] > norm[best_norm]) best_norm = c;
        }
        acc += best == answer[r];
        acc_norm += best_norm == answer[r];
    }
    assert_int_equal(json_integer_value(json_object_get(m, "multiple_choice_rows")), 2);
    assert_float_equal(json_real_value(json_object_get(m, "acc")), acc / 2.0, 1e-12);
    assert_float_equal(json_real_value(json_object_get(m, "acc_norm")), acc_norm / 2.0, 1e-12);
    /* exact match: only the last row's response is what greedy decoding says */
    assert_int_equal(json_integer_value(json_object_get(m, "exact_match_rows")), 3);
    assert_float_equal(json_real_value(json_object_get(m, "exact_match")), 1.0 / 3, 1e-12);
    json_decref(m);

    /* split and limit */
    o.split = RF_SPLIT_VALIDATION;
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &m, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(m, "rows")), 1);
    assert_true(json_is_null(json_object_get(m, "acc")));
    json_decref(m);
    o.split = RF_SPLIT_TEST;
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &m, &err), RF_EINVAL);
    assert_string_equal(err.field, "split");
    o.split = -1;
    o.limit = 2;
    o.metrics = RF_METRIC_PERPLEXITY;
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &m, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(m, "perplexity_rows")), 2);
    assert_null(json_object_get(m, "acc"));
    json_decref(m);

    /* a bad line is named */
    write_file(path, "{\"prompt\":\"hi\",\"response\":\"test\"}\n{\"prompt\":1}\n");
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &m, &err), RF_EINVAL);
    assert_non_null(strstr(err.msg, "line 2"));
}

/* chat: a prompt_response row becomes a user turn, a messages row's last
 * assistant turn is the target; both follow the assistant header directly. */
static void test_eval_chat(void **state)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/chat.jsonl", g_dir);
    write_file(path, "{\"messages\":[{\"role\":\"system\",\"content\":\"hi\"},"
                     "{\"role\":\"user\",\"content\":\"this is\"},"
                     "{\"role\":\"assistant\",\"content\":\"the test\"}]}\n");
    rf_eval_opts o = {.metrics = RF_METRIC_PERPLEXITY, .split = -1, .max_new_tokens = 4};
    json_t *m;
    rf_error err = {0};
    assert_non_null(g_lm.chat);
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &m, &err), 0);
    rf_chat_msg msgs[2] = {{"system", "hi"}, {"user", "this is"}};
    rf_chat_opts co = {.add_generation_prompt = 1};
    char *text = NULL;
    size_t len;
    json_t *jm = rf_chat_messages(msgs, 2);
    assert_int_equal(rf_chat_render(g_lm.chat, jm, &co, &text, &len, &err), 0);
    json_decref(jm);
    int n;
    double s = score_with(text, "", "the test", 0, &n);
    assert_int_equal(json_integer_value(json_object_get(m, "perplexity_tokens")), n);
    assert_float_equal(json_real_value(json_object_get(m, "perplexity")), exp(-s / n),
                       exp(-s / n) * 1e-4);
    json_decref(m);
    free(text);

    /* the same pair as prompt_response with chat on: the same number */
    write_file(path, "{\"prompt\":\"this is\",\"response\":\"the test\"}\n");
    o.chat = true;
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &m, &err), 0);
    rf_chat_msg user = {"user", "this is"};
    jm = rf_chat_messages(&user, 1);
    assert_int_equal(rf_chat_render(g_lm.chat, jm, &co, &text, &len, &err), 0);
    json_decref(jm);
    s = score_with(text, "", "the test", 0, &n);
    assert_float_equal(json_real_value(json_object_get(m, "perplexity")), exp(-s / n),
                       exp(-s / n) * 1e-4);
    json_decref(m);
    free(text);
}

static void keep_second(void *ctx, const json_t *state)
{
    json_t **kept = ctx;
    if (json_integer_value(json_object_get(state, "rows")) == 2) *kept = json_deep_copy(state);
}

/* A run resumed from a checkpoint's totals ends where one run ends. */
static void test_eval_resume(void **state)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/resume.jsonl", g_dir);
    write_file(path, "{\"prompt\":\"this is\",\"response\":\"the test\"}\n"
                     "{\"prompt\":\"this\",\"choices\":[\"is\",\"test\",\"hi!\"],\"answer\":1}\n"
                     "{\"prompt\":\"hi\",\"response\":\"test\"}\n"
                     "{\"prompt\":\"the\",\"choices\":[\"test\",\"hi\"],\"answer\":0}\n"
                     "{\"prompt\":\"test\",\"response\":\"hi\"}\n");
    json_t *kept = NULL, *whole, *resumed;
    rf_error err = {0};
    rf_eval_opts o = {.metrics = RF_METRIC_PERPLEXITY | RF_METRIC_ACCURACY | RF_METRIC_EXACT_MATCH,
                      .split = -1,
                      .max_new_tokens = 3,
                      .on_checkpoint = keep_second,
                      .checkpoint_s = 0,
                      .ctx = &kept};
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &whole, &err), 0);
    assert_non_null(kept);
    o.on_checkpoint = NULL;
    o.resume = kept;
    assert_int_equal(rf_eval_dataset(&g_lm, path, &o, &resumed, &err), 0);
    const char *keys[] = {"rows", "perplexity_tokens", "multiple_choice_rows", "exact_match_rows"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(json_integer_value(json_object_get(resumed, keys[i])),
                         json_integer_value(json_object_get(whole, keys[i])));
    const char *reals[] = {"perplexity", "acc", "acc_norm", "exact_match"};
    for (int i = 0; i < 4; i++)
        assert_float_equal(json_real_value(json_object_get(resumed, reals[i])),
                           json_real_value(json_object_get(whole, reals[i])), 1e-12);
    json_decref(kept);
    json_decref(whole);
    json_decref(resumed);
}

static void test_parse(void **state)
{
    int bits, split;
    rf_error err;
    assert_int_equal(rf_eval_parse_metrics("accuracy,perplexity", &bits, &err), 0);
    assert_int_equal(bits, RF_METRIC_ACCURACY | RF_METRIC_PERPLEXITY);
    assert_int_equal(rf_eval_parse_metrics("accuracy,", &bits, &err), RF_EINVAL);
    assert_int_equal(rf_eval_parse_split("test", &split, &err), 0);
    assert_int_equal(split, RF_SPLIT_TEST);
    assert_int_equal(rf_eval_parse_split("dev", &split, &err), RF_EINVAL);
    assert_string_equal(err.field, "split");
}

static void test_cli(void **state)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/e.jsonl", g_dir);
    write_file(path, "{\"prompt\":\"hi\",\"response\":\"test\"}\n");
    char *gen[] = {"generate", "--model",      g_model, "--prompt",
                   "this is",  "--max-tokens", "4",     "--json"};
    assert_int_equal(rf_cmd_generate(8, gen), 0);
    char *ev[] = {"eval", "--model", g_model, "--dataset", path, "--metrics", "perplexity"};
    assert_int_equal(rf_cmd_eval(7, ev), 0);
    char *bad[] = {"eval", "--model", g_model, "--dataset", path, "--metrics", "bleu"};
    assert_int_equal(rf_cmd_eval(7, bad), 2);
    char *both[] = {"generate", "--model", g_model, "--prompt", "x", "--ids", "1"};
    assert_int_equal(rf_cmd_generate(7, both), 2);
    char *missing[] = {"eval", "--model", g_model, "--dataset", "/nonexistent.jsonl"};
    assert_int_equal(rf_cmd_eval(5, missing), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_reference),
        cmocka_unit_test(test_top_logprobs_by_hand),
        cmocka_unit_test(test_sampling_and_stop_strings),
        cmocka_unit_test(test_complete_errors),
        cmocka_unit_test(test_eval_metrics),
        cmocka_unit_test(test_eval_chat),
        cmocka_unit_test(test_eval_resume),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
