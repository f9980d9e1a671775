/* The Llama forward pass against tests/reference/fixtures (written by
 * tests/reference/make_fixtures.py from an independent float64 torch
 * implementation): logits, greedy continuations, KV-cache decode against full
 * recomputation, batching, scoring and concurrent runs. Malformed
 * checkpoints are in test_llama_load.c.
 *
 * Tolerance: max |logit - reference| / max |reference| over all positions,
 * 1e-4 for every fixture (issue 4 asks 1e-4 for F32). The bf16/f16 fixtures
 * need no looser bound: the engine converts the stored weights to f32
 * exactly and computes in f32, and the reference computes in f64 from the
 * same stored values, so the stored dtype adds no error on either side
 * (measured: about 4e-7 on all four). A reference that computed in bf16
 * itself, as transformers does with torch_dtype=bfloat16, would not be
 * comparable at this tolerance: bf16 keeps 8 significant bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model/llama.h"

#define FIX "tests/reference/fixtures/"

static const struct {
    const char *name;
    double tol;
} g_fixtures[] = {
    {"llama_f32_gqa", 1e-4},
    {"llama3_bf16_tied", 1e-4},
    {"qwen2_f16_bias", 1e-4},
    {"mistral_f32_sharded", 1e-4},
};

typedef struct expected {
    rf_st_file f;
    const int32_t *ids, *greedy;
    const float *logits;
    int T, n_greedy, vocab;
} expected;

static void load_expected(expected *e, const char *name)
{
    char p[512];
    rf_error err = {0};
    snprintf(p, sizeof p, FIX "%s/expected.safetensors", name);
    int rc = rf_st_open(&e->f, p, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    const rf_st_entry *ids = rf_st_find(&e->f, "input_ids"), *lg = rf_st_find(&e->f, "logits"),
                      *gr = rf_st_find(&e->f, "greedy");
    assert_non_null(ids);
    assert_non_null(lg);
    assert_non_null(gr);
    rf_tensor t;
    rf_st_view(&e->f, ids, &t);
    e->ids = t.data;
    e->T = (int)t.shape[0];
    rf_st_view(&e->f, lg, &t);
    e->logits = t.data;
    e->vocab = (int)t.shape[1];
    rf_st_view(&e->f, gr, &t);
    e->greedy = t.data;
    e->n_greedy = (int)t.shape[0];
}

static void load_model_ops(rf_llama_model *m, const char *dir, const rf_ops *ops)
{
    rf_error err = {0};
    int rc = rf_llama_load(m, dir, ops, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void load_model(rf_llama_model *m, const char *dir)
{
    load_model_ops(m, dir, NULL);
}

/* max |a − b| / max |b| over n values */
static double rel_err(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

/* Every fixture on every CPU table: SIMD kernels and portable ones. */
static void test_logits_match_reference(void **state)
{
    const rf_ops *tables[2] = {rf_ops_cpu(), rf_ops_cpu_generic()};
    for (size_t o = 0; o < 2; o++)
        for (size_t i = 0; i < sizeof g_fixtures / sizeof *g_fixtures; i++) {
            expected e;
            rf_llama_model m;
            rf_llama_acts a;
            rf_error err = {0};
            load_expected(&e, g_fixtures[i].name);
            char dir[256];
            snprintf(dir, sizeof dir, FIX "%s", g_fixtures[i].name);
            load_model_ops(&m, dir, tables[o]);
            assert_int_equal(m.config.vocab_size, e.vocab);
            assert_int_equal(rf_llama_acts_init(&a, &m.config, 1, 64, 32, &err), 0);
            float *lg = malloc(sizeof(float) * (size_t)e.T * e.vocab);
            int zero = 0;
            assert_int_equal(rf_llama_forward(&m, &a, 1, e.T, e.ids, &zero, lg, true, &err), 0);
            double r = rel_err(lg, e.logits, (size_t)e.T * e.vocab);
            printf("%-11s %-22s logits rel err %.3g (tolerance %.0e)\n", tables[o]->name,
                   g_fixtures[i].name, r, g_fixtures[i].tol);
            assert_true(r <= g_fixtures[i].tol);

            int out[64];
            int n = rf_llama_generate_greedy(&m, &a, e.ids, e.T, e.n_greedy, false, out, &err);
            assert_int_equal(n, e.n_greedy);
            for (int k = 0; k < n; k++)
                assert_int_equal(out[k], e.greedy[k]);
            free(lg);
            rf_llama_acts_free(&a);
            rf_llama_free(&m);
            rf_st_close(&e.f);
        }
}

/* Prefill part of a sequence, then decode the rest one token at a time: the
 * logits at every position must equal those of one full forward. Different
 * GEMM shapes sum in different orders, so "equal" is 1e-5 relative, and the
 * argmax must agree exactly. */
static void test_kv_cache_matches_full(void **state)
{
    for (size_t i = 0; i < sizeof g_fixtures / sizeof *g_fixtures; i++) {
        expected e;
        rf_llama_model m;
        rf_llama_acts full, inc;
        rf_error err = {0};
        load_expected(&e, g_fixtures[i].name);
        char dir[256];
        snprintf(dir, sizeof dir, FIX "%s", g_fixtures[i].name);
        load_model(&m, dir);
        int V = e.vocab, T = e.T + e.n_greedy, ids[64];
        memcpy(ids, e.ids, sizeof(int) * e.T);
        memcpy(ids + e.T, e.greedy, sizeof(int) * e.n_greedy);
        assert_int_equal(rf_llama_acts_init(&full, &m.config, 1, 64, 64, &err), 0);
        assert_int_equal(rf_llama_acts_init(&inc, &m.config, 1, 64, 8, &err), 0);
        float *ref = malloc(sizeof(float) * (size_t)T * V),
              *got = malloc(sizeof(float) * (size_t)T * V);
        int zero = 0;
        assert_int_equal(rf_llama_forward(&m, &full, 1, T, ids, &zero, ref, true, &err), 0);
        /* prefill 5 tokens, then 1 by 1 */
        assert_int_equal(rf_llama_forward(&m, &inc, 1, 5, ids, &zero, got, true, &err), 0);
        for (int p = 5; p < T; p++)
            assert_int_equal(
                rf_llama_forward(&m, &inc, 1, 1, ids + p, &p, got + (size_t)p * V, true, &err), 0);
        double worst = 0;
        for (int p = 0; p < T; p++) {
            worst = fmax(worst, rel_err(got + (size_t)p * V, ref + (size_t)p * V, (size_t)V));
            assert_int_equal(rf_argmax(got + (size_t)p * V, V), rf_argmax(ref + (size_t)p * V, V));
        }
        printf("%-22s kv-cache decode vs full: rel err %.3g\n", g_fixtures[i].name, worst);
        assert_true(worst <= 1e-5);
        free(ref);
        free(got);
        rf_llama_acts_free(&full);
        rf_llama_acts_free(&inc);
        rf_llama_free(&m);
        rf_st_close(&e.f);
    }
}

/* Two different sequences in one batch give what each gives alone: batch
 * rows and KV cache slots do not leak into each other. */
static void test_batched_matches_single(void **state)
{
    expected e;
    rf_llama_model m;
    rf_llama_acts one, two;
    rf_error err = {0};
    load_expected(&e, "llama_f32_gqa");
    load_model(&m, FIX "llama_f32_gqa");
    const int V = e.vocab, T = e.T;
    int zero = 0, eight = 8, pos2[2], ids2[32];
    assert_int_equal(rf_llama_acts_init(&one, &m.config, 1, 32, 16, &err), 0);
    assert_int_equal(rf_llama_acts_init(&two, &m.config, 2, 32, 16, &err), 0);
    int seq[2][16]; /* the prompt, and the prompt reversed */
    for (int i = 0; i < T; i++)
        seq[0][i] = e.ids[i], seq[1][i] = e.ids[T - 1 - i];
    float *alone = malloc(sizeof(float) * V * 8), *both = malloc(sizeof(float) * V * 8);
    for (int s = 0; s < 2; s++) { /* alone: prefill 8, then 4 more */
        assert_int_equal(rf_llama_forward(&m, &one, 1, 8, seq[s], &zero, NULL, false, &err), 0);
        assert_int_equal(rf_llama_forward(&m, &one, 1, 4, seq[s] + 8, &eight,
                                          alone + (size_t)s * 4 * V, true, &err),
                         0);
    }
    for (int s = 0; s < 2; s++)
        memcpy(ids2 + s * 8, seq[s], sizeof(int) * 8);
    pos2[0] = pos2[1] = 0;
    assert_int_equal(rf_llama_forward(&m, &two, 2, 8, ids2, pos2, NULL, false, &err), 0);
    for (int s = 0; s < 2; s++)
        memcpy(ids2 + s * 4, seq[s] + 8, sizeof(int) * 4);
    pos2[0] = pos2[1] = 8;
    assert_int_equal(rf_llama_forward(&m, &two, 2, 4, ids2, pos2, both, true, &err), 0);
    double r = rel_err(both, alone, (size_t)8 * V);
    printf("batched vs single: rel err %.3g\n", r);
    assert_true(r <= 1e-5);
    /* the last-token logits of the batch are each sequence's own */
    for (int s = 0; s < 2; s++)
        assert_true(rel_err(two.logits + (size_t)s * V, alone + ((size_t)s * 4 + 3) * V,
                            (size_t)V) <= 1e-5);
    free(alone);
    free(both);
    rf_llama_acts_free(&one);
    rf_llama_acts_free(&two);
    rf_llama_free(&m);
    rf_st_close(&e.f);
}

/* Sequences at different positions in one batch: B prefilled in slot 0 and
 * copied to slot 1, then A prefilled in slot 0; a decode step of both at
 * once (positions 8 and 5) matches each decoded alone. */
static void test_batched_positions(void **state)
{
    expected e;
    rf_llama_model m;
    rf_llama_acts one, two;
    rf_error err = {0};
    load_expected(&e, "llama3_bf16_tied");
    load_model(&m, FIX "llama3_bf16_tied");
    const int V = e.vocab;
    int zero = 0, A[9], B[6];
    for (int i = 0; i < 9; i++)
        A[i] = e.ids[i];
    for (int i = 0; i < 6; i++)
        B[i] = e.ids[e.T - 1 - i];
    assert_int_equal(rf_llama_acts_init(&one, &m.config, 1, 32, 16, &err), 0);
    assert_int_equal(rf_llama_acts_init(&two, &m.config, 2, 32, 16, &err), 0);
    float *alone = malloc(sizeof(float) * 2 * V), *both = malloc(sizeof(float) * 2 * V);
    int p8 = 8, p5 = 5;
    assert_int_equal(rf_llama_forward(&m, &one, 1, 8, A, &zero, NULL, false, &err), 0);
    assert_int_equal(rf_llama_forward(&m, &one, 1, 1, A + 8, &p8, alone, false, &err), 0);
    assert_int_equal(rf_llama_forward(&m, &one, 1, 5, B, &zero, NULL, false, &err), 0);
    assert_int_equal(rf_llama_forward(&m, &one, 1, 1, B + 5, &p5, alone + V, false, &err), 0);

    assert_int_equal(rf_llama_forward(&m, &two, 1, 5, B, &zero, NULL, false, &err), 0);
    rf_llama_copy_slot(&m, &two, 0, 1, 5);
    assert_int_equal(rf_llama_forward(&m, &two, 1, 8, A, &zero, NULL, false, &err), 0);
    int ids2[2] = {A[8], B[5]}, pos2[2] = {8, 5};
    assert_int_equal(rf_llama_forward(&m, &two, 2, 1, ids2, pos2, both, false, &err), 0);
    double r = rel_err(both, alone, (size_t)2 * V);
    printf("batched at positions 8 and 5 vs alone: rel err %.3g\n", r);
    assert_true(r <= 1e-5);
    free(alone);
    free(both);
    rf_llama_acts_free(&one);
    rf_llama_acts_free(&two);
    rf_llama_free(&m);
    rf_st_close(&e.f);
}

/* Scoring: the log-likelihood of the prompt under the reference logits, the
 * greedy continuation flagged greedy, chunking irrelevant. */
static void test_score(void **state)
{
    expected e;
    rf_llama_model m;
    rf_llama_acts big, small;
    rf_error err = {0};
    load_expected(&e, "llama_f32_gqa");
    load_model(&m, FIX "llama_f32_gqa");
    const int V = e.vocab, T = e.T;
    double want = 0;
    for (int i = 1; i < T; i++) { /* log softmax of the reference logits, in double */
        const float *lg = e.logits + (size_t)(i - 1) * V;
        double mx = lg[0], s = 0;
        for (int k = 1; k < V; k++)
            mx = fmax(mx, lg[k]);
        for (int k = 0; k < V; k++)
            s += exp(lg[k] - mx);
        want += lg[e.ids[i]] - mx - log(s);
    }
    assert_int_equal(rf_llama_acts_init(&big, &m.config, 1, 64, 32, &err), 0);
    assert_int_equal(rf_llama_acts_init(&small, &m.config, 1, 64, 5, &err), 0);
    float *scratch = malloc(sizeof(float) * 32 * V);
    double got, got5;
    bool greedy;
    assert_int_equal(rf_llama_score(&m, &big, e.ids, T, 1, scratch, &got, &greedy, &err), 0);
    assert_int_equal(rf_llama_score(&m, &small, e.ids, T, 1, scratch, &got5, NULL, &err), 0);
    printf("prompt log-likelihood %.6f (reference %.6f, chunked %.6f)\n", got, want, got5);
    assert_true(fabs(got - want) < 1e-3 && fabs(got5 - got) < 1e-4);
    int ids[64];
    memcpy(ids, e.ids, sizeof(int) * T);
    memcpy(ids + T, e.greedy, sizeof(int) * e.n_greedy);
    assert_int_equal(
        rf_llama_score(&m, &small, ids, T + e.n_greedy, T, scratch, &got, &greedy, &err), 0);
    assert_true(greedy && got < 0);
    ids[T + 3] = (ids[T + 3] + 1) % V; /* not the greedy token any more */
    assert_int_equal(
        rf_llama_score(&m, &small, ids, T + e.n_greedy, T, scratch, &got, &greedy, &err), 0);
    assert_false(greedy);
    assert_int_equal(rf_llama_score(&m, &small, ids, 1, 1, scratch, &got, &greedy, &err),
                     RF_EINVAL);
    free(scratch);
    rf_llama_acts_free(&big);
    rf_llama_acts_free(&small);
    rf_llama_free(&m);
    rf_st_close(&e.f);
}

/* One loaded model, several threads each with its own activations: the
 * model is read-only, so every thread gets the single-threaded result. */
typedef struct job {
    const rf_llama_model *m;
    const int *ids;
    int T, rc;
    float *logits;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    rf_llama_acts a;
    rf_error err = {0};
    int zero = 0;
    j->rc = rf_llama_acts_init(&a, &j->m->config, 1, 32, 32, &err);
    for (int rep = 0; rep < 5 && j->rc == 0; rep++)
        j->rc = rf_llama_forward(j->m, &a, 1, j->T, j->ids, &zero, j->logits, true, &err);
    rf_llama_acts_free(&a);
    return NULL;
}

static void test_concurrent_runs(void **state)
{
    expected e;
    rf_llama_model m;
    load_expected(&e, "qwen2_f16_bias");
    load_model(&m, FIX "qwen2_f16_bias");
    enum { N = 4 };
    pthread_t th[N];
    job jobs[N];
    int rev[16];
    for (int i = 0; i < e.T; i++)
        rev[i] = e.ids[e.T - 1 - i];
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){&m, i % 2 ? rev : e.ids, e.T, -1, malloc(sizeof(float) * e.T * e.vocab)};
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].rc, 0);
        const float *want = i % 2 ? jobs[1].logits : e.logits;
        assert_true(rel_err(jobs[i].logits, want, (size_t)e.T * e.vocab) <= (i % 2 ? 1e-6 : 1e-4));
    }
    for (int i = 0; i < N; i++)
        free(jobs[i].logits);
    rf_llama_free(&m);
    rf_st_close(&e.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_match_reference), cmocka_unit_test(test_kv_cache_matches_full),
        cmocka_unit_test(test_batched_matches_single), cmocka_unit_test(test_score),
        cmocka_unit_test(test_concurrent_runs),        cmocka_unit_test(test_batched_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
