/* A run's history as series, shared by `show` (terminal charts) and `report`
 * (SVG charts), in cli/show_hist.c: each numeric key of history.jsonl
 * against its step axis (run.json's "metrics": {"val_acc": {"step_metric":
 * "epoch"}}, else _step), or against the axis the viewer chose (--x); an
 * axis value seen stays in force for later rows, so runs that log at
 * different rates line up on the trainer's own step.  Axes themselves
 * (_step, _runtime, run.json's "axes", step_metrics) are kept against _step
 * with is_axis set; summary_only metrics are not series.  "NaN"/"Infinity"/
 * "-Infinity" become non-finite y values (counted). */
#ifndef MT_SHOW_H
#define MT_SHOW_H

#include <stddef.h>

struct cJSON;
struct mt_index;

struct mt_hist_series {
    char *key, *axis;
    double *x, *y;
    size_t n, cap, nonfinite;
    int is_axis;
};

struct mt_hist {
    struct mt_hist_series *v;
    size_t n, cap;
    size_t rows, bad_lines, dropped_keys;
    size_t before_axis; /* values in rows before their axis had a value */
    char **axes;        /* the axes that have values, in order of appearance */
    size_t naxes;
};

/* Reads <dir>/history.jsonl; `run` is run.json (may be NULL), `x_axis` the
 * axis every metric is drawn against (NULL: each metric's step_metric). */
void mt_hist_load(struct mt_hist *h, const char *dir, const struct cJSON *run,
                  const char *x_axis);
int mt_hist_has_axis(const struct mt_hist *h, const char *axis);
/* Adds <dir>/system.jsonl's samples (system.cpu_percent, ...) as series
 * against _runtime (the report's system charts). */
void mt_hist_load_system(struct mt_hist *h, const char *dir);
void mt_hist_free(struct mt_hist *h);
const struct mt_hist_series *mt_hist_find(const struct mt_hist *h, const char *key);


/* show_compare.c: runs side by side (identity, then config and summary with
 * the differing keys first, marked '*'), in columns fitted to `width`. */
struct mt_show_run {
    const char *id;
    const struct cJSON *run, *summary;
    double runtime; /* seconds, up to now for a running run */
};
void mt_show_compare(const struct mt_show_run *runs, size_t nruns, int width);

/* show_notes.c: a run directory by id prefix without the index (0 found, 1
 * none, 2 several; caller frees), and the lines `show` prints about a
 * damaged run.json (`damage`, may be NULL) and untracked processes. */
int mt_show_find_dir(const char *store, const char *prefix, char **id, char **dir);
void mt_show_notes(const char *dir, const char *damage);

#endif
