/* mt_parse: from captured bytes to console lines, history rows, config and a
 * summary.  One mt_parse per run; the agent feeds it bytes as they arrive and
 * receives results through a sink.  Nothing here does I/O.
 *
 * Pipeline: bytes --(line assembly per pid+stream)--> lines
 *           lines --(extractors: presets or rules)--> fields
 *           fields --(step logic)--> rows, summary */
#ifndef MT_PARSE_H
#define MT_PARSE_H

#include <stddef.h>
#include <stdint.h>

struct mt_config;

enum { MT_PARSE_STDOUT = 1, MT_PARSE_STDERR = 2, MT_PARSE_FILE = 3 };

struct mt_parse_sink {
    void *ctx;
    /* A finished console line as a person would have seen it, without its
     * newline; `newline` tells whether one ended it (the last line of a
     * process may have none).  What to append to output.log. */
    void (*console)(void *ctx, uint32_t pid, int stream, const char *line, size_t len,
                    int newline);
    /* One history row: a complete JSON object, no newline. */
    void (*row)(void *ctx, const char *json, size_t len);
    /* A config value captured from the output (JSON-encoded value). */
    void (*config)(void *ctx, const char *key, const char *json_value);
    /* A counter or notice for events.jsonl: a complete JSON object. */
    void (*event)(void *ctx, const char *json, size_t len);
    /* A tag captured from the output (a rule's `tags:` group); may be NULL. */
    void (*tag)(void *ctx, const char *tag);
    /* The program whose preset parses the lines of process `pid` (asked once,
     * at its first bytes): the trainer behind them, not a shell or relay in
     * between.  May be NULL, or return NULL: opts.program then. */
    const char *(*program_of)(void *ctx, uint32_t pid);
    /* That program's command line, asked at the same time (svm-train's and
     * liblinear-train's presets read -v and -s from it).  May be NULL, or
     * return NULL: not known. */
    char *const *(*argv_of)(void *ctx, uint32_t pid, int *argc);
    /* A source (a process's stream, or a file with the process that wrote it)
     * gave its first metric value.  May be NULL. */
    void (*metrics_from)(void *ctx, uint32_t pid, int stream, const char *path);
};

struct mt_parse_opts {
    const struct mt_config *cfg; /* may be NULL: defaults */
    const char *program;         /* picks presets where sink.program_of does not */
    double start_unix;           /* the run's start, for _runtime */
    uint64_t first_step;         /* _step of the first row (resume continues) */
    double runtime_offset;       /* added to _runtime (resume continues) */
    /* The program's command line (argv[0] is the program); its options
     * become the run's config.  May be NULL. */
    char *const *argv;
    int argc;
    /* Rows take the time a rule's `timestamp` group captured (import); the
     * first such time becomes the start. */
    int log_time;
};

typedef struct mt_parse mt_parse;

mt_parse *mt_parse_create(const struct mt_parse_opts *opts, const struct mt_parse_sink *sink,
                          char *err, size_t errsz);
void mt_parse_destroy(mt_parse *p);

/* Bytes written by process `pid` to `stream` at `ts_unix`. */
void mt_parse_bytes(mt_parse *p, uint32_t pid, int stream, double ts_unix, const char *data,
                    size_t len);

/* Ends the partial line of every stream of `pid` (the process is gone). */
void mt_parse_close_pid(mt_parse *p, uint32_t pid, double ts_unix);

/* Bytes appended to a watched file (the tailer): rules whose stream is
 * file:GLOB matching `path` see its lines (csv headers are per file). */
void mt_parse_file_bytes(mt_parse *p, const char *path, double ts_unix, const char *data,
                         size_t len);
/* Process `pid` writes the file at `path` (its stdout was redirected there):
 * the file's lines are parsed with that process's preset (sink.program_of). */
void mt_parse_file_writer(mt_parse *p, const char *path, uint32_t pid);
/* Ends a file's partial line (file closed, truncated or rotated). */
void mt_parse_close_file(mt_parse *p, const char *path, double ts_unix);

/* Bytes of a log read back (`metrictap parse`, `import`): the lines are
 * offered to stdout rules and to file:GLOB rules matching `path`. */
void mt_parse_log_bytes(mt_parse *p, const char *path, double ts_unix, const char *data,
                        size_t len);

/* Emits the row being assembled, if any (end of run, or the output is idle).
 * The row carries the time of its last value; ts_unix is not used. */
void mt_parse_flush(mt_parse *p, double ts_unix);

/* The summary as a JSON object; caller frees. `restore` seeds it (resume). */
char *mt_parse_summary_json(mt_parse *p);
int mt_parse_restore_summary(mt_parse *p, const char *json);

/* The command line whose options are the run's config (the trainer's, once
 * the agent knows which process it is); replaces the one given at creation. */
void mt_parse_set_argv(mt_parse *p, int argc, char *const *argv);

/* The run's config as a JSON object: the command line's options, then
 * values rules captured (which win); caller frees.  For run.json "config"
 * and the index's config_json. */
char *mt_parse_config_json(mt_parse *p);

/* Per-metric settings as a JSON object, for run.json "metrics":
 * {"val_acc": {"step_metric": "epoch", "summary": ["max","last"], "goal":
 * "maximize", "unit": "%", "type": "number", "summary_only": true}};
 * summary_only marks a value printed once.  step_metric is the config's
 * (metrics:), else the axis printed on the metric's first line (a rule's
 * `step` group before its other axes), else the axis then in force; with
 * none the metric is plotted against _step, the row counter.  Caller frees. */
char *mt_parse_metrics_json(mt_parse *p);

/* Changes whenever mt_parse_metrics_json would say more (a new metric). */
uint64_t mt_parse_metrics_gen(const mt_parse *p);

/* The step axes seen, in order, as a JSON array (["epoch","batch"]), for
 * run.json "axes": keys of history rows that are x axes (a metric's
 * step_metric names one), not metrics of their own.  Caller frees. */
char *mt_parse_axes_json(mt_parse *p);

/* Tags captured from the output, as a JSON array; caller frees. */
char *mt_parse_tags_json(mt_parse *p);

/* The rules in force, e.g. "xgboost,hf,keras,keyvalue". */
const char *mt_parse_rules(const mt_parse *p);

/* The command line's options as a JSON object (see parsers/argv.c); caller
 * frees. */
char *mt_argv_config_json(int argc, char *const *argv);

/* The console lines begun and not yet ended (bytes seen without their
 * newline), so that the agent's journal checkpoint can carry them: fn once
 * per stream, `cr` when a '\r' was the last byte.  Fed back with
 * mt_parse_bytes (and "\r" when cr), they leave the parser as it was. */
typedef void (*mt_parse_partial_fn)(void *ctx, uint32_t pid, int stream, const char *data,
                                    size_t len, int cr);
void mt_parse_each_partial(const mt_parse *p, mt_parse_partial_fn fn, void *ctx);

/* Counters for the run's record. */
struct mt_parse_stats {
    uint64_t lines, rows, values, lines_truncated, keys_dropped;
    uint64_t next_step;
    uint64_t limit_hits;      /* matches stopped by the PCRE2 match limit */
    uint64_t streams_dropped; /* more processes/files than line buffers */
};
void mt_parse_stats(const mt_parse *p, struct mt_parse_stats *out);

#endif
