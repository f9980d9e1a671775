#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "service/range.h"

static void expect(const char *h, uint64_t size, rf_range_kind kind, uint64_t start, uint64_t len)
{
    rf_range r = rf_range_parse(h, size);
    if (r.kind != kind)
        fail_msg("'%s' of %llu: kind %d, want %d", h ? h : "(null)", (unsigned long long)size,
                 r.kind, kind);
    if (kind == RF_RANGE_PARTIAL && (r.start != start || r.length != len))
        fail_msg("'%s': [%llu, +%llu), want [%llu, +%llu)", h, (unsigned long long)r.start,
                 (unsigned long long)r.length, (unsigned long long)start, (unsigned long long)len);
}

static void test_ranges(void **state)
{
    expect(NULL, 100, RF_RANGE_NONE, 0, 0);
    expect("bytes=0-0", 100, RF_RANGE_PARTIAL, 0, 1);    /* first byte */
    expect("bytes=99-99", 100, RF_RANGE_PARTIAL, 99, 1); /* last byte */
    expect("bytes=99-", 100, RF_RANGE_PARTIAL, 99, 1);
    expect("bytes=10-19", 100, RF_RANGE_PARTIAL, 10, 10);
    expect("bytes=10-1000", 100, RF_RANGE_PARTIAL, 10, 90); /* clipped to the end */
    expect("bytes=-10", 100, RF_RANGE_PARTIAL, 90, 10);     /* suffix */
    expect("bytes=-1000", 100, RF_RANGE_PARTIAL, 0, 100);
    expect(" Bytes = 5 - 6 ", 100, RF_RANGE_NONE, 0, 0); /* spaces inside a range */
    expect("bytes = 5-6", 100, RF_RANGE_PARTIAL, 5, 2);
    expect("bytes=100-", 100, RF_RANGE_UNSATISFIABLE, 0, 0); /* past the end */
    expect("bytes=200-300", 100, RF_RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=-0", 100, RF_RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=0-", 0, RF_RANGE_UNSATISFIABLE, 0, 0); /* empty file */
    /* Malformed or unsupported: ignored, the whole file is sent. */
    expect("bytes=5-2", 100, RF_RANGE_NONE, 0, 0);
    expect("bytes=abc", 100, RF_RANGE_NONE, 0, 0);
    expect("bytes=-", 100, RF_RANGE_NONE, 0, 0);
    expect("bytes=0-1,5-6", 100, RF_RANGE_NONE, 0, 0);
    expect("items=0-1", 100, RF_RANGE_NONE, 0, 0);
    expect("bytes=+1-2", 100, RF_RANGE_NONE, 0, 0);
    expect("bytes=99999999999999999999999-", 100, RF_RANGE_NONE, 0, 0); /* overflow */
    /* Past 4 GiB. */
    expect("bytes=5000000000-5000000009", 5368709120ull, RF_RANGE_PARTIAL, 5000000000ull, 10);
    expect("bytes=-1", 5368709120ull, RF_RANGE_PARTIAL, 5368709119ull, 1);
}

static void test_etags(void **state)
{
    const char *e = "\"abc\"";
    assert_true(rf_etag_matches_none("\"abc\"", e));
    assert_true(rf_etag_matches_none("W/\"abc\"", e));
    assert_true(rf_etag_matches_none("\"x\", \"abc\"", e));
    assert_true(rf_etag_matches_none("*", e));
    assert_false(rf_etag_matches_none("\"abcd\"", e));
    assert_false(rf_etag_matches_none(NULL, e));
    assert_false(rf_etag_matches_none("\"unterminated", e));
    assert_true(rf_if_range_ok(NULL, e));
    assert_true(rf_if_range_ok("\"abc\"", e));
    assert_false(rf_if_range_ok("W/\"abc\"", e)); /* If-Range needs a strong match */
    assert_false(rf_if_range_ok("\"other\"", e));
    assert_false(rf_if_range_ok("Sat, 01 Jan 2000 00:00:00 GMT", e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_etags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
