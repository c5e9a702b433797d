/* The HTML report's parts, shared by report.c (the command, the runs table,
 * grouping metrics into families) and report_svg.c (the charts). */
#ifndef MT_REPORT_H
#define MT_REPORT_H

#include <stddef.h>

#include "show.h"

struct mt_buf;
struct cJSON;
struct mt_select_row;

struct mt_report_run {
    const struct mt_select_row *row;
    struct mt_hist hist;
    struct cJSON *config, *summary; /* parsed from the row */
    char colour[8];                 /* "#rrggbb", distinct across the runs */
    const char *dash;               /* SVG stroke-dasharray, "" for solid */
};

/* Colour and dash of run i: Tableau's ten first, then ten hues 36 degrees
 * apart at each of two other lightnesses, each later ten dashed differently,
 * so 30 runs stay apart by colour and by line. */
void mt_report_style(size_t i, char colour[8], const char **dash);

/* HTML-escaped text. */
void mt_report_esc(struct mt_buf *b, const char *s);

/* One line chart of `key` across the runs (a figure with its caption, the
 * SVG, a legend naming every run drawn, and the points for the page's
 * log/smoothing switches).  Returns the number of runs drawn. */
size_t mt_report_chart(struct mt_buf *b, const char *key, struct mt_report_run *runs,
                       size_t nruns);

/* The parallel-coordinates chart: one axis per config key whose values
 * differ between the runs, the last one `metric` (a summary key); a line
 * per run that has it, coloured by its value.  0, or -1 when no run has the
 * metric or no config key varies (the message in err). */
int mt_report_parallel(struct mt_buf *b, const char *metric, struct mt_report_run *runs,
                       size_t nruns, char *err, size_t errsz);

/* The page's stylesheet and script (inline: the file fetches nothing). */
extern const char mt_report_css[];
extern const char mt_report_js[];

#endif
