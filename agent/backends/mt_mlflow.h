/* mt_mlflow: MLflow's tracking REST API (under /api/2.0/mlflow/) on libcurl,
 * plus the naming rules of MLflow keys.  The backend that the uploader drives
 * is mt_mlflow_backend (mt_upload_backend.h); this header is what it and
 * the tests use.
 *
 * A client owns one curl handle (keep-alive) and is used by one thread.
 * TLS verification is always on; MLFLOW_TRACKING_SERVER_CERT_PATH adds a CA.
 * Responses are kept in the client until the next call. */
#ifndef MT_MLFLOW_H
#define MT_MLFLOW_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../mt_upload.h"

struct mt_mlflow_conf {
    const char *url;                    /* http(s)://host[:port][/prefix] */
    const char *username, *password;    /* basic auth, both or neither */
    const char *token;                  /* bearer */
    const char *ca_path;                /* "" or NULL: system CAs */
    double timeout_s;                   /* one request */
    const volatile int64_t *deadline_ms;/* monotonic ms; abort requests past it (0 none) */
};

struct mt_mlflow_resp {
    long status;              /* HTTP status, 0 when none came back */
    int curl_code;            /* CURLE_* */
    int unknown;              /* the request may have been applied */
    double retry_after;       /* seconds, 0 if none */
    char error_code[64];      /* MLflow's error_code, "" if none */
    const char *body;         /* NUL-terminated, owned by the client */
    size_t len;
};

struct mt_mlflow_client;

struct mt_mlflow_client *mt_mlflow_client_create(const struct mt_mlflow_conf *c, char *err,
                                                 size_t errsz);
void mt_mlflow_client_destroy(struct mt_mlflow_client *c);

/* method "GET"/"POST"; path relative to the base URL ("api/2.0/mlflow/...",
 * query included); body NULL for GET.  Classifies the outcome. */
enum mt_upload_result mt_mlflow_call(struct mt_mlflow_client *c, const char *method,
                                     const char *path, const char *body, size_t len,
                                     struct mt_mlflow_resp *r);

/* The same for a request that must never be sent twice (a log-batch with
 * metrics): it goes on a fresh connection, because libcurl silently resends
 * a request whose reused connection died before any answer, and the server
 * may have applied it. */
enum mt_upload_result mt_mlflow_call_once(struct mt_mlflow_client *c, const char *path,
                                          const char *body, size_t len,
                                          struct mt_mlflow_resp *r);

/* PUT of a file's bytes to path (relative to the base URL). */
enum mt_upload_result mt_mlflow_put_file(struct mt_mlflow_client *c, const char *path,
                                         const char *file, struct mt_mlflow_resp *r);

/* ---- pure helpers (unit-tested) ---- */

/* A failed response in words, for people: "connection refused", "timed
 * out", "HTTP 401 ... (check MLFLOW_TRACKING_...)", "HTTP 503: <MLflow's
 * message>". */
void mt_mlflow_describe(const struct mt_mlflow_resp *r, char *out, size_t outsz);

/* OK for 2xx; RETRY for no answer, 408, 429, 5xx; DROP for other statuses.
 * *unknown tells whether a request that did not succeed may still have been
 * applied: not when the connection never opened, nor for 429 (refused before
 * work) or 4xx (MLflow validates before it writes, in one transaction). */
enum mt_upload_result mt_mlflow_classify(long status, int transport_failed, int connected,
                                         int *unknown);

/* Retry-After as delta-seconds or an HTTP date; 0 when absent or unusable,
 * capped at 300 s. */
double mt_mlflow_retry_after(const char *value, time_t now);

/* MLflow key rules: at most 250 characters from [A-Za-z0-9_-./ :], and the
 * key must equal its posix normpath, not be ".", nor start with ".." or "/".
 * Writes a key that follows them (bad characters become '_', bad slashes
 * '_', cut at 250).  Returns 0 when unchanged, 1 when changed, -1 if empty. */
int mt_mlflow_key_sanitize(const char *in, char *out, size_t outsz);
int mt_mlflow_key_valid(const char *key);

/* Maps a system.jsonl key to MLflow's system metric name; *scale gets the
 * factor to apply (1e-6 for bytes -> MB).  Returns -1 for keys to skip
 * (_timestamp, _runtime). */
int mt_mlflow_system_key(const char *in, char *out, size_t outsz, double *scale);

/* Does a value read back from the server equal the one we sent?  NaN equals
 * NaN; +-Inf equal +-DBL_MAX (SQL stores clamp infinities). */
int mt_mlflow_value_equal(double sent, double got);

/* Appends the JSON text of v: a number, or "NaN", "Infinity", "-Infinity". */
int mt_mlflow_fmt_value(char *out, size_t outsz, double v);

/* ---- shared between the mlflow_*.c files ---- */
struct mt_mlflow__buf {
    char *p;
    size_t len, cap, max;
    int overflow;
};
void mt_mlflow__buf_init(struct mt_mlflow__buf *b, size_t max);
void mt_mlflow__buf_free(struct mt_mlflow__buf *b);
void mt_mlflow__buf_add(struct mt_mlflow__buf *b, const char *s, size_t n);
void mt_mlflow__buf_str(struct mt_mlflow__buf *b, const char *s);
void mt_mlflow__buf_printf(struct mt_mlflow__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void mt_mlflow__buf_json(struct mt_mlflow__buf *b, const char *s);
/* URL-encodes s into b. */
void mt_mlflow__buf_urlenc(struct mt_mlflow__buf *b, const char *s);

/* What is known of the batch being sent (mlflow_log.c): kept across failed
 * requests while the uploader hands the same batch again. */
struct mt_mlflow__check {
    uint64_t fp;              /* fingerprint of the batch it is about */
    size_t n;
    unsigned char *landed;    /* point i is on the server */
    unsigned char *unsure;    /* point i may be: look its key up first */
    unsigned *prior;          /* io->count_prior of the batch */
    int have_prior;
};
void mt_mlflow__check_reset(struct mt_mlflow__check *c);

/* The backend's state, shared by mlflow.c and mlflow_log.c. */
struct mt_upload_io;
struct cJSON;
struct mt_mlflow__be {
    struct mt_mlflow_client *cli;
    const struct mt_upload_io *io;
    struct cJSON *state;      /* its part of the cursor (mt_upload_backend.h) */
    char run_id[64], exp_id[64];
    char artifact_path[512];  /* "<exp>/<run>/artifacts" or "" when not proxied */
    int verify_next;          /* check the next batch against the server first */
    struct mt_mlflow__check check;
    size_t piece_keys;        /* keys per log-batch while the path fails; 0: all */
    double retry_after;
    char last_error[512];     /* the last failure in words (mt_mlflow_describe) */
    size_t param_value_max;
    struct mt_mlflow__buf body, path;
};

enum mt_mlflow__kind { MT_MLFLOW__METRIC, MT_MLFLOW__PARAM, MT_MLFLOW__TAG };
struct mt_mlflow__kv {
    const char *key, *value;
};
struct mt_upload_point;

/* A request through the client, counted, with Retry-After kept. */
enum mt_upload_result mt_mlflow__call(struct mt_mlflow__be *b, const char *method,
                                      const char *path, const char *body, size_t len,
                                      struct mt_mlflow_resp *r);
/* Counts a request made on the client, keeps its Retry-After and, when it
 * failed, its description (last_error). */
void mt_mlflow__counted(struct mt_mlflow__be *b, enum mt_upload_result res,
                        const struct mt_mlflow_resp *r);
/* An event in events.jsonl about a response: kind, key, status, MLflow's message. */
void mt_mlflow__event_http(struct mt_mlflow__be *b, const char *name, const char *what,
                           const char *key, const struct mt_mlflow_resp *r);
/* Appends {"key":k,"value":v} to a JSON list being written. */
void mt_mlflow__add_tag_json(struct mt_mlflow__buf *o, int *first, const char *k, const char *v);
/* Starts a body {"run_id":... for log-batch or update. */
void mt_mlflow__begin_batch(struct mt_mlflow__be *b);
/* log-batch of items [0, n) of one kind (points or kvs); skip[i] leaves one out. */
enum mt_upload_result mt_mlflow__send_items(struct mt_mlflow__be *b, enum mt_mlflow__kind k,
                                            const void *items, size_t n,
                                            const unsigned char *skip);
/* The backend's send_points: verifies first when the last outcome is unknown. */
enum mt_upload_result mt_mlflow__send_points(void *be, const struct mt_upload_point *pts,
                                             size_t n);

#endif
