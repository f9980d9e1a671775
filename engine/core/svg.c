#include "engine/core/svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
#define NPAL (int)(sizeof palette / sizeof *palette)

void rf_text_printf(rf_text *t, const char *fmt, ...)
{
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->s && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->oom = true;
            return;
        }
        t->s = s, t->cap = cap;
        if (!t->len) t->s[0] = '\0';
    }
}

void rf_text_escaped(rf_text *t, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        switch (*p) {
        case '&':
            rf_text_printf(t, "&amp;");
            break;
        case '<':
            rf_text_printf(t, "&lt;");
            break;
        case '>':
            rf_text_printf(t, "&gt;");
            break;
        case '"':
            rf_text_printf(t, "&quot;");
            break;
        case '\'':
            rf_text_printf(t, "&#39;");
            break;
        default:
            rf_text_printf(t, "%c", *p);
        }
    }
}

void rf_text_free(rf_text *t)
{
    free(t->s);
    memset(t, 0, sizeof *t);
}

/* ---- axes ---- */

/* The nice number nearest x (round) or above it: 1, 2, 5 × 10^k. */
static double nice(double x, bool round_)
{
    double e = floor(log10(x)), f = x / pow(10, e), nf;
    if (round_)
        nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else
        nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10, e);
}

typedef struct axis {
    double lo, hi, step; /* in plotted units (log10 for a log axis) */
    bool log;
} axis;

static axis make_axis(double lo, double hi, bool log_)
{
    axis a = {.log = log_};
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * fmax(1, fabs(hi))) lo -= 0.5, hi += 0.5;
    if (log_) {
        a.lo = floor(lo), a.hi = ceil(hi), a.step = 1;
        if (a.hi == a.lo) a.hi = a.lo + 1;
        return a;
    }
    double range = nice(hi - lo, false);
    a.step = nice(range / 4, true);
    a.lo = floor(lo / a.step) * a.step, a.hi = ceil(hi / a.step) * a.step;
    return a;
}

static void tick_label(char *buf, size_t cap, const axis *a, double v)
{
    if (a->log) v = pow(10, v);
    if (fabs(v) < 1e-12) v = 0;
    snprintf(buf, cap, "%.4g", v);
}

typedef struct frame {
    int w, h, left, right, top, bottom;
} frame;

static frame make_frame(const rf_svg_axes *ax)
{
    frame f = {.w = ax->width ? ax->width : 640, .h = ax->height ? ax->height : 320};
    /* title row, then the legend row above the plot: never over the data */
    f.left = 64, f.right = f.w - 16, f.top = ax->title ? 48 : 28, f.bottom = f.h - 52;
    return f;
}

static double px(const frame *f, const axis *a, double v)
{
    return f->left + (v - a->lo) / (a->hi - a->lo) * (f->right - f->left);
}

static double py(const frame *f, const axis *a, double v)
{
    return f->bottom - (v - a->lo) / (a->hi - a->lo) * (f->bottom - f->top);
}

static void open_svg(rf_text *o, const rf_svg_axes *ax, const frame *f)
{
    rf_text_printf(o,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                   "viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"sans-serif\" "
                   "font-size=\"11\">",
                   f->w, f->h, f->w, f->h);
    if (ax->title) {
        rf_text_printf(o, "<title>");
        rf_text_escaped(o, ax->title);
        rf_text_printf(o, "</title><text x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"bold\">",
                       f->left);
        rf_text_escaped(o, ax->title);
        rf_text_printf(o, "</text>");
    }
    rf_text_printf(o,
                   "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                   "stroke=\"#999\"/>",
                   f->left, f->top, f->right - f->left, f->bottom - f->top);
    if (ax->x_label) {
        rf_text_printf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
                       (f->left + f->right) / 2, f->h - 8);
        rf_text_escaped(o, ax->x_label);
        rf_text_printf(o, "</text>");
    }
    if (ax->y_label) {
        rf_text_printf(o,
                       "<text transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\">",
                       (f->top + f->bottom) / 2);
        rf_text_escaped(o, ax->y_label);
        rf_text_printf(o, "</text>");
    }
}

static void y_ticks(rf_text *o, const frame *f, const axis *y)
{
    for (double v = y->lo; v <= y->hi + y->step * 1e-9; v += y->step) {
        char b[32];
        tick_label(b, sizeof b, y, v);
        double yy = py(f, y, v);
        rf_text_printf(o,
                       "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
                       "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                       f->left, f->right, yy, yy, f->left - 4, yy + 4, b);
    }
}

/* One row above the plot, left to right (about 6.5 px per character). */
static void legend(rf_text *o, const frame *f, const char *const *labels, int n)
{
    double x = f->left, y = f->top - 8;
    for (int i = 0; i < n; i++) {
        if (!labels[i]) continue;
        rf_text_printf(o,
                       "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\">",
                       x, y - 9, palette[i % NPAL], x + 14, y);
        rf_text_escaped(o, labels[i]);
        rf_text_printf(o, "</text>");
        x += 28 + 6.5 * (double)strlen(labels[i]);
    }
}

/* A category label under its bars, on two lines when long (split at the
 * space nearest the middle). */
static void category_label(rf_text *o, double x, int y, const char *label)
{
    size_t n = strlen(label), cut = 0;
    if (n > 14)
        for (size_t i = 0; i < n; i++)
            if (label[i] == ' ' && (cut == 0 || (i > n / 2 ? i - n / 2 : n / 2 - i) <
                                                    (cut > n / 2 ? cut - n / 2 : n / 2 - cut)))
                cut = i;
    rf_text_printf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", x, y);
    if (!cut) {
        rf_text_escaped(o, label);
    } else {
        char *a = strndup(label, cut);
        rf_text_printf(o, "<tspan x=\"%.1f\">", x);
        rf_text_escaped(o, a ? a : label);
        rf_text_printf(o, "</tspan><tspan x=\"%.1f\" dy=\"13\">", x);
        rf_text_escaped(o, label + cut + 1);
        rf_text_printf(o, "</tspan>");
        free(a);
    }
    rf_text_printf(o, "</text>");
}

/* ---- xy ---- */

void rf_svg_xy(rf_text *o, const rf_svg_axes *ax, const rf_svg_series *s, int ns)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            double x = s[i].x[k], y = s[i].y[k];
            if (!isfinite(x) || !isfinite(y) || (ax->log_y && y <= 0)) continue;
            if (ax->log_y) y = log10(y);
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    frame f = make_frame(ax);
    axis X = make_axis(xlo, xhi, false), Y = make_axis(ylo, yhi, ax->log_y);
    open_svg(o, ax, &f);
    y_ticks(o, &f, &Y);
    for (double v = X.lo; v <= X.hi + X.step * 1e-9; v += X.step) {
        char b[32];
        tick_label(b, sizeof b, &X, v);
        rf_text_printf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                       px(&f, &X, v), f.bottom + 14, b);
    }
    const char *labels[64];
    int nl = ns < 64 ? ns : 64;
    for (int i = 0; i < ns; i++) {
        const char *col = palette[i % NPAL];
        if (i < 64) labels[i] = s[i].label;
        bool path = s[i].kind != RF_SVG_POINTS, started = false;
        if (path)
            rf_text_printf(o, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" d=\"", col);
        for (int k = 0; k < s[i].n; k++) {
            double x = s[i].x[k], y = s[i].y[k];
            if (!isfinite(x) || !isfinite(y) || (ax->log_y && y <= 0)) continue;
            if (ax->log_y) y = log10(y);
            double xx = px(&f, &X, x), yy = py(&f, &Y, y);
            if (!path) {
                rf_text_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", xx, yy,
                               col);
                continue;
            }
            if (!started)
                rf_text_printf(o, "M%.1f %.1f", xx, yy);
            else if (s[i].kind == RF_SVG_STEP)
                rf_text_printf(o, "H%.1f V%.1f", xx, yy);
            else
                rf_text_printf(o, "L%.1f %.1f", xx, yy);
            started = true;
        }
        if (path) rf_text_printf(o, "\"/>");
    }
    legend(o, &f, labels, nl);
    rf_text_printf(o, "</svg>");
}

/* ---- bars ---- */

void rf_svg_bars(rf_text *o, const rf_svg_axes *ax, const char *const *cats, int nc,
                 const char *const *groups, int ng, const double *v)
{
    double lo = 0, hi = 0;
    for (int i = 0; i < nc * ng; i++)
        if (isfinite(v[i])) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    frame f = make_frame(ax);
    axis Y = make_axis(lo, hi, false);
    open_svg(o, ax, &f);
    y_ticks(o, &f, &Y);
    const double slot = (double)(f.right - f.left) / (nc > 0 ? nc : 1);
    const double bw = slot * 0.8 / (ng > 0 ? ng : 1);
    const double y0 = py(&f, &Y, 0);
    for (int c = 0; c < nc; c++) {
        double x0 = f.left + slot * c + slot * 0.1;
        for (int g = 0; g < ng; g++) {
            double val = v[c * ng + g];
            if (!isfinite(val)) continue;
            double yy = py(&f, &Y, val);
            rf_text_printf(o,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"%s\"><title>",
                           x0 + bw * g, fmin(yy, y0), bw * 0.92, fabs(y0 - yy), palette[g % NPAL]);
            rf_text_escaped(o, cats[c]);
            if (groups && groups[g]) {
                rf_text_printf(o, " / ");
                rf_text_escaped(o, groups[g]);
            }
            rf_text_printf(o, ": %.6g</title></rect>", val);
        }
        category_label(o, f.left + slot * (c + 0.5), f.bottom + 14, cats[c]);
    }
    if (groups && ng > 1) legend(o, &f, groups, ng);
    rf_text_printf(o, "</svg>");
}
