/* engine/data/rouge + dedup against tests/reference/rouge_reference.py (the
 * rouge_score definitions written out in Python): tokens, LCS and F1 bit for
 * bit on a corpus of instruction pairs, and the greedy keep/drop decisions
 * of the index equal to the plain loop's on a corpus with near duplicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/data/dedup.h"
#include "engine/data/rouge.h"

#define FIX "tests/reference/fixtures/rouge"

typedef struct toks {
    char *s[512];
    int n;
} toks;

static void grab(void *user, const char *t, size_t len)
{
    toks *x = user;
    if (x->n < 512) x->s[x->n++] = strndup(t, len);
}

static void tokens_equal(const char *text, const json_t *want)
{
    toks x = {.n = 0};
    size_t n = rf_rouge_tokenize(text, grab, &x);
    assert_int_equal(n, json_array_size(want));
    for (int i = 0; i < x.n; i++) {
        assert_string_equal(x.s[i], json_string_value(json_array_get(want, (size_t)i)));
        free(x.s[i]);
    }
}

static void test_pairs_match_reference(void **state)
{
    FILE *f = fopen(FIX "/pairs.jsonl", "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, at_threshold = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        const char *a = json_string_value(json_object_get(j, "a"));
        const char *b = json_string_value(json_object_get(j, "b"));
        tokens_equal(a, json_object_get(j, "tokens_a"));
        tokens_equal(b, json_object_get(j, "tokens_b"));
        double want = json_real_value(json_object_get(j, "f1"));
        double got = rf_rouge_l(a, b);
        if (got != want) fail_msg("F1 of '%s' / '%s': %.17g, reference %.17g", a, b, got, want);
        at_threshold += want > 0.69999 && want < 0.70001;
        json_decref(j);
        n++;
    }
    free(line);
    fclose(f);
    assert_true(n > 1000);
    assert_true(at_threshold >= 3); /* the fixture has scores exactly at 0.7 */
}

/* A plain dynamic-programming LCS, for random sequences of any length. */
static size_t lcs_dp(const uint32_t *a, size_t m, const uint32_t *b, size_t n)
{
    size_t *prev = calloc(n + 1, sizeof *prev), *cur = calloc(n + 1, sizeof *cur);
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++)
            cur[j + 1] = a[i] == b[j] ? prev[j] + 1 : prev[j + 1] > cur[j] ? prev[j + 1] : cur[j];
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    size_t r = prev[n];
    free(prev);
    free(cur);
    return r;
}

static void test_lcs_bit_parallel_equals_dp(void **state)
{
    uint64_t s = 42;
    uint32_t a[400], b[400];
    for (int trial = 0; trial < 400; trial++) {
        size_t m = rf_splitmix64(&s) % 300, n = rf_splitmix64(&s) % 300;
        uint32_t alpha = 1 + (uint32_t)(rf_splitmix64(&s) % 12);
        for (size_t i = 0; i < m; i++)
            a[i] = (uint32_t)(rf_splitmix64(&s) % alpha);
        for (size_t i = 0; i < n; i++)
            b[i] = (uint32_t)(rf_splitmix64(&s) % alpha);
        assert_int_equal(rf_lcs_ids(a, m, b, n), lcs_dp(a, m, b, n));
    }
}

static void test_dedup_decisions_equal_greedy_reference(void **state)
{
    json_error_t je;
    json_t *j = json_load_file(FIX "/dedup.json", 0, &je);
    assert_non_null(j);
    rf_dedup *d;
    rf_error err;
    assert_int_equal(rf_dedup_new(json_real_value(json_object_get(j, "threshold")), &d, &err), 0);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "seeds"), i, v)
        assert_int_equal(rf_dedup_add(d, json_string_value(v), &err), 0);
    json_t *items = json_object_get(j, "items"), *kept = json_object_get(j, "kept");
    size_t n_kept = 0, n = json_array_size(items);
    json_array_foreach(items, i, v)
    {
        bool k;
        assert_int_equal(rf_dedup_offer(d, json_string_value(v), &k, &err), 0);
        if (k != json_is_true(json_array_get(kept, i)))
            fail_msg("item %zu '%s': kept %d, reference %d", i, json_string_value(v), k, !k);
        n_kept += k;
    }
    rf_dedup_stats st;
    rf_dedup_get_stats(d, &st);
    /* the bounds did work: far fewer LCS than the loop's comparisons */
    assert_true(n_kept > n / 4 && n_kept < n);
    assert_true(st.lcs < (uint64_t)n * n_kept / 8);
    assert_true(st.length_cut + st.bag_cut > 0);
    assert_int_equal(rf_dedup_size(d), n_kept + json_array_size(json_object_get(j, "seeds")));
    rf_dedup_free(d);
    json_decref(j);
}

static void test_dedup_edges(void **state)
{
    rf_dedup *d;
    rf_error err;
    bool dup, k;
    size_t match = 99;
    double score = 0;
    assert_int_equal(rf_dedup_new(1.5, &d, &err), RF_EINVAL);
    assert_int_equal(rf_dedup_new(0.7, &d, &err), 0);
    /* empty and letterless texts tokenize to nothing: never duplicates */
    assert_int_equal(rf_dedup_offer(d, "", &k, &err), 0);
    assert_true(k);
    assert_int_equal(rf_dedup_offer(d, "?!", &k, &err), 0);
    assert_true(k);
    assert_int_equal(rf_dedup_offer(d, "What is the boiling point of water?", &k, &err), 0);
    assert_true(k);
    assert_int_equal(
        rf_dedup_check(d, "what is the BOILING point of water", &dup, &match, &score, &err), 0);
    assert_true(dup);
    assert_int_equal(match, 2);
    assert_true(score == 1.0);
    /* 10 of 10 tokens against 7 shared in order: F1 exactly 0.7 is not above */
    assert_int_equal(rf_dedup_add(d, "a b c d e f g h i j", &err), 0);
    assert_int_equal(rf_dedup_check(d, "a b c d e f g x y z", &dup, NULL, NULL, &err), 0);
    assert_int_equal(dup, rf_rouge_l("a b c d e f g h i j", "a b c d e f g x y z") > 0.7);
    rf_dedup_free(d);
    /* threshold 0: any shared token; threshold 1: nothing is above */
    assert_int_equal(rf_dedup_new(0, &d, &err), 0);
    assert_int_equal(rf_dedup_add(d, "alpha beta", &err), 0);
    assert_int_equal(rf_dedup_check(d, "gamma beta", &dup, NULL, NULL, &err), 0);
    assert_true(dup);
    assert_int_equal(rf_dedup_check(d, "gamma delta", &dup, NULL, NULL, &err), 0);
    assert_false(dup);
    rf_dedup_free(d);
    assert_int_equal(rf_dedup_new(1, &d, &err), 0);
    assert_int_equal(rf_dedup_add(d, "alpha beta", &err), 0);
    assert_int_equal(rf_dedup_check(d, "alpha beta", &dup, NULL, NULL, &err), 0);
    assert_false(dup);
    rf_dedup_free(d);
}

/* Above PAR_MIN candidates the verification runs on OpenMP threads: the
 * decisions and the match stay those of one thread. */
static void test_dedup_many_candidates(void **state)
{
    rf_dedup *d;
    rf_error err;
    assert_int_equal(rf_dedup_new(0.7, &d, &err), 0);
    char buf[128];
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof buf, "common words here t%d u%d v%d w%d", i, i, i, i);
        assert_int_equal(rf_dedup_add(d, buf, &err), 0);
    }
    bool dup;
    size_t match = 0;
    assert_int_equal(rf_dedup_check(d, "common words here t4321", &dup, &match, NULL, &err), 0);
    assert_true(dup);
    assert_int_equal(match, 4321);
    assert_int_equal(rf_dedup_check(d, "common words here", &dup, NULL, NULL, &err), 0);
    assert_false(dup); /* 3 of 7 tokens: F1 0.6 */
    rf_dedup_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs_match_reference),
        cmocka_unit_test(test_lcs_bit_parallel_equals_dp),
        cmocka_unit_test(test_dedup_decisions_equal_greedy_reference),
        cmocka_unit_test(test_dedup_edges),
        cmocka_unit_test(test_dedup_many_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
