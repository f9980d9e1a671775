/* service/scrub: paths under the data folder or the model roots leave a
 * message as their last component; other text stays as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "service/scrub.h"

static void expect(const char *in, const char *folders, const char *out)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", in);
    rf_scrub_paths(msg, folders);
    assert_string_equal(msg, out);
}

static void test_scrub(void **state)
{
    const char *f = "/srv/refinery/data:/models/:/opt/m";
    expect("cannot open /srv/refinery/data/jobs/job_1/model/config.json: No such file", f,
           "cannot open config.json: No such file");
    expect("'/models/llama/tokenizer.json' is bad, and so is /opt/m/x/y.bin", f,
           "'tokenizer.json' is bad, and so is y.bin");
    expect("/srv/refinery/data2/x stays, /etc/passwd too, a/b too", f,
           "/srv/refinery/data2/x stays, /etc/passwd too, a/b too");
    expect("the folder /opt/m itself, or /opt/m/", f, "the folder m itself, or m");
    expect("no paths here", f, "no paths here");
    expect("a/models/b", f, "a/models/b");
    expect("x", NULL, "x");
    expect("/srv/refinery/data/a", "", "/srv/refinery/data/a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_scrub)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
