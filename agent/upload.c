/* The uploader: tails one run of the store from its cursor, batches, hands
 * the batches to a backend, retries with capped exponential backoff and full
 * jitter (honouring Retry-After), and saves the cursor after each step so
 * that `metrictap sync` resumes exactly where the agent stopped.
 *
 * Cursor (upload/<backend>.json, written temp + fsync + rename):
 *   {"version":1,
 *    "history":{"offset":N,"skip":K,"line":L}, "system":{...},
 *    "axes":{"epoch":3},               last value of each step axis seen
 *    "params":{"lr":"0.1"}, "tags":{"mlflow.runName":"x"},   as sent
 *    "artifacts":{"output.log":{"size":S,"mtime":M}},
 *    "state":"finished", "backend":{...the backend's ids...}}
 * offset is the byte offset of the next row to read; skip how many points of
 * that row are already sent (a row can be split between two batches). */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../common/mt_safefs.h"
#include "mt_upload.h"
#include "mt_upload_backend.h"
#include "upload_internal.h"

#define ROW_POINTS_MAX 4096      /* metrics in one row; more are counted and skipped */
#define LINE_MAX_BYTES (4 << 20) /* a longer line is skipped and counted */
#define AXES_MAX 32

struct rpos {
    long long off, line;
    unsigned skip;
};

struct axes {
    int n;
    char name[AXES_MAX][128];
    double val[AXES_MAX];
};

struct mdef {
    char *name; /* may end in '*' */
    char *axis;
};

enum step_status { ST_IDLE, ST_PROGRESS, ST_WAIT, ST_STOPPED };

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
    struct stat run_st;
    int run_stale;       /* run.json was re-read between steps: send its meta */
    struct mdef *defs;
    size_t ndefs;
    char **ignore;
    size_t nignore;
    int opened;

    /* reading */
    struct rpos hpos, spos; /* read position (after the batch) */
    struct axes ax;
    struct rpos hstart, sstart; /* where the batch starts (= the cursor) */
    struct axes axstart;
    struct mt_upload_point *batch;
    size_t nbatch, cap;
    struct mt_upload_point *rowpts; /* one row's points, ROW_POINTS_MAX */
    int frozen;           /* sent once: send again unchanged */
    int eof;              /* both files read to the end last time */
    char *buf;            /* line buffer */
    size_t bufcap;
    unsigned long long skipped_lines, skipped_points;

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
};

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void msg(const struct mt_uploader *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void msg(const struct mt_uploader *u, const char *fmt, ...)
{
    if (u->o.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("metrictap: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double mt_upload__backoff(unsigned attempt, double base, double cap, double retry_after,
                          double u01)
{
    double hi = base;
    for (unsigned i = 0; i < attempt && hi < cap; i++)
        hi *= 2;
    if (hi > cap)
        hi = cap;
    double d = hi * u01; /* full jitter */
    if (retry_after > d)
        d = retry_after;
    return d;
}

static double rand01(struct mt_uploader *u)
{
    u->rng ^= u->rng << 13;
    u->rng ^= u->rng >> 7;
    u->rng ^= u->rng << 17;
    return (double)(u->rng >> 11) / (double)(1ULL << 53);
}

int mt_upload__parse_duration(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return -EINVAL;
    if (*end == '\0' || strcmp(end, "s") == 0)
        ;
    else if (strcmp(end, "ms") == 0)
        v /= 1000;
    else if (strcmp(end, "m") == 0)
        v *= 60;
    else if (strcmp(end, "h") == 0)
        v *= 3600;
    else
        return -EINVAL;
    *out = v;
    return 0;
}

/* ---- options ---- */

void mt_upload_opts_init(struct mt_upload_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->backend, sizeof(o->backend), "mlflow");
    o->interval_s = 1;
    o->finish_timeout_s = 30;
    o->sync_timeout_s = 600;
    o->backoff_base_s = 0.5;
    o->backoff_max_s = 10;
    o->request_timeout_s = 30;
    o->batch_max = 1000;
    o->param_value_max = 6000;
}

static int env_dur(const char *name, double *out, char *err, size_t errsz)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    if (mt_upload__parse_duration(v, out) != 0) {
        snprintf(err, errsz,
                 "upload: %s=\"%s\" is not a duration; give e.g. 500ms, 2s, 1m or seconds", name,
                 v);
        return -EINVAL;
    }
    return 0;
}

static void env_str(const char *name, char *out, size_t outsz)
{
    const char *v = getenv(name);
    if (v && *v)
        snprintf(out, outsz, "%s", v);
}

int mt_upload_opts_from_env(struct mt_upload_opts *o, char *err, size_t errsz)
{
    int result = 0;
    env_str("MLFLOW_TRACKING_URI", o->url, sizeof(o->url));
    env_str("METRICTAP_UPLOAD_URL", o->url, sizeof(o->url));
    env_str("METRICTAP_UPLOAD_BACKEND", o->backend, sizeof(o->backend));
    env_str("MLFLOW_TRACKING_USERNAME", o->username, sizeof(o->username));
    env_str("MLFLOW_TRACKING_PASSWORD", o->password, sizeof(o->password));
    env_str("MLFLOW_TRACKING_TOKEN", o->token, sizeof(o->token));
    env_str("MLFLOW_TRACKING_SERVER_CERT_PATH", o->ca_path, sizeof(o->ca_path));
    if ((result = env_dur("METRICTAP_UPLOAD_INTERVAL", &o->interval_s, err, errsz)) ||
        (result = env_dur("METRICTAP_UPLOAD_FINISH_TIMEOUT", &o->finish_timeout_s, err, errsz)) ||
        (result = env_dur("METRICTAP_UPLOAD_SYNC_TIMEOUT", &o->sync_timeout_s, err, errsz)) ||
        (result = env_dur("METRICTAP_UPLOAD_BACKOFF_MAX", &o->backoff_max_s, err, errsz)))
        goto out;
    if (strcmp(o->backend, "mlflow") != 0) {
        snprintf(err, errsz, "upload: METRICTAP_UPLOAD_BACKEND=\"%s\" is unknown; allowed: mlflow",
                 o->backend);
        result = -EINVAL;
    }
out:
    return result;
}

static int mode_is(const char *var, const char *const *vals)
{
    const char *v = getenv(var);
    if (!v)
        return 0;
    for (; *vals; vals++)
        if (strcasecmp(v, *vals) == 0)
            return 1;
    return 0;
}

int mt_upload_enabled(const struct mt_upload_opts *o)
{
    static const char *const off[] = {"offline", "dryrun", "disabled", NULL};
    if (mode_is("METRICTAP_MODE", off) || mode_is("WANDB_MODE", off))
        return 0;
    return o->url[0] != '\0';
}

static const struct mt_upload_backend *find_backend(const char *name)
{
    if (strcmp(name, "mlflow") == 0)
        return &mt_mlflow_backend;
    return NULL;
}

/* ---- events and cursor ---- */

static void io_event(void *ctx, const char *name, const char *fields)
{
    struct mt_uploader *u = ctx;
    char path[4200];
    snprintf(path, sizeof(path), "%s/events.jsonl", u->dir);
    size_t n = (fields ? strlen(fields) : 0) + strlen(name) + 160;
    char *line = malloc(n);
    if (!line)
        return;
    int len = snprintf(line, n, "{\"_timestamp\":%.6f,\"event\":\"%s\",\"backend\":\"%s\"%s%s}\n",
                       unix_now(), name, u->be_ops->name, fields && *fields ? "," : "",
                       fields ? fields : "");
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)len) != len) {
            /* the store's disk is full: nothing better to do */
        }
        close(fd);
    }
    free(line);
}

int mt_upload__write_atomic(const char *path, const char *data, size_t len)
{
    char tmp[4400];
    int result = 0, fd = -1;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    unlink(tmp); /* one a crash of the same pid left */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        result = -errno;
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            result = -errno;
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        result = -errno;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        result = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        result = -errno;
out:
    if (fd >= 0)
        close(fd);
    if (result)
        unlink(tmp);
    return result;
}

static cJSON *obj(cJSON *parent, const char *key)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (!cJSON_IsObject(o)) {
        cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
        o = cJSON_AddObjectToObject(parent, key);
    }
    return o;
}

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void set_num(cJSON *o, const char *key, double v)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(it))
        cJSON_SetNumberValue(it, v);
    else {
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
        cJSON_AddNumberToObject(o, key, v);
    }
}

static void set_str(cJSON *o, const char *key, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddStringToObject(o, key, v);
}

static void pos_load(cJSON *c, const char *key, struct rpos *p)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, key);
    p->off = (long long)num(o, "offset", 0);
    p->skip = (unsigned)num(o, "skip", 0);
    p->line = (long long)num(o, "line", 0);
}

static void pos_store(cJSON *c, const char *key, const struct rpos *p)
{
    cJSON *o = obj(c, key);
    set_num(o, "offset", (double)p->off);
    set_num(o, "skip", p->skip);
    set_num(o, "line", (double)p->line);
}

static void axes_load(cJSON *c, struct axes *a)
{
    memset(a, 0, sizeof(*a));
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "axes"))
    {
        if (a->n < AXES_MAX && cJSON_IsNumber(it)) {
            snprintf(a->name[a->n], sizeof(a->name[0]), "%s", it->string);
            a->val[a->n++] = it->valuedouble;
        }
    }
}

static void axes_store(cJSON *c, const struct axes *a)
{
    cJSON_DeleteItemFromObjectCaseSensitive(c, "axes");
    cJSON *o = cJSON_AddObjectToObject(c, "axes");
    for (int i = 0; i < a->n; i++)
        cJSON_AddNumberToObject(o, a->name[i], a->val[i]);
}

static int cursor_save(struct mt_uploader *u)
{
    pos_store(u->cursor, "history", &u->hstart);
    pos_store(u->cursor, "system", &u->sstart);
    axes_store(u->cursor, &u->axstart);
    char *txt = cJSON_Print(u->cursor);
    if (!txt)
        return -ENOMEM;
    int r = mt_upload__write_atomic(u->cursor_path, txt, strlen(txt));
    free(txt);
    if (r)
        msg(u, "upload: cannot write %s: %s", u->cursor_path, strerror(-r));
    return r;
}

static char *read_file(const char *path, size_t *len)
{
    char *p = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *np = realloc(p, cap);
            if (!np) {
                free(p);
                p = NULL;
                goto out;
            }
            p = np;
        }
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    p[n] = '\0';
    if (len)
        *len = n;
out:
    fclose(f);
    return p;
}

/* ---- run.json ---- */

static void defs_free(struct mt_uploader *u)
{
    for (size_t i = 0; i < u->ndefs; i++) {
        free(u->defs[i].name);
        free(u->defs[i].axis);
    }
    free(u->defs);
    u->defs = NULL;
    u->ndefs = 0;
    for (size_t i = 0; i < u->nignore; i++)
        free(u->ignore[i]);
    free(u->ignore);
    u->ignore = NULL;
    u->nignore = 0;
}

/* Re-reads run.json when it changed.  Returns 1 when changed, 0 not, -1 absent. */
static int run_reload(struct mt_uploader *u)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/run.json", u->dir);
    if (stat(path, &st) != 0)
        return -1;
    if (u->run && st.st_ino == u->run_st.st_ino && st.st_size == u->run_st.st_size &&
        st.st_mtim.tv_sec == u->run_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == u->run_st.st_mtim.tv_nsec)
        return 0;
    char *txt = read_file(path, NULL);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return u->run ? 0 : -1; /* being replaced: keep the last good one */
    }
    cJSON_Delete(u->run);
    u->run = j;
    u->run_st = st;
    defs_free(u);
    const cJSON *m;
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(j, "metrics");
    size_t n = (size_t)cJSON_GetArraySize(metrics);
    u->defs = calloc(n ? n : 1, sizeof(*u->defs));
    cJSON_ArrayForEach(m, metrics)
    {
        const cJSON *ax = cJSON_GetObjectItemCaseSensitive(m, "step_metric");
        if (!u->defs || !cJSON_IsString(ax) || !m->string)
            continue;
        u->defs[u->ndefs].name = strdup(m->string);
        u->defs[u->ndefs].axis = strdup(ax->valuestring);
        u->ndefs++;
    }
    const cJSON *globs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "code"),
        "ignore_globs");
    n = (size_t)cJSON_GetArraySize(globs);
    u->ignore = calloc(n ? n : 1, sizeof(char *));
    cJSON_ArrayForEach(m, globs)
    {
        if (u->ignore && cJSON_IsString(m))
            u->ignore[u->nignore++] = strdup(m->valuestring);
    }
    return 1;
}

static const char *axis_of(const struct mt_uploader *u, const char *key)
{
    for (size_t i = 0; i < u->ndefs; i++) {
        const char *n = u->defs[i].name;
        size_t len = strlen(n);
        if (len && n[len - 1] == '*' ? strncmp(n, key, len - 1) == 0 : strcmp(n, key) == 0)
            return u->defs[i].axis;
    }
    return NULL;
}

/* ---- reading the store ---- */

static int value_of(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "NaN") == 0)
            *out = NAN;
        else if (strcmp(v->valuestring, "Infinity") == 0)
            *out = INFINITY;
        else if (strcmp(v->valuestring, "-Infinity") == 0)
            *out = -INFINITY;
        else
            return 0;
        return 1;
    }
    return 0;
}

static void axes_set(struct axes *a, const char *name, double v)
{
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->name[i], name) == 0) {
            a->val[i] = v;
            return;
        }
    }
    if (a->n < AXES_MAX) {
        snprintf(a->name[a->n], sizeof(a->name[0]), "%s", name);
        a->val[a->n++] = v;
    }
}

static int axes_get(const struct axes *a, const char *name, double *v)
{
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->name[i], name) == 0) {
            *v = a->val[i];
            return 1;
        }
    }
    return 0;
}

/* Turns one row into points.  Returns how many (<= max). */
static size_t row_points(struct mt_uploader *u, int sys, const char *line, size_t len,
                         long long lineno, struct axes *ax, struct mt_upload_point *out,
                         size_t max)
{
    cJSON *j = cJSON_ParseWithLength(line, len);
    size_t n = 0;
    if (!cJSON_IsObject(j)) {
        u->skipped_lines++;
        goto out;
    }
    double ts = num(j, "_timestamp", 0);
    int64_t ts_ms = llround(ts * 1000.0);
    int64_t step = sys ? lineno : (int64_t)llround(num(j, "_step", (double)lineno));
    const cJSON *it;
    if (!sys) {
        /* A metric new to us: run.json gets its step_metric before its first
         * row is written, maybe after we last read run.json. */
        const cJSON *axes = cJSON_GetObjectItemCaseSensitive(u->run, "axes"), *a;
        cJSON_ArrayForEach(it, j) {
            int known = !it->string || it->string[0] == '_' || axis_of(u, it->string);
            cJSON_ArrayForEach(a, axes)
                known |= cJSON_IsString(a) && strcmp(a->valuestring, it->string) == 0;
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(u->run, "metrics"), it->string);
            known |= m != NULL; /* a metric run.json knows, plotted against _step */
            if (!known) {
                if (run_reload(u) == 1)
                    u->run_stale = 1;
                break;
            }
        }
        /* the axes this row sets apply to its own metrics */
        for (size_t i = 0; i < u->ndefs; i++) {
            double v;
            if (value_of(cJSON_GetObjectItemCaseSensitive(j, u->defs[i].axis), &v) && isfinite(v))
                axes_set(ax, u->defs[i].axis, v);
        }
    }
    cJSON_ArrayForEach(it, j)
    {
        double v, scale = 1;
        if (!it->string || it->string[0] == '_' || !value_of(it, &v))
            continue;
        if (n == max) {
            u->skipped_points++;
            continue;
        }
        struct mt_upload_point *p = &out[n];
        if (u->be_ops->map_key(it->string, sys, p->key, sizeof(p->key), &scale) != 0)
            continue;
        p->value = v * scale;
        p->ts_ms = ts_ms;
        p->step = step;
        if (!sys) {
            const char *axis = axis_of(u, it->string);
            double av;
            if (axis && axes_get(ax, axis, &av))
                p->step = (int64_t)llround(av);
        }
        n++;
    }
out:
    cJSON_Delete(j);
    return n;
}

/* Called for each point; returns 0 to take it, 1 to stop before it. */
typedef int (*emit_fn)(void *ctx, const struct mt_upload_point *p);

/* Reads complete rows of one file from *pos, up to `limit` (NULL: the end),
 * handing points to emit.  Returns 1 when emit stopped it, 0 at the end, <0 on error. */
static int read_rows(struct mt_uploader *u, int sys, struct rpos *pos, struct axes *ax,
                     const struct rpos *limit, emit_fn emit, void *ctx)
{
    char path[4200];
    int result = 0;
    snprintf(path, sizeof(path), "%s/%s", u->dir, sys ? "system.jsonl" : "history.jsonl");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct mt_upload_point *rowpts = u->rowpts;
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    size_t have = 0;
    long long base = pos->off; /* file offset of buf[0] */
    for (;;) {
        if (limit && pos->off >= limit->off && (pos->off > limit->off || limit->skip == 0))
            break;
        char *nl = have ? memchr(u->buf + (pos->off - base), '\n', have - (size_t)(pos->off - base))
                        : NULL;
        if (!nl) {
            /* refill: keep the partial line */
            size_t keep = have - (size_t)(pos->off - base);
            memmove(u->buf, u->buf + (pos->off - base), keep);
            base = pos->off;
            have = keep;
            if (have == u->bufcap) {
                if (u->bufcap >= LINE_MAX_BYTES) {
                    /* skip this over-long line */
                    u->skipped_lines++;
                    char c;
                    long long o = base + (long long)have;
                    ssize_t r;
                    while ((r = pread(fd, &c, 1, o)) == 1 && c != '\n')
                        o++;
                    if (r != 1)
                        break; /* still torn */
                    pos->off = o + 1;
                    pos->skip = 0;
                    pos->line++;
                    have = 0;
                    base = pos->off;
                    continue;
                }
                char *nb = realloc(u->buf, u->bufcap * 2);
                if (!nb) {
                    result = -ENOMEM;
                    break;
                }
                u->buf = nb;
                u->bufcap *= 2;
            }
            ssize_t r = pread(fd, u->buf + have, u->bufcap - have, base + (long long)have);
            if (r < 0) {
                result = -errno;
                break;
            }
            if (r == 0)
                break; /* torn or no more lines */
            have += (size_t)r;
            continue;
        }
        char *line = u->buf + (pos->off - base);
        size_t len = (size_t)(nl - line);
        size_t n = row_points(u, sys, line, len, pos->line, ax, rowpts, ROW_POINTS_MAX);
        unsigned stop_at = (unsigned)n;
        if (limit && pos->off == limit->off && limit->skip < stop_at)
            stop_at = limit->skip;
        for (unsigned k = pos->skip; k < stop_at; k++) {
            if (emit(ctx, &rowpts[k])) {
                pos->skip = k;
                result = 1;
                goto out;
            }
        }
        if (stop_at < n) {
            pos->skip = stop_at;
            break; /* reached the limit inside this row */
        }
        pos->off += (long long)len + 1;
        pos->skip = 0;
        pos->line++;
    }
out:
    close(fd);
    return result;
}

static int emit_batch(void *ctx, const struct mt_upload_point *p)
{
    struct mt_uploader *u = ctx;
    if (u->nbatch >= u->cap)
        return 1;
    u->batch[u->nbatch++] = *p;
    return 0;
}

/* Grows the batch from the read position.  Returns <0 on a read error. */
static int fill_batch(struct mt_uploader *u)
{
    if (u->frozen || u->nbatch >= u->cap)
        return 0;
    int r1 = read_rows(u, 0, &u->hpos, &u->ax, NULL, emit_batch, u);
    if (r1 < 0)
        return r1;
    int r2 = r1 == 1 ? 1 : read_rows(u, 1, &u->spos, &u->ax, NULL, emit_batch, u);
    if (r2 < 0)
        return r2;
    u->eof = r1 == 0 && r2 == 0;
    return 0;
}

/* count_prior: one pass over the store before the batch. */
struct prior_ctx {
    const struct mt_upload_point *pts;
    size_t n;
    size_t *order; /* indexes of pts, sorted */
    unsigned *prior;
};

static int pt_cmp(const struct mt_upload_point *a, const struct mt_upload_point *b)
{
    int c = strcmp(a->key, b->key);
    if (c)
        return c;
    if (a->ts_ms != b->ts_ms)
        return a->ts_ms < b->ts_ms ? -1 : 1;
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    int an = isnan(a->value), bn = isnan(b->value);
    if (an || bn)
        return an - bn;
    return a->value < b->value ? -1 : a->value > b->value;
}

static int idx_cmp(const void *x, const void *y, void *base)
{
    const struct mt_upload_point *pts = base;
    return pt_cmp(&pts[*(const size_t *)x], &pts[*(const size_t *)y]);
}

static int emit_prior(void *ctx, const struct mt_upload_point *p)
{
    struct prior_ctx *c = ctx;
    size_t lo = 0, hi = c->n;
    while (lo < hi) { /* first index >= p */
        size_t mid = (lo + hi) / 2;
        if (pt_cmp(&c->pts[c->order[mid]], p) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < c->n && pt_cmp(&c->pts[c->order[i]], p) == 0; i++)
        c->prior[c->order[i]]++;
    return 0;
}

static int io_count_prior(void *ctx, const struct mt_upload_point *pts, size_t n, unsigned *prior)
{
    struct mt_uploader *u = ctx;
    struct prior_ctx c = {pts, n, calloc(n ? n : 1, sizeof(size_t)), prior};
    int result = 0;
    if (!c.order)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        c.order[i] = i;
        prior[i] = 0;
    }
    qsort_r(c.order, n, sizeof(size_t), idx_cmp, (void *)pts);
    struct rpos h = {0, 0, 0}, s = {0, 0, 0};
    struct axes ax;
    memset(&ax, 0, sizeof(ax));
    if ((result = read_rows(u, 0, &h, &ax, &u->hstart, emit_prior, &c)) < 0)
        goto out;
    result = read_rows(u, 1, &s, &ax, &u->sstart, emit_prior, &c);
out:
    free(c.order);
    return result < 0 ? result : 0;
}

/* ---- one step of work ---- */

static void fmt_param(const cJSON *v, char *out, size_t outsz)
{
    if (cJSON_IsString(v)) {
        snprintf(out, outsz, "%s", v->valuestring);
    } else if (cJSON_IsBool(v)) {
        snprintf(out, outsz, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, outsz, "%.*g", prec, d);
            if (strtod(out, NULL) == d)
                break;
        }
    } else {
        char *t = cJSON_PrintUnformatted(v);
        snprintf(out, outsz, "%s", t ? t : "");
        free(t);
    }
}

/* Sends the key/values of `want` that differ from `sent` (a cursor object). */
static enum mt_upload_result send_kvs(struct mt_uploader *u, cJSON *want, cJSON *sent, int params)
{
    size_t max = params ? u->be_ops->max_params : u->be_ops->max_tags;
    struct mt_upload_kv kv[128];
    size_t n = 0;
    if (max > 128)
        max = 128;
    enum mt_upload_result res = MT_UPLOAD_OK;
    cJSON *it = want ? want->child : NULL;
    for (;;) {
        for (; it && n < max; it = it->next) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(sent, it->string);
            if (cJSON_IsString(s) && strcmp(s->valuestring, it->valuestring) == 0)
                continue;
            kv[n].key = it->string;
            kv[n].value = it->valuestring;
            n++;
        }
        if (!n)
            break;
        res = params ? u->be_ops->send_params(u->be, kv, n) : u->be_ops->send_tags(u->be, kv, n);
        if (res != MT_UPLOAD_OK)
            break;
        for (size_t i = 0; i < n; i++)
            set_str(sent, kv[i].key, kv[i].value);
        n = 0;
    }
    return res;
}

static enum mt_upload_result send_meta(struct mt_uploader *u)
{
    cJSON *params = cJSON_CreateObject();
    cJSON *tags = cJSON_CreateObject();
    cJSON *sentp = obj(u->cursor, "params");
    const cJSON *it;
    size_t vmax = u->o.param_value_max ? u->o.param_value_max : 6000;
    char *val = malloc(65536);
    enum mt_upload_result res = MT_UPLOAD_RETRY;
    if (!params || !tags || !val)
        goto out;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(u->run, "config"))
    {
        char key[MT_UPLOAD_KEY_MAX];
        double scale;
        if (!it->string || u->be_ops->map_key(it->string, 0, key, sizeof(key), &scale) != 0)
            continue;
        fmt_param(it, val, 65536);
        if (strlen(val) > vmax) {
            val[vmax] = '\0';
            if (!cJSON_GetObjectItemCaseSensitive(sentp, key)) {
                char f[600];
                snprintf(f, sizeof(f), "\"kind\":\"param\",\"key\":\"%s\",\"limit\":%zu", key,
                         vmax);
                io_event(u, "upload_truncated", f);
            }
        }
        cJSON_DeleteItemFromObjectCaseSensitive(params, key);
        cJSON_AddStringToObject(params, key, val);
    }
    u->be_ops->run_tags(u->run, tags);
    res = send_kvs(u, params, sentp, 1);
    if (res == MT_UPLOAD_OK)
        res = send_kvs(u, tags, obj(u->cursor, "tags"), 0);
out:
    free(val);
    cJSON_Delete(params);
    cJSON_Delete(tags);
    return res;
}

static int ignored(const struct mt_uploader *u, const char *name)
{
    for (size_t i = 0; i < u->nignore; i++)
        if (fnmatch(u->ignore[i], name, 0) == 0)
            return 1;
    return 0;
}

static enum mt_upload_result send_artifacts(struct mt_uploader *u)
{
    static const char *const names[] = {"output.log", "crash.txt", "diff.patch", "run.json"};
    cJSON *sent = obj(u->cursor, "artifacts");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", u->dir, names[i]);
        if (stat(path, &st) != 0 || ignored(u, names[i]))
            continue;
        double mt = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
        cJSON *s = cJSON_GetObjectItemCaseSensitive(sent, names[i]);
        if (s && num(s, "size", -1) == (double)st.st_size && num(s, "mtime", -1) == mt)
            continue;
        enum mt_upload_result res = u->be_ops->put_file(u->be, names[i], path);
        if (res == MT_UPLOAD_RETRY)
            return res;
        /* DROP: reported by the backend; do not try this version again */
        cJSON_DeleteItemFromObjectCaseSensitive(sent, names[i]);
        s = cJSON_AddObjectToObject(sent, names[i]);
        cJSON_AddNumberToObject(s, "size", (double)st.st_size);
        cJSON_AddNumberToObject(s, "mtime", mt);
        if (res == MT_UPLOAD_DROP)
            cJSON_AddBoolToObject(s, "dropped", 1);
    }
    return MT_UPLOAD_OK;
}

static const char *run_state(const struct mt_uploader *u)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(u->run, "state");
    return cJSON_IsString(s) ? s->valuestring : "running";
}

static enum step_status on_result(struct mt_uploader *u, enum mt_upload_result res)
{
    if (res == MT_UPLOAD_OK) {
        u->attempt = 0;
        return ST_PROGRESS;
    }
    if (res == MT_UPLOAD_DROP) {
        msg(u, "upload: %s refused the run %s; it stays in the store (see events.jsonl)",
            u->be_ops->name, u->dir);
        return ST_STOPPED;
    }
    double ra = u->be_ops->retry_after ? u->be_ops->retry_after(u->be) : 0;
    double d = mt_upload__backoff(u->attempt, u->o.backoff_base_s, u->o.backoff_max_s, ra,
                                  rand01(u));
    if (u->attempt < 64)
        u->attempt++;
    u->stats.retries++;
    u->next_try_ms = now_ms() + (int64_t)(d * 1000);
    return ST_WAIT;
}

/* Does one unit of work.  final: send without waiting for the interval and,
 * once everything is sent, set the state and upload the artifacts. */
static enum step_status step(struct mt_uploader *u, int final)
{
    enum mt_upload_result res;
    int changed = run_reload(u);
    if (u->run_stale) {
        u->run_stale = 0;
        changed = 1;
    }
    if (changed < 0)
        return ST_IDLE; /* no run.json yet */
    if (!u->opened) {
        res = u->be_ops->open_run(u->be, u->run, obj(u->cursor, "backend"));
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        u->opened = 1;
        changed = 1;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(u->cursor, "state");
        if (!cJSON_IsString(st))
            set_str(u->cursor, "state", "running"); /* runs/create made it RUNNING */
        cursor_save(u);
    }
    if (changed) {
        res = send_meta(u);
        if (res != MT_UPLOAD_OK) {
            u->run_st.st_size = -1; /* try the meta again next time */
            cursor_save(u);
            return on_result(u, res);
        }
        cursor_save(u);
    }
    const char *state = run_state(u);
    const cJSON *sent_state = cJSON_GetObjectItemCaseSensitive(u->cursor, "state");
    /* A resumed run: back to RUNNING before new points. */
    if (strcmp(state, "running") == 0 && cJSON_IsString(sent_state) &&
        strcmp(sent_state->valuestring, "running") != 0) {
        res = u->be_ops->set_state(u->be, "running", -1);
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        set_str(u->cursor, "state", "running");
        cursor_save(u);
    }
    if (fill_batch(u) < 0)
        return ST_WAIT;
    if (u->nbatch) {
        int64_t now = now_ms();
        if (!final && u->nbatch < u->cap && !u->frozen &&
            now - u->last_send_ms < (int64_t)(u->o.interval_s * 1000))
            return ST_IDLE;
        u->frozen = 1;
        res = u->be_ops->send_points(u->be, u->batch, u->nbatch);
        u->last_send_ms = now_ms();
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        u->hstart = u->hpos;
        u->sstart = u->spos;
        u->axstart = u->ax;
        u->nbatch = 0;
        u->frozen = 0;
        cursor_save(u);
        return on_result(u, res);
    }
    if (!final || !u->eof || strcmp(state, "running") == 0)
        return ST_IDLE;
    /* everything sent: the end of the run */
    if (!cJSON_IsString(sent_state) || strcmp(sent_state->valuestring, state) != 0) {
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(u->run, "end_time");
        res = u->be_ops->set_state(u->be, state, cJSON_IsNumber(et) ? et->valuedouble : -1);
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        set_str(u->cursor, "state", state);
        cursor_save(u);
    }
    res = send_artifacts(u);
    cursor_save(u);
    if (res != MT_UPLOAD_OK)
        return on_result(u, res);
    return ST_IDLE;
}

/* ---- create / destroy ---- */

static void uploader_destroy(struct mt_uploader *u)
{
    if (!u)
        return;
    if (u->be)
        u->be_ops->destroy(u->be);
    if (u->lock_fd >= 0)
        close(u->lock_fd);
    cJSON_Delete(u->cursor);
    cJSON_Delete(u->run);
    defs_free(u);
    free(u->batch);
    free(u->rowpts);
    free(u->buf);
    free(u->dir);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u);
}

static int try_lock(struct mt_uploader *u)
{
    if (u->lock_fd < 0)
        u->lock_fd = open(u->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (u->lock_fd < 0)
        return -errno;
    if (flock(u->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return -errno;
    return 0;
}

static struct mt_uploader *uploader_create(const char *run_dir, const struct mt_upload_opts *o,
                                           char *err, size_t errsz)
{
    struct mt_uploader *u = calloc(1, sizeof(*u));
    int result = -1;
    if (!u) {
        snprintf(err, errsz, "upload: out of memory");
        return NULL;
    }
    u->lock_fd = -1;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    u->o = *o;
    u->be_ops = o->backend_ops ? o->backend_ops : find_backend(o->backend);
    if (!u->be_ops) {
        snprintf(err, errsz, "upload: backend \"%s\" is unknown; allowed: mlflow", o->backend);
        goto out;
    }
    u->dir = strdup(run_dir);
    u->cap = o->batch_max && o->batch_max < u->be_ops->max_points ? o->batch_max
                                                                 : u->be_ops->max_points;
    u->batch = calloc(u->cap, sizeof(*u->batch));
    u->rowpts = calloc(ROW_POINTS_MAX, sizeof(*u->rowpts));
    u->bufcap = 1 << 16;
    u->buf = malloc(u->bufcap);
    if (!u->dir || !u->batch || !u->rowpts || !u->buf) {
        snprintf(err, errsz, "upload: out of memory");
        goto out;
    }
    char updir[4200], why[1024];
    snprintf(updir, sizeof(updir), "%s/upload", run_dir);
    /* The run directory and upload/ are checked (ours, not open to others,
     * no link) before any cursor in them is read or written. */
    int cfd = mt_safefs_open_dir(run_dir, 0, why, sizeof why);
    if (cfd >= 0) {
        close(cfd);
        cfd = mt_safefs_open_dir(updir, MT_SAFEFS_CREATE, why, sizeof why);
    }
    if (cfd < 0) {
        snprintf(err, errsz, "upload: refusing %s: %s", updir, why);
        goto out;
    }
    close(cfd);
    snprintf(u->cursor_path, sizeof(u->cursor_path), "%s/%s.json", updir, u->be_ops->name);
    snprintf(u->lock_path, sizeof(u->lock_path), "%s/%s.lock", updir, u->be_ops->name);
    char *txt = read_file(u->cursor_path, NULL);
    u->cursor = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!cJSON_IsObject(u->cursor)) {
        cJSON_Delete(u->cursor);
        u->cursor = cJSON_CreateObject();
        cJSON_AddNumberToObject(u->cursor, "version", 1);
    }
    pos_load(u->cursor, "history", &u->hstart);
    pos_load(u->cursor, "system", &u->sstart);
    axes_load(u->cursor, &u->axstart);
    u->hpos = u->hstart;
    u->spos = u->sstart;
    u->ax = u->axstart;
    u->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)u;
    if (!u->rng)
        u->rng = 88172645463325252ULL;
    u->io.ctx = u;
    u->io.event = io_event;
    u->io.count_prior = io_count_prior;
    u->io.deadline_ms = &u->deadline_ms;
    u->io.stats = &u->stats;
    u->be = u->be_ops->create(&u->o, &u->io, err, errsz);
    if (!u->be)
        goto out;
    result = 0;
out:
    if (result) {
        uploader_destroy(u);
        u = NULL;
    }
    return u;
}

/* ---- the final phase, shared by finish and sync ---- */

/* Returns 0: all sent; 1: left pending; -1: stopped by a refusal. */
static int drain(struct mt_uploader *u, int64_t deadline)
{
    for (;;) {
        int64_t now = now_ms();
        if (now >= deadline)
            return 1;
        if (u->next_try_ms > now) {
            int64_t until = u->next_try_ms < deadline ? u->next_try_ms : deadline;
            pthread_mutex_lock(&u->mu);
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t wait = until - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&u->cv, &u->mu, &ts);
            pthread_mutex_unlock(&u->mu);
            continue;
        }
        enum step_status s = step(u, 1);
        if (s == ST_STOPPED)
            return -1;
        if (s == ST_IDLE)
            return strcmp(run_state(u), "running") == 0 && u->nbatch ? 1 : 0;
    }
}

/* ---- the thread ---- */

static void *thread_main(void *arg)
{
    struct mt_uploader *u = arg;
    int stopped = 0;
    pthread_mutex_lock(&u->mu);
    while (!u->finishing) {
        pthread_mutex_unlock(&u->mu);
        enum step_status s = ST_IDLE;
        if (!stopped && try_lock(u) == 0) {
            if (u->next_try_ms <= now_ms())
                s = step(u, 0);
            if (s == ST_STOPPED)
                stopped = 1;
        }
        pthread_mutex_lock(&u->mu);
        if (u->finishing)
            break;
        if (s == ST_PROGRESS || (u->notified && u->nbatch >= u->cap)) {
            u->notified = 0;
            continue;
        }
        int64_t wait = (int64_t)(u->o.interval_s * 1000);
        if (wait < 10)
            wait = 10;
        int64_t now = now_ms();
        if (s == ST_WAIT && u->next_try_ms > now)
            wait = u->next_try_ms - now;
        else if (u->nbatch && u->last_send_ms + wait > now)
            wait = u->last_send_ms + wait - now;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (!u->notified && !u->finishing)
            pthread_cond_timedwait(&u->cv, &u->mu, &ts);
        u->notified = 0;
    }
    int64_t deadline = u->deadline_ms;
    pthread_mutex_unlock(&u->mu);
    if (stopped)
        u->result = 1;
    else if (try_lock(u) != 0)
        u->result = 1;
    else {
        /* A retry scheduled during the run: the end of the run is a good
         * moment to try again at once. */
        u->next_try_ms = 0;
        int r = drain(u, deadline);
        u->result = r == 0 ? 0 : 1;
    }
    cursor_save(u);
    return NULL;
}

struct mt_uploader *mt_uploader_start(const char *run_dir, const struct mt_upload_opts *o,
                                      char *err, size_t errsz)
{
    struct mt_uploader *u = uploader_create(run_dir, o, err, errsz);
    if (!u)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&u->cv);
    pthread_cond_init(&u->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&u->thread, NULL, thread_main, u) != 0) {
        snprintf(err, errsz, "upload: cannot start a thread: %s", strerror(errno));
        uploader_destroy(u);
        return NULL;
    }
    u->thread_started = 1;
    return u;
}

void mt_uploader_notify(struct mt_uploader *u)
{
    if (!u)
        return;
    pthread_mutex_lock(&u->mu);
    u->notified = 1;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

int mt_uploader_finish(struct mt_uploader *u, double timeout_s)
{
    if (!u)
        return 0;
    if (timeout_s < 0)
        timeout_s = u->o.finish_timeout_s;
    pthread_mutex_lock(&u->mu);
    u->deadline_ms = now_ms() + (int64_t)(timeout_s * 1000);
    u->finishing = 1;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
    if (u->thread_started)
        pthread_join(u->thread, NULL);
    int r = u->result;
    if (r)
        msg(u, "upload: not everything reached %s in %.0f s; `metrictap sync` sends the rest",
            u->be_ops->name, timeout_s);
    uploader_destroy(u);
    return r;
}

void mt_uploader_get_stats(struct mt_uploader *u, struct mt_upload_stats *st)
{
    *st = u->stats;
}

int mt_upload_sync_run(const char *run_dir, const struct mt_upload_opts *o, char *err,
                       size_t errsz)
{
    int result = 0;
    char rj[4200];
    struct stat st;
    snprintf(rj, sizeof(rj), "%s/run.json", run_dir);
    if (stat(rj, &st) != 0) {
        snprintf(err, errsz, "%s: not a run directory (no run.json)", run_dir);
        return -ENOENT;
    }
    struct mt_uploader *u = uploader_create(run_dir, o, err, errsz);
    if (!u)
        return -EINVAL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&u->cv);
    pthread_cond_init(&u->cv, &ca);
    pthread_condattr_destroy(&ca);
    int lr = try_lock(u);
    if (lr != 0) {
        snprintf(err, errsz, "%s: being uploaded by its agent (upload lock held)", run_dir);
        result = lr == -EWOULDBLOCK ? -EBUSY : lr;
        goto out;
    }
    u->deadline_ms = now_ms() + (int64_t)(o->sync_timeout_s * 1000);
    int r = drain(u, u->deadline_ms);
    if (r == -1) {
        snprintf(err, errsz, "%s: refused by %s (see its events.jsonl)", run_dir, u->be_ops->name);
        result = 1;
    } else if (r == 1) {
        snprintf(err, errsz, "%s: not everything was sent within %.0f s", run_dir,
                 o->sync_timeout_s);
        result = 1;
    } else {
        snprintf(err, errsz, "%s: %llu points sent (%llu already there), %llu requests", run_dir,
                 u->stats.points_sent, u->stats.points_verified_present, u->stats.requests);
    }
    cursor_save(u);
out:
    uploader_destroy(u);
    return result;
}
