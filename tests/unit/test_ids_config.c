#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "service/config.h"
#include "service/ids.h"

static void test_ids_shape_and_uniqueness(void **state)
{
    char a[RF_ID_MAX], b[RF_ID_MAX];
    assert_int_equal(rf_id_new("job", a), 0);
    assert_int_equal(rf_id_new("job", b), 0);
    assert_int_equal(strlen(a), 4 + RF_ID_RANDOM_LEN);
    assert_true(rf_id_valid("job", a));
    assert_string_not_equal(a, b);
    assert_false(rf_id_valid("art", a));
    assert_false(rf_id_valid("job", "job_"));
    assert_false(rf_id_valid("job", "job_ABCDEFGHIJKLMNOPQRSTUVWX"));
    assert_false(rf_id_valid("job", "job_00000000000000000000000"));   /* 23 */
    assert_false(rf_id_valid("job", "job_0000000000000000000000000")); /* 25 */
    assert_true(rf_id_valid("job", "job_000000000000000000000000"));
    assert_false(rf_id_valid("job", NULL));
}

static void test_alnum_is_roughly_uniform(void **state)
{
    /* 36 symbols, 36000 draws: each should land near 1000 (a biased modulo
     * would skew the first few symbols by ~4%). */
    static char buf[36001];
    int hist[128] = {0};
    assert_int_equal(rf_random_alnum(buf, 36000), 0);
    for (int i = 0; i < 36000; i++)
        hist[(unsigned char)buf[i]]++;
    for (const char *c = "0123456789abcdefghijklmnopqrstuvwxyz"; *c; c++) {
        assert_in_range(hist[(unsigned char)*c], 800, 1200);
    }
}

static void test_hex(void **state)
{
    char out[9];
    rf_hex((const unsigned char *)"\x00\x0f\xa5\xff", 4, out);
    assert_string_equal(out, "000fa5ff");
}

static void clear_env(void)
{
    const char *vars[] = {"REFINERY_DATABASE_URL", "REFINERY_LISTEN",
                          "REFINERY_WORKERS",      "REFINERY_MAX_BODY_BYTES",
                          "REFINERY_LOG_FORMAT",   "REFINERY_LEASE_MS",
                          "REFINERY_TEST_JOBS",    NULL};
    for (const char **v = vars; *v; v++)
        unsetenv(*v);
}

static void test_config_defaults(void **state)
{
    clear_env();
    rf_config c;
    rf_error e;
    assert_int_equal(rf_config_load(&c, &e), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.workers, 1);
    assert_int_equal(c.max_body_bytes, 1 << 20);
    assert_false(c.log_json);
    assert_false(c.test_jobs);
}

static void test_config_values_and_errors(void **state)
{
    clear_env();
    rf_config c;
    rf_error e;
    setenv("REFINERY_LISTEN", "0.0.0.0:9000", 1);
    setenv("REFINERY_WORKERS", "4", 1);
    setenv("REFINERY_MAX_BODY_BYTES", "2048", 1);
    setenv("REFINERY_LOG_FORMAT", "json", 1);
    assert_int_equal(rf_config_load(&c, &e), 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 9000);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.max_body_bytes, 2048);
    assert_true(c.log_json);
    setenv("REFINERY_LISTEN", ":7000", 1);
    assert_int_equal(rf_config_load(&c, &e), 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 7000);

    setenv("REFINERY_WORKERS", "-1", 1);
    assert_int_equal(rf_config_load(&c, &e), RF_EINVAL);
    assert_string_equal(e.field, "REFINERY_WORKERS");
    setenv("REFINERY_WORKERS", "2", 1);
    setenv("REFINERY_LISTEN", "host:99999", 1);
    assert_int_equal(rf_config_load(&c, &e), RF_EINVAL);
    assert_string_equal(e.field, "REFINERY_LISTEN");
    setenv("REFINERY_LISTEN", "127.0.0.1:80", 1);
    setenv("REFINERY_LOG_FORMAT", "xml", 1);
    assert_int_equal(rf_config_load(&c, &e), RF_EINVAL);
    assert_string_equal(e.field, "REFINERY_LOG_FORMAT");
    setenv("REFINERY_LOG_FORMAT", "text", 1);
    setenv("REFINERY_MAX_BODY_BYTES", "12abc", 1);
    assert_int_equal(rf_config_load(&c, &e), RF_EINVAL);
    assert_string_equal(e.field, "REFINERY_MAX_BODY_BYTES");
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_shape_and_uniqueness),
        cmocka_unit_test(test_alnum_is_roughly_uniform),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_values_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
