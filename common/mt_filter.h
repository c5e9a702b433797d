/* mt_filter: the runs-table query language shared by `metrictap ls`, `report`
 * and the index.
 *
 * A column names a value of a run: a built-in (id, name, project, state, group,
 * job_type, tags, created, end_time, runtime, exit_code, signal) or a key of
 * its summary or config (`summary.val_acc`, `config.optim.lr`; nested objects
 * are flattened with dots; a key with odd characters is quoted with backticks
 * anywhere, config.`batch size`, or with "double"/'single' quotes around a
 * dotted part, summary."P@3"; UTF-8 keys need no quotes: summary.précision).
 *
 * A filter is an expression over columns:
 *     summary.val_acc > 0.9 and (config.lr < 0.01 or not tags = "baseline")
 * with and/or/not, parentheses, = == != <> < <= > >= and ~ (glob match on
 * text), numbers (true/false are 1/0) and "strings" or 'strings'.  A number
 * compares with numbers, a string with text; a run lacking the value fails
 * every comparison (so `not` selects it).  `tags = "x"` means the run carries
 * the tag x.  A span of time (-2h, 30m, 1.5d, 1w) is a number of seconds;
 * compared with created or ended (end_time) it is relative to now (read once
 * per filter), and so is a string "-2h"; a string date ("2026-12-02",
 * "2026-12-02 06:00[:SS]", local time, or with a trailing Z, UTC) compares
 * with them too.  A bare word where a value belongs is an error that suggests
 * quoting it.
 *
 * The parsed expression compiles to SQL over the index's tables (mt_index.c)
 * and evaluates directly on a run's values (the no-index scan); both give the
 * same answer, which the tests check.  The filter owns its nodes and strings. */
#ifndef MT_FILTER_H
#define MT_FILTER_H

#include <stddef.h>

struct cJSON;
struct mt_buf;

enum mt_col_src { MT_COL_BUILTIN, MT_COL_SUMMARY, MT_COL_CONFIG };

enum mt_col_builtin {
    MT_B_ID, MT_B_NAME, MT_B_PROJECT, MT_B_STATE, MT_B_GROUP, MT_B_JOB_TYPE, MT_B_TAGS,
    MT_B_CREATED, MT_B_END_TIME, MT_B_RUNTIME, MT_B_EXIT_CODE, MT_B_SIGNAL, MT_B_COUNT
};

struct mt_col {
    enum mt_col_src src;
    enum mt_col_builtin builtin; /* when src is MT_COL_BUILTIN */
    char *key;                   /* summary/config key (owned), NULL for built-ins */
    char *label;                 /* how it is written: "summary.val_acc" (owned) */
};

/* Name, SQL expression over `r` (the runs table) and whether it is numeric. */
const char *mt_col_builtin_name(enum mt_col_builtin b);
const char *mt_col_builtin_sql(enum mt_col_builtin b);
int mt_col_builtin_numeric(enum mt_col_builtin b);

/* Parses one column name.  0, or -1 with a message in err. */
int mt_col_parse(const char *text, struct mt_col *col, char *err, size_t errsz);
void mt_col_free(struct mt_col *col);

/* A typed value: what the index stores per summary/config key. */
enum mt_value_type { MT_V_NONE, MT_V_NUM, MT_V_TEXT };
struct mt_value {
    enum mt_value_type type;
    double num;       /* MT_V_NUM; may be +-inf */
    const char *text; /* MT_V_TEXT: "NaN" stays text (SQLite has no NaN) */
};

/* The typing rule shared by the index and the scan: numbers and bools are
 * numbers; "Infinity"/"-Infinity" are numbers; other strings, "NaN" included,
 * are text; arrays are their JSON text (the caller frees *owned); objects
 * and null have no value (objects are flattened by the caller). */
struct mt_value mt_value_of_json(const struct cJSON *v, char **owned);

/* Calls fn for every flattened key of a JSON object (nested objects joined
 * with '.'), at most `max_keys` of them; returns how many were skipped by
 * the cap.  `key` lives for the call. */
typedef void (*mt_flatten_fn)(void *ctx, const char *key, const struct mt_value *v);
size_t mt_flatten_json(const struct cJSON *obj, size_t max_keys, mt_flatten_fn fn, void *ctx);

/* ---- filters ---- */
struct mt_filter;

/* Parses `text`.  On error returns NULL with a message in err and the 0-based
 * byte offset where it went wrong in *errpos. */
struct mt_filter *mt_filter_create(const char *text, char *err, size_t errsz, size_t *errpos);
void mt_filter_destroy(struct mt_filter *f);

/* SQL parameters collected while compiling. */
struct mt_sql_param {
    int is_text;
    double num;
    const char *text; /* borrowed from the filter or the caller */
};
struct mt_sql_params {
    struct mt_sql_param *v;
    size_t n, cap;
};
void mt_sql_params_add_num(struct mt_sql_params *p, double num);
void mt_sql_params_add_text(struct mt_sql_params *p, const char *text);
void mt_sql_params_free(struct mt_sql_params *p);

/* Appends a boolean SQL expression over `r` (runs) to sql, with `?`
 * placeholders whose values are appended to params in order. */
void mt_filter_sql(const struct mt_filter *f, struct mt_buf *sql, struct mt_sql_params *params);
/* The SQL of one column's value (NULL when absent); numbers before text. */
void mt_col_sql(const struct mt_col *col, struct mt_buf *sql, struct mt_sql_params *params);

/* For the scan: fetches a run's value of a column; has_tag says (1/0)
 * whether the run carries `tag`, or with glob set a tag matching it. */
struct mt_filter_run {
    void *ctx;
    struct mt_value (*get)(void *ctx, const struct mt_col *col);
    int (*has_tag)(void *ctx, const char *tag, int glob);
};
/* Calls fn for every column the filter names, in order. */
void mt_filter_each_col(const struct mt_filter *f, void (*fn)(void *ctx, const struct mt_col *col),
                        void *ctx);

/* 1 when the run matches, 0 when it does not. */
int mt_filter_eval(const struct mt_filter *f, const struct mt_filter_run *run);

/* Compares two values as the index's SQL does (numbers before text, text by
 * bytes); NONE sorts after everything.  For sorting the scan. */
int mt_value_cmp(const struct mt_value *a, const struct mt_value *b);

#endif
