/* Loading checkpoints: the safetensors writer round trip, and malformed
 * checkpoints built from the llama_f32_gqa fixture (truncated, bad header,
 * wrong shape, missing tensor, bad shard index, unsupported config), each of
 * which must fail with its own error naming what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/llama.h"

#define SRC "tests/reference/fixtures/llama_f32_gqa"

typedef struct tmpdir {
    char path[256];
} tmpdir;

static void mk_tmp(tmpdir *t)
{
    const char *base = getenv("REFINERY_TEST_TMP");
    snprintf(t->path, sizeof t->path, "%s/llama-load.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->path));
}

static void rm_tmp(tmpdir *t)
{
    const char *names[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                           "model-00001-of-00001.safetensors"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", t->path, names[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(t->path), 0);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    buf[len] = '\0';
    *n = (size_t)len;
    return buf;
}

static void put(const tmpdir *t, const char *name, const void *data, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", t->path, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void copy_config(const tmpdir *t)
{
    size_t n;
    char *c = slurp(SRC "/config.json", &n);
    put(t, "config.json", c, n);
    free(c);
}

/* Rewrite the fixture's tensors into t/model.safetensors with rf_st_write,
 * leaving out `drop` and giving `narrow` only its first half of rows. */
static void rewrite(const tmpdir *t, const char *drop, const char *narrow)
{
    rf_st_file f;
    rf_error err = {0};
    assert_int_equal(rf_st_open(&f, SRC "/model.safetensors", &err), 0);
    rf_tensor *ts = calloc((size_t)f.n, sizeof *ts);
    rf_st_item *items = calloc((size_t)f.n, sizeof *items);
    int n = 0;
    for (int i = 0; i < f.n; i++) {
        if (drop && !strcmp(f.entries[i].name, drop)) continue;
        rf_st_view(&f, &f.entries[i], &ts[n]);
        if (narrow && !strcmp(f.entries[i].name, narrow)) ts[n].shape[0] /= 2;
        items[n].name = f.entries[i].name;
        items[n].tensor = &ts[n];
        n++;
    }
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", t->path);
    int rc = rf_st_write(p, items, n, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    free(items);
    free(ts);
    rf_st_close(&f);
}

/* Load t and expect failure with code, the message containing each of the
 * NULL-terminated strings. */
static void expect_load_error(const tmpdir *t, int code, ...)
{
    rf_llama_model m;
    rf_error err = {0};
    int rc = rf_llama_load(&m, t->path, NULL, &err);
    printf("  -> %d: %s\n", rc, err.msg);
    assert_int_equal(rc, code);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        assert_non_null(strstr(err.msg, s));
    va_end(ap);
}

static void forward_logits(const char *dir, float *out, int *V)
{
    rf_llama_model m;
    rf_llama_acts a;
    rf_error err = {0};
    assert_int_equal(rf_llama_load(&m, dir, NULL, &err), 0);
    assert_int_equal(rf_llama_acts_init(&a, &m.config, 1, 8, 8, &err), 0);
    int ids[4] = {5, 17, 200, 3}, zero = 0;
    assert_int_equal(rf_llama_forward(&m, &a, 1, 4, ids, &zero, out, true, &err), 0);
    *V = m.config.vocab_size;
    rf_llama_acts_free(&a);
    rf_llama_free(&m);
}

static void test_writer_round_trip(void **state)
{
    tmpdir t;
    mk_tmp(&t);
    copy_config(&t);
    rewrite(&t, NULL, NULL);
    /* header: 8-byte aligned, format pt */
    char p[512];
    size_t n;
    snprintf(p, sizeof p, "%s/model.safetensors", t.path);
    char *raw = slurp(p, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)(unsigned char)raw[i] << (8 * i);
    assert_int_equal(hl % 8, 0);
    raw[8 + hl - 1] = '\0';
    assert_non_null(strstr(raw + 8, "\"__metadata__\":{\"format\":\"pt\"}"));
    free(raw);
    float *a = malloc(sizeof(float) * 4 * 256), *b = malloc(sizeof(float) * 4 * 256);
    int va, vb;
    forward_logits(SRC, a, &va);
    forward_logits(t.path, b, &vb);
    assert_int_equal(va, vb);
    assert_memory_equal(a, b, sizeof(float) * 4 * (size_t)va);
    free(a);
    free(b);
    rm_tmp(&t);
}

static void test_truncated(void **state)
{
    tmpdir t;
    mk_tmp(&t);
    copy_config(&t);
    size_t n;
    char *raw = slurp(SRC "/model.safetensors", &n);
    put(&t, "model.safetensors", raw, n - 100);
    free(raw);
    /* lm_head.weight is the last tensor in the fixture's data section */
    expect_load_error(&t, RF_EIO, "truncated", "lm_head.weight", NULL);
    rm_tmp(&t);
}

static void test_bad_header(void **state)
{
    tmpdir t;
    mk_tmp(&t);
    copy_config(&t);
    size_t n;
    char *raw = slurp(SRC "/model.safetensors", &n);
    char *bad = malloc(n);
    memcpy(bad, raw, n);
    bad[5] = 0x10; /* header length far beyond the file */
    put(&t, "model.safetensors", bad, n);
    expect_load_error(&t, RF_EINVAL, "bad header", "does not fit", NULL);
    memcpy(bad, raw, n);
    bad[8] = '['; /* not an object */
    put(&t, "model.safetensors", bad, n);
    expect_load_error(&t, RF_EINVAL, "bad header", NULL);
    memcpy(bad, raw, n);
    memcpy(bad + 8, "{\"x\": tru", 9); /* not JSON */
    put(&t, "model.safetensors", bad, n);
    expect_load_error(&t, RF_EINVAL, "bad header", NULL);
    free(bad);
    free(raw);
    rm_tmp(&t);
}

static void test_wrong_shape(void **state)
{
    tmpdir t;
    mk_tmp(&t);
    copy_config(&t);
    rewrite(&t, NULL, "model.layers.1.self_attn.q_proj.weight");
    expect_load_error(&t, RF_EINVAL, "model.layers.1.self_attn.q_proj.weight", "shape [32, 64]",
                      "expected [64, 64]", NULL);
    rm_tmp(&t);
}

static void test_missing_tensor(void **state)
{
    tmpdir t;
    mk_tmp(&t);
    copy_config(&t);
    rewrite(&t, "model.layers.0.mlp.up_proj.weight", NULL);
    expect_load_error(&t, RF_ENOTFOUND, "missing tensor", "model.layers.0.mlp.up_proj.weight",
                      NULL);
    rm_tmp(&t);
}

static void test_bad_index(void **state)
{
    tmpdir t;
    mk_tmp(&t);
    copy_config(&t);
    rewrite(&t, "model.norm.weight", NULL);
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/model.safetensors", t.path);
    snprintf(q, sizeof q, "%s/model-00001-of-00001.safetensors", t.path);
    assert_int_equal(rename(p, q), 0);
    const char *idx = "{\"metadata\":{},\"weight_map\":{\"model.norm.weight\":\"model-00001-of-"
                      "00001.safetensors\"}}";
    put(&t, "model.safetensors.index.json", idx, strlen(idx));
    expect_load_error(&t, RF_ENOTFOUND, "model.norm.weight",
                      "missing from model-00001-of-00001.safetensors", NULL);
    const char *evil = "{\"weight_map\":{\"model.norm.weight\":\"../model.safetensors\"}}";
    put(&t, "model.safetensors.index.json", evil, strlen(evil));
    expect_load_error(&t, RF_EINVAL, "bad file name", NULL);
    rm_tmp(&t);
}

/* config.json variants: each names its field. */
static void test_config_errors(void **state)
{
    static const struct {
        const char *json;
        int code;
        const char *field;
    } cases[] = {
        {"{\"model_type\":\"gpt2\"}", RF_EUNSUPPORTED, "model_type"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64}", RF_EINVAL, "intermediate_size"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_"
         "layers\":2,"
         "\"num_attention_heads\":4,\"num_key_value_heads\":3,\"vocab_size\":256}",
         RF_EINVAL, "num_key_value_heads"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_"
         "layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":256,\"rope_scaling\":{\"rope_type\":\"yarn\","
         "\"factor\":4}}",
         RF_EUNSUPPORTED, "rope_scaling.rope_type"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_"
         "layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":256,\"rope_scaling\":{\"rope_type\":\"llama3\","
         "\"factor\":8,"
         "\"low_freq_factor\":1,\"high_freq_factor\":4}}",
         RF_EINVAL, "rope_scaling.original_max_position_embeddings"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_"
         "layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":256,\"hidden_act\":\"gelu\"}",
         RF_EUNSUPPORTED, "hidden_act"},
        {"{\"model_type\":\"qwen2\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_"
         "layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":256,\"use_sliding_window\":true}",
         RF_EUNSUPPORTED, "use_sliding_window"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_"
         "layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":256,\"quantization_config\":{\"quant_method\":"
         "\"awq\",\"bits\":4}}",
         RF_EUNSUPPORTED, "quantization_config.quant_method"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_"
         "layers\":2,\"num_attention_heads\":4,\"vocab_size\":256,\"quantization_config\":{"
         "\"quant_method\":\"gptq\",\"bits\":8}}",
         RF_EUNSUPPORTED, "quantization_config.bits"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_error_t je;
        json_t *j = json_loads(cases[i].json, 0, &je);
        assert_non_null(j);
        rf_llama_config c;
        rf_error err = {0};
        int rc = rf_llama_config_parse(&c, j, &err);
        printf("  -> %d [%s] %s\n", rc, err.field, err.msg);
        assert_int_equal(rc, cases[i].code);
        assert_string_equal(err.field, cases[i].field);
        assert_non_null(strstr(err.msg, cases[i].field)); /* the message names it too */
        json_decref(j);
    }
}

/* The llama3 frequency bands: with factor 8, low 1, high 4, old context 64,
 * wavelengths under 16 are kept, over 64 divided by 8, between interpolated. */
static void test_llama3_inv_freq(void **state)
{
    rf_llama_config c = {.head_dim = 32,
                         .rope_theta = 500000.0,
                         .rope_llama3 = true,
                         .rope_factor = 8,
                         .rope_low_freq_factor = 1,
                         .rope_high_freq_factor = 4,
                         .rope_orig_max_pos = 64};
    float f[16];
    rf_llama_rope_inv_freq(&c, f);
    for (int i = 0; i < 16; i++) {
        double base = 1.0 / pow(500000.0, 2.0 * i / 32), wl = 2 * M_PI / base, want;
        if (wl < 16)
            want = base;
        else if (wl > 64)
            want = base / 8;
        else {
            double s = (64 / wl - 1) / 3;
            want = (1 - s) * base / 8 + s * base;
        }
        assert_float_equal(f[i], want, want * 1e-6);
    }
}

/* EOS ids: config.json's, replaced by generation_config.json's when the
 * folder has one (as Llama 3 ships them). */
static void test_eos_ids(void **state)
{
    rf_llama_config c;
    rf_error err = {0};
    assert_int_equal(rf_llama_config_load(&c, SRC, &err), 0);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_ids[0], 2);
    assert_int_equal(rf_llama_config_load(&c, "tests/reference/fixtures/llama3_bf16_tied", &err),
                     0);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_ids[2], 7);
    assert_int_equal(c.bos_id, 1);
    assert_int_equal(c.head_dim, 32);
    assert_true(c.tie_embeddings && c.rope_llama3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_round_trip), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_header),        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_missing_tensor),    cmocka_unit_test(test_bad_index),
        cmocka_unit_test(test_config_errors),     cmocka_unit_test(test_llama3_inv_freq),
        cmocka_unit_test(test_eos_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
