#include "engine/jobs/hpo_plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define W 800
#define PW 320 /* a parameter panel */
#define PH 190
#define MAIN_H 230

static const char *const k_complete = "#1f77b4", *const k_pruned = "#ff7f0e",
                         *const k_failed = "#999999", *const k_best = "#d62728";

typedef struct axis {
    double lo, hi;
    bool log;
} axis;

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static double tr(const axis *a, double v)
{
    return a->log ? log10(v) : v;
}

/* Pixel of v between p0 (at lo) and p1 (at hi). */
static double at(const axis *a, double v, double p0, double p1)
{
    double lo = tr(a, a->lo), hi = tr(a, a->hi);
    return p0 + (tr(a, v) - lo) / (hi - lo) * (p1 - p0);
}

/* A range with a margin, never empty. */
static void fit(axis *a, double lo, double hi)
{
    if (a->log) {
        if (!(lo > 0)) lo = hi > 0 ? hi / 10 : 1e-3;
        if (hi <= lo) hi = lo * 10, lo = lo / 10;
        double m = pow(hi / lo, 0.05);
        a->lo = lo / m, a->hi = hi * m;
        return;
    }
    if (hi <= lo) {
        double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= d, hi += d;
    }
    double m = (hi - lo) * 0.06;
    a->lo = lo - m, a->hi = hi + m;
}

/* Ticks at 1, 2 or 5 times a power of ten (decades on a log axis). */
static int ticks(const axis *a, double *out, int cap)
{
    int n = 0;
    if (a->log) {
        for (double e = floor(log10(a->lo)); e <= ceil(log10(a->hi)) && n < cap; e++) {
            double v = pow(10, e);
            if (v >= a->lo && v <= a->hi) out[n++] = v;
        }
        if (n >= 2) return n;
        n = 0;
    }
    double range = a->hi - a->lo, raw = range / 4, p = pow(10, floor(log10(raw)));
    double step = raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
    for (double v = ceil(a->lo / step) * step; v <= a->hi + step * 1e-9 && n < cap; v += step)
        if (!a->log || v > 0) out[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    return n;
}

typedef struct frame {
    double x0, y0, w, h; /* the plotting area */
} frame;

static void draw_axes(FILE *f, const frame *fr, const axis *ax, const axis *ay, const char *title,
                      const char *xlabel, const char *ylabel, bool xticks)
{
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" "
            "stroke=\"#cccccc\"/>\n",
            fr->x0, fr->y0, fr->w, fr->h);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\">", fr->x0,
            fr->y0 - 10);
    esc(f, title);
    fputs("</text>\n", f);
    double t[16];
    int n = ticks(ay, t, 16);
    for (int i = 0; i < n; i++) {
        double y = at(ay, t[i], fr->y0 + fr->h, fr->y0);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                fr->x0, y, fr->x0 + fr->w, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>\n",
                fr->x0 - 4, y + 3, t[i]);
    }
    if (xticks) {
        n = ticks(ax, t, 16);
        for (int i = 0; i < n; i++) {
            double x = at(ax, t[i], fr->x0, fr->x0 + fr->w);
            fprintf(f,
                    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                    "text-anchor=\"middle\">%.3g</text>\n",
                    x, fr->y0 + fr->h + 13, t[i]);
        }
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">",
            fr->x0 + fr->w / 2, fr->y0 + fr->h + 28);
    esc(f, xlabel);
    fputs("</text>\n", f);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 %.1f %.1f)\">",
            fr->x0 - 44, fr->y0 + fr->h / 2, fr->x0 - 44, fr->y0 + fr->h / 2);
    esc(f, ylabel);
    fputs("</text>\n", f);
}

/* One trial's mark: a filled dot (complete), a ring (pruned), a grey cross
 * on the bottom edge (failed: no value). */
static void mark(FILE *f, const char *state, double x, double y, const frame *fr, int number)
{
    if (!strcmp(state, "complete"))
        fprintf(f,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>trial %d</title>"
                "</circle>\n",
                x, y, k_complete, number);
    else if (!strcmp(state, "pruned"))
        fprintf(f,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"none\" stroke=\"%s\" "
                "stroke-width=\"1.5\"><title>trial %d (pruned)</title></circle>\n",
                x, y, k_pruned, number);
    else {
        double b = fr->y0 + fr->h - 5;
        fprintf(f,
                "<path d=\"M%.1f %.1fl6 6m0 -6l-6 6\" stroke=\"%s\" stroke-width=\"1.5\">"
                "<title>trial %d (failed)</title></path>\n",
                x - 3, b - 3, k_failed, number);
    }
}

static bool value_of(const json_t *t, double *v)
{
    json_t *j = json_object_get(t, "value");
    if (!json_is_number(j) || !isfinite(json_number_value(j))) return false;
    *v = json_number_value(j);
    return true;
}

static const char *state_of(const json_t *t)
{
    const char *s = json_string_value(json_object_get(t, "state"));
    return s ? s : "failed";
}

/* A parameter's value as a double (a categorical's: its choice's index). */
static bool param_of(const json_t *t, const rf_hp_dim *d, double *x)
{
    json_t *v = json_object_get(json_object_get(t, "params"), d->name);
    if (!v) return false;
    if (d->kind != RF_HP_CATEGORICAL) {
        if (!json_is_number(v)) return false;
        *x = json_number_value(v);
        return true;
    }
    for (int k = 0; k < d->n_choices; k++) {
        json_t *c = d->choices[k];
        if (json_equal(c, v) || (json_is_number(c) && json_is_number(v) &&
                                 json_number_value(c) == json_number_value(v))) {
            *x = k;
            return true;
        }
    }
    return false;
}

static void choice_label(const json_t *c, char *buf, size_t cap)
{
    if (json_is_string(c))
        snprintf(buf, cap, "%s", json_string_value(c));
    else if (json_is_number(c))
        snprintf(buf, cap, "%g", json_number_value(c));
    else
        snprintf(buf, cap, "%s", json_is_true(c) ? "true" : json_is_false(c) ? "false" : "null");
}

static void draw(FILE *f, const json_t *trials, const rf_hp_space *space, const char *metric,
                 bool maximize)
{
    const size_t n = json_array_size(trials);
    const int rows = (space->n + 1) / 2;
    const int height = 60 + MAIN_H + 70 + rows * (PH + 75) + 10;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, height, W, height);
    /* The objective's range over every trial that has a value. */
    double lo = INFINITY, hi = -INFINITY, v;
    int maxnum = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(trials, i);
        int num = (int)json_integer_value(json_object_get(t, "number"));
        if (num > maxnum) maxnum = num;
        if (value_of(t, &v)) lo = fmin(lo, v), hi = fmax(hi, v);
    }
    if (!isfinite(lo)) lo = 0, hi = 1;
    axis ay = {0}, ax = {0};
    fit(&ay, lo, hi);
    fit(&ax, 0, maxnum > 0 ? maxnum : 1);
    char title[160], ylabel[96];
    snprintf(title, sizeof title, "%s by trial (%s)", metric, maximize ? "maximize" : "minimize");
    snprintf(ylabel, sizeof ylabel, "%s", metric);
    frame fr = {70, 60, W - 100, MAIN_H};
    draw_axes(f, &fr, &ax, &ay, title, "trial", ylabel, true);
    /* the best so far, in trial order */
    fputs("<polyline fill=\"none\" stroke=\"", f);
    fputs(k_best, f);
    fputs("\" stroke-width=\"1.5\" points=\"", f);
    double best = NAN, last_x = 0;
    for (int num = 0; num <= maxnum; num++) {
        for (size_t i = 0; i < n; i++) {
            const json_t *t = json_array_get(trials, i);
            if (json_integer_value(json_object_get(t, "number")) != num) continue;
            if (strcmp(state_of(t), "complete") || !value_of(t, &v)) continue;
            double x = at(&ax, num, fr.x0, fr.x0 + fr.w);
            if (!isnan(best)) fprintf(f, "%.1f,%.1f ", x, at(&ay, best, fr.y0 + fr.h, fr.y0));
            if (isnan(best) || (maximize ? v > best : v < best)) best = v;
            fprintf(f, "%.1f,%.1f ", x, at(&ay, best, fr.y0 + fr.h, fr.y0));
            last_x = x;
        }
    }
    if (!isnan(best))
        fprintf(f, "%.1f,%.1f", fmax(last_x, fr.x0 + fr.w), at(&ay, best, fr.y0 + fr.h, fr.y0));
    fputs("\"/>\n", f);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(trials, i);
        int num = (int)json_integer_value(json_object_get(t, "number"));
        double x = at(&ax, num, fr.x0, fr.x0 + fr.w);
        bool has = value_of(t, &v);
        mark(f, has ? state_of(t) : "failed", x, has ? at(&ay, v, fr.y0 + fr.h, fr.y0) : 0, &fr,
             num);
    }
    /* legend */
    const double lx = fr.x0 + fr.w - 300, ly = fr.y0 - 24;
    fprintf(f,
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" "
            "font-size=\"10\">complete</text>\n"
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"none\" stroke=\"%s\"/><text "
            "x=\"%.1f\" y=\"%.1f\" font-size=\"10\">pruned</text>\n"
            "<path d=\"M%.1f %.1fl6 6m0 -6l-6 6\" stroke=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" "
            "font-size=\"10\">failed</text>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
            "stroke-width=\"1.5\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">best so "
            "far</text>\n",
            lx, ly, k_complete, lx + 8, ly + 4, lx + 70, ly, k_pruned, lx + 78, ly + 4, lx + 137,
            ly - 3, k_failed, lx + 148, ly + 4, lx + 200, ly, lx + 220, ly, k_best, lx + 226,
            ly + 4);

    /* One panel per parameter: the objective against its values. */
    for (int d = 0; d < space->n; d++) {
        const rf_hp_dim *dim = &space->dims[d];
        frame pf = {70 + (d % 2) * (PW + 60), 60 + MAIN_H + 70 + (d / 2) * (PH + 75), PW, PH};
        axis px = {.log = dim->kind == RF_HP_LOG_FLOAT || dim->kind == RF_HP_LOG_INT};
        bool cat = dim->kind == RF_HP_CATEGORICAL;
        if (cat) {
            px.lo = -0.5, px.hi = dim->n_choices - 0.5;
        } else {
            fit(&px, dim->low, rf_hp_dim_top(dim));
        }
        snprintf(title, sizeof title, "%s", dim->name);
        draw_axes(f, &pf, &px, &ay, title, dim->name, metric, !cat);
        if (cat) {
            for (int k = 0; k < dim->n_choices && k < 24; k++) {
                char label[64];
                choice_label(dim->choices[k], label, sizeof label);
                fprintf(f,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                        "text-anchor=\"middle\">",
                        at(&px, k, pf.x0, pf.x0 + pf.w), pf.y0 + pf.h + 13);
                esc(f, label);
                fputs("</text>\n", f);
            }
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *t = json_array_get(trials, i);
            double x;
            if (!param_of(t, dim, &x) || (px.log && !(x > 0))) continue;
            int num = (int)json_integer_value(json_object_get(t, "number"));
            bool has = value_of(t, &v);
            mark(f, has ? state_of(t) : "failed", at(&px, x, pf.x0, pf.x0 + pf.w),
                 has ? at(&ay, v, pf.y0 + pf.h, pf.y0) : 0, &pf, num);
        }
    }
    fputs("</svg>\n", f);
}

int rf_hpo_plot_svg(const char *path, const json_t *trials, const rf_hp_space *space,
                    const char *metric, bool maximize, rf_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return rf_errorf(err, RF_EIO, "cannot write the plot: %s", strerror(errno));
    draw(f, trials, space, metric, maximize);
    bool ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return rf_errorf(err, RF_EIO, "writing the plot failed: %s", strerror(errno));
    }
    return 0;
}
