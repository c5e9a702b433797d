/* mt_rules: the extraction rules of a run, compiled once.
 *
 * A rule is a PCRE2 pattern (JIT-compiled, with match and depth limits) whose
 * named groups become fields, or a preset: keyvalue, json, csv, or one of the
 * trainer presets (xgboost, lightgbm, fasttext, keras, hf, svm-train,
 * svm-predict, liblinear-train, liblinear-predict, darknet: presets.c),
 * which are themselves lists of patterns.
 *
 * Named groups: `step` and the rule's `axes` are step axes; the rule's
 * `config` groups are config values, `tags` groups tags; `timestamp` is the
 * line's time (unix seconds or an ISO 8601 date-time); the pair `key` and
 * `value` (with `subkey` appended as key_subkey) names a metric by the text
 * it matched; every other group is a metric named after the group.  With
 * `repeat`, the pattern is matched again from where the last match ended, so
 * `(?:^\[(?<iteration>\d+)\]|\G)\t(?<key>[^:]+):(?<value>\S+)` reads a whole
 * xgboost line.  The first rule that matches a line takes it, unless it says
 * `continue`.
 *
 * With no rules configured, each source's presets are chosen from the name
 * of the program behind it (xgboost -> xgboost: mt_rules_select), then the
 * generic hf (json), keras and keyvalue.  A
 * rule's stream `any` (the default) covers stdout, stderr and watched files;
 * file:GLOB only the files whose path (or a tail of it after a /) matches.
 * Owned by mt_parse; internal to parsers/ except the preset names,
 * which config/ uses to validate. */
#ifndef MT_RULES_H
#define MT_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "mt_fields.h"

struct mt_config;
struct mt_metric_spec;

/* Is `name` a preset?  The list, comma-separated, for messages. */
int mt_preset_known(const char *name);
const char *mt_preset_list(void);

/* At most this many compiled rules (a preset counts one per pattern);
 * MT_RULES_RESERVED of them are kept for the presets added when no console
 * rule is configured.  How many one preset takes: */
#define MT_RULES_MAX 256
#define MT_RULES_RESERVED 64
int mt_preset_rule_count(const char *name);

/* The single-dash options of `program`'s trainer preset that take no value
 * (liblinear-train: "qC"), "" when it has none; for its config. */
const char *mt_preset_flags_of(const char *program);

struct mt_rules;

/* Compiles cfg's rules (or the presets for `program` when there are none).
 * NULL with err set when a pattern does not compile. */
struct mt_rules *mt_rules_create(const struct mt_config *cfg, const char *program, char *err,
                                 size_t errsz);
void mt_rules_destroy(struct mt_rules *rs);

/* Which rules see a source: a stream (MT_PARSE_STDOUT...) and, for files,
 * the path (matched against file:GLOB streams); `program` picks the trainer
 * presets, and its command line (argv NULL: not known) tells svm-train and
 * liblinear-train whether the run is a cross-validation and how its folds
 * are told apart.  The selection is computed once per source; the set is a
 * bit mask of rule indexes.
 *
 * Cross-validation folds: the trainers print no fold number, so a preset's
 * rules mark where a training begins and where a fold's model is complete,
 * and each source counts its folds from 1.  The line that starts one
 * carries the `fold` axis (after its own axes, so liblinear's `iter` stays
 * the step of its line); the rows after it carry it as the axis in force. */
struct mt_rules_source {
    uint64_t mask[MT_RULES_MAX / 64];
    struct mt_csv *csv; /* per-source csv header, when a csv rule applies */
    uint32_t fold;      /* the fold under way (0: none yet) */
    uint8_t fold_open;  /* a training of it has begun and its model is not complete */
    uint8_t fold_mode;  /* enum mt_fold_mode (mt_presets.h) */
};
void mt_rules_select(struct mt_rules *rs, int stream, const char *path, const char *program,
                     int argc, char *const *argv, struct mt_rules_source *src);
void mt_rules_source_free(struct mt_rules_source *src);

/* Extracts the fields of one line. */
void mt_rules_extract(struct mt_rules *rs, struct mt_rules_source *src, const char *line,
                      size_t len, struct mt_fields *out);

/* What was chosen, e.g. "xgboost,keyvalue", for the run's events. */
const char *mt_rules_describe(const struct mt_rules *rs);

/* Metric settings the presets imply (keras: val_* against epoch). */
const struct mt_metric_spec *mt_rules_metric_defaults(const struct mt_rules *rs, size_t *n);

/* Counters: matches stopped by the match or depth limit. */
uint64_t mt_rules_limit_hits(const struct mt_rules *rs);

#endif
