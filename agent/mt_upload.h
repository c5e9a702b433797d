/* mt_upload: the asynchronous uploader.  It feeds one run of the local run
 * store (DESIGN.md "The run store") to a tracking backend, remembering how far
 * it got in <run>/upload/<backend>.json so that `metrictap sync` resumes
 * exactly.  The store is the source of truth: the uploader only reads it,
 * apart from its cursor and the upload events it appends to events.jsonl.
 *
 * Who calls what:
 *   the agent   mt_upload_opts_init() + mt_upload_opts_from_env() at start,
 *               mt_upload_enabled() to decide, mt_uploader_start() once the
 *               run directory and run.json exist, mt_uploader_notify() after
 *               appending (optional), mt_uploader_finish() after run.json
 *               holds the final state (it also frees the uploader).
 *   the CLI     mt_upload_sync_run() for each run `metrictap sync` names.
 *
 * One uploader per run and backend: the uploader holds an flock on
 * upload/<backend>.lock for its whole life; sync leaves a live run to its
 * agent and waits for the agent of an ended one. */
#ifndef MT_UPLOAD_H
#define MT_UPLOAD_H

#include <pthread.h>
#include <stddef.h>

struct mt_upload_backend;

/* How one sync job goes, read by `metrictap sync` for its progress line
 * while the job runs (the uploader writes it under mu). */
struct mt_upload_live {
    pthread_mutex_t mu;
    unsigned long long points_sent, points_present;
    int waiting_for_agent;    /* the run's agent holds its upload lock */
    unsigned failures;        /* requests that failed */
    char cause[256];          /* the last failure in words, "" none yet */
};

enum mt_upload_result {
    MT_UPLOAD_OK = 0,     /* done (items refused by the server were dropped and reported) */
    MT_UPLOAD_RETRY = 1,  /* try again later: network, 408, 429, 5xx */
    MT_UPLOAD_DROP = 2,   /* refused for good (4xx); reported in events.jsonl */
};

struct mt_upload_opts {
    char backend[32];          /* "mlflow", "tensorboard", "wandb" */
    char url[1024];            /* tracking URI, http(s)://host[:port][/prefix] */
    char username[256], password[256], token[1024];
    char ca_path[1024];        /* extra CA bundle (MLFLOW_TRACKING_SERVER_CERT_PATH) */
    char mode[16];             /* online | offline | disabled; "" is online */
    char tensorboard_dir[1024];/* TensorBoard logdir; "" ./tensorboard */
    char wandb_dir[1024];      /* W&B's WANDB_DIR (runs go to <dir>/wandb/); "" . */
    char wandb_entity[256];    /* WANDB_ENTITY */
    char wandb_command[1024];  /* the `wandb` program; "" found on PATH */
    double wandb_sync_timeout_s; /* one `wandb sync` at most this long (300 s) */
    double interval_s;         /* send at least this often while data waits (1 s) */
    double finish_timeout_s;   /* mt_uploader_finish() flushes this long at most (30 s) */
    double sync_timeout_s;     /* mt_upload_sync_run() gives up after this long (600 s) */
    double backoff_base_s;     /* first retry delay bound (0.5 s) */
    double backoff_max_s;      /* cap of the retry delay (10 s) */
    double request_timeout_s;  /* one HTTP request (30 s) */
    size_t batch_max;          /* points per request, at most the backend's limit (1000) */
    size_t param_value_max;    /* longest param value sent (6000, MLflow's limit) */
    int quiet;                 /* no messages on stderr */
    int exporting;             /* `metrictap export`: write files, start no upload of them */
    struct mt_upload_live *live; /* NULL, or where a sync job reports its progress */
    /* Tests and future callers may hand a backend directly; NULL: by name. */
    const struct mt_upload_backend *backend_ops;
};

/* Defaults, no environment. */
void mt_upload_opts_init(struct mt_upload_opts *o);

/* Reads MLFLOW_TRACKING_URI, METRICTAP_UPLOAD_URL, METRICTAP_UPLOAD_BACKEND,
 * MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN, MLFLOW_TRACKING_SERVER_CERT_PATH,
 * METRICTAP_UPLOAD_INTERVAL, METRICTAP_UPLOAD_FINISH_TIMEOUT,
 * METRICTAP_UPLOAD_SYNC_TIMEOUT, METRICTAP_UPLOAD_BACKOFF_MAX (durations:
 * "500ms", "2s", "1m", plain seconds).  Returns 0, or -EINVAL with a message
 * naming the variable and the bad value in err. */
int mt_upload_opts_from_env(struct mt_upload_opts *o, char *err, size_t errsz);

/* Is online upload wanted?  0 when METRICTAP_MODE=offline|disabled or
 * WANDB_MODE=offline|dryrun|disabled, or when no backend URL is set. */
int mt_upload_enabled(const struct mt_upload_opts *o);
/* The same without the URL: is the mode online? */
int mt_upload_online(const struct mt_upload_opts *o);

/* Takes upload.to (or upload.backend), upload.url, the mode, the
 * tensorboard.* and wandb.* keys and upload.flush_timeout from a loaded
 * config (struct mt_config), before mt_upload_opts_from_env. */
struct mt_config;
void mt_upload_opts_from_config(struct mt_upload_opts *o, const struct mt_config *cfg);

/* The backends to run: the comma-separated `to` (--to, upload.to,
 * METRICTAP_UPLOAD_TO), else "mlflow" when a tracking URL is set.  Writes up
 * to `max` names; returns how many, or -EINVAL with a message naming the
 * unknown backend and the known ones. */
int mt_upload_choose(const char *to, const struct mt_upload_opts *o, char names[][32], int max,
                     char *err, size_t errsz);

/* Before a run: each chosen file backend that cannot write where it would
 * gets one "metrictap: ..." line on stderr (the run goes on without it).
 * `to` as for mt_upload_choose. */
void mt_upload_preflight(const char *to, const struct mt_upload_opts *o);

/* Should this backend run now?  A backend that writes files runs in any
 * mode but disabled; one with a server only online and with a URL. */
int mt_upload_wanted(const struct mt_upload_opts *o);

/* Starts the upload thread for run_dir.  Never blocks on the network.
 * Returns NULL (with a message in err) when the backend is unknown, the URL
 * unusable or another process holds the run's upload lock. */
struct mt_uploader *mt_uploader_start(const char *run_dir, const struct mt_upload_opts *o,
                                      char *err, size_t errsz);

/* New data was appended: send soon if a batch is full.  Cheap, never blocks. */
void mt_uploader_notify(struct mt_uploader *u);

/* Starts the final flush without waiting for it (so that several backends
 * flush at once); mt_uploader_finish then waits.  timeout_s as below. */
void mt_uploader_finish_begin(struct mt_uploader *u, double timeout_s);

/* Flushes for at most timeout_s (< 0: the opts' finish_timeout_s), sets the
 * final state and uploads the artifacts, stops the thread and frees u
 * (NULL is fine).  Returns 0 when everything was sent, 1 when something is
 * left for `metrictap sync`, negative errno on a local error. */
int mt_uploader_finish(struct mt_uploader *u, double timeout_s);

/* Uploads what run_dir has pending, synchronously, within opts->sync_timeout_s.
 * When the agent of an ended run holds the upload lock (flushing), waits
 * for it to let go first, then sends what it left; a run still going is
 * its agent's (-EBUSY at once).  Returns 0 when the server has everything,
 * 1 when something is still pending (server unreachable: err names the last
 * failure), -EBUSY when the run is live or its agent held the lock the whole
 * time, other negative errno on local errors.
 * A message goes to err. */
int mt_upload_sync_run(const char *run_dir, const struct mt_upload_opts *o, char *err,
                       size_t errsz);

/* Counters of one uploader or sync (for tests, bench and -v). */
struct mt_upload_stats {
    unsigned long long points_sent, points_dropped, points_verified_present;
    unsigned long long requests, retries, params_sent, tags_sent, artifacts_sent;
};
void mt_uploader_get_stats(struct mt_uploader *u, struct mt_upload_stats *st);

#endif
