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

#endif
