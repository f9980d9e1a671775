/* Small self-contained SVG charts for reports (the pipeline's HTML report,
 * the hpo job's plot): line and point series on numeric axes, and grouped
 * bars over categories. Text only, no scripts, no external assets, so a
 * report opens anywhere and renders the same; every label is XML-escaped.
 * Axis ticks are "nice" numbers (1, 2, 5 × 10^k, Heckbert's rule). */
#ifndef RF_SVG_H
#define RF_SVG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum rf_svg_kind {
    RF_SVG_LINE,   /* points joined in the order given */
    RF_SVG_POINTS, /* markers only */
    RF_SVG_STEP,   /* a running best: horizontal then vertical segments */
} rf_svg_kind;

typedef struct rf_svg_series {
    const char *label; /* legend text; NULL: not in the legend */
    rf_svg_kind kind;
    const double *x, *y; /* n points; non-finite ones are skipped */
    int n;
} rf_svg_series;

typedef struct rf_svg_axes {
    const char *title, *x_label, *y_label;
    int width, height; /* pixels; 0: 640 × 320 */
    bool log_y;        /* logarithmic y axis (values ≤ 0 skipped) */
} rf_svg_axes;

/* A growable text buffer (NUL-terminated; s NULL until the first append). */
typedef struct rf_text {
    char *s;
    size_t len, cap;
    bool oom; /* an append failed: the text is incomplete */
} rf_text;

void rf_text_printf(rf_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with &, <, >, " and ' escaped for XML/HTML text and attributes. */
void rf_text_escaped(rf_text *t, const char *s);
void rf_text_free(rf_text *t);

/* Appends an <svg> element: the series on shared axes with a legend. */
void rf_svg_xy(rf_text *out, const rf_svg_axes *ax, const rf_svg_series *series, int n_series);

/* Appends an <svg> element of grouped bars: values[c * n_groups + g] is
 * group g's bar in category c (non-finite: no bar). Bars start at zero. */
void rf_svg_bars(rf_text *out, const rf_svg_axes *ax, const char *const *categories,
                 int n_categories, const char *const *groups, int n_groups, const double *values);

#endif
