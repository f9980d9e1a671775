/* engine/core/svg and engine/jobs/report: the pipeline report is one HTML
 * page with its charts inline, every user-given string escaped. (The page is
 * also opened in headless Chromium by tests/integration/report.test.mjs.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "engine/core/svg.h"
#include "engine/jobs/report.h"

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_text_grows_and_escapes(void **state)
{
    rf_text t = {0};
    for (int i = 0; i < 2000; i++)
        rf_text_printf(&t, "%04d,", i);
    assert_false(t.oom);
    assert_int_equal(t.len, 10000);
    assert_int_equal(strlen(t.s), 10000);
    assert_memory_equal(t.s + 9995, "1999,", 5);
    rf_text_free(&t);
    rf_text_escaped(&t, "<a href=\"x\">Tom & 'Jerry'</a>");
    assert_string_equal(t.s, "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
    rf_text_free(&t);
}

static void test_charts(void **state)
{
    rf_text t = {0};
    double x[] = {1, 2, 3, 4}, y[] = {10, NAN, 1000, 0.1};
    rf_svg_series s[] = {{"loss <train>", RF_SVG_LINE, x, y, 4}, {NULL, RF_SVG_POINTS, x, y, 4}};
    rf_svg_axes ax = {.title = "T & U", .x_label = "step", .y_label = "loss", .log_y = true};
    rf_svg_xy(&t, &ax, s, 2);
    assert_non_null(strstr(t.s, "<title>T &amp; U</title>"));
    assert_non_null(strstr(t.s, "loss &lt;train&gt;"));
    assert_int_equal(count(t.s, "<circle"), 3); /* the NaN point is skipped */
    assert_non_null(strstr(t.s, ">1000<"));     /* decades on the log axis */
    assert_non_null(strstr(t.s, ">0.1<"));
    rf_text_free(&t);
    const char *cats[] = {"a", "refined + GPTQ (Muon)"}, *groups[] = {"g1", "g2"};
    double v[] = {0.5, NAN, 0.25, 0.75};
    rf_svg_bars(&t, &ax, cats, 2, groups, 2, v);
    assert_int_equal(count(t.s, "<rect") - 1 - 2, 3); /* frame and 2 legend keys aside */
    assert_int_equal(count(t.s, "<tspan"), 2);        /* the long label on two lines */
    assert_int_equal(count(t.s, "<svg"), 1);
    assert_int_equal(count(t.s, "</svg>"), 1);
    rf_text_free(&t);
}

static void test_report(void **state)
{
    json_error_t je;
    json_t *r = json_load_file("tests/integration/fixtures/pipeline_result.json", 0, &je);
    assert_non_null(r);
    char *html = NULL;
    rf_error err;
    assert_int_equal(rf_pipeline_report_html(r, &html, &err), 0);
    assert_non_null(strstr(html, "<!DOCTYPE html>"));
    assert_null(strstr(html, "<script")); /* the task name is text, not markup */
    assert_non_null(strstr(html, "&lt;script&gt;"));
    assert_int_equal(count(html, "<svg"), 5); /* accuracy, loss, hpo, bytes, latency */
    assert_int_equal(count(html, "<tbody><tr><th>"), 2);
    assert_int_equal(count(html, "</tr>"), 1 + 7 + 1 + 2); /* heads, 7 variants, stages */
    assert_non_null(strstr(html, "teacher &lt;the &amp; &quot;big&quot; one&gt;"));
    assert_non_null(strstr(html, "<td>0.610</td>"));
    assert_non_null(strstr(html, "1.34 MiB"));
    assert_non_null(strstr(html, "class=\"na\""));
    assert_null(strstr(html, "src=")); /* no external assets */
    free(html);
    json_decref(r);
    json_t *empty = json_object();
    assert_int_equal(rf_pipeline_report_html(empty, &html, &err),
                     0); /* nothing yet: still a page */
    assert_non_null(strstr(html, "</html>"));
    free(html);
    json_decref(empty);
    json_t *one = json_integer(1);
    assert_int_equal(rf_pipeline_report_html(one, &html, &err), RF_EINVAL);
    json_decref(one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_grows_and_escapes),
        cmocka_unit_test(test_charts),
        cmocka_unit_test(test_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
