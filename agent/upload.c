/* The uploader: tails one run of the store from its cursor, batches, hands
 * the batches to a backend, retries with capped exponential backoff and full
 * jitter (honouring Retry-After), and saves the cursor after each step so
 * that `metrictap sync` resumes exactly where the agent stopped.
 *
 * Cursor (upload/<backend>.json, written temp + fsync + rename):
 *   {"version":2,
 *    "history":{"offset":N,"skip":K,"line":L}, "system":{...},
 *    "axes":{"epoch":3},               last value of each step axis seen
 *    "fractional_axes":["epoch"],      axes that cannot be an integer step
 *    "output":{"offset":N},            output.log handed over so far
 *    "artifacts":{"output.log":{"size":S,"mtime_s":S,"mtime_ns":N}},
 *    "state":"finished", "backend":{...the backend's own state...},
 *    "target":"http://host:5000 experiment mnist",   where all this was sent
 *    "others":{"<target>":{...the same for another target...}}}
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
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../common/mt_json.h"
#include "../common/mt_safefs.h"
#include "mt_upload.h"
#include "mt_upload_backend.h"
#include "upload_internal.h"
#include "backends/mt_state_json.h"

enum step_status { ST_IDLE, ST_PROGRESS, ST_WAIT, ST_STOPPED };

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
    /* A backend that says no more than its events (no last_error): the
     * message of its last refusal or write error is the cause. */
    if (strcmp(name, "upload_refused") == 0 || strcmp(name, "upload_write_error") == 0) {
        size_t on = strlen(fields ? fields : "") + 3;
        char *obj_txt = malloc(on);
        if (obj_txt) {
            snprintf(obj_txt, on, "{%s}", fields ? fields : "");
            cJSON *f = cJSON_Parse(obj_txt);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(f, "message");
            if (cJSON_IsString(m))
                snprintf(u->event_cause, sizeof(u->event_cause), "%s", m->valuestring);
            cJSON_Delete(f);
            free(obj_txt);
        }
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)len) != len) {
            /* the store's disk is full: nothing better to do */
        }
        close(fd);
    }
    free(line);
}

/* Appends an upload_error event: the cause in words, and `extra` fields. */
static void event_error(struct mt_uploader *u, const char *message, const char *extra)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "message", message);
    cJSON_AddStringToObject(m, "cause", u->cause[0] ? u->cause : "no answer in time");
    char *q = m ? cJSON_PrintUnformatted(m) : NULL;
    cJSON_Delete(m);
    if (!q)
        return;
    size_t n = strlen(q) + (extra ? strlen(extra) : 0) + 32;
    char *f = malloc(n);
    if (f) { /* the object's inside, then the extra fields */
        q[strlen(q) - 1] = '\0';
        snprintf(f, n, "%s%s%s", q + 1, extra && *extra ? "," : "", extra ? extra : "");
        io_event(u, "upload_error", f);
    }
    free(f);
    free(q);
}

/* Everything reached the backend: an upload_complete event, which also
 * tells `ls` and `show` that earlier failures are over.  Not when nothing
 * had to be done (a sync of a run sent long ago). */
static void event_complete(struct mt_uploader *u)
{
    if (!u->stats.requests && !u->cause[0])
        return;
    char f[200];
    snprintf(f, sizeof(f), "\"points\":%llu,\"requests\":%llu", u->stats.points_sent,
             u->stats.requests);
    io_event(u, "upload_complete", f);
}

static void live_update(struct mt_uploader *u, int failed)
{
    struct mt_upload_live *l = u->o.live;
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->points_sent = u->stats.points_sent;
    l->points_present = u->stats.points_verified_present;
    if (failed) {
        l->failures++;
        snprintf(l->cause, sizeof(l->cause), "%s", u->cause);
    }
    pthread_mutex_unlock(&l->mu);
}

/* A step failed: keep its cause, and tell events.jsonl when the uploader
 * starts failing or the cause changes (at most every 10 s, so that a path
 * that fails now and then does not fill the file). */
static void note_failure(struct mt_uploader *u, enum mt_upload_result res)
{
    const char *c = u->be_ops->last_error ? u->be_ops->last_error(u->be) : NULL;
    if (!c || !*c)
        c = u->event_cause;
    snprintf(u->cause, sizeof(u->cause), "%s", *c ? c : "failed");
    int64_t now = now_ms();
    int tell = res == MT_UPLOAD_RETRY &&
               (!u->failing ? now - u->cause_told_ms >= 10000 || !u->cause_told_ms
                            : strcmp(u->cause, u->cause_told) != 0 &&
                                  now - u->cause_told_ms >= 10000);
    if (tell) {
        event_error(u, u->cause, "\"retrying\":true");
        snprintf(u->cause_told, sizeof(u->cause_told), "%s", u->cause);
        u->cause_told_ms = now;
    }
    u->failing = 1;
    live_update(u, 1);
}

static void io_progress(void *ctx)
{
    ((struct mt_uploader *)ctx)->attempt = 0;
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
    for (size_t i = 0; i < u->naxis_names; i++)
        free(u->axis_names[i]);
    free(u->axis_names);
    u->axis_names = NULL;
    u->naxis_names = 0;
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
    char *txt = mt_upload__read_file(path, NULL);
    /* Numbers keep the text they were printed with (config values). */
    cJSON *j = txt ? mt_json_parse_literal(txt) : NULL;
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
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(j, "axes");
    n = (size_t)cJSON_GetArraySize(axes);
    u->axis_names = calloc(n ? n : 1, sizeof(char *));
    cJSON_ArrayForEach(m, axes)
    {
        if (u->axis_names && cJSON_IsString(m))
            u->axis_names[u->naxis_names++] = strdup(m->valuestring);
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

static const char *run_state(const struct mt_uploader *u)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(u->run, "state");
    return cJSON_IsString(s) ? s->valuestring : "running";
}

/* The run's name changes once when the trainer is known (sh -c './train |
 * tee log' starts as "sh"): a backend that names a directory after it waits
 * for that, for the end of the run, or for 10 s without a metric. */
static int name_settled(const struct mt_uploader *u, int final)
{
    if (final || strcmp(run_state(u), "running") != 0 ||
        cJSON_IsString(cJSON_GetObjectItemCaseSensitive(u->run, "trainer_command")))
        return 1;
    const cJSON *be = cJSON_GetObjectItemCaseSensitive(u->cursor, "backend");
    if (cJSON_GetObjectItemCaseSensitive(be, "dir"))
        return 1; /* opened before: keep its files */
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(u->run, "start_time");
    return !cJSON_IsNumber(st) || (double)time(NULL) - st->valuedouble > 10;
}

static enum step_status on_result(struct mt_uploader *u, enum mt_upload_result res)
{
    if (res == MT_UPLOAD_OK) {
        u->attempt = 0;
        u->failing = 0;
        live_update(u, 0);
        return ST_PROGRESS;
    }
    note_failure(u, res);
    if (res == MT_UPLOAD_DROP) {
        msg(u, "upload: %s refused the run %s (%s); it stays in the store (see events.jsonl)",
            u->be_ops->name, u->dir, u->cause);
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

static enum mt_upload_result send_batch(struct mt_uploader *u)
{
    if (u->be_ops->whole_rows)
        return u->be_ops->send_rows(u->be, u->rows, u->nbatch);
    return u->be_ops->send_points(u->be, u->batch, u->nbatch);
}

/* Does one unit of work.  final: send without waiting for the interval and,
 * once everything is sent, set the state and upload the artifacts. */
static enum step_status step(struct mt_uploader *u, int final)
{
    enum mt_upload_result res;
    int changed = run_reload(u);
    if (changed < 0)
        return ST_IDLE; /* no run.json yet */
    if (!u->opened) {
        if (u->be_ops->named_by_run && !name_settled(u, final))
            return ST_IDLE;
        res = u->be_ops->open_run(u->be, u->run, mt_sj_obj(u->cursor, "backend"));
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        u->opened = 1;
        changed = 1;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(u->cursor, "state");
        if (!cJSON_IsString(st))
            mt_sj_set_str(u->cursor, "state", "running"); /* open_run made it running */
        mt_upload__cursor_save(u);
    }
    if (changed) {
        res = u->be_ops->update_run(u->be, u->run);
        if (res != MT_UPLOAD_OK) {
            u->run_st.st_size = -1; /* try the meta again next time */
            mt_upload__cursor_save(u);
            return on_result(u, res);
        }
        mt_upload__cursor_save(u);
    }
    const char *state = run_state(u);
    const cJSON *sent_state = cJSON_GetObjectItemCaseSensitive(u->cursor, "state");
    /* A resumed run: back to running before new points. */
    if (strcmp(state, "running") == 0 && cJSON_IsString(sent_state) &&
        strcmp(sent_state->valuestring, "running") != 0) {
        res = u->be_ops->set_state(u->be, u->run, "running");
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        mt_sj_set_str(u->cursor, "state", "running");
        mt_upload__cursor_save(u);
    }
    u->running = strcmp(state, "running") == 0;
    if (mt_upload__fill_batch(u) < 0)
        return ST_WAIT;
    if (u->nbatch) {
        int64_t now = now_ms();
        if (!final && u->nbatch < u->cap && !u->frozen &&
            now - u->last_send_ms < (int64_t)(u->o.interval_s * 1000))
            return ST_IDLE;
        u->frozen = 1;
        res = send_batch(u);
        u->last_send_ms = now_ms();
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        u->hstart = u->hpos;
        u->sstart = u->spos;
        u->axstart = u->ax;
        mt_upload__clear_batch(u);
        u->frozen = 0;
        mt_upload__cursor_save(u);
        return on_result(u, res);
    }
    /* Rows first, so that a summary or console line never runs ahead of the
     * history it follows. */
    int eof = u->eof;
    res = eof ? mt_upload__send_summary(u) : MT_UPLOAD_OK;
    if (res == MT_UPLOAD_OK && eof)
        res = mt_upload__send_output(u, final && strcmp(state, "running") != 0);
    if (res != MT_UPLOAD_OK) {
        mt_upload__cursor_save(u);
        return on_result(u, res);
    }
    if (!final || !eof || strcmp(state, "running") == 0)
        return ST_IDLE;
    /* everything sent: the end of the run */
    if (!cJSON_IsString(sent_state) || strcmp(sent_state->valuestring, state) != 0) {
        res = mt_upload__send_artifacts(u);
        mt_upload__cursor_save(u);
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        res = u->be_ops->set_state(u->be, u->run, state);
        if (res != MT_UPLOAD_OK)
            return on_result(u, res);
        mt_sj_set_str(u->cursor, "state", state);
        mt_upload__cursor_save(u);
        if (u->be_ops->finish) {
            u->be_ops->finish(u->be, u->run);
            mt_upload__cursor_save(u);
        }
        return ST_IDLE;
    }
    res = mt_upload__send_artifacts(u);
    mt_upload__cursor_save(u);
    if (res != MT_UPLOAD_OK)
        return on_result(u, res);
    if (u->be_ops->finish) {
        u->be_ops->finish(u->be, u->run);
        mt_upload__cursor_save(u);
    }
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
    mt_upload__clear_batch(u);
    free(u->batch);
    free(u->rows);
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
    u->be_ops = o->backend_ops ? o->backend_ops : mt_upload_backend_find(o->backend);
    if (!u->be_ops) {
        snprintf(err, errsz, "upload: backend \"%s\" is unknown; allowed: %s", o->backend,
                 mt_upload_backend_names());
        goto out;
    }
    u->dir = strdup(run_dir);
    /* batch_max bounds requests to a server; a file backend takes its own. */
    u->cap = o->batch_max && o->batch_max < u->be_ops->max_points && !u->be_ops->local
                 ? o->batch_max
                 : u->be_ops->max_points;
    u->bufcap = 1 << 16;
    u->buf = malloc(u->bufcap);
    if (!u->dir || mt_upload__alloc_batch(u) != 0 || !u->buf) {
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
    mt_upload__cursor_load(u);
    u->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)u;
    if (!u->rng)
        u->rng = 88172645463325252ULL;
    u->io.ctx = u;
    u->io.event = io_event;
    u->io.count_prior = mt_upload__count_prior;
    u->io.progress = io_progress;
    u->io.run_dir = u->dir;
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
    /* At the parse stage's nice (19), below the drain's: an upload only
     * follows the rows the parse stage wrote, and at the drain's nice it
     * took CPU from the program on a 2-core machine (all three backends on
     * cost a print-bound loop 1.15-1.27x). */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
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
        if (r == 0)
            event_complete(u);
        if (r == 1) {
            char m[800];
            snprintf(m, sizeof(m), "%s; not everything reached %s within %.0f s of the run's end; "
                     "`metrictap sync` sends the rest", u->cause[0] ? u->cause : "no answer in time",
                     u->be_ops->name, u->finish_timeout_s);
            event_error(u, m, "\"phase\":\"end\"");
        }
    }
    if (stopped) {
        char m[800];
        snprintf(m, sizeof(m), "%s: %s refused the run; it stays in the store", u->cause,
                 u->be_ops->name);
        event_error(u, m, "\"phase\":\"end\"");
    }
    mt_upload__cursor_save(u);
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

void mt_uploader_finish_begin(struct mt_uploader *u, double timeout_s)
{
    if (!u)
        return;
    if (timeout_s < 0)
        timeout_s = u->o.finish_timeout_s;
    pthread_mutex_lock(&u->mu);
    if (!u->finishing) {
        u->deadline_ms = now_ms() + (int64_t)(timeout_s * 1000);
        u->finish_timeout_s = timeout_s;
        u->finishing = 1;
        pthread_cond_signal(&u->cv);
    }
    pthread_mutex_unlock(&u->mu);
}

int mt_uploader_finish(struct mt_uploader *u, double timeout_s)
{
    if (!u)
        return 0;
    mt_uploader_finish_begin(u, timeout_s);
    if (u->thread_started)
        pthread_join(u->thread, NULL);
    int r = u->result;
    if (r)
        msg(u, "upload: not everything reached %s in %.0f s (%s); `metrictap sync` sends the rest",
            u->be_ops->name, u->finish_timeout_s, u->cause[0] ? u->cause : "no answer in time");
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
    u->deadline_ms = now_ms() + (int64_t)(o->sync_timeout_s * 1000);
    /* The run's agent is still sending it (running, or flushing at its
     * end): wait for it to let go, then send what it left. */
    int lr, waited = 0;
    lr = try_lock(u);
    if (lr == -EWOULDBLOCK && (run_reload(u) < 0 || strcmp(run_state(u), "running") == 0)) {
        /* still going: its agent sends it live, and will for as long as it
         * runs; nothing to wait for here */
        snprintf(err, errsz, "%s: still running; its agent uploads it as it goes", run_dir);
        result = -EBUSY;
        goto out;
    }
    while (lr == -EWOULDBLOCK && now_ms() < u->deadline_ms) {
        if (!waited && o->live) {
            pthread_mutex_lock(&o->live->mu);
            o->live->waiting_for_agent = 1;
            pthread_mutex_unlock(&o->live->mu);
        }
        waited = 1;
        usleep(200 * 1000);
        lr = try_lock(u);
    }
    if (waited && o->live) {
        pthread_mutex_lock(&o->live->mu);
        o->live->waiting_for_agent = 0;
        pthread_mutex_unlock(&o->live->mu);
    }
    if (lr != 0) {
        snprintf(err, errsz, "%s: still being uploaded by its agent after %.0f s (upload lock held)",
                 run_dir, o->sync_timeout_s);
        result = lr == -EWOULDBLOCK ? -EBUSY : lr;
        goto out;
    }
    if (waited)
        mt_upload__cursor_load(u); /* where the agent left it */
    int r = drain(u, u->deadline_ms);
    if (r == -1) {
        snprintf(err, errsz, "%s: refused by %s: %s (see its events.jsonl)", run_dir,
                 u->be_ops->name, u->cause);
        result = 1;
    } else if (r == 1) {
        snprintf(err, errsz, "%s: not everything was sent within %.0f s; last failure: %s", run_dir,
                 o->sync_timeout_s, u->cause[0] ? u->cause : "none (no answer in time)");
        char m[800];
        snprintf(m, sizeof(m), "%s; not everything was sent within %.0f s",
                 u->cause[0] ? u->cause : "no answer in time", o->sync_timeout_s);
        event_error(u, m, "\"phase\":\"sync\"");
        result = 1;
    } else {
        event_complete(u);
        snprintf(err, errsz, "%s: %llu points sent (%llu already there), %llu requests", run_dir,
                 u->stats.points_sent, u->stats.points_verified_present, u->stats.requests);
    }
    mt_upload__cursor_save(u);
out:
    uploader_destroy(u);
    return result;
}
