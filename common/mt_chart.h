/* mt_chart: line charts drawn with braille characters for `metrictap show`.
 * Each character cell holds 2x4 dots; lines join consecutive points; a
 * non-finite value breaks the line, and so does an x that goes back (the
 * next fold of a cross-validation starts a line of its own).  The y axis is labelled with its max at
 * the top and its min at the bottom, the x axis with its min and max.  With
 * colour each series gets an ANSI colour (a cell takes the colour of the last
 * series drawn through it); without, overlaid series share the dots.  Kept
 * in common/ so its unit test links it; only the CLI uses it. */
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

/* ANSI colour code (31..36) of series i. */
int mt_chart_color(size_t i);

#endif
