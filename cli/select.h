/* Choosing runs: the options `ls` and `report` share (--project, --tag,
 * --group, --state, --filter, --sort, --limit, --columns, --scan) and the
 * rows they select, from the index or, with --scan, by reading every run
 * directory (the no-index baseline, same answers). */
#ifndef MT_SELECT_H
#define MT_SELECT_H

#include <stddef.h>

#include "../common/mt_filter.h"

#define MT_SELECT_MAX_TAGS 64

struct mt_select {
    const char *project, *group, *state, *filter_text;
    const char *tags[MT_SELECT_MAX_TAGS];
    size_t ntags;
    struct mt_filter *filter;
    struct mt_col sort;
    int have_sort, sort_desc;
    struct mt_col *cols; /* --columns */
    size_t ncols;
    size_t limit;
    int scan;            /* read run dirs instead of the index */
    int no_sync;         /* skip the self-repair look (for measuring) */
};

/* One selected run; owns its strings. */
struct mt_select_row {
    char *id, *project, *name, *state, *group, *job_type, *tags, *config, *summary, *dir;
    double start_time, end_time, runtime;
    int exit_code, signal;
    double dropped, cut;   /* what the run lost (mt_index_run) */
    struct mt_value *vals; /* per column; text owned */
    struct mt_value sortv; /* --scan only */
};

struct mt_select_rows {
    struct mt_select_row *v;
    size_t n, cap;
};

/* If argv[*i] is a selection option, takes it (and its value), advancing *i.
 * Returns 1 when taken, 0 when not a selection option, -1 on a bad value
 * (the message printed). */
int mt_select_arg(struct mt_select *s, int argc, char **argv, int *i);
const char *mt_select_usage(void);

/* Fills rows.  0, or -1 with the message printed. */
int mt_select_run(struct mt_select *s, const char *store_dir, struct mt_select_rows *rows);

void mt_select_rows_free(struct mt_select_rows *rows, size_t ncols);
void mt_select_free(struct mt_select *s);

#endif
