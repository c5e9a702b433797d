/* mt_index: see mt_index.h. */
#include "mt_index.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mt_buf.h"
#include "mt_index_internal.h"

#define SCHEMA_VERSION 3
#define MAX_KEYS_PER_RUN 2000 /* per summary and per config */

enum { ST_UPSERT, ST_INSERT_NEW, ST_DEL_KV, ST_DEL_TAGS, ST_ADD_TAG, ST_ADD_KV, ST_DELETE, ST_N };

_Static_assert(ST_N == MT_INDEX__NSTMT, "mt_index_internal.h counts the statements");

static const char *const STMT_SQL[ST_N] = {
    [ST_UPSERT] =
        "INSERT INTO runs (id, project, name, grp, job_type, state, dir, tags, config, summary,"
        " start_time, end_time, runtime, exit_code, signal, dropped, cut)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET project=excluded.project, name=excluded.name,"
        " grp=excluded.grp, job_type=excluded.job_type, state=excluded.state, dir=excluded.dir,"
        " tags=excluded.tags, config=excluded.config, summary=excluded.summary,"
        " start_time=excluded.start_time, end_time=excluded.end_time, runtime=excluded.runtime,"
        " exit_code=excluded.exit_code, signal=excluded.signal, dropped=excluded.dropped,"
        " cut=excluded.cut RETURNING rid",
    [ST_INSERT_NEW] =
        "INSERT INTO runs (id, project, name, grp, job_type, state, dir, tags, config, summary,"
        " start_time, end_time, runtime, exit_code, signal, dropped, cut)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO NOTHING RETURNING rid",
    [ST_DEL_KV] = "DELETE FROM kv WHERE rid = ?",
    [ST_DEL_TAGS] = "DELETE FROM tags WHERE rid = ?",
    [ST_ADD_TAG] = "INSERT OR IGNORE INTO tags (tag, rid) VALUES (?, ?)",
    [ST_ADD_KV] = "INSERT OR REPLACE INTO kv (rid, src, key, num, txt) VALUES (?, ?, ?, ?, ?)",
    [ST_DELETE] = "DELETE FROM runs WHERE id = ? RETURNING rid",
};


static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS runs ("
    "  rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, project TEXT, name TEXT, grp TEXT,"
    "  job_type TEXT, state TEXT, dir TEXT, tags TEXT, config TEXT, summary TEXT,"
    "  start_time REAL, end_time REAL, runtime REAL, exit_code INTEGER, signal INTEGER,"
    "  dropped INTEGER, cut INTEGER);"
    "CREATE INDEX IF NOT EXISTS runs_project_start ON runs(project, start_time);"
    "CREATE INDEX IF NOT EXISTS runs_state ON runs(state);"
    "CREATE TABLE IF NOT EXISTS tags (tag TEXT NOT NULL, rid INTEGER NOT NULL,"
    "  PRIMARY KEY (tag, rid)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS tags_rid ON tags(rid);"
    "CREATE TABLE IF NOT EXISTS kv (rid INTEGER NOT NULL, src INTEGER NOT NULL,"
    "  key TEXT NOT NULL, num REAL, txt TEXT, PRIMARY KEY (rid, src, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS kv_key_num ON kv(src, key, num);"
    "CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, mtime_ns INTEGER) WITHOUT ROWID;";

static int exec(struct mt_index *ix, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(ix->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(ix->err, sizeof ix->err, "%s", msg ? msg : sqlite3_errmsg(ix->db));
        sqlite3_free(msg);
        mt_index__note_damage(ix);
        return -1;
    }
    return 0;
}

/* Creates the tables, or replaces an older layout (its rows come back from
 * the run directories at the next mt_index_sync). */
static int setup(struct mt_index *ix)
{
    /* mmap: readers of a 100k-run index touch pages all over it; reading
     * them through the page cache's map beats a pread per page. */
    if (exec(ix, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                 " PRAGMA mmap_size=1073741824; PRAGMA cache_size=-65536;") != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(ix->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version == SCHEMA_VERSION)
        return 0;
    if (exec(ix, "BEGIN IMMEDIATE") != 0)
        return -1;
    /* Read again under the write lock: another process may have done it. */
    version = -1;
    if (sqlite3_prepare_v2(ix->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int rc = 0;
    if (version != SCHEMA_VERSION) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "DROP TABLE IF EXISTS runs; DROP TABLE IF EXISTS tags; DROP TABLE IF EXISTS kv;"
                 " DROP TABLE IF EXISTS dirs; %s PRAGMA user_version=%d;",
                 "", SCHEMA_VERSION);
        rc = exec(ix, sql) || exec(ix, SCHEMA) ? -1 : 0;
    }
    if (exec(ix, rc == 0 ? "COMMIT" : "ROLLBACK") != 0)
        rc = -1;
    return rc;
}

/* The database, its tables and its statements; -1 with err set. */
static int open_db(struct mt_index *ix, char *err, size_t errsz)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/index.sqlite", ix->root);
    if (mt_index__check_files(ix, err, errsz) != 0)
        return -1;
    /* NOFOLLOW: a link planted as index.sqlite is refused (the store's
     * directory is checked, so none can be planted there now). */
    if (sqlite3_open_v2(path, &ix->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
                        NULL) != SQLITE_OK) {
        snprintf(err, errsz, "cannot open %s: %s", path,
                 ix->db ? sqlite3_errmsg(ix->db) : "out of memory");
        mt_index__note_damage(ix);
        return -1;
    }
    fchmodat(ix->root_fd, "index.sqlite", 0600, AT_SYMLINK_NOFOLLOW);
    sqlite3_busy_timeout(ix->db, ix->busy_ms);
    if (setup(ix) != 0) {
        snprintf(err, errsz, "cannot set up %s: %s", path, ix->err);
        return -1;
    }
    for (int i = 0; i < ST_N; i++)
        if (sqlite3_prepare_v3(ix->db, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &ix->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errsz, "cannot prepare the index's statements in %s: %s", path,
                     sqlite3_errmsg(ix->db));
            mt_index__note_damage(ix);
            return -1;
        }
    return 0;
}

void mt_index__close_db(struct mt_index *ix)
{
    for (int i = 0; i < ST_N; i++) {
        sqlite3_finalize(ix->st[i]);
        ix->st[i] = NULL;
    }
    sqlite3_close(ix->db);
    ix->db = NULL;
}

struct mt_index *mt_index_open_opts(const char *store_dir, int busy_ms, char *err, size_t errsz)
{
    struct mt_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    ix->root_fd = ix->lock_fd = -1;
    ix->busy_ms = busy_ms;
    int rc = mt_index__open_root(ix, store_dir, err, errsz);
    if (rc != 0) {
        mt_index_close(ix);
        errno = -rc;
        return NULL;
    }
    if (open_db(ix, err, errsz) != 0) {
        /* Damaged (random bytes, cut short): moved aside, made anew from the
         * run directories, which are the source of truth. */
        if (!ix->damaged || mt_index__move_aside(ix, err, errsz) != 0 || open_db(ix, err, errsz) != 0 ||
            mt_index__rebuilt(ix) != 0) {
            mt_index__unlock(ix);
            mt_index_close(ix);
            errno = EIO;
            return NULL;
        }
        mt_index__unlock(ix);
    }
    return ix;
}

struct mt_index *mt_index_open(const char *store_dir, char *err, size_t errsz)
{
    return mt_index_open_opts(store_dir, 10000, err, errsz);
}

void mt_index_on_skipped(struct mt_index *ix, mt_index_skipped_fn fn, void *ctx)
{
    ix->on_skipped = fn;
    ix->skipped_ctx = ctx;
}

int mt_index_recover(struct mt_index *ix, char *err, size_t errsz)
{
    int rc = mt_index__move_aside(ix, err, errsz) == 0 && open_db(ix, err, errsz) == 0 &&
                     mt_index__rebuilt(ix) == 0
                 ? 0
                 : -1;
    mt_index__unlock(ix);
    return rc;
}

void mt_index_close(struct mt_index *ix)
{
    if (!ix)
        return;
    mt_index__close_db(ix);
    mt_index__unlock(ix);
    if (ix->root_fd >= 0)
        close(ix->root_fd);
    free(ix->root);
    free(ix);
}

const char *mt_index_error(struct mt_index *ix)
{
    return ix->err;
}

void mt_index__bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

int mt_index__sql_fail(struct mt_index *ix, const char *what)
{
    snprintf(ix->err, sizeof ix->err, "%s: %s", what, sqlite3_errmsg(ix->db));
    mt_index__note_damage(ix);
    return -1;
}

/* Runs a reset, bound statement to completion. */
static int step_done(struct mt_index *ix, sqlite3_stmt *st, const char *what)
{
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return s == SQLITE_DONE || s == SQLITE_ROW ? 0 : mt_index__sql_fail(ix, what);
}

struct kv_ctx {
    struct mt_index *ix;
    sqlite3_int64 rid;
    int src;
    int failed;
};

static void add_kv(void *vctx, const char *key, const struct mt_value *v)
{
    struct kv_ctx *c = vctx;
    sqlite3_stmt *st = c->ix->st[ST_ADD_KV];
    sqlite3_bind_int64(st, 1, c->rid);
    sqlite3_bind_int(st, 2, c->src);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    if (v->type == MT_V_NUM) {
        sqlite3_bind_double(st, 4, v->num);
        sqlite3_bind_null(st, 5);
    } else {
        sqlite3_bind_null(st, 4);
        sqlite3_bind_text(st, 5, v->text, -1, SQLITE_STATIC);
    }
    if (step_done(c->ix, st, "cannot add a value") != 0)
        c->failed = 1;
}

/* Adds the flattened values of `obj`, or of the JSON text when obj is NULL. */
static int add_values(struct mt_index *ix, sqlite3_int64 rid, int src, const char *json,
                      const cJSON *obj)
{
    cJSON *parsed = NULL;
    if (!obj && json && *json)
        obj = parsed = cJSON_Parse(json);
    struct kv_ctx c = { ix, rid, src, 0 };
    if (cJSON_IsObject(obj))
        mt_flatten_json(obj, MAX_KEYS_PER_RUN, add_kv, &c);
    cJSON_Delete(parsed);
    return c.failed ? -1 : 0;
}

/* Steps a statement with `RETURNING rowid`: *rid is the row it touched, 0 for
 * none.  Leaves the statement reset and unbound; -1 on an error. */
static int step_returning_id(sqlite3_stmt *st, sqlite3_int64 *rid)
{
    int s = sqlite3_step(st);
    *rid = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (s == SQLITE_ROW)
        s = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return s == SQLITE_DONE ? 0 : -1;
}

/* The row, its tags and values; inside a transaction.  With only_new an
 * existing row is left alone. */
static int put_locked(struct mt_index *ix, const struct mt_index_run *r, int only_new,
                      const cJSON *config, const cJSON *summary)
{
    sqlite3_stmt *st = ix->st[only_new ? ST_INSERT_NEW : ST_UPSERT];
    mt_index__bind_text(st, 1, r->id);
    mt_index__bind_text(st, 2, r->project);
    mt_index__bind_text(st, 3, r->name);
    mt_index__bind_text(st, 4, r->group);
    mt_index__bind_text(st, 5, r->job_type);
    mt_index__bind_text(st, 6, r->state);
    mt_index__bind_text(st, 7, r->dir);
    mt_index__bind_text(st, 8, r->tags);
    mt_index__bind_text(st, 9, r->config_json);
    mt_index__bind_text(st, 10, r->summary_json);
    sqlite3_bind_double(st, 11, r->start_time);
    sqlite3_bind_double(st, 12, r->end_time);
    sqlite3_bind_double(st, 13, r->runtime);
    if (r->exit_code >= 0)
        sqlite3_bind_int(st, 14, r->exit_code);
    else
        sqlite3_bind_null(st, 14);
    sqlite3_bind_int(st, 15, r->signal);
    sqlite3_bind_double(st, 16, r->dropped);
    sqlite3_bind_double(st, 17, r->cut);
    sqlite3_int64 rid;
    if (step_returning_id(st, &rid) != 0)
        return mt_index__sql_fail(ix, "cannot write the run's row");
    if (!rid) /* only_new and it was there */
        return 0;
    /* A row only_new inserted has nothing to clear (and in a reindex the
     * index that would find it is not there yet). */
    for (int i = ST_DEL_KV; i <= ST_DEL_TAGS && !only_new; i++) {
        sqlite3_bind_int64(ix->st[i], 1, rid);
        if (step_done(ix, ix->st[i], "cannot clear the run's values") != 0)
            return -1;
    }
    const char *tag;
    size_t n;
    for (const char *p = r->tags; mt_list_next(&p, &tag, &n);) {
        sqlite3_bind_text(ix->st[ST_ADD_TAG], 1, tag, (int)n, SQLITE_STATIC);
        sqlite3_bind_int64(ix->st[ST_ADD_TAG], 2, rid);
        if (step_done(ix, ix->st[ST_ADD_TAG], "cannot add a tag") != 0)
            return -1;
    }
    if (add_values(ix, rid, 0, r->summary_json, summary) != 0 ||
        add_values(ix, rid, 1, r->config_json, config) != 0)
        return -1;
    return 1;
}

int mt_index_put(struct mt_index *ix, const struct mt_index_run *r)
{
    if (exec(ix, "BEGIN IMMEDIATE") != 0)
        return -1;
    int rc = put_locked(ix, r, 0, NULL, NULL) < 0 ? -1 : 0;
    if (rc == 0 && exec(ix, "COMMIT") != 0)
        rc = -1;
    if (rc != 0)
        exec(ix, "ROLLBACK");
    return rc;
}

static int delete_locked(struct mt_index *ix, const char *id)
{
    sqlite3_stmt *st = ix->st[ST_DELETE];
    mt_index__bind_text(st, 1, id);
    sqlite3_int64 rid;
    if (step_returning_id(st, &rid) != 0)
        return mt_index__sql_fail(ix, "cannot delete the run's row");
    if (!rid)
        return 0;
    for (int i = ST_DEL_KV; i <= ST_DEL_TAGS; i++) {
        sqlite3_bind_int64(ix->st[i], 1, rid);
        if (step_done(ix, ix->st[i], "cannot delete the run's values") != 0)
            return -1;
    }
    return 1;
}

int mt_index_delete(struct mt_index *ix, const char *id)
{
    if (exec(ix, "BEGIN IMMEDIATE") != 0)
        return -1;
    int rc = delete_locked(ix, id) < 0 ? -1 : 0;
    if (rc == 0 && exec(ix, "COMMIT") != 0)
        rc = -1;
    if (rc != 0)
        exec(ix, "ROLLBACK");
    return rc;
}

/* ---- reading ---- */

static const char *COLUMNS =
    "r.id, r.project, r.name, r.grp, r.job_type, r.state, r.dir, r.tags, r.config, r.summary,"
    " r.start_time, r.end_time, r.runtime, r.exit_code, r.signal, r.dropped, r.cut";
#define NCOLUMNS 17

static void row_of(struct mt_index *ix, sqlite3_stmt *st, struct mt_index_run *r, char *dir,
                   size_t dirsz)
{
    memset(r, 0, sizeof *r);
    r->id = (const char *)sqlite3_column_text(st, 0);
    r->project = (const char *)sqlite3_column_text(st, 1);
    r->name = (const char *)sqlite3_column_text(st, 2);
    r->group = (const char *)sqlite3_column_text(st, 3);
    r->job_type = (const char *)sqlite3_column_text(st, 4);
    r->state = (const char *)sqlite3_column_text(st, 5);
    r->tags = (const char *)sqlite3_column_text(st, 7);
    r->config_json = (const char *)sqlite3_column_text(st, 8);
    r->summary_json = (const char *)sqlite3_column_text(st, 9);
    r->start_time = sqlite3_column_double(st, 10);
    r->end_time = sqlite3_column_double(st, 11);
    r->runtime = sqlite3_column_double(st, 12);
    r->exit_code = sqlite3_column_type(st, 13) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 13);
    r->signal = sqlite3_column_int(st, 14);
    r->dropped = sqlite3_column_double(st, 15);
    r->cut = sqlite3_column_double(st, 16);
    snprintf(dir, dirsz, "%s/runs/%s/%s", ix->root, r->project ? r->project : "", r->id);
    r->dir = dir;
}

const char *mt_index__columns(void) { return COLUMNS; }

void mt_index__row_of(struct mt_index *ix, sqlite3_stmt *st, struct mt_index_run *r, char *dir,
                      size_t dirsz)
{
    row_of(ix, st, r, dir, dirsz);
}

int mt_index_find(struct mt_index *ix, const char *prefix, mt_index_row_fn fn, void *ctx)
{
    char sql[512], dir[PATH_MAX];
    sqlite3_stmt *st = NULL;
    int rc = -1;
    snprintf(sql, sizeof sql,
             "SELECT %s FROM runs r WHERE id = ?1 OR (id >= ?1 AND id < ?1 || char(127))"
             " ORDER BY id = ?1 DESC LIMIT 2",
             COLUMNS);
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK) {
        mt_index__sql_fail(ix, "cannot look the run up");
        goto out;
    }
    mt_index__bind_text(st, 1, prefix);
    int n = 0, exact = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == 0 && strcmp((const char *)sqlite3_column_text(st, 0), prefix) == 0) {
            exact = 1;
            break;
        }
        n++;
    }
    if (!exact && n == 0)
        rc = 1;
    else if (!exact && n > 1)
        rc = 2;
    else {
        /* Re-run for the one row so its strings are alive during fn. */
        sqlite3_reset(st);
        if (sqlite3_step(st) == SQLITE_ROW) {
            struct mt_index_run r;
            row_of(ix, st, &r, dir, sizeof dir);
            fn(ctx, &r);
        }
        rc = 0;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

static void bind_params(sqlite3_stmt *st, const struct mt_sql_params *p)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].is_text)
            sqlite3_bind_text(st, (int)i + 1, p->v[i].text, -1, SQLITE_STATIC);
        else
            sqlite3_bind_double(st, (int)i + 1, p->v[i].num);
    }
}

/* Numbers, then text, then missing values; ties newest first.  `p`
 * prefixes the inner query's result columns. */
static void order_by(struct mt_buf *sql, const struct mt_index_query *q, const char *p)
{
    mt_buf_adds(sql, " ORDER BY ");
    for (size_t i = 0; i < q->nsort; i++)
        mt_buf_printf(sql, "%ssortv%zu IS NULL, typeof(%ssortv%zu) = 'text', %ssortv%zu %s, ",
                      p, i, p, i, p, i, q->sort[i].desc ? "DESC" : "ASC");
    mt_buf_printf(sql, "%sst DESC", p);
}

int mt_index_query(struct mt_index *ix, const struct mt_index_query *q, mt_index_query_fn fn,
                   void *ctx)
{
    struct mt_buf sql;
    struct mt_sql_params params = { 0 };
    struct mt_value *vals = NULL;
    char *states = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    mt_buf_init(&sql, 1 << 20);
    /* The inner query picks and orders the runs carrying only rid and the
     * sort key (sorting 100,000 rows with their JSON is several times
     * slower); the outer one fetches the rows and --columns of those kept. */
    mt_buf_printf(&sql, "SELECT %s", COLUMNS);
    for (size_t i = 0; i < q->ncols; i++) {
        mt_buf_adds(&sql, ", ");
        mt_col_sql(&q->cols[i], &sql, &params);
    }
    mt_buf_adds(&sql, " FROM (SELECT r.rid AS rid, r.start_time AS st");
    /* A summary/config sort key comes by a join on kv's primary key: half
     * the time of a correlated subquery per run (measured at 30k runs). */
    for (size_t i = 0; i < q->nsort; i++) {
        const struct mt_col *c = &q->sort[i].col;
        if (c->src != MT_COL_BUILTIN)
            mt_buf_printf(&sql, ", coalesce(ks%zu.num, ks%zu.txt) AS sortv%zu", i, i, i);
        else {
            mt_buf_adds(&sql, ", ");
            mt_col_sql(c, &sql, &params);
            mt_buf_printf(&sql, " AS sortv%zu", i);
        }
    }
    mt_buf_adds(&sql, " FROM runs r");
    for (size_t i = 0; i < q->nsort; i++) {
        const struct mt_col *c = &q->sort[i].col;
        if (c->src == MT_COL_BUILTIN)
            continue;
        mt_buf_printf(&sql, " LEFT JOIN kv ks%zu ON ks%zu.rid = r.rid AND ks%zu.src = %d"
                            " AND ks%zu.key = ?",
                      i, i, i, c->src == MT_COL_SUMMARY ? 0 : 1, i);
        mt_sql_params_add_text(&params, c->key);
    }
    mt_buf_adds(&sql, " WHERE 1");
    if (q->project) {
        mt_buf_adds(&sql, " AND r.project = ?");
        mt_sql_params_add_text(&params, q->project);
    }
    for (size_t i = 0; i < q->ntags; i++) {
        mt_buf_adds(&sql, " AND r.rid IN (SELECT rid FROM tags WHERE tag = ?)");
        mt_sql_params_add_text(&params, q->tags[i]);
    }
    if (q->group) {
        mt_buf_adds(&sql, " AND r.grp = ?");
        mt_sql_params_add_text(&params, q->group);
    }
    if (q->state) {
        states = mt_xstrdup(q->state);
        mt_buf_adds(&sql, " AND r.state IN (");
        int first = 1;
        for (char *s = states, *comma; s; s = comma ? comma + 1 : NULL) {
            comma = strchr(s, ',');
            if (comma)
                *comma = '\0';
            mt_buf_adds(&sql, first ? "?" : ", ?");
            mt_sql_params_add_text(&params, s);
            first = 0;
        }
        mt_buf_addc(&sql, ')');
    }
    if (q->filter) {
        mt_buf_adds(&sql, " AND ");
        mt_filter_sql(q->filter, &sql, &params);
    }
    order_by(&sql, q, "");
    mt_buf_adds(&sql, " LIMIT ?");
    mt_sql_params_add_num(&params, q->limit ? (double)q->limit : -1.0);
    mt_buf_adds(&sql, ") s JOIN runs r ON r.rid = s.rid");
    order_by(&sql, q, "s.");
    if (sql.refused) {
        snprintf(ix->err, sizeof ix->err, "the query is too long");
        goto out;
    }
    if (sqlite3_prepare_v2(ix->db, sql.data, -1, &st, NULL) != SQLITE_OK) {
        mt_index__sql_fail(ix, "cannot prepare the query");
        goto out;
    }
    bind_params(st, &params);
    sqlite3_bind_int64(st, (int)params.n, q->limit ? (sqlite3_int64)q->limit : -1);
    vals = mt_xcalloc(q->ncols + 1, sizeof *vals);
    int s;
    char dir[PATH_MAX];
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct mt_index_run r;
        row_of(ix, st, &r, dir, sizeof dir);
        for (size_t i = 0; i < q->ncols; i++) {
            int c = NCOLUMNS + (int)i;
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
            case SQLITE_FLOAT:
                vals[i] = (struct mt_value){ MT_V_NUM, sqlite3_column_double(st, c), NULL };
                break;
            case SQLITE_NULL:
                vals[i] = (struct mt_value){ MT_V_NONE, 0, NULL };
                break;
            default:
                vals[i] = (struct mt_value){ MT_V_TEXT, 0, (const char *)sqlite3_column_text(st, c) };
            }
        }
        if (fn(ctx, &r, vals) != 0)
            break;
    }
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        mt_index__sql_fail(ix, "cannot read the index");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    free(vals);
    free(states);
    mt_sql_params_free(&params);
    mt_buf_free(&sql);
    return rc;
}

/* ---- run directories ---- */

char *mt_index_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct mt_buf b;
    mt_buf_init(&b, max);
    char chunk[16384];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        if (mt_buf_add(&b, chunk, (size_t)n) != 0)
            break;
    close(fd);
    if (n < 0) {
        mt_buf_free(&b);
        return NULL;
    }
    if (!b.data)
        mt_buf_add(&b, "", 0);
    if (len)
        *len = b.len;
    return b.data;
}

void *mt_index_read_run_json(const char *run_dir, char *why, size_t whysz)
{
    char path[PATH_MAX + 16];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/run.json", run_dir);
    char *text = mt_index_read_file(path, 64 << 20, &len);
    if (!text) {
        if (errno == ENOENT)
            snprintf(why, whysz, "it has no run.json");
        else
            snprintf(why, whysz, "its run.json cannot be read: %s", strerror(errno));
        return NULL;
    }
    cJSON *o = cJSON_Parse(text);
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
        snprintf(why, whysz, "its run.json is not valid JSON (at byte %zu of %zu)", off, len);
    } else if (!cJSON_IsObject(o)) {
        snprintf(why, whysz, "its run.json holds no JSON object");
        cJSON_Delete(o);
        o = NULL;
    }
    free(text);
    return o;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static double json_num(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

void mt_index_loaded_free(struct mt_index_loaded *l)
{
    if (!l)
        return;
    cJSON_Delete(l->json);
    cJSON_Delete(l->summary_obj);
    free(l->tags);
    free(l->config);
    free(l->summary);
    free(l->dir);
    free(l->id);
    free(l->project);
    memset(l, 0, sizeof *l);
}

int mt_index_load_dir(const char *store_dir, const char *project, const char *id,
                      struct mt_index_loaded *l)
{
    char path[PATH_MAX + 64];
    int rc = -1;
    memset(l, 0, sizeof *l);
    char why[sizeof l->why] = "";
    snprintf(path, sizeof path, "%s/runs/%s/%s", store_dir, project, id);
    l->json = mt_index_read_run_json(path, why, sizeof why);
    cJSON *o = l->json;
    if (!cJSON_IsObject(o))
        goto out;
    struct mt_index_run *r = &l->run;
    /* Where the directory is says which run it is. */
    l->id = mt_xstrdup(id);
    l->project = mt_xstrdup(project);
    snprintf(path, sizeof path, "%s/runs/%s/%s", store_dir, project, id);
    l->dir = mt_xstrdup(path);
    r->id = l->id;
    r->project = l->project;
    r->dir = l->dir;
    r->name = json_str(o, "name");
    r->group = json_str(o, "group");
    r->job_type = json_str(o, "job_type");
    r->state = json_str(o, "state");
    r->start_time = json_num(o, "start_time", 0);
    r->end_time = json_num(o, "end_time", 0);
    r->runtime = json_num(o, "runtime", 0);
    r->exit_code = (int)json_num(o, "exit_code", -1);
    r->signal = (int)json_num(o, "signal", 0);
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(o, "metadata"), "capture_counts");
    r->dropped = json_num(counts, "dropped_records", 0) + json_num(counts, "lines_lost_write", 0);
    r->cut = json_num(counts, "lines_truncated", 0);
    struct mt_buf tags;
    mt_buf_init(&tags, 1 << 20);
    mt_buf_add(&tags, "", 0);
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(o, "tags"))
        if (cJSON_IsString(t) && t->valuestring[0]) {
            if (tags.len)
                mt_buf_addc(&tags, ',');
            mt_buf_adds(&tags, t->valuestring);
        }
    l->tags = tags.data;
    r->tags = l->tags;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
    l->config = cJSON_IsObject(cfg) ? cJSON_PrintUnformatted(cfg) : mt_xstrdup("{}");
    r->config_json = l->config;
    snprintf(path, sizeof path, "%s/runs/%s/%s/summary.json", store_dir, project, id);
    char *sum = mt_index_read_file(path, 64 << 20, NULL);
    cJSON *so = sum ? cJSON_Parse(sum) : NULL;
    if (cJSON_IsObject(so)) {
        l->summary = sum;
        l->summary_obj = so;
    } else {
        free(sum);
        cJSON_Delete(so);
        l->summary = mt_xstrdup("{}");
    }
    r->summary_json = l->summary;
    rc = 0;
out:
    if (rc != 0) {
        mt_index_loaded_free(l);
        snprintf(l->why, sizeof l->why, "%s", why);
    }
    return rc;
}

/* ---- self-repair ---- */

struct names {
    char **v;
    size_t n, cap;
};

static void names_add(struct names *s, const char *name)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = mt_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = mt_xstrdup(name);
}

static void names_free(struct names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Subdirectories of `path` (no dot-names), sorted. */
static int list_dirs(const char *path, struct names *out)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISDIR(st.st_mode))
                continue;
        } else if (e->d_type != DT_DIR)
            continue;
        names_add(out, e->d_name);
    }
    closedir(d);
    qsort(out->v, out->n, sizeof *out->v, cmp_names);
    return 0;
}

static long long mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long seen_mtime(struct mt_index *ix, const char *project)
{
    sqlite3_stmt *st = NULL;
    long long v = -2;
    if (sqlite3_prepare_v2(ix->db, "SELECT mtime_ns FROM dirs WHERE path = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        mt_index__bind_text(st, 1, project);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int set_seen_mtime(struct mt_index *ix, const char *project, long long v)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    const char *sql = v == -1 ? "DELETE FROM dirs WHERE path = ?1"
                              : "INSERT OR REPLACE INTO dirs (path, mtime_ns) VALUES (?1, ?2)";
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) == SQLITE_OK) {
        mt_index__bind_text(st, 1, project);
        if (v != -1)
            sqlite3_bind_int64(st, 2, v);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : mt_index__sql_fail(ix, "cannot record a dir's mtime");
    }
    sqlite3_finalize(st);
    return rc;
}

static int index_ids(struct mt_index *ix, const char *project, struct names *out)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(ix->db, "SELECT id FROM runs WHERE project = ? ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        return mt_index__sql_fail(ix, "cannot list the index");
    mt_index__bind_text(st, 1, project);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW)
        names_add(out, (const char *)sqlite3_column_text(st, 0));
    rc = s == SQLITE_DONE ? 0 : mt_index__sql_fail(ix, "cannot list the index");
    sqlite3_finalize(st);
    /* SQLite's ORDER BY uses BINARY collation, strcmp's order. */
    return rc;
}

/* Brings one project in step; inside a transaction.  force: even when its
 * mtime is the one last seen. */
static int sync_project(struct mt_index *ix, const char *project, int force,
                        struct mt_index_sync_stats *st)
{
    char path[PATH_MAX + 64];
    struct names in_index = { 0 }, on_disk = { 0 };
    int rc = -1;
    snprintf(path, sizeof path, "%s/runs/%s", ix->root, project);
    st->projects_checked++;
    long long m = mtime_ns(path);
    if (!force && m >= 0 && m == seen_mtime(ix, project))
        return 0;
    st->projects_scanned++;
    /* The index first, then the disk: a row the agent adds meanwhile has its
     * directory already, so it is never taken for a vanished one. */
    if (index_ids(ix, project, &in_index) != 0)
        goto out;
    if (m >= 0 && list_dirs(path, &on_disk) != 0) {
        snprintf(ix->err, sizeof ix->err, "cannot list %s: %s", path, strerror(errno));
        goto out;
    }
    size_t i = 0, j = 0, unreadable = 0;
    while (i < in_index.n || j < on_disk.n) {
        int c = i == in_index.n ? 1 : j == on_disk.n ? -1 : strcmp(in_index.v[i], on_disk.v[j]);
        if (c < 0) {
            if (delete_locked(ix, in_index.v[i]) < 0)
                goto out;
            st->removed++;
            i++;
        } else if (c > 0) {
            struct mt_index_loaded l;
            if (mt_index_load_dir(ix->root, project, on_disk.v[j], &l) == 0) {
                int r = put_locked(ix, &l.run, 1,
                                   cJSON_GetObjectItemCaseSensitive(l.json, "config"),
                                   l.summary_obj);
                mt_index_loaded_free(&l);
                if (r < 0)
                    goto out;
                st->added += r > 0;
            } else {
                unreadable++;
                if (ix->on_skipped) {
                    snprintf(path, sizeof path, "%s/runs/%s/%s", ix->root, project, on_disk.v[j]);
                    ix->on_skipped(ix->skipped_ctx, path, l.why);
                }
            }
            j++;
        } else
            i++, j++;
    }
    st->unreadable += unreadable;
    /* Settled only when nothing was half-written and the mtime is not so
     * recent that a change within the same clock tick could hide behind it. */
    if (m < 0)
        rc = set_seen_mtime(ix, project, -1);
    else if (!unreadable && now_ns() - m > 2000000000LL)
        rc = set_seen_mtime(ix, project, m);
    else
        rc = 0;
out:
    names_free(&in_index);
    names_free(&on_disk);
    return rc;
}

static int projects_known(struct mt_index *ix, struct names *out)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(ix->db, "SELECT path FROM dirs UNION SELECT DISTINCT project FROM runs",
                           -1, &st, NULL) != SQLITE_OK)
        return mt_index__sql_fail(ix, "cannot list the index's projects");
    while (sqlite3_step(st) == SQLITE_ROW)
        if (sqlite3_column_text(st, 0))
            names_add(out, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc;
}

static int sync_all(struct mt_index *ix, const char *project, int force,
                    struct mt_index_sync_stats *st)
{
    char path[PATH_MAX + 16];
    struct names projects = { 0 };
    int rc = -1;
    if (project) {
        names_add(&projects, project);
    } else {
        snprintf(path, sizeof path, "%s/runs", ix->root);
        list_dirs(path, &projects);
        if (projects_known(ix, &projects) != 0)
            goto out;
        qsort(projects.v, projects.n, sizeof *projects.v, cmp_names);
    }
    for (size_t i = 0; i < projects.n; i++) {
        if (i && strcmp(projects.v[i], projects.v[i - 1]) == 0)
            continue;
        if (sync_project(ix, projects.v[i], force, st) != 0)
            goto out;
    }
    rc = 0;
out:
    names_free(&projects);
    return rc;
}

/* Does any project's directory differ from what was last seen whole? */
static int sync_needed(struct mt_index *ix, const char *project)
{
    char path[PATH_MAX + 64];
    struct names projects = { 0 };
    int needed = 0;
    if (project) {
        names_add(&projects, project);
    } else {
        snprintf(path, sizeof path, "%s/runs", ix->root);
        list_dirs(path, &projects);
        if (projects_known(ix, &projects) != 0)
            needed = 1;
    }
    for (size_t i = 0; i < projects.n && !needed; i++) {
        snprintf(path, sizeof path, "%s/runs/%s", ix->root, projects.v[i]);
        long long m = mtime_ns(path);
        needed = m < 0 || m != seen_mtime(ix, projects.v[i]);
    }
    names_free(&projects);
    return needed;
}

/* Rows still "running" whose run.json says the run ended: the agent's last
 * put was lost (a reindex held the lock past its busy timeout, or it was
 * killed between the two writes).  Running runs are few; each costs a read. */
static int refresh_running(struct mt_index *ix, const char *project,
                           struct mt_index_sync_stats *st)
{
    sqlite3_stmt *q = NULL;
    struct names ids = { 0 }, projects = { 0 };
    int rc = 0;
    if (sqlite3_prepare_v2(ix->db, "SELECT id, project FROM runs WHERE state = 'running'"
                                   " AND (?1 IS NULL OR project = ?1)", -1, &q, NULL) != SQLITE_OK)
        return mt_index__sql_fail(ix, "cannot list running runs");
    mt_index__bind_text(q, 1, project);
    while (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 1)) {
        names_add(&ids, (const char *)sqlite3_column_text(q, 0));
        names_add(&projects, (const char *)sqlite3_column_text(q, 1));
    }
    sqlite3_finalize(q);
    for (size_t i = 0; i < ids.n && rc == 0; i++) {
        struct mt_index_loaded l;
        if (mt_index_load_dir(ix->root, projects.v[i], ids.v[i], &l) != 0)
            continue;
        if (l.run.state && strcmp(l.run.state, "running") != 0) {
            if (exec(ix, "BEGIN IMMEDIATE") != 0)
                rc = -1;
            else if (put_locked(ix, &l.run, 0, cJSON_GetObjectItemCaseSensitive(l.json, "config"),
                                l.summary_obj) < 0 || exec(ix, "COMMIT") != 0) {
                exec(ix, "ROLLBACK");
                rc = -1;
            } else
                st->refreshed++;
        }
        mt_index_loaded_free(&l);
    }
    names_free(&ids);
    names_free(&projects);
    return rc;
}

int mt_index_sync(struct mt_index *ix, const char *project, struct mt_index_sync_stats *st)
{
    struct mt_index_sync_stats dummy;
    if (!st)
        st = &dummy;
    memset(st, 0, sizeof *st);
    if (refresh_running(ix, project, st) != 0)
        return -1;
    /* The cheap look first, without the write lock. */
    if (!sync_needed(ix, project))
        return 0;
    if (exec(ix, "BEGIN IMMEDIATE") != 0)
        return -1;
    int rc = sync_all(ix, project, 0, st);
    if (rc == 0 && exec(ix, "COMMIT") != 0)
        rc = -1;
    if (rc != 0)
        exec(ix, "ROLLBACK");
    return rc;
}

int mt_index_reindex(struct mt_index *ix, struct mt_index_sync_stats *st)
{
    struct mt_index_sync_stats dummy;
    if (!st)
        st = &dummy;
    memset(st, 0, sizeof *st);
    if (exec(ix, "BEGIN IMMEDIATE") != 0)
        return -1;
    /* Secondary indexes are built once at the end, sorted, rather than
     * row by row in random order. */
    int rc = exec(ix, "PRAGMA cache_size=-262144;"
                      " DROP INDEX IF EXISTS kv_key_num; DROP INDEX IF EXISTS tags_rid;"
                      " DROP INDEX IF EXISTS runs_project_start; DROP INDEX IF EXISTS runs_state;"
                      " DELETE FROM kv; DELETE FROM tags; DELETE FROM runs; DELETE FROM dirs;");
    if (rc == 0)
        rc = sync_all(ix, NULL, 1, st);
    if (rc == 0)
        rc = exec(ix, SCHEMA);
    if (rc == 0 && exec(ix, "COMMIT") != 0)
        rc = -1;
    if (rc != 0)
        exec(ix, "ROLLBACK");
    else
        exec(ix, "PRAGMA optimize");
    return rc;
}
