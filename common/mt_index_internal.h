/* mt_index's handle, shared by its files only: mt_index.c (tables, rows,
 * queries, self-repair), mt_index_health.c (the store's checks, and what
 * is done with a damaged index.sqlite) and mt_index_lookup.c (by name). */
#ifndef MT_INDEX_INTERNAL_H
#define MT_INDEX_INTERNAL_H

#include <sqlite3.h>
#include <sys/types.h>

#include "mt_index.h"

#define MT_INDEX__NSTMT 7

struct mt_index {
    sqlite3 *db;
    char *root;       /* the store, absolute */
    int root_fd;      /* the store's checked directory (mt_safefs.h) */
    int busy_ms;      /* how long a statement waits on another process's lock */
    sqlite3_stmt *st[MT_INDEX__NSTMT];
    char err[512];
    /* health */
    dev_t db_dev;     /* index.sqlite as it was found before opening */
    ino_t db_ino;
    int damaged;      /* SQLite said "not a database" or "malformed" */
    char damage[160]; /* ... in its words */
    int lock_fd;      /* .index.lock, held while a damaged index is replaced */
    int moved;        /* this handle moved the damaged file aside */
    char aside[96];   /* ... under this name */
    char notice[768]; /* one line for the user about what was repaired */
    mt_index_skipped_fn on_skipped; /* told of each run directory sync cannot read */
    void *skipped_ctx;
};

/* mt_index_health.c */
int mt_index__open_root(struct mt_index *ix, const char *store_dir, char *err, size_t errsz);
int mt_index__check_files(struct mt_index *ix, char *err, size_t errsz);
void mt_index__note_damage(struct mt_index *ix);
/* Binds s, or NULL, as text. */
void mt_index__bind_text(sqlite3_stmt *st, int i, const char *s);
/* Records what failed with SQLite's message (a damaged file is noted, to be
 * rebuilt); returns -1. */
int mt_index__sql_fail(struct mt_index *ix, const char *what);
int mt_index__move_aside(struct mt_index *ix, char *err, size_t errsz);
int mt_index__rebuilt(struct mt_index *ix);
void mt_index__unlock(struct mt_index *ix);
/* mt_index.c */
void mt_index__close_db(struct mt_index *ix);
/* The runs columns a row is read from, and reading one (mt_index_lookup.c). */
const char *mt_index__columns(void);
void mt_index__row_of(struct mt_index *ix, sqlite3_stmt *st, struct mt_index_run *r, char *dir,
                      size_t dirsz);

#endif
