/* The interface between the uploader (upload.c) and one backend
 * (mlflow_backend.c; wandb or tensorboard later, one file each).
 *
 * The uploader reads the store, keeps the cursor and the retry schedule; a
 * backend only talks to its server.  Every call returns an mt_upload_result:
 * OK (items the server refused were dropped, each reported through
 * io->event), RETRY (nothing or part of it done: the uploader calls again
 * with the same items after a backoff), never DROP for a whole call unless
 * the run itself cannot be uploaded.  A backend whose server appends (MLflow
 * metrics) must make a repeated send_points() idempotent itself; it can ask
 * the uploader how often a point occurs in the store before the batch
 * (io->count_prior) to tell a point that landed from an identical older one. */
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

struct mt_upload_kv {
    const char *key, *value;
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
    /* Monotonic ms after which requests should give up (0: none). */
    const volatile int64_t *deadline_ms;
    struct mt_upload_stats *stats;
};

struct mt_upload_backend {
    const char *name;        /* cursor file upload/<name>.json */
    size_t max_points;       /* per send_points call */
    size_t max_params;       /* per send_params call */
    size_t max_tags;         /* per send_tags call */
    /* Maps a history key ("loss") or a system key ("system.cpu_percent") to the
     * backend's key and the factor its values are multiplied by; returns 0,
     * or -1 to skip the key. */
    int (*map_key)(const char *key, int system, char *out, size_t outsz, double *scale);
    /* Fills `out` (a cJSON object) with the run-level tags, key -> string,
     * derived from run.json; the uploader sends the ones that changed. */
    int (*run_tags)(const cJSON *run, cJSON *out);
    void *(*create)(const struct mt_upload_opts *o, const struct mt_upload_io *io, char *err,
                    size_t errsz);
    void (*destroy)(void *be);
    /* Makes sure the remote run exists.  `state` is the backend's own part of
     * the cursor (a cJSON object, e.g. the remote run id), saved by the
     * uploader after OK; `run` is run.json. */
    enum mt_upload_result (*open_run)(void *be, const cJSON *run, cJSON *state);
    enum mt_upload_result (*send_points)(void *be, const struct mt_upload_point *pts, size_t n);
    /* Write-once parameters; value_max is the longest value to send. */
    enum mt_upload_result (*send_params)(void *be, const struct mt_upload_kv *kv, size_t n);
    enum mt_upload_result (*send_tags)(void *be, const struct mt_upload_kv *kv, size_t n);
    /* state: running|finished|failed|crashed|killed|lost; end_time unix s or < 0. */
    enum mt_upload_result (*set_state)(void *be, const char *state, double end_time);
    /* Uploads one file of the run directory under `name`. */
    enum mt_upload_result (*put_file)(void *be, const char *name, const char *path);
    /* Seconds the server asked us to wait (Retry-After) after the last RETRY, or 0. */
    double (*retry_after)(void *be);
};

extern const struct mt_upload_backend mt_mlflow_backend;

#endif
