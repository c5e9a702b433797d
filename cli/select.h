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
    struct mt_sort_key *sort; /* --sort, in the order given (comma lists, repeats) */
    size_t nsort;
    struct mt_col *cols; /* --columns */
    size_t ncols;
    int replace_cols;    /* --columns =a,b: these instead of the default columns */
    size_t hidden_col;   /* 1 + the index of a column fetched but not shown
                            (ls --group-by's key); 0: none */
    size_t limit;
    int scan;            /* read run dirs instead of the index */
    int no_sync;         /* skip the self-repair look (for measuring) */
    /* Set by mt_select_run: how many names of the request (project, state,
     * keys of filter, sort and columns) matched nothing; each was said on
     * stderr with the nearest existing name.  The rows are still given. */
    size_t unknown_names;
};

/* One selected run; owns its strings. */
struct mt_select_row {
    char *id, *project, *name, *state, *group, *job_type, *tags, *config, *summary, *dir;
    double start_time, end_time, runtime;
    int exit_code, signal;
    double dropped, cut;   /* what the run lost (mt_index_run) */
    struct mt_value *vals; /* per column; text owned */
    struct mt_value *sortv; /* --scan only: per sort key */
    size_t nsortv;
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

/* ---- finding one run (cli/find_run.c) ---- */
struct mt_index;
/* The run `arg` names, for every command that takes a RUN: its id, a unique
 * id prefix, a unique name, `latest` or `-1` (the newest), `-2`, `-3`...
 * (counting back), within `project` (NULL: every project).  The index is
 * synced once when nothing matches; a run directory the index lacks (its
 * run.json damaged) is found by id prefix, with a line saying so.  0 with
 * *id and *dir (caller frees); 1 with the message printed (an ambiguous
 * name or prefix lists its matches). */
int mt_cli_find_run(struct mt_index *ix, const char *store, const char *project, const char *arg,
                    char **id, char **dir);
/* Is arg `latest` or -N (so not an option)? */
int mt_cli_is_run_position(const char *arg);
/* Removes --project P / --project=P from argv (before any "--"), keeping
 * the order of the rest; returns P or NULL. */
const char *mt_cli_take_project(int *argc, char **argv);

/* cli/ls_group.c: ls --group-by: the rows grouped by the value of column
 * s->hidden_col - 1, with n/mean/std/min/max of every other column;
 * format 0 table, 1 JSON, 2 CSV.  0, or -1 when the output was too large. */
int mt_ls_print_groups(const struct mt_select *s, const struct mt_select_rows *rows, int format);

/* Is `s` one of the summary statistics (min max mean first last best)? */
int mt_select_stat_name(const char *s);

/* ---- between select.c and select_names.c ---- */
struct mt_index;
struct mt_select_key {
    int src;               /* 0 summary, 1 config */
    const char *key, *label; /* borrowed from the selection's columns */
    int found;             /* --scan: some run in scope has it */
};
struct mt_select_keys {
    struct mt_select_key *v;
    size_t n;
};
/* The summary/config keys that the filter, sort and columns name. */
void mt_select__wanted(const struct mt_select *s, struct mt_select_keys *out);
void mt_select__keys_free(struct mt_select_keys *k);
/* cli/history_stats.c: for every summary key of `keys` that is METRIC.stat
 * (min max mean first last best), the statistic of METRIC over the run's
 * history.jsonl: out[i] and have[i] = 1, or have[i] = 0 (no such values).
 * run_json (may be NULL) gives metrics.METRIC.goal for best. */
struct cJSON;
void mt_select__history_stats(const char *dir, const struct cJSON *run_json,
                              const struct mt_select_keys *keys, double *out, int *have);
/* Says on stderr which names match nothing (ix NULL: from the run
 * directories and keys[].found); returns how many. */
size_t mt_select__check(const struct mt_select *s, const char *store, struct mt_index *ix,
                        const struct mt_select_keys *keys);

void mt_select_rows_free(struct mt_select_rows *rows, size_t ncols);
void mt_select_free(struct mt_select *s);

#endif
