#include "engine/jobs/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/svg.h"

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A table cell: the number with `digits` decimals, or an en dash. */
static void cell(rf_text *t, double v, int digits, const char *unit)
{
    if (isfinite(v))
        rf_text_printf(t, "<td>%.*f%s</td>", digits, v, unit ? unit : "");
    else
        rf_text_printf(t, "<td class=\"na\">–</td>");
}

static void bytes_cell(rf_text *t, double v)
{
    if (!isfinite(v)) return cell(t, v, 0, NULL);
    const char *u[] = {"B", "KiB", "MiB", "GiB"};
    int i = 0;
    while (v >= 1024 && i < 3)
        v /= 1024, i++;
    rf_text_printf(t, "<td>%.*f %s</td>", i ? 2 : 0, v, u[i]);
}

static const char *dataset_name(const json_t *dsets, const char *id)
{
    size_t i;
    json_t *d;
    json_array_foreach(dsets, i, d) if (str(d, "id") && !strcmp(str(d, "id"), id))
    {
        return str(d, "name") ? str(d, "name") : id;
    }
    return id;
}

static void table(rf_text *t, const json_t *rows, const json_t *dsets)
{
    rf_text_printf(t, "<table><thead><tr><th>variant</th>");
    size_t i, j;
    json_t *d, *r;
    json_array_foreach(dsets, i, d)
    {
        rf_text_printf(t, "<th>");
        rf_text_escaped(t, dataset_name(dsets, str(d, "id")));
        rf_text_printf(t, " acc</th><th>acc_norm</th><th>drop</th>");
    }
    rf_text_printf(t, "<th>perplexity</th><th>model bytes</th><th>resident</th>"
                      "<th>decode tok/s</th><th>ms/token</th></tr></thead><tbody>");
    json_array_foreach(rows, j, r)
    {
        rf_text_printf(t, "<tr><th>");
        rf_text_escaped(t, str(r, "label") ? str(r, "label") : str(r, "variant"));
        rf_text_printf(t, "</th>");
        json_array_foreach(dsets, i, d)
        {
            const json_t *a = json_object_get(json_object_get(r, "accuracy"), str(d, "id"));
            cell(t, num(a, "acc"), 3, NULL);
            cell(t, num(a, "acc_norm"), 3, NULL);
            cell(t, num(json_object_get(r, "accuracy_drop"), str(d, "id")), 3, NULL);
        }
        cell(t, num(r, "perplexity"), 2, NULL);
        bytes_cell(t, num(r, "model_bytes"));
        bytes_cell(t, num(r, "resident_bytes"));
        cell(t, num(r, "decode_tokens_per_s"), 1, NULL);
        cell(t, num(r, "latency_ms_per_token"), 2, NULL);
        rf_text_printf(t, "</tr>");
    }
    rf_text_printf(t, "</tbody></table>");
}

/* The numbers of a JSON array, as doubles (NaN for non-numbers). */
static double *numbers(const json_t *a, int *n)
{
    *n = (int)json_array_size(a);
    double *v = malloc(sizeof(double) * (size_t)(*n ? *n : 1));
    for (int i = 0; v && i < *n; i++) {
        const json_t *e = json_array_get(a, (size_t)i);
        v[i] = json_is_number(e) ? json_number_value(e) : NAN;
    }
    return v;
}

static void training_chart(rf_text *t, const json_t *training)
{
    int n = (int)json_array_size(training), ns = 0;
    if (!n) return;
    rf_svg_series *s = calloc((size_t)n * 2, sizeof *s);
    double **bufs = calloc((size_t)n * 4, sizeof *bufs);
    char **labels = calloc((size_t)n * 2, sizeof *labels);
    if (!s || !bufs || !labels) goto out;
    for (int i = 0; i < n; i++) {
        const json_t *tr = json_array_get(training, (size_t)i);
        int nx, ny;
        bufs[4 * i] = numbers(json_object_get(tr, "steps"), &nx);
        bufs[4 * i + 1] = numbers(json_object_get(tr, "loss"), &ny);
        const char *label = str(tr, "label") ? str(tr, "label") : "train";
        labels[2 * i] = malloc(strlen(label) + 8);
        if (labels[2 * i]) sprintf(labels[2 * i], "%s train", label);
        s[ns++] = (rf_svg_series){labels[2 * i], RF_SVG_LINE, bufs[4 * i], bufs[4 * i + 1],
                                  nx < ny ? nx : ny};
        const json_t *val = json_object_get(tr, "validation");
        if (val) {
            bufs[4 * i + 2] = numbers(json_object_get(val, "steps"), &nx);
            bufs[4 * i + 3] = numbers(json_object_get(val, "loss"), &ny);
            labels[2 * i + 1] = malloc(strlen(label) + 14);
            if (labels[2 * i + 1]) sprintf(labels[2 * i + 1], "%s validation", label);
            s[ns++] = (rf_svg_series){labels[2 * i + 1], RF_SVG_LINE, bufs[4 * i + 2],
                                      bufs[4 * i + 3], nx < ny ? nx : ny};
        }
    }
    rf_svg_axes ax = {.title = "Training loss", .x_label = "step", .y_label = "loss"};
    rf_text_printf(t, "<figure>");
    rf_svg_xy(t, &ax, s, ns);
    rf_text_printf(t, "</figure>");
out:
    for (int i = 0; bufs && i < 4 * n; i++)
        free(bufs[i]);
    for (int i = 0; labels && i < 2 * n; i++)
        free(labels[i]);
    free(bufs), free(labels), free(s);
}

static void hpo_chart(rf_text *t, const json_t *hpo)
{
    const json_t *trials = json_object_get(hpo, "trials");
    int n = (int)json_array_size(trials);
    if (!n) return;
    bool maximize = str(hpo, "direction") && !strcmp(str(hpo, "direction"), "maximize");
    double *x = malloc(sizeof(double) * (size_t)n), *y = malloc(sizeof(double) * (size_t)n),
           *best = malloc(sizeof(double) * (size_t)n);
    if (!x || !y || !best) goto out;
    double b = NAN;
    for (int i = 0; i < n; i++) {
        const json_t *tr = json_array_get(trials, (size_t)i);
        x[i] = num(tr, "number");
        const char *st = str(tr, "state");
        y[i] = st && strcmp(st, "complete") ? NAN : num(tr, "value");
        if (isfinite(y[i]) && (!isfinite(b) || (maximize ? y[i] > b : y[i] < b))) b = y[i];
        best[i] = b;
    }
    const char *obj = str(hpo, "objective") ? str(hpo, "objective") : "objective";
    rf_svg_series s[2] = {{"trial", RF_SVG_POINTS, x, y, n},
                          {"best so far", RF_SVG_STEP, x, best, n}};
    rf_svg_axes ax = {.title = "Hyper-parameter search", .x_label = "trial", .y_label = obj};
    rf_text_printf(t, "<figure>");
    rf_svg_xy(t, &ax, s, 2);
    rf_text_printf(t, "</figure>");
out:
    free(x), free(y), free(best);
}

/* One bar chart over the variants: per evaluation dataset (acc) when field
 * is NULL, else of one numeric field of the rows. */
static void variant_bars(rf_text *t, const json_t *rows, const json_t *dsets, const char *field,
                         double scale, const char *title, const char *ylabel)
{
    int nr = (int)json_array_size(rows), nd = field ? 1 : (int)json_array_size(dsets);
    if (!nr || !nd) return;
    const char **cats = calloc((size_t)nr, sizeof *cats),
               **groups = calloc((size_t)nd, sizeof *groups);
    double *v = malloc(sizeof(double) * (size_t)(nr * nd));
    if (!cats || !groups || !v) goto out;
    for (int d = 0; !field && d < nd; d++)
        groups[d] = dataset_name(dsets, str(json_array_get(dsets, (size_t)d), "id"));
    for (int r = 0; r < nr; r++) {
        const json_t *row = json_array_get(rows, (size_t)r);
        cats[r] = str(row, "label") ? str(row, "label") : str(row, "variant");
        if (!cats[r]) cats[r] = "?";
        for (int d = 0; d < nd; d++)
            v[r * nd + d] = field
                                ? num(row, field) * scale
                                : num(json_object_get(json_object_get(row, "accuracy"),
                                                      str(json_array_get(dsets, (size_t)d), "id")),
                                      "acc");
    }
    rf_svg_axes ax = {.title = title, .y_label = ylabel, .width = 80 + 120 * nr};
    if (ax.width < 480) ax.width = 480;
    rf_text_printf(t, "<figure>");
    rf_svg_bars(t, &ax, cats, nr, field ? NULL : groups, nd, v);
    rf_text_printf(t, "</figure>");
out:
    free(cats), free(groups), free(v);
}

static const char style[] =
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
    "text-align:right}thead th{background:#f3f3f3}tbody th{text-align:left}"
    "td.na{color:#999}figure{margin:1em 0}h1{font-size:1.5em}code{background:#f3f3f3}";

/* Whether any row has an accuracy on dataset id (a dataset without
 * multiple-choice rows has perplexity only: no columns of dashes for it). */
static bool any_acc(const json_t *rows, const char *id)
{
    size_t j;
    json_t *r;
    json_array_foreach(rows, j, r)
    {
        if (isfinite(num(json_object_get(json_object_get(r, "accuracy"), id), "acc"))) return true;
    }
    return false;
}

int rf_pipeline_report_html(const json_t *result, char **html, rf_error *err)
{
    *html = NULL;
    if (!json_is_object(result))
        return rf_errorf(err, RF_EINVAL, "report: the pipeline result must be an object");
    rf_text t = {0};
    const json_t *task = json_object_get(result, "task"), *rows = json_object_get(result, "rows"),
                 *dsets = json_object_get(result, "evaluation_datasets");
    const char *name = str(task, "name") ? str(task, "name") : "pipeline";
    rf_text_printf(&t, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<title>refinery report: ");
    rf_text_escaped(&t, name);
    rf_text_printf(&t, "</title><style>%s</style></head><body><h1>", style);
    rf_text_escaped(&t, name);
    rf_text_printf(&t, "</h1>");
    if (str(task, "description")) {
        rf_text_printf(&t, "<p>");
        rf_text_escaped(&t, str(task, "description"));
        rf_text_printf(&t, "</p>");
    }
    rf_text_printf(&t, "<p>student <code>");
    rf_text_escaped(&t, str(result, "student"));
    rf_text_printf(&t, "</code>, knowledge teacher <code>");
    rf_text_escaped(&t, str(result, "teacher"));
    rf_text_printf(&t, "</code>; final model <code>");
    rf_text_escaped(&t, str(result, "final_model"));
    rf_text_printf(&t, "</code></p><h2>Results</h2>");
    /* accuracy columns and bars only for datasets with multiple-choice rows */
    json_t *mc = json_array();
    size_t k;
    const json_t *d;
    json_array_foreach(dsets, k, d)
    {
        if (any_acc(rows, str(d, "id"))) json_array_append(mc, (json_t *)d);
    }
    table(&t, rows, mc);
    json_array_foreach(dsets, k, d)
    {
        if (any_acc(rows, str(d, "id"))) continue;
        rf_text_printf(&t, "<p>");
        rf_text_escaped(&t, dataset_name(dsets, str(d, "id")));
        rf_text_printf(&t, ": no multiple-choice rows, so no accuracy.</p>");
    }
    if (json_array_size(dsets)) {
        rf_text_printf(&t, "<p>Perplexity is on ");
        rf_text_escaped(&t, dataset_name(dsets, str(json_array_get(dsets, 0), "id")));
        rf_text_printf(&t, "; decode tok/s and ms/token are batch-1 on this machine.</p>");
    }
    if (json_array_size(mc)) variant_bars(&t, rows, mc, NULL, 1, "Accuracy by variant", "acc");
    json_decref(mc);
    training_chart(&t, json_object_get(result, "training"));
    if (json_object_get(result, "hpo")) hpo_chart(&t, json_object_get(result, "hpo"));
    variant_bars(&t, rows, dsets, "model_bytes", 1.0 / (1 << 20), "Model size", "MiB");
    variant_bars(&t, rows, dsets, "latency_ms_per_token", 1, "Per-token latency", "ms/token");
    const json_t *stages = json_object_get(result, "stages");
    if (json_array_size(stages)) {
        rf_text_printf(&t, "<h2>Stages</h2><table><thead><tr><th>stage</th><th>job</th>"
                           "<th>seconds</th></tr></thead><tbody>");
        size_t i;
        json_t *s;
        json_array_foreach(stages, i, s)
        {
            rf_text_printf(&t, "<tr><th>");
            rf_text_escaped(&t, str(s, "stage"));
            rf_text_printf(&t, "</th><td><code>");
            rf_text_escaped(&t, str(s, "job"));
            rf_text_printf(&t, "</code></td>");
            cell(&t, num(s, "seconds"), 1, NULL);
            rf_text_printf(&t, "</tr>");
        }
        rf_text_printf(&t, "</tbody></table>");
    }
    const json_t *notes = json_object_get(result, "notes");
    if (json_array_size(notes)) {
        rf_text_printf(&t, "<h2>Notes</h2><ul>");
        size_t i;
        json_t *n;
        json_array_foreach(notes, i, n)
        {
            rf_text_printf(&t, "<li>");
            rf_text_escaped(&t, json_string_value(n));
            rf_text_printf(&t, "</li>");
        }
        rf_text_printf(&t, "</ul>");
    }
    rf_text_printf(&t, "</body></html>\n");
    if (t.oom) {
        rf_text_free(&t);
        return rf_errorf(err, RF_ENOMEM, "report: out of memory");
    }
    *html = t.s;
    return 0;
}

/* ---- the terminal table ---- */

static void tcell(rf_text *t, double v, int width, int digits)
{
    if (isfinite(v))
        rf_text_printf(t, " %*.*f", width, digits, v);
    else
        rf_text_printf(t, " %*s", width, "-");
}

int rf_pipeline_report_text(const json_t *result, char **text, rf_error *err)
{
    *text = NULL;
    if (!json_is_object(result))
        return rf_errorf(err, RF_EINVAL, "report: the pipeline result must be an object");
    rf_text t = {0};
    const json_t *rows = json_object_get(result, "rows"),
                 *dsets = json_object_get(result, "evaluation_datasets");
    rf_text_printf(&t, "%-24s", "variant");
    size_t i, j, shown = 0;
    json_t *d, *r;
    json_array_foreach(dsets, i, d)
    {
        if (any_acc(rows, str(d, "id"))) {
            shown++;
            rf_text_printf(&t, "   acc@%zu  drop@%zu", shown, shown);
        }
    }
    rf_text_printf(&t, " %10s %10s %9s %9s\n", "perplexity", "MiB", "tok/s", "ms/token");
    json_array_foreach(rows, j, r)
    {
        const char *label = str(r, "label") ? str(r, "label") : str(r, "variant");
        rf_text_printf(&t, "%-24.24s", label ? label : "?");
        json_array_foreach(dsets, i, d)
        {
            if (!any_acc(rows, str(d, "id"))) continue;
            const json_t *a = json_object_get(json_object_get(r, "accuracy"), str(d, "id"));
            tcell(&t, num(a, "acc"), 8, 3);
            tcell(&t, num(json_object_get(r, "accuracy_drop"), str(d, "id")), 8, 3);
        }
        tcell(&t, num(r, "perplexity"), 10, 2);
        tcell(&t, num(r, "model_bytes") / (1 << 20), 10, 2);
        tcell(&t, num(r, "decode_tokens_per_s"), 9, 0);
        tcell(&t, num(r, "latency_ms_per_token"), 9, 2);
        rf_text_printf(&t, "\n");
    }
    shown = 0;
    json_array_foreach(dsets, i, d)
    {
        const char *id = str(d, "dataset");
        const char *name = dataset_name(dsets, str(d, "id"));
        if (any_acc(rows, str(d, "id"))) {
            shown++;
            rf_text_printf(&t, "acc@%zu: accuracy on %s%s%s%s; drop@%zu: lost under GPTQ\n", shown,
                           name, id ? " (" : "", id ? id : "", id ? ")" : "", shown);
        } else
            rf_text_printf(&t, "%s%s%s%s: no multiple-choice rows, so no accuracy\n", name,
                           id ? " (" : "", id ? id : "", id ? ")" : "");
    }
    if (json_array_size(dsets))
        rf_text_printf(&t, "perplexity: on %s; tok/s, ms/token: batch-1 decode\n",
                       dataset_name(dsets, str(json_array_get(dsets, 0), "id")));
    const json_t *notes = json_object_get(result, "notes");
    json_array_foreach(notes, i, d) rf_text_printf(&t, "- %s\n", json_string_value(d));
    if (t.oom) {
        rf_text_free(&t);
        return rf_errorf(err, RF_ENOMEM, "report: out of memory");
    }
    *text = t.s;
    return 0;
}
