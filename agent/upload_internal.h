/* Shared between the uploader's files (upload.c: the thread, the cursor, the
 * retries; upload_read.c: reading the store into points or rows;
 * upload_opts.c: the options), cli/ and the tests; not for other parts. */
#ifndef MT_UPLOAD_INTERNAL_H
#define MT_UPLOAD_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "mt_upload.h"
#include "mt_upload_backend.h"

#define MT_UPLOAD__AXES_MAX 32

/* A read position in history.jsonl or system.jsonl: the byte offset of the
 * next row, its line number, and how many points of it are already taken (a
 * row can be split between two batches of points). */
struct mt_upload__pos {
    long long off, line;
    unsigned skip;
};

/* The last value of each step axis, and whether the axis turned out to be
 * fractional (then it cannot be an integer step; see upload_read.c). */
struct mt_upload__axes {
    int n;
    char name[MT_UPLOAD__AXES_MAX][128];
    double val[MT_UPLOAD__AXES_MAX];
    unsigned char fractional[MT_UPLOAD__AXES_MAX];
};

struct mt_upload__mdef {
    char *name; /* may end in '*' */
    char *axis;
};

struct mt_uploader {
    const struct mt_upload_backend *be_ops;
    void *be;
    struct mt_upload_opts o;
    struct mt_upload_io io;
    struct mt_upload_stats stats;
    char *dir;
    char cursor_path[4300], lock_path[4300];
    int lock_fd;
    cJSON *cursor;

    /* run.json as last read */
    cJSON *run;
    struct stat run_st, summary_st;
    struct mt_upload__mdef *defs;
    size_t ndefs;
    char **axis_names;      /* run.json's "axes" */
    size_t naxis_names;
    char **ignore;
    size_t nignore;
    int opened;

    /* reading */
    struct mt_upload__pos hpos, spos;     /* read position (after the batch) */
    struct mt_upload__axes ax;
    struct mt_upload__pos hstart, sstart; /* where the batch starts (= the cursor) */
    struct mt_upload__axes axstart;
    struct mt_upload_point *batch;        /* point backends */
    struct mt_upload_row *rows;           /* row backends: rows[i].json owned here */
    size_t nbatch, cap;
    struct mt_upload_point *rowpts;       /* one row's points */
    int frozen;           /* sent once: send again unchanged */
    int eof;              /* both files read to the end last time */
    char *buf;            /* line buffer */
    size_t bufcap;
    unsigned long long skipped_lines, skipped_points;
    /* While the run goes, a row with a key that run.json does not describe
     * yet (its step_metric unknown) waits for run.json, HOLD_MS at most. */
    int running;
    int64_t hold_since_ms;

    /* failures: the last one in words, and what events.jsonl was told */
    char cause[512];
    int failing;              /* the last step failed */
    char cause_told[512];
    char event_cause[512];    /* the message of the backend's last refusal event */
    int64_t cause_told_ms;

    /* timing */
    int64_t last_send_ms, next_try_ms;
    unsigned attempt;
    uint64_t rng;
    volatile int64_t deadline_ms;

    /* thread */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, finishing, notified;
    int result; /* of the final phase */
    double finish_timeout_s;
};

/* ---- upload_read.c ---- */

/* Grows the batch from the read position.  Returns <0 on a read error. */
int mt_upload__fill_batch(struct mt_uploader *u);
/* Allocates the batch for u->cap points or rows.  0 or -ENOMEM. */
int mt_upload__alloc_batch(struct mt_uploader *u);
/* Empties the batch (row backends: frees the rows). */
void mt_upload__clear_batch(struct mt_uploader *u);
/* io->count_prior. */
int mt_upload__count_prior(void *ctx, const struct mt_upload_point *pts, size_t n,
                           unsigned *prior);
void mt_upload__axes_load(const cJSON *cursor, struct mt_upload__axes *a);
void mt_upload__axes_store(cJSON *cursor, const struct mt_upload__axes *a);
/* Hand the backend summary.json when it changed, the new bytes of
 * output.log (complete lines unless final), and at the end the run's files
 * (output.log, crash.txt, diff.patch, run.json; not those the ignore globs
 * name) that changed since they were last handed over. */
enum mt_upload_result mt_upload__send_summary(struct mt_uploader *u);
enum mt_upload_result mt_upload__send_output(struct mt_uploader *u, int final);
enum mt_upload_result mt_upload__send_artifacts(struct mt_uploader *u);
/* Reads <run_dir>/<name> whole (NUL-terminated, caller frees); NULL if absent. */
char *mt_upload__read_file(const char *path, size_t *len);

/* ---- upload.c ---- */

/* Delay before retry number `attempt` (0-based): uniform in
 * [0, min(cap, base * 2^attempt)] drawn with u01 in [0, 1) (full jitter), but
 * never less than the server's Retry-After. */
double mt_upload__backoff(unsigned attempt, double base, double cap, double retry_after,
                          double u01);


/* ---- upload_cursor.c ---- */

/* Replaces path with len bytes: temp file, fsync, rename; 0600. */
int mt_upload__write_atomic(const char *path, const char *data, size_t len);

/* (Re)reads u->cursor from u->cursor_path, takes the part of the backend's
 * target (be_ops->target), and sets the read positions from it. */
void mt_upload__cursor_load(struct mt_uploader *u);
/* Writes the read positions into the cursor and the cursor to its file. */
int mt_upload__cursor_save(struct mt_uploader *u);

/* ---- upload_opts.c ---- */

/* "500ms", "2s", "1m", "1h" or plain seconds. */
int mt_upload__parse_duration(const char *s, double *out);

#endif
