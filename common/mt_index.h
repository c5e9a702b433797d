/* mt_index: the runs table, $METRICTAP_DIR/index.sqlite.  Kept in step with the
 * run directories (which stay the source of truth); shared by the agent, which
 * writes a run's row at start, periodically and at the end, and the CLI, which
 * reads it.  WAL mode and a busy timeout let many runs share one store.
 *
 * Tables (user_version 3; an older index is dropped and rebuilt from the run
 * directories on open):
 *   runs(rid, id UNIQUE, project, name, grp, ..., tags, config, summary, times)
 *   tags(tag, rid)                  one row per tag, for --tag
 *   kv(rid, src, key, num, txt)     flattened summary (src 0) and config (src 1),
 *                                   typed as mt_value_of_json says, indexed by
 *                                   (src, key, num) for filters
 *   dirs(path, mtime_ns)            runs/<project> mtimes last seen whole, so
 *                                   mt_index_sync knows when to look again */
#ifndef MT_INDEX_H
#define MT_INDEX_H

#include <stddef.h>

#include "mt_filter.h"

struct mt_index;

/* One run's row.  Strings may be NULL; JSON fields are JSON text. */
struct mt_index_run {
    const char *id, *project, *name, *group, *job_type, *state, *dir;
    const char *tags;          /* comma-separated */
    const char *config_json;   /* {"lr":0.1,...} */
    const char *summary_json;  /* {"loss":0.2,...} */
    double start_time, end_time, runtime; /* unix seconds; end 0 while running */
    int exit_code;             /* -1: none */
    int signal;                /* 0: none */
    /* What the run lost (run.json's metadata.capture_counts): writes
     * dropped plus lines a failed store write took, and lines cut at
     * capture.line_max.  For the marks of `ls` and `show`. */
    double dropped, cut;
};

/* Opens (creating if needed) the index of the store at `store_dir`.  The
 * store's directory is checked first (common/mt_safefs.h) and index.sqlite
 * and its -wal/-shm/-journal must be plain files of ours, never links.  A
 * damaged index.sqlite ("not a database", "malformed") is moved aside as
 * index.sqlite.damaged-<time>-<pid> and rebuilt from the run directories;
 * mt_index_notice then says so.  NULL with err set and errno ENOENT when
 * there is no store yet, EPERM/ELOOP when it is refused, EIO otherwise.
 * Statements wait up to busy_ms (mt_index_open: 10 s) for other writers. */
struct mt_index *mt_index_open(const char *store_dir, char *err, size_t errsz);
struct mt_index *mt_index_open_opts(const char *store_dir, int busy_ms, char *err, size_t errsz);
void mt_index_close(struct mt_index *ix);

/* One line about a repair the open did (empty: none), for the user. */
const char *mt_index_notice(const struct mt_index *ix);
/* Did a statement find the database damaged?  mt_index_recover then moves it
 * aside and rebuilds it (0), as mt_index_open does. */
int mt_index_damaged(const struct mt_index *ix);
int mt_index_recover(struct mt_index *ix, char *err, size_t errsz);

/* Inserts or replaces the row of run->id, with its tags and typed values, in
 * one transaction.  0, or -1 (the message: mt_index_error). */
int mt_index_put(struct mt_index *ix, const struct mt_index_run *run);
/* Removes the row of `id`; 0 also when there was none. */
int mt_index_delete(struct mt_index *ix, const char *id);
const char *mt_index_error(struct mt_index *ix);

/* Row strings given to callbacks live for the call only; run->dir is always
 * <store>/runs/<project>/<id>, whatever the row says. */
typedef int (*mt_index_row_fn)(void *ctx, const struct mt_index_run *run);

/* Finds a run by id or unique id prefix; fn is called once. Returns 0 when
 * found, 1 when not found, 2 when ambiguous, -1 on error. */
int mt_index_find(struct mt_index *ix, const char *id_prefix, mt_index_row_fn fn, void *ctx);

/* One key of the order: numbers, then text, then missing values, each group
 * in the key's direction. */
struct mt_sort_key {
    struct mt_col col;
    int desc;
};

/* The runs table query: every given condition must hold. */
struct mt_index_query {
    const char *project;            /* NULL: all */
    const char *const *tags;        /* the run carries every one */
    size_t ntags;
    const char *group;
    const char *state;              /* one state or a comma-separated list */
    const struct mt_filter *filter; /* NULL: none */
    const struct mt_sort_key *sort; /* nsort keys, the first deciding first;
                                       ties (and nsort 0): newest first */
    size_t nsort;
    const struct mt_col *cols;      /* extra values fetched per row */
    size_t ncols;
    size_t limit;                   /* 0: all */
};
/* vals[i] is the run's value of q->cols[i] (text lives for the call). */
typedef int (*mt_index_query_fn)(void *ctx, const struct mt_index_run *run,
                                 const struct mt_value *vals);
/* Calls fn per matching row in order; a non-zero return stops.  0 or -1. */
int mt_index_query(struct mt_index *ix, const struct mt_index_query *q, mt_index_query_fn fn,
                   void *ctx);

/* Names that exist, for saying what a request that matched nothing meant:
 * the distinct summary (src 0) or config (src 1) keys of the runs of
 * `project` (NULL: all), or the projects.  fn's string lives for the call.
 * 0 or -1. */
typedef void (*mt_index_name_fn)(void *ctx, const char *name);
int mt_index_keys(struct mt_index *ix, const char *project, int src, mt_index_name_fn fn,
                  void *ctx);
int mt_index_projects(struct mt_index *ix, mt_index_name_fn fn, void *ctx);
/* Does some run of `project` (NULL: any) have summary (src 0) or config
 * (src 1) key `key`?  1, 0, or -1.  An index lookup, cheap at any size. */
int mt_index_has_key(struct mt_index *ix, const char *project, int src, const char *key);

/* Runs whose id starts with `id_prefix` (by = MT_INDEX_BY_ID) or whose name
 * is `name` (MT_INDEX_BY_NAME), or the newest (MT_INDEX_BY_NEWEST, arg
 * ignored), in `project` (NULL: all), newest first, at most `max`; fn per
 * run.  Returns how many matched (up to max), or -1. */
enum mt_index_by { MT_INDEX_BY_ID, MT_INDEX_BY_NAME, MT_INDEX_BY_NEWEST };
int mt_index_lookup(struct mt_index *ix, const char *project, enum mt_index_by by,
                    const char *arg, size_t max, mt_index_row_fn fn, void *ctx);

/* ---- keeping the index in step with the run directories ---- */

struct mt_index_sync_stats {
    size_t projects_checked; /* runs/<project> dirs whose mtime was compared */
    size_t projects_scanned; /* ... whose entries were listed because it changed */
    size_t added, removed;   /* rows added from run dirs, rows of vanished dirs */
    size_t unreadable;       /* run dirs without a readable run.json (yet) */
    size_t refreshed;        /* "running" rows whose run.json says the run ended */
};

/* Self-repair: for `project` (NULL: every project), compares runs/<project>'s
 * mtime with the one last seen whole; when it changed, lists the run dirs,
 * indexes the ones the index lacks (from their files) and drops rows whose
 * dir vanished.  Rows the agent wrote are not overwritten, except a row still
 * "running" whose run.json says the run ended (its last put was lost). */
int mt_index_sync(struct mt_index *ix, const char *project, struct mt_index_sync_stats *st);

/* Rebuilds every row from the run directories in one transaction. */
int mt_index_reindex(struct mt_index *ix, struct mt_index_sync_stats *st);

/* Called during sync and reindex for each run directory left out because its
 * run.json is missing or damaged: its path and why, in words. */
typedef void (*mt_index_skipped_fn)(void *ctx, const char *dir, const char *why);
void mt_index_on_skipped(struct mt_index *ix, mt_index_skipped_fn fn, void *ctx);

/* A run read from its directory: run.json and summary.json. */
struct mt_index_loaded {
    struct mt_index_run run;
    void *json;                 /* the parsed run.json (a cJSON) */
    void *summary_obj;          /* the parsed summary.json, or NULL */
    char *tags, *config, *summary, *dir, *id, *project;
    char why[200];              /* on failure: what is wrong with the directory */
};
/* Loads <store>/runs/<project>/<id>.  0, or -1 when run.json is missing or
 * unreadable.  Free with mt_index_loaded_free. */
int mt_index_load_dir(const char *store_dir, const char *project, const char *id,
                      struct mt_index_loaded *out);
void mt_index_loaded_free(struct mt_index_loaded *l);

/* <run_dir>/run.json parsed (a cJSON object, caller deletes), or NULL with
 * what is wrong with it in words ("its run.json is not valid JSON (at byte
 * 57 of 120)", "it has no run.json"). */
void *mt_index_read_run_json(const char *run_dir, char *why, size_t whysz);

/* Reads a whole file (NUL-terminated; caller frees), at most `max` bytes; NULL
 * when it cannot be read. */
char *mt_index_read_file(const char *path, size_t max, size_t *len);

#endif
