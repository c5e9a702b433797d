/* mt_index: see mt_index.h. */
#include "mt_index.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct mt_index {
    sqlite3 *db;
};

static const char *SCHEMA =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS runs ("
    "  id TEXT PRIMARY KEY, project TEXT, name TEXT, grp TEXT, job_type TEXT,"
    "  state TEXT, dir TEXT, tags TEXT, config TEXT, summary TEXT,"
    "  start_time REAL, end_time REAL, runtime REAL, exit_code INTEGER, signal INTEGER);"
    "CREATE INDEX IF NOT EXISTS runs_project_start ON runs(project, start_time);";

struct mt_index *mt_index_open(const char *store_dir, char *err, size_t errsz)
{
    char path[4096];
    char *msg = NULL;
    struct mt_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/index.sqlite", store_dir);
    if (sqlite3_open_v2(path, &ix->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errsz, "cannot open %s: %s", path,
                 ix->db ? sqlite3_errmsg(ix->db) : "out of memory");
        goto fail;
    }
    chmod(path, 0600);
    sqlite3_busy_timeout(ix->db, 10000);
    if (sqlite3_exec(ix->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errsz, "cannot set up %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        goto fail;
    }
    return ix;
fail:
    mt_index_close(ix);
    return NULL;
}

void mt_index_close(struct mt_index *ix)
{
    if (!ix)
        return;
    sqlite3_close(ix->db);
    free(ix);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

int mt_index_put(struct mt_index *ix, const struct mt_index_run *r)
{
    static const char *sql =
        "INSERT OR REPLACE INTO runs (id, project, name, grp, job_type, state, dir, tags,"
        " config, summary, start_time, end_time, runtime, exit_code, signal)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->project);
    bind_text(st, 3, r->name);
    bind_text(st, 4, r->group);
    bind_text(st, 5, r->job_type);
    bind_text(st, 6, r->state);
    bind_text(st, 7, r->dir);
    bind_text(st, 8, r->tags);
    bind_text(st, 9, r->config_json);
    bind_text(st, 10, r->summary_json);
    sqlite3_bind_double(st, 11, r->start_time);
    sqlite3_bind_double(st, 12, r->end_time);
    sqlite3_bind_double(st, 13, r->runtime);
    if (r->exit_code >= 0)
        sqlite3_bind_int(st, 14, r->exit_code);
    else
        sqlite3_bind_null(st, 14);
    sqlite3_bind_int(st, 15, r->signal);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
out:
    sqlite3_finalize(st);
    return rc;
}

static const char *COLUMNS =
    "id, project, name, grp, job_type, state, dir, tags, config, summary,"
    " start_time, end_time, runtime, exit_code, signal";

static void row_of(sqlite3_stmt *st, struct mt_index_run *r)
{
    memset(r, 0, sizeof *r);
    r->id = (const char *)sqlite3_column_text(st, 0);
    r->project = (const char *)sqlite3_column_text(st, 1);
    r->name = (const char *)sqlite3_column_text(st, 2);
    r->group = (const char *)sqlite3_column_text(st, 3);
    r->job_type = (const char *)sqlite3_column_text(st, 4);
    r->state = (const char *)sqlite3_column_text(st, 5);
    r->dir = (const char *)sqlite3_column_text(st, 6);
    r->tags = (const char *)sqlite3_column_text(st, 7);
    r->config_json = (const char *)sqlite3_column_text(st, 8);
    r->summary_json = (const char *)sqlite3_column_text(st, 9);
    r->start_time = sqlite3_column_double(st, 10);
    r->end_time = sqlite3_column_double(st, 11);
    r->runtime = sqlite3_column_double(st, 12);
    r->exit_code = sqlite3_column_type(st, 13) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 13);
    r->signal = sqlite3_column_int(st, 14);
}

int mt_index_list(struct mt_index *ix, const char *project, size_t limit, mt_index_row_fn fn,
                  void *ctx)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc = -1;
    snprintf(sql, sizeof sql,
             "SELECT %s FROM runs WHERE (?1 IS NULL OR project = ?1)"
             " ORDER BY start_time DESC LIMIT ?2",
             COLUMNS);
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_text(st, 1, project);
    sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct mt_index_run r;
        row_of(st, &r);
        if (fn(ctx, &r) != 0)
            break;
    }
    rc = (s == SQLITE_ROW || s == SQLITE_DONE) ? 0 : -1;
out:
    sqlite3_finalize(st);
    return rc;
}

int mt_index_find(struct mt_index *ix, const char *prefix, mt_index_row_fn fn, void *ctx)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc = -1;
    snprintf(sql, sizeof sql,
             "SELECT %s FROM runs WHERE id = ?1 OR (id >= ?1 AND id < ?1 || char(127))"
             " ORDER BY id = ?1 DESC LIMIT 2",
             COLUMNS);
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_text(st, 1, prefix);
    struct mt_index_run first;
    int n = 0, exact = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == 0) {
            row_of(st, &first);
            exact = strcmp(first.id, prefix) == 0;
            if (exact)
                break;
        }
        n++;
    }
    if (n == 0 && !exact)
        rc = 1;
    else if (n > 1 && !exact)
        rc = 2;
    else {
        /* Re-run for the one row so its strings are alive during fn. */
        sqlite3_reset(st);
        if (sqlite3_step(st) == SQLITE_ROW) {
            row_of(st, &first);
            fn(ctx, &first);
        }
        rc = 0;
    }
out:
    sqlite3_finalize(st);
    return rc;
}
