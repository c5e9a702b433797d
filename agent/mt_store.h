/* mt_store: one run's directory in the local run store (DESIGN.md "The run
 * store").  Appends are whole lines; summary.json and run.json are replaced
 * atomically (temp, fsync, rename).  Directories 0700, files 0600.
 * A write error (a full disk) is counted and reported once in events.jsonl
 * when the disk lets us; the run goes on with what was written.
 *
 * Trust: the store, runs/, the project and the run directory are opened
 * through checked directory fds (common/mt_safefs.h: ours, not writable by
 * others, no link followed), and every file is opened relative to the run
 * directory's fd with O_NOFOLLOW.  A store someone else owns or can write is
 * refused with a message saying which directory and why. */
#ifndef MT_STORE_H
#define MT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mt_store {
    char *root;     /* $METRICTAP_DIR */
    char *dir;      /* root/runs/<project>/<id> */
    int root_fd, dir_fd; /* the checked directories (valid while root/dir are set) */
    FILE *history, *events, *output, *system;
    uint64_t write_errors;
    int dirty;      /* appended since the last flush */
    /* history, events and output are written in whole lines: a flush that
     * fails (a full disk) is cut back to the last whole line and what it held
     * is counted here, so a later write never lands after half a line. */
    struct mt_store_lines {
        uint64_t good;      /* file size after the last flush that worked */
        uint64_t buffered;  /* bytes written since then (staged or in stdio) */
        uint64_t lines;     /* lines among them */
        char *stage;        /* whole lines not yet handed to stdio */
        size_t staged;      /* bytes in it */
    } lines[3];
    uint64_t lines_lost; /* lines a failed write took (all three files) */
    char *linebuf[3];    /* their stdio buffers, of a size we know */
};

/* Creates (or, resuming, reopens) root/runs/<project>/<id>.  `exists` tells
 * whether the run directory was there already. */
int mt_store_open(struct mt_store *s, const char *root, const char *project, const char *id,
                  int *exists, char *err, size_t errsz);
void mt_store_close(struct mt_store *s);

/* Does root/runs/<project>/<id>/run.json exist? */
int mt_store_run_exists(const char *root, const char *project, const char *id);

/* The one way to open a file in the run directory (new files are created
 * exclusively, 0600; an existing one must be a plain file of ours): an fd,
 * or -errno with the reason in err (may be NULL). */
int mt_store_open_file(struct mt_store *s, const char *name, int oflags, char *err, size_t errsz);

/* A checked fd of the store at `root` (project NULL), of root/runs/<project>
 * (id NULL) or of a run directory, for the CLI; with `create`, missing
 * directories are made.  -ENOENT when it is not there, -errno otherwise;
 * err says why in words ("refusing the run store: ... belongs to uid N"). */
int mt_store_dir_fd(const char *root, const char *project, const char *id, int create, char *err,
                    size_t errsz);

void mt_store_append(struct mt_store *s, FILE *f, const char *line, size_t len);
/* Appends a, then b, then a newline if `newline` (a console line with its
 * label), as one line of history, events or output.  Lines shorter than the
 * buffer are gathered in the file's stage and reach stdio at a flush, in one
 * fwrite: a line costs a copy, not three stdio calls (the parse stage writes
 * two lines per printed one).  A file is written either through these or
 * with stdio alone (import.c's output.log), never both: they would reorder. */
void mt_store_write(struct mt_store *s, FILE *f, const char *a, size_t alen, const char *b,
                    size_t blen, int newline);
void mt_store_event(struct mt_store *s, double ts, const char *event, const char *fields_json);
void mt_store_flush(struct mt_store *s);

/* Replaces <dir>/<name> atomically with `len` bytes. */
int mt_store_replace(struct mt_store *s, const char *name, const char *data, size_t len);

/* Reads <dir>/<name> whole (NUL-terminated, caller frees); NULL if absent. */
char *mt_store_read(const struct mt_store *s, const char *name, size_t *len);

/* run.json is written by the agent and edited by `metrictap tag/rename`:
 * both hold this lock (flock on <run_dir>/.run.lock) around their
 * read-modify-write.  Returns an fd to pass to mt_store_unlock, or -1. */
int mt_store_lock(const char *run_dir);
void mt_store_unlock(int fd);

/* Files of the run directory other than the four above (the journal, its
 * checkpoint): every one is opened, made, renamed and removed through these,
 * relative to the run directory, never through a link (O_NOFOLLOW), so the
 * store's checks apply to them in one place.  `name` may hold one folder
 * made with mt_store_make_dir.  open: an fd or -1 (errno); others 0/-1. */
int mt_store_open_in(const struct mt_store *s, const char *name, int flags);
int mt_store_make_dir(const struct mt_store *s, const char *name);
int mt_store_rename_file(const struct mt_store *s, const char *from, const char *to);
int mt_store_remove_file(const struct mt_store *s, const char *name);
int mt_store_remove_dir(const struct mt_store *s, const char *name);
/* Cuts one of history, events, output back to `size` (recovery). */
int mt_store_truncate(struct mt_store *s, FILE *f, uint64_t size);
/* The current size of one of them, flushed. */
uint64_t mt_store_size(struct mt_store *s, FILE *f);

/* The agent holds <run_dir>/.agent.lock (flock) for its whole life, so a
 * reader can tell a run whose agent is gone from one still being written.
 * mt_store_hold_agent_lock: the fd to keep open, or -1 (held elsewhere:
 * errno EWOULDBLOCK).  mt_store_agent_alive: 1 held, 0 not held (the agent
 * is gone), -1 no lock file (a run from before the lock existed). */
int mt_store_hold_agent_lock(const char *run_dir);
int mt_store_agent_alive(const char *run_dir);

#endif
