/* mt_index: the runs table, $METRICTAP_DIR/index.sqlite.  Kept in step with the
 * run directories (which stay the source of truth); shared by the agent, which
 * writes a run's row at start, periodically and at the end, and the CLI, which
 * reads it.  WAL mode and a busy timeout let many runs share one store. */
#ifndef MT_INDEX_H
#define MT_INDEX_H

#include <stddef.h>

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
};

/* Opens (creating if needed) the index of the store at `store_dir`. */
struct mt_index *mt_index_open(const char *store_dir, char *err, size_t errsz);
void mt_index_close(struct mt_index *ix);

/* Inserts or replaces the row of run->id. */
int mt_index_put(struct mt_index *ix, const struct mt_index_run *run);

/* Calls fn for each run matching `project` (NULL: all), newest first, with at
 * most `limit` rows (0: no limit).  Row strings live for the call only. */
typedef int (*mt_index_row_fn)(void *ctx, const struct mt_index_run *run);
int mt_index_list(struct mt_index *ix, const char *project, size_t limit, mt_index_row_fn fn,
                  void *ctx);

/* Finds a run by id or unique id prefix; fn is called once. Returns 0 when
 * found, 1 when not found, 2 when ambiguous, -1 on error. */
int mt_index_find(struct mt_index *ix, const char *id_prefix, mt_index_row_fn fn, void *ctx);

#endif
