/* safetensors header validation on hand-built files, and the writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/core/safetensors.h"

static char g_dir[256];

static int setup(void **state)
{
    const char *base = getenv("REFINERY_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/st.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    DIR *d = opendir(g_dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    return rmdir(g_dir);
}

/* Write u64 length (or len_override when non-zero), header, data bytes. */
static const char *mkfile(const char *header, size_t data_bytes, uint64_t len_override)
{
    static char path[300];
    snprintf(path, sizeof path, "%s/t.safetensors", g_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = len_override ? len_override : strlen(header);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++)
        fputc((int)(i & 0xff), f);
    fclose(f);
    return path;
}

static void expect_error(const char *path, int code, const char *needle)
{
    rf_st_file f;
    rf_error err = {0};
    int rc = rf_st_open(&f, path, &err);
    printf("  -> %d: %s\n", rc, err.msg);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err.msg, needle));
    assert_null(f.map); /* closed again */
}

static void test_valid(void **state)
{
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"e\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[22,22]}}";
    rf_st_file f;
    rf_error err = {0};
    assert_int_equal(rf_st_open(&f, mkfile(h, 22, 0), &err), 0);
    assert_int_equal(f.n, 3);
    const rf_st_entry *b = rf_st_find(&f, "b");
    assert_non_null(b);
    assert_null(rf_st_find(&f, "__metadata__"));
    assert_null(rf_st_find(&f, "zz"));
    rf_tensor t;
    rf_st_view(&f, b, &t);
    assert_int_equal(t.dtype, RF_DTYPE_BF16);
    assert_int_equal(t.shape[0], 3);
    assert_int_equal(((unsigned char *)t.data)[0], 16); /* data byte i holds i */
    rf_st_close(&f);
}

static void test_malformed(void **state)
{
    rf_st_file ok;
    assert_int_equal(rf_st_open(&ok, mkfile("{}", 0, 0), NULL), 0); /* no tensors is valid */
    assert_int_equal(ok.n, 0);
    rf_st_close(&ok);
    expect_error(mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                        16, 0),
                 RF_EINVAL, "overlaps");
    expect_error(mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[20,24]}}",
                        24, 0),
                 RF_EINVAL, "unused bytes before it");
    expect_error(mkfile("{\"a\":{\"dtype\":\"F7_E9\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, 0),
                 RF_EUNSUPPORTED, "unknown dtype 'F7_E9'");
    expect_error(
        mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12, 0),
        RF_EINVAL, "needs 16 bytes but data_offsets span 12");
    expect_error(mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, 0),
                 RF_EINVAL, "4 trailing bytes");
    expect_error(
        mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 1 << 20),
        RF_EINVAL, "does not fit");
    expect_error(mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0),
                 RF_EINVAL, "begin <= end");
    expect_error(mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0),
                 RF_EINVAL, "shape[0]");
    expect_error(mkfile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                        8, 0),
                 RF_EINVAL, "duplicate");
    expect_error(
        mkfile("{\"big\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4000]}}", 100, 0),
        RF_EIO, "truncated file: tensor 'big'");
    expect_error(
        mkfile(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],\"data_offsets\":[0,8]}}",
            8, 0),
        RF_EINVAL, "overflows");
    /* shorter than the length prefix */
    char p[300];
    snprintf(p, sizeof p, "%s/short.safetensors", g_dir);
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_error(p, RF_EINVAL, "shorter than the 8-byte length");
    snprintf(p, sizeof p, "%s/absent.safetensors", g_dir);
    expect_error(p, RF_ENOTFOUND, "absent.safetensors");
}

static void test_writer(void **state)
{
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {0x3f80, 0x4000, 0xc040};
    int32_t c[1] = {-7};
    rf_tensor ta, tb, tc;
    rf_tensor_view(&ta, RF_DTYPE_F32, 2, (int64_t[]){2, 3}, a);
    rf_tensor_view(&tb, RF_DTYPE_BF16, 1, (int64_t[]){3}, b);
    rf_tensor_view(&tc, RF_DTYPE_I32, 0, NULL, c);
    rf_st_item items[] = {{"z.weight", &ta}, {"a.bias", &tb}, {"scalar", &tc}};
    char p[300];
    rf_error err = {0};
    snprintf(p, sizeof p, "%s/w.safetensors", g_dir);
    assert_int_equal(rf_st_write(p, items, 3, &err), 0);
    rf_st_file f;
    assert_int_equal(rf_st_open(&f, p, &err), 0);
    assert_int_equal(f.data_off % 8, 0);
    assert_int_equal(f.n, 3);
    rf_tensor t;
    rf_st_view(&f, rf_st_find(&f, "z.weight"), &t);
    assert_memory_equal(t.data, a, sizeof a);
    /* 4-byte elements first, in the given order, then the 2-byte ones */
    assert_int_equal(rf_st_find(&f, "z.weight")->begin, 0);
    assert_int_equal(rf_st_find(&f, "scalar")->begin, 24);
    assert_int_equal(rf_st_find(&f, "a.bias")->begin, 28);
    rf_st_view(&f, rf_st_find(&f, "a.bias"), &t);
    assert_memory_equal(t.data, b, sizeof b);
    rf_st_view(&f, rf_st_find(&f, "scalar"), &t);
    assert_int_equal(t.ndim, 0);
    assert_int_equal(*(int32_t *)t.data, -7);
    rf_st_close(&f);
    /* duplicate names are refused, and no temporary file is left behind */
    rf_st_item dup[] = {{"x", &ta}, {"x", &tb}};
    assert_int_equal(rf_st_write(p, dup, 2, &err), RF_EINVAL);
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while ((e = readdir(d)))
        assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
