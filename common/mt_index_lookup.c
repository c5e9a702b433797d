/* The index's lookups by name (mt_index.h): the keys and projects that
 * exist, whether a key does, and runs by id prefix, name or age, for saying
 * what a request meant and for finding the RUN a command names. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "mt_index_internal.h"


static int each_name(struct mt_index *ix, const char *sql, const char *bind1, int src,
                     mt_index_name_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, s;
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK) {
        mt_index__sql_fail(ix, "cannot list names");
        goto out;
    }
    sqlite3_bind_int(st, 1, src);
    mt_index__bind_text(st, 2, bind1);
    while ((s = sqlite3_step(st)) == SQLITE_ROW)
        if (sqlite3_column_type(st, 0) == SQLITE_TEXT)
            fn(ctx, (const char *)sqlite3_column_text(st, 0));
    if (s != SQLITE_DONE) {
        mt_index__sql_fail(ix, "cannot list names");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

int mt_index_keys(struct mt_index *ix, const char *project, int src, mt_index_name_fn fn,
                  void *ctx)
{
    if (!project)
        return each_name(ix, "SELECT DISTINCT key FROM kv WHERE src = ?1 AND ?2 IS NULL", NULL,
                         src, fn, ctx);
    return each_name(ix, "SELECT DISTINCT key FROM kv JOIN runs r ON r.rid = kv.rid"
                         " WHERE src = ?1 AND r.project = ?2", project, src, fn, ctx);
}

int mt_index_projects(struct mt_index *ix, mt_index_name_fn fn, void *ctx)
{
    return each_name(ix, "SELECT DISTINCT project FROM runs WHERE ?1 = ?1 AND ?2 IS NULL", NULL,
                     0, fn, ctx);
}

int mt_index_has_key(struct mt_index *ix, const char *project, int src, const char *key)
{
    const char *sql = project ? "SELECT 1 FROM kv JOIN runs r ON r.rid = kv.rid"
                                " WHERE kv.src = ?1 AND kv.key = ?2 AND r.project = ?3 LIMIT 1"
                              : "SELECT 1 FROM kv WHERE src = ?1 AND key = ?2 LIMIT 1";
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK) {
        mt_index__sql_fail(ix, "cannot look the key up");
        goto out;
    }
    sqlite3_bind_int(st, 1, src);
    mt_index__bind_text(st, 2, key);
    if (project)
        mt_index__bind_text(st, 3, project);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        rc = 1;
    else if (s == SQLITE_DONE)
        rc = 0;
    else
        mt_index__sql_fail(ix, "cannot look the key up");
out:
    sqlite3_finalize(st);
    return rc;
}

int mt_index_lookup(struct mt_index *ix, const char *project, enum mt_index_by by,
                    const char *arg, size_t max, mt_index_row_fn fn, void *ctx)
{
    static const char *const WHERE[] = {
        [MT_INDEX_BY_ID] = "(id = ?1 OR (id >= ?1 AND id < ?1 || char(127)))",
        [MT_INDEX_BY_NAME] = "name = ?1",
        [MT_INDEX_BY_NEWEST] = "?1 IS NULL",
    };
    char sql[1024], dir[PATH_MAX];
    sqlite3_stmt *st = NULL;
    int rc = -1, n = 0, s;
    snprintf(sql, sizeof sql,
             "SELECT %s FROM runs r WHERE %s AND %s ORDER BY start_time DESC, id LIMIT ?3",
             mt_index__columns(), WHERE[by], project ? "project = ?2" : "?2 IS NULL");
    /* (an OR of the two would keep SQLite from the (project, start_time) index) */
    if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK) {
        mt_index__sql_fail(ix, "cannot look the run up");
        goto out;
    }
    mt_index__bind_text(st, 1, by == MT_INDEX_BY_NEWEST ? NULL : arg);
    mt_index__bind_text(st, 2, project);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct mt_index_run r;
        mt_index__row_of(ix, st, &r, dir, sizeof dir);
        n++;
        if (fn && fn(ctx, &r) != 0)
            break;
    }
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        mt_index__sql_fail(ix, "cannot look the run up");
        goto out;
    }
    rc = n;
out:
    sqlite3_finalize(st);
    return rc;
}

