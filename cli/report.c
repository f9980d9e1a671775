#include "cli/report.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jobs/report.h"

int rf_cmd_report(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    bool text = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--text"))
            text = true;
        else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !in)
            in = argv[i];
        else {
            fprintf(stderr, "usage: refinery report RESULT.json [--text] [--out FILE]\n");
            return 2;
        }
    }
    if (!in) {
        fprintf(stderr, "usage: refinery report RESULT.json [--text] [--out FILE]\n");
        return 2;
    }
    json_error_t je;
    json_t *doc = !strcmp(in, "-") ? json_loadf(stdin, 0, &je) : json_load_file(in, 0, &je);
    if (!doc) {
        fprintf(stderr, "refinery report: %s: line %d: %s\n", in, je.line, je.text);
        return 1;
    }
    /* a whole job object, or its result */
    const json_t *result = json_object_get(doc, "result") ? json_object_get(doc, "result") : doc;
    char *html = NULL;
    rf_error err;
    int rc = text ? rf_pipeline_report_text(result, &html, &err)
                  : rf_pipeline_report_html(result, &html, &err);
    json_decref(doc);
    if (rc) {
        fprintf(stderr, "refinery report: %s\n", err.msg);
        return 1;
    }
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "refinery report: cannot write %s\n", out);
        free(html);
        return 1;
    }
    bool ok = fputs(html, f) >= 0;
    if (out) ok &= fclose(f) == 0;
    free(html);
    if (!ok) fprintf(stderr, "refinery report: writing the report failed\n");
    return ok ? 0 : 1;
}
