/* The interface between the uploader (upload.c, upload_read.c) and one
 * backend (agent/backends/<name>.c: mlflow.c, tensorboard.c, wandb.c).
 *
 * The uploader reads the store, keeps the cursor and the retry schedule; a
 * backend only writes to its server or its files.  Every call returns an
 * mt_upload_result: OK (items the backend refused were dropped, each reported
 * through io->event), RETRY (nothing or part of it done: the uploader calls
 * again with the same items after a backoff), DROP only when the run itself
 * cannot go to this backend.
 *
 * The uploader hands a backend the store in two shapes, and the backend
 * says which it takes:
 *   points (send_points): one value of one key at one step, with the key in
 *     the backend's naming (map_key) and the step resolved from the metric's
 *     step_metric (upload_read.c says how); a row may be split between two
 *     calls.  MLflow and TensorBoard.
 *   rows (send_rows, whole_rows = 1): each line of history.jsonl and
 *     system.jsonl whole, never split.  W&B.
 * A backend whose server appends (MLflow metrics) must make a repeated
 * send_points() idempotent itself; it can ask the uploader how often a point
 * occurs in the store before the batch (io->count_prior) to tell a point that
 * landed from an identical older one.  A backend that writes files keeps the
 * size it has written in its state and cuts the file back to it on open, so a
 * batch written but not yet recorded in the cursor is not written twice.
 *
 * `state` (given to open_run) is the backend's own part of the cursor, a cJSON
 * object owned by the uploader and alive as long as the backend: the backend
 * may change it in any call, and the uploader saves it with the read position
 * after each call that returned OK, in one atomic write. */
#ifndef MT_UPLOAD_BACKEND_H
#define MT_UPLOAD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "mt_upload.h"

#define MT_UPLOAD_KEY_MAX 256

struct mt_upload_point {
    char key[MT_UPLOAD_KEY_MAX];  /* already in the backend's naming */
    double value;                 /* NaN and +-Inf allowed */
    int64_t ts_ms;
    int64_t step;
};

/* One line of history.jsonl (system = 0) or system.jsonl (system = 1). */
struct mt_upload_row {
    int system;
    long long line;               /* 0-based line number in its file */
    const cJSON *json;            /* the parsed line, owned by the uploader */
};

/* What the uploader lends a backend. */
struct mt_upload_io {
    void *ctx;
    /* Appends {"event": name, "backend": ..., fields} to events.jsonl;
     * fields_json is the inside of a JSON object ("\"key\":\"x\"") or NULL. */
    void (*event)(void *ctx, const char *name, const char *fields_json);
    /* prior[i] = how many points equal to pts[i] (key, step, ts, value with
     * NaN == NaN) come before the current batch in the store. */
    int (*count_prior)(void *ctx, const struct mt_upload_point *pts, size_t n, unsigned *prior);
    /* Optional: part of a call that will return RETRY went through (a
     * lookup, a piece of a batch), so the backoff starts over. */
    void (*progress)(void *ctx);
    /* Monotonic ms after which requests should give up (0: none). */
    const volatile int64_t *deadline_ms;
    struct mt_upload_stats *stats;
    const char *run_dir;          /* the run's directory in the store */
};

struct mt_upload_backend {
    const char *name;        /* --to NAME; cursor file upload/<name>.json */
    int local;               /* writes files here: runs offline too (not under mode disabled) */
    int whole_rows;          /* takes rows (send_rows), not points */
    int named_by_run;        /* names its files after the run's name: opened once it is settled */
    size_t max_points;       /* per send_points call (rows per send_rows call) */
    void *(*create)(const struct mt_upload_opts *o, const struct mt_upload_io *io, char *err,
                    size_t errsz);
    /* Optional, before a run: can this backend write where it would?  0, or
     * -errno with the reason in err (`metrictap run` says it in one line). */
    int (*check)(const struct mt_upload_opts *o, char *err, size_t errsz);
    void (*destroy)(void *be);
    /* Point backends: maps a history key ("loss") or a system key
     * ("system.cpu_percent") to the backend's key and the factor its values
     * are multiplied by; returns 0, or -1 to skip the key. */
    int (*map_key)(const char *key, int system, char *out, size_t outsz, double *scale);
    /* Makes sure the remote run (or the output files) exists; `run` is
     * run.json, `state` see above. */
    enum mt_upload_result (*open_run)(void *be, const cJSON *run, cJSON *state);
    /* run.json changed (config, name, tags, notes...): send what changed. */
    enum mt_upload_result (*update_run)(void *be, const cJSON *run);
    enum mt_upload_result (*send_points)(void *be, const struct mt_upload_point *pts, size_t n);
    enum mt_upload_result (*send_rows)(void *be, const struct mt_upload_row *rows, size_t n);
    /* Optional: summary.json changed. */
    enum mt_upload_result (*send_summary)(void *be, const cJSON *summary);
    /* Optional: output.log grew by these bytes (complete lines, except at the
     * end of the run). */
    enum mt_upload_result (*send_output)(void *be, const char *bytes, size_t n);
    /* state: running|finished|failed|crashed|killed|lost, with run.json. */
    enum mt_upload_result (*set_state)(void *be, const cJSON *run, const char *state);
    /* Optional: hands over one file of the run directory under `name` at the
     * end (output.log, crash.txt, diff.patch, run.json; ignore globs already
     * applied).  OK for a file the backend does not want. */
    enum mt_upload_result (*put_file)(void *be, const char *name, const char *path);
    /* Optional: the run is complete in the backend (final state set, files
     * handed over): what comes after it, e.g. handing a W&B directory to
     * `wandb sync`.  Called at the end of each final flush and each sync,
     * so it must itself know what it already did. */
    void (*finish)(void *be, const cJSON *run);
    /* Optional: where this backend sends the run ("http://host:5000
     * experiment mnist"): the cursor belongs to it, so that a sync to
     * another server sends everything there (upload.c keeps the cursors of
     * the others aside).  "" or no function: one cursor whatever the target. */
    void (*target)(const struct mt_upload_opts *o, const cJSON *run, char *out, size_t outsz);
    /* Optional: the last failure in words ("connection refused", "HTTP 401
     * ..."), for messages and events; "" when none. */
    const char *(*last_error)(void *be);
    /* Optional: seconds the server asked us to wait (Retry-After) after the
     * last RETRY, or 0. */
    double (*retry_after)(void *be);
};

/* The backends (agent/backends/backends.c). */
extern const struct mt_upload_backend mt_mlflow_backend;
extern const struct mt_upload_backend mt_tensorboard_backend;
extern const struct mt_upload_backend mt_wandb_backend;

/* The backend called `name`, or NULL. */
const struct mt_upload_backend *mt_upload_backend_find(const char *name);
/* "mlflow, tensorboard, wandb": the names, for messages. */
const char *mt_upload_backend_names(void);

#endif
