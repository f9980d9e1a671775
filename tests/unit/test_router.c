#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "service/router.h"

static void h(rf_req *req)
{
    (void)req;
}

static const rf_route routes[] = {
    {"GET", "/healthz", h, true, NULL},
    {"POST", "/v1/jobs", h, false, NULL},
    {"GET", "/v1/jobs", h, false, NULL},
    {"GET", "/v1/jobs/{id}", h, false, NULL},
    {"POST", "/v1/jobs/{id}/cancel", h, false, NULL},
    {"GET", "/v1/models/{id}/files/{name}", h, false, NULL},
    {0},
};

static void test_static_and_params(void **state)
{
    rf_match m;
    assert_true(rf_route_match(routes, "GET", "/healthz", &m));
    assert_ptr_equal(m.route, &routes[0]);
    assert_int_equal(m.nparams, 0);
    assert_true(rf_route_match(routes, "GET", "/v1/jobs/job_1", &m));
    assert_ptr_equal(m.route, &routes[3]);
    assert_string_equal(m.params[0], "job_1");
    assert_true(rf_route_match(routes, "POST", "/v1/jobs/abc/cancel", &m));
    assert_ptr_equal(m.route, &routes[4]);
    assert_true(rf_route_match(routes, "GET", "/v1/models/m1/files/config.json", &m));
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0], "m1");
    assert_string_equal(m.params[1], "config.json");
}

static void test_head_answers_as_get(void **state)
{
    rf_match m;
    assert_true(rf_route_match(routes, "HEAD", "/v1/jobs/x", &m));
    assert_ptr_equal(m.route, &routes[3]);
}

static void test_no_match_and_allow(void **state)
{
    rf_match m;
    assert_false(rf_route_match(routes, "GET", "/v1/jobs/", &m)); /* empty segment */
    assert_string_equal(m.allow, "");
    assert_false(rf_route_match(routes, "GET", "/v1/jobs/a/b", &m));
    assert_false(rf_route_match(routes, "GET", "/healthz/", &m));
    assert_false(rf_route_match(routes, "GET", "", &m));
    assert_false(rf_route_match(routes, "GET", "/v1//jobs", &m));
    assert_false(rf_route_match(routes, "DELETE", "/v1/jobs", &m));
    assert_string_equal(m.allow, "POST, GET");
    assert_false(rf_route_match(routes, "GET", "/v1/jobs/x/cancel", &m));
    assert_string_equal(m.allow, "POST");
}

static void test_overlong_param_refused(void **state)
{
    char path[400] = "/v1/jobs/";
    memset(path + 9, 'a', 300);
    path[309] = '\0';
    rf_match m;
    assert_false(rf_route_match(routes, "GET", path, &m));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_and_params),
        cmocka_unit_test(test_head_answers_as_get),
        cmocka_unit_test(test_no_match_and_allow),
        cmocka_unit_test(test_overlong_param_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
