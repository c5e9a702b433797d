/* The agent's index writer: a thread of its own that keeps the run's row in
 * index.sqlite, so that nothing the program waits for (the agent's answer at
 * start, the run's end) waits on the index.  Another process may hold the
 * index for a long time (a `BEGIN EXCLUSIVE` in the sqlite3 shell, a big
 * reindex): the newest row is kept and retried with capped backoff, each
 * attempt waiting at most INDEX_BUSY_MS on the lock.  The run directory stays
 * the source of truth: a row that never gets in is put back from it by the
 * next `metrictap ls` (mt_index_sync). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "mt_indexer.h"

#define INDEX_BUSY_MS 250
#define BACKOFF_MIN_S 0.25
#define BACKOFF_MAX_S 5.0

/* A row and the strings it points to, owned. */
struct owned_row {
    struct mt_index_run r;
    char *s[10];
};

struct mt_indexer {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *root;
    /* under mu */
    struct owned_row pending; /* the newest row not yet in the index */
    int have_pending, stop, busy; /* busy: the thread is putting a row */
    unsigned long posted, written, failures;
    char error[512];  /* the last failure, "" once a put succeeded */
    char notice[800]; /* a repair the index open made, not yet reported */
};

static char *dup_or_null(const char *s)
{
    return s ? mt_xstrdup(s) : NULL;
}

static void row_free(struct owned_row *o)
{
    for (size_t i = 0; i < sizeof o->s / sizeof *o->s; i++)
        free(o->s[i]);
    memset(o, 0, sizeof *o);
}

static void row_copy(struct owned_row *o, const struct mt_index_run *r)
{
    row_free(o);
    o->r = *r;
    const char *src[10] = { r->id,   r->project, r->name,        r->group,         r->job_type,
                            r->state, r->dir,    r->tags,        r->config_json,   r->summary_json };
    const char **dst[10] = { &o->r.id,   &o->r.project, &o->r.name, &o->r.group,
                             &o->r.job_type, &o->r.state, &o->r.dir, &o->r.tags,
                             &o->r.config_json, &o->r.summary_json };
    for (int i = 0; i < 10; i++) {
        o->s[i] = dup_or_null(src[i]);
        *dst[i] = o->s[i];
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_until(struct mt_indexer *x, double until)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double left = until - now_s();
    if (left <= 0)
        return;
    ts.tv_sec += (time_t)left;
    ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

static void *run(void *arg)
{
    struct mt_indexer *x = arg;
    struct mt_index *ix = NULL;
    struct owned_row row = { 0 };
    double backoff = BACKOFF_MIN_S, retry_at = 0;
    char err[1024];
    pthread_mutex_lock(&x->mu);
    for (;;) {
        while (!x->stop && (!x->have_pending || now_s() < retry_at)) {
            if (x->have_pending)
                wait_until(x, retry_at);
            else
                pthread_cond_wait(&x->cv, &x->mu);
        }
        if (x->stop && (!x->have_pending || now_s() < retry_at))
            break;
        /* Take the newest row; a newer one posted meanwhile replaces it. */
        row_free(&row);
        row = x->pending;
        memset(&x->pending, 0, sizeof x->pending);
        x->have_pending = 0;
        x->busy = 1;
        pthread_mutex_unlock(&x->mu);

        int ok = 0;
        err[0] = '\0';
        if (!ix && (ix = mt_index_open_opts(x->root, INDEX_BUSY_MS, err, sizeof err)) != NULL &&
            *mt_index_notice(ix)) {
            pthread_mutex_lock(&x->mu);
            snprintf(x->notice, sizeof x->notice, "%s", mt_index_notice(ix));
            pthread_mutex_unlock(&x->mu);
        }
        if (ix) {
            ok = mt_index_put(ix, &row.r) == 0;
            if (!ok) {
                snprintf(err, sizeof err, "%s", mt_index_error(ix));
                if (mt_index_damaged(ix)) { /* reopened (moved aside, rebuilt) next time */
                    mt_index_close(ix);
                    ix = NULL;
                }
            }
        }

        pthread_mutex_lock(&x->mu);
        x->busy = 0;
        if (ok) {
            x->written++;
            x->error[0] = '\0';
            backoff = BACKOFF_MIN_S;
            retry_at = 0;
        } else {
            x->failures++;
            snprintf(x->error, sizeof x->error, "%s", err);
            if (!x->have_pending) { /* keep it for the retry unless a newer one came */
                x->pending = row;
                memset(&row, 0, sizeof row);
                x->have_pending = 1;
            }
            retry_at = now_s() + backoff;
            backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
        }
        pthread_cond_broadcast(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    row_free(&row);
    mt_index_close(ix);
    return NULL;
}

struct mt_indexer *mt_indexer_start(const char *store_root)
{
    struct mt_indexer *x = mt_xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->root = mt_xstrdup(store_root);
    x->started = pthread_create(&x->thread, NULL, run, x) == 0;
    if (!x->started)
        snprintf(x->error, sizeof x->error, "cannot start the index thread");
    return x;
}

void mt_indexer_post(struct mt_indexer *x, const struct mt_index_run *r)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    row_copy(&x->pending, r);
    x->have_pending = 1;
    x->posted++;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

int mt_indexer_wait(struct mt_indexer *x, double timeout_s, char *why, size_t whysz)
{
    if (!x)
        return 0;
    double until = now_s() + timeout_s;
    pthread_mutex_lock(&x->mu);
    while (x->started && (x->have_pending || x->busy) && now_s() < until)
        wait_until(x, until);
    int done = !x->have_pending && !x->busy;
    if (!done && why)
        snprintf(why, whysz, "%s", x->error[0] ? x->error : "the index is busy");
    pthread_mutex_unlock(&x->mu);
    return done ? 0 : -1;
}

int mt_indexer_take_notice(struct mt_indexer *x, char *out, size_t size)
{
    if (!x)
        return 0;
    pthread_mutex_lock(&x->mu);
    int have = x->notice[0] != '\0';
    if (have) {
        snprintf(out, size, "%s", x->notice);
        x->notice[0] = '\0';
    }
    pthread_mutex_unlock(&x->mu);
    return have;
}

void mt_indexer_stop(struct mt_indexer *x, double timeout_s)
{
    if (!x)
        return;
    mt_indexer_wait(x, timeout_s, NULL, 0);
    pthread_mutex_lock(&x->mu);
    x->stop = 1;
    x->have_pending = 0; /* what is left is for `ls` to repair */
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    /* A put in progress waits at most INDEX_BUSY_MS on the lock. */
    if (x->started)
        pthread_join(x->thread, NULL);
    row_free(&x->pending);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x->root);
    free(x);
}
