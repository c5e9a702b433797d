/* mt_chart: line charts drawn with braille characters for `metrictap show`.
 * Each character cell holds 2x4 dots; lines join consecutive points; a
 * non-finite value breaks the line, and so does an x that goes back (the
 * next fold of a cross-validation starts a line of its own).  The y range is widened to "nice" ticks
 * (1, 2, 5 x 10^k; whole numbers on an integer axis), about one row in
 * three labelled; the x axis has tick marks and labels that do not collide.
 * A single value gets room around it.  Overlaid series are told apart
 * without colour too: each has a marker character (o x + * ...) on its
 * points (on every point of a sparse series, a few on a dense one) and,
 * without colour, a dash pattern; the legend shows both.  A lone point is
 * drawn as its marker.  With colour a cell takes the colour of the last
 * series drawn through it.  Kept in common/ so its unit test links it; only
 * the CLI uses it. */
#ifndef MT_CHART_H
#define MT_CHART_H

#include <stddef.h>

struct mt_buf;

struct mt_chart_series {
    const char *label;
    const double *x, *y;
    size_t n;
};

/* Appends the chart to out: a title line, `height` rows of plot, the x axis
 * and (for several series) a legend; at most `width` characters a line. */
void mt_chart_render(struct mt_buf *out, const char *title, const char *xlabel,
                     const struct mt_chart_series *series, size_t nseries, int width, int height,
                     int color);

/* ANSI colour code of series i, and its marker character. */
int mt_chart_color(size_t i);
char mt_chart_marker(size_t i);

/* A tick step splitting `range` into about n parts (>= 1 when integer), and
 * a tick's label with the decimals that step needs. */
double mt_chart_nice_step(double range, int n, int integer);
void mt_chart_tick_label(char *out, size_t size, double v, double step);
/* A range that is a single value gets room around it (10%, or 1 around 0 or
 * on an integer axis), so a constant series sits mid-chart. */
void mt_chart_widen(double *lo, double *hi, int integer);

#endif
