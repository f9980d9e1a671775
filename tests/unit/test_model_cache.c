/* The completions model cache: a model is loaded once however many ask for
 * it at once, idle models are evicted least recently used first when the
 * budget is passed, a model in use is never evicted (it goes when put back
 * over budget), and a folder that does not load is an error that leaves
 * nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/model_cache.h"

static char g_dir[PATH_MAX], g_a[PATH_MAX + 8], g_b[PATH_MAX + 8];

static void make_model(const char *dst, const char *fixture)
{
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json"};
    assert_int_equal(mkdir(dst, 0750), 0);
    for (int i = 0; i < 4; i++) {
        char rel[PATH_MAX], src[PATH_MAX], to[PATH_MAX * 2];
        snprintf(rel, sizeof rel,
                 i < 2 ? "tests/reference/fixtures/%s/%s"
                       : "tests/reference/tokenizers/bytelevel/%.0s%s",
                 fixture, files[i]);
        assert_non_null(realpath(rel, src));
        snprintf(to, sizeof to, "%s/%s", dst, files[i]);
        assert_int_equal(symlink(src, to), 0);
    }
}

static int setup(void **state)
{
    const char *base = getenv("REFINERY_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/cache-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_a, sizeof g_a, "%s/a", g_dir);
    snprintf(g_b, sizeof g_b, "%s/b", g_dir);
    make_model(g_a, "llama_f32_gqa");
    make_model(g_b, "qwen2_f16_bias");
    return 0;
}

static int teardown(void **state)
{
    rf_model_cache_clear();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct getter {
    const rf_lm *lm;
    rf_cached_lm *h;
    int rc;
} getter;

static void *get_a(void *arg)
{
    getter *g = arg;
    g->rc = rf_model_cache_get(g_a, &g->h, &g->lm, NULL);
    return NULL;
}

static void stats(int *models, size_t *bytes, long *loads, long *evictions)
{
    rf_model_cache_stats(models, bytes, loads, evictions);
}

static void test_lru_and_in_use(void **state)
{
    int models;
    size_t bytes;
    long loads0, ev0, loads, ev;
    rf_model_cache_init(1); /* room for nothing idle */
    stats(&models, &bytes, &loads0, &ev0);

    /* four threads ask for A at once: one load, one model */
    pthread_t th[4];
    getter g[4] = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, get_a, &g[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g[i].rc, 0);
        assert_ptr_equal(g[i].lm, g[0].lm);
    }
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(loads - loads0, 1);
    assert_int_equal(models, 1);
    size_t a_bytes = bytes;
    assert_true(a_bytes > 0);

    /* in use, A stays while B loads past the budget */
    rf_cached_lm *hb;
    const rf_lm *b;
    assert_int_equal(rf_model_cache_get(g_b, &hb, &b, NULL), 0);
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(models, 2);
    assert_int_equal(ev - ev0, 0);
    size_t b_bytes = bytes - a_bytes;
    assert_int_equal(b->model.config.arch, RF_ARCH_QWEN2);
    /* the last user of A puts it back over budget: A goes; B is still in use */
    for (int i = 0; i < 3; i++)
        rf_model_cache_put(g[i].h);
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(models, 2);
    rf_model_cache_put(g[3].h);
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(models, 1);
    assert_int_equal(ev - ev0, 1);
    assert_int_equal(bytes, b_bytes); /* B's alone */
    rf_model_cache_put(hb);
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(models, 0);

    /* with room for both, the least recently used goes first */
    rf_model_cache_init(a_bytes + 1000000);
    rf_cached_lm *h;
    const rf_lm *lm;
    assert_int_equal(rf_model_cache_get(g_a, &h, &lm, NULL), 0);
    rf_model_cache_put(h);
    assert_int_equal(rf_model_cache_get(g_b, &h, &lm, NULL), 0);
    rf_model_cache_put(h);
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(models, 2);
    rf_model_cache_init(bytes - 1); /* one must go: A, used longest ago */
    assert_int_equal(rf_model_cache_get(g_b, &h, &lm, NULL), 0);
    rf_model_cache_put(h);
    long loads_before = loads;
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(models, 1);
    assert_int_equal(rf_model_cache_get(g_b, &h, &lm, NULL), 0); /* B is still there */
    rf_model_cache_put(h);
    stats(&models, &bytes, &loads, &ev);
    assert_int_equal(loads, loads_before);
}

static void test_load_failure(void **state)
{
    rf_cached_lm *h;
    const rf_lm *lm;
    rf_error err = {0};
    int models, models2;
    size_t bytes;
    long loads, ev;
    stats(&models, &bytes, &loads, &ev);
    assert_true(rf_model_cache_get(g_dir, &h, &lm, &err) < 0); /* no config.json */
    assert_true(strlen(err.msg) > 0);
    stats(&models2, &bytes, &loads, &ev);
    assert_int_equal(models2, models);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_and_in_use),
        cmocka_unit_test(test_load_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
