/* mt_history: the step logic.  Fields from lines become history rows:
 *  - an axis value (epoch, step, ...) stays in force for later lines, and a
 *    new value of an axis closes the row being assembled;
 *  - with no axis at all, the row closes when a metric key repeats (Guild);
 *  - each closed row gets the next _step, _runtime and _timestamp.
 * It also keeps the summary: per metric the last value by default, or what
 * the metric's settings ask for (min, max, mean, first, last, best with a
 * goal, none).  The summary is flat: "loss" holds the last value, and
 * "loss.min", "loss.max", "loss.mean", "loss.first", "loss.best" the others.
 * Internal to parsers/. */
#ifndef MT_HISTORY_H
#define MT_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "mt_fields.h"

struct mt_history;

typedef void (*mt_history_row_fn)(void *ctx, const char *json, size_t len);

struct mt_history *mt_history_create(double start_unix, uint64_t first_step,
                                     double runtime_offset, mt_history_row_fn row, void *ctx);
void mt_history_destroy(struct mt_history *h);

/* Metric settings, first match wins: `user` (the config's metrics:) before
 * `defaults` (what presets imply).  Names may be globs.  Both arrays must
 * outlive the history.  Call before the first add. */
struct mt_metric_spec;
void mt_history_set_metrics(struct mt_history *h, const struct mt_metric_spec *user, size_t nuser,
                            const struct mt_metric_spec *defaults, size_t ndefaults);

/* Adds the fields of one line seen at ts_unix: metrics and axes, and
 * MT_ROLE_SUMMARY values, which set the summary without entering a row;
 * other roles are ignored. */
void mt_history_add(struct mt_history *h, const struct mt_fields *fs, double ts_unix);

/* Sets the run's start (import: the first time the log carries). */
void mt_history_set_start(struct mt_history *h, double start_unix);

/* Closes the row being assembled, if it holds any metric. */
void mt_history_flush(struct mt_history *h, double ts_unix);

char *mt_history_summary_json(const struct mt_history *h);
/* {"val_acc": {"step_metric": "epoch", "summary": ["max","last"], "goal":
 * "maximize", "unit": "%", "type": "number", "summary_only": true}, ...}
 * for every metric seen; caller frees. */
char *mt_history_metrics_json(const struct mt_history *h);
/* The step axes seen (epoch, step, iteration...), in order: ["epoch"]. */
char *mt_history_axes_json(const struct mt_history *h);
int mt_history_restore_summary(struct mt_history *h, const char *json);

uint64_t mt_history_next_step(const struct mt_history *h);
/* Changes whenever a metric is first seen, so its settings are new. */
uint64_t mt_history_metrics_gen(const struct mt_history *h);
uint64_t mt_history_rows(const struct mt_history *h);
uint64_t mt_history_values(const struct mt_history *h);
uint64_t mt_history_keys_dropped(const struct mt_history *h);

#endif
