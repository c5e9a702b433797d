/* The MLflow backend's metrics: runs/log-batch within the server's limits
 * (split past 900 kB, halved around an item the server refuses), and the
 * check of a batch whose outcome is unknown.
 *
 * MLflow appends metrics, so a batch whose outcome is unknown (the request
 * may have been applied: timeout, broken connection, 5xx) is checked against
 * metrics/get-history before it is sent again; so is the first batch after a
 * start (a previous process may have died with a request in flight), and
 * each batch after one that was found already applied.
 *
 * The check never starts over: what one lookup or one piece established
 * (this key's points are on the server, that piece landed) is kept across
 * failed requests for as long as the uploader hands the same batch, so a
 * path that fails one request in five still moves forward.  After a piece
 * of unknown outcome, the next ones carry half as many keys (at least one),
 * so that one failure costs the check of fewer keys; each piece that lands
 * doubles it again. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../mt_upload_backend.h"
#include "mt_mlflow.h"

#define BODY_SPLIT (900 * 1000)  /* split a batch past this */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- log-batch ---- */

void mt_mlflow__begin_batch(struct mt_mlflow__be *b)
{
    b->body.len = 0;
    b->body.overflow = 0;
    mt_mlflow__buf_str(&b->body, "{\"run_id\":");
    mt_mlflow__buf_json(&b->body, b->run_id);
}

static void add_points(struct mt_mlflow__buf *o, const struct mt_upload_point *pts, size_t n,
                       const unsigned char *skip)
{
    mt_mlflow__buf_str(o, ",\"metrics\":[");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        char v[64];
        mt_mlflow_fmt_value(v, sizeof(v), pts[i].value);
        mt_mlflow__buf_str(o, first ? "{\"key\":" : ",{\"key\":");
        mt_mlflow__buf_json(o, pts[i].key);
        mt_mlflow__buf_printf(o, ",\"value\":%s,\"timestamp\":%lld,\"step\":%lld}", v,
                              (long long)pts[i].ts_ms, (long long)pts[i].step);
        first = 0;
    }
    mt_mlflow__buf_str(o, "]");
}

static void add_kvs(struct mt_mlflow__buf *o, const char *field, const struct mt_mlflow__kv *kv,
                    size_t n)
{
    mt_mlflow__buf_printf(o, ",\"%s\":[", field);
    int first = 1;
    for (size_t i = 0; i < n; i++)
        mt_mlflow__add_tag_json(o, &first, kv[i].key, kv[i].value);
    mt_mlflow__buf_str(o, "]");
}

/* Is this refusal about the items (drop them) rather than the run or our
 * credentials (stop and leave everything for later)? */
static int item_level(const struct mt_mlflow_resp *r)
{
    return r->status == 400 && (strcmp(r->error_code, "INVALID_PARAMETER_VALUE") == 0 ||
                                r->error_code[0] == '\0');
}

/* Sends items [0, n) of one kind; on an item-level refusal, halves until the
 * offending items are found, dropped and reported. */
enum mt_upload_result mt_mlflow__send_items(struct mt_mlflow__be *b, enum mt_mlflow__kind k, const void *items, size_t n,
                                        const unsigned char *skip)
{
    if (n == 0)
        return MT_UPLOAD_OK;
    if (skip) {
        size_t live = 0;
        for (size_t i = 0; i < n; i++)
            live += !skip[i];
        if (!live)
            return MT_UPLOAD_OK;
    }
    mt_mlflow__begin_batch(b);
    if (k == MT_MLFLOW__METRIC)
        add_points(&b->body, items, n, skip);
    else
        add_kvs(&b->body, k == MT_MLFLOW__PARAM ? "params" : "tags", items, n);
    mt_mlflow__buf_str(&b->body, "}");
    if ((b->body.overflow || b->body.len > BODY_SPLIT) && n > 1) {
        size_t h = n / 2;
        size_t sz = k == MT_MLFLOW__METRIC ? sizeof(struct mt_upload_point) : sizeof(struct mt_mlflow__kv);
        enum mt_upload_result res = mt_mlflow__send_items(b, k, items, h, skip);
        if (res != MT_UPLOAD_OK)
            return res;
        return mt_mlflow__send_items(b, k, (const char *)items + h * sz, n - h, skip ? skip + h : NULL);
    }
    struct mt_mlflow_resp r;
    enum mt_upload_result res;
    if (k == MT_MLFLOW__METRIC) {
        res = mt_mlflow_call_once(b->cli, "api/2.0/mlflow/runs/log-batch", b->body.p, b->body.len,
                                  &r);
        mt_mlflow__counted(b, res, &r);
    } else {
        res = mt_mlflow__call(b, "POST", "api/2.0/mlflow/runs/log-batch", b->body.p, b->body.len, &r);
    }
    if (res == MT_UPLOAD_RETRY) {
        if (k == MT_MLFLOW__METRIC && r.unknown)
            b->verify_next = 1;
        return res;
    }
    if (res == MT_UPLOAD_OK) {
        if (b->io->stats) {
            size_t live = n;
            if (skip)
                for (size_t i = 0; i < n; i++)
                    live -= skip[i] != 0;
            if (k == MT_MLFLOW__METRIC)
                b->io->stats->points_sent += live;
            else if (k == MT_MLFLOW__PARAM)
                b->io->stats->params_sent += live;
            else
                b->io->stats->tags_sent += live;
        }
        return res;
    }
    if (!item_level(&r)) {
        mt_mlflow__event_http(b, "upload_refused", k == MT_MLFLOW__METRIC ? "metrics" : k == MT_MLFLOW__PARAM ? "params" : "tags",
                   NULL, &r);
        return MT_UPLOAD_DROP;
    }
    if (n == 1) {
        const char *key = k == MT_MLFLOW__METRIC ? ((const struct mt_upload_point *)items)->key
                                        : ((const struct mt_mlflow__kv *)items)->key;
        mt_mlflow__event_http(b, "upload_dropped", k == MT_MLFLOW__METRIC ? "metric" : k == MT_MLFLOW__PARAM ? "param" : "tag",
                   key, &r);
        if (b->io->stats && k == MT_MLFLOW__METRIC)
            b->io->stats->points_dropped++;
        return MT_UPLOAD_OK;
    }
    size_t h = n / 2;
    size_t sz = k == MT_MLFLOW__METRIC ? sizeof(struct mt_upload_point) : sizeof(struct mt_mlflow__kv);
    res = mt_mlflow__send_items(b, k, items, h, skip);
    if (res != MT_UPLOAD_OK)
        return res;
    return mt_mlflow__send_items(b, k, (const char *)items + h * sz, n - h, skip ? skip + h : NULL);
}

/* ---- verification of a batch whose outcome is unknown ---- */

struct spt {
    int64_t ts, step;
    double value;
};

static int spt_cmp(const void *a, const void *b)
{
    const struct spt *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return 0;
}

static double jnum(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "NaN") == 0)
            return NAN;
        if (strcmp(v->valuestring, "Infinity") == 0)
            return INFINITY;
        if (strcmp(v->valuestring, "-Infinity") == 0)
            return -INFINITY;
        return strtod(v->valuestring, NULL);
    }
    return NAN;
}

/* The server's points of one key, sorted by (timestamp, step). */
static enum mt_upload_result fetch_history(struct mt_mlflow__be *b, const char *key, struct spt **out,
                                           size_t *nout)
{
    struct spt *v = NULL;
    size_t n = 0, cap = 0;
    char *token = NULL;
    enum mt_upload_result res = MT_UPLOAD_OK;
    for (;;) {
        struct mt_mlflow_resp r;
        b->path.len = 0;
        b->path.overflow = 0;
        mt_mlflow__buf_str(&b->path, "api/2.0/mlflow/metrics/get-history?run_id=");
        mt_mlflow__buf_urlenc(&b->path, b->run_id);
        mt_mlflow__buf_str(&b->path, "&metric_key=");
        mt_mlflow__buf_urlenc(&b->path, key);
        if (token) {
            mt_mlflow__buf_str(&b->path, "&max_results=25000&page_token=");
            mt_mlflow__buf_urlenc(&b->path, token);
        }
        res = mt_mlflow__call(b, "GET", b->path.p, NULL, 0, &r);
        if (res != MT_UPLOAD_OK) {
            if (res == MT_UPLOAD_DROP)
                res = MT_UPLOAD_RETRY; /* cannot check: do not send */
            break;
        }
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        if (!j) {
            res = MT_UPLOAD_RETRY;
            break;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "metrics"))
        {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                struct spt *nv = realloc(v, cap * sizeof(*v));
                if (!nv) {
                    res = MT_UPLOAD_RETRY;
                    break;
                }
                v = nv;
            }
            const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "timestamp");
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "step");
            v[n].ts = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
            v[n].step = cJSON_IsNumber(st) ? (int64_t)st->valuedouble : 0;
            v[n].value = jnum(cJSON_GetObjectItemCaseSensitive(m, "value"));
            n++;
        }
        free(token);
        token = NULL;
        const char *nt = jstr(j, "next_page_token");
        if (nt && nt[0])
            token = strdup(nt);
        cJSON_Delete(j);
        if (res != MT_UPLOAD_OK || !token)
            break;
    }
    free(token);
    if (res != MT_UPLOAD_OK) {
        free(v);
        return res;
    }
    if (n)
        qsort(v, n, sizeof(*v), spt_cmp);
    *out = v;
    *nout = n;
    return MT_UPLOAD_OK;
}

static int same_point(const struct mt_upload_point *a, const struct mt_upload_point *b)
{
    if (strcmp(a->key, b->key) != 0 || a->ts_ms != b->ts_ms || a->step != b->step)
        return 0;
    return (isnan(a->value) && isnan(b->value)) || a->value == b->value;
}

/* FNV-1a over the batch: tells the batch being checked from a new one. */
static uint64_t batch_fingerprint(const struct mt_upload_point *pts, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ n;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *k = (const unsigned char *)pts[i].key;
        for (; *k; k++)
            h = (h ^ *k) * 1099511628211ULL;
        int64_t f[3] = {pts[i].ts_ms, pts[i].step, 0};
        memcpy(&f[2], &pts[i].value, sizeof(double));
        const unsigned char *q = (const unsigned char *)f;
        for (size_t j = 0; j < sizeof(f); j++)
            h = (h ^ q[j]) * 1099511628211ULL;
    }
    return h;
}

void mt_mlflow__check_reset(struct mt_mlflow__check *c)
{
    free(c->landed);
    free(c->unsure);
    free(c->prior);
    c->landed = c->unsure = NULL;
    c->prior = NULL;
    c->n = 0;
    c->fp = 0;
    c->have_prior = 0;
}

/* Starts the check state over for a new batch: nothing known to have landed;
 * every point unsure when the last outcome was unknown. */
static int check_begin(struct mt_mlflow__be *b, const struct mt_upload_point *pts, size_t n)
{
    struct mt_mlflow__check *c = &b->check;
    uint64_t fp = batch_fingerprint(pts, n);
    if (c->landed && c->n == n && c->fp == fp)
        return 0;
    mt_mlflow__check_reset(c);
    c->landed = calloc(n ? n : 1, 1);
    c->unsure = calloc(n ? n : 1, 1);
    c->prior = calloc(n ? n : 1, sizeof(*c->prior));
    if (!c->landed || !c->unsure || !c->prior) {
        mt_mlflow__check_reset(c);
        return -1;
    }
    c->n = n;
    c->fp = fp;
    if (b->verify_next)
        memset(c->unsure, 1, n);
    b->verify_next = 0;
    return 0;
}

/* Looks up one key on the server and settles every point of that key in the
 * batch: landed or not.  For each distinct point T: the server holds s
 * copies, the store has p copies before the batch (sent already), so s - p
 * of the batch's copies landed. */
static enum mt_upload_result check_key(struct mt_mlflow__be *b, const struct mt_upload_point *pts,
                                       size_t n, size_t first)
{
    struct mt_mlflow__check *c = &b->check;
    if (!c->have_prior) {
        if (b->io->count_prior(b->io->ctx, pts, n, c->prior) != 0)
            return MT_UPLOAD_RETRY;
        c->have_prior = 1;
    }
    struct spt *srv = NULL;
    size_t ns = 0;
    enum mt_upload_result res = fetch_history(b, pts[first].key, &srv, &ns);
    if (res != MT_UPLOAD_OK)
        return res;
    unsigned char *assigned = calloc(n ? n : 1, 1);
    if (!assigned) {
        free(srv);
        return MT_UPLOAD_RETRY;
    }
    for (size_t k = first; k < n; k++) {
        if (assigned[k] || strcmp(pts[k].key, pts[first].key) != 0)
            continue;
        struct spt want = {pts[k].ts_ms, pts[k].step, 0};
        struct spt *hit = ns ? bsearch(&want, srv, ns, sizeof(*srv), spt_cmp) : NULL;
        long s = 0;
        if (hit) {
            struct spt *lo = hit, *hi = hit;
            while (lo > srv && spt_cmp(lo - 1, &want) == 0)
                lo--;
            while (hi + 1 < srv + ns && spt_cmp(hi + 1, &want) == 0)
                hi++;
            for (struct spt *q = lo; q <= hi; q++)
                s += mt_mlflow_value_equal(pts[k].value, q->value);
        }
        long arrived = s - (long)c->prior[k];
        for (size_t m = k; m < n; m++) {
            if (assigned[m] || !same_point(&pts[m], &pts[k]))
                continue;
            int was = c->landed[m];
            c->landed[m] = arrived > 0;
            if (c->landed[m] && !was && b->io->stats)
                b->io->stats->points_verified_present++;
            arrived--;
            assigned[m] = 1;
            c->unsure[m] = 0;
        }
    }
    free(assigned);
    free(srv);
    if (b->io->progress)
        b->io->progress(b->io->ctx);
    return MT_UPLOAD_OK;
}

/* How many distinct keys the points not skipped have. */
static size_t count_keys(const struct mt_upload_point *pts, size_t n, const unsigned char *skip)
{
    size_t keys = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        size_t k = 0;
        for (; k < i; k++)
            if ((!skip || !skip[k]) && strcmp(pts[k].key, pts[i].key) == 0)
                break;
        keys += k == i;
    }
    return keys;
}

/* Marks in `skip` every point that is not in the next piece: those landed,
 * and those of keys past the first `keys` distinct keys still to send. */
static size_t next_piece(const struct mt_upload_point *pts, size_t n, const unsigned char *landed,
                         size_t keys, unsigned char *skip)
{
    size_t chosen = 0, live = 0;
    memset(skip, 1, n);
    for (size_t i = 0; i < n; i++) {
        if (landed[i] || !skip[i])
            continue;
        if (keys && chosen == keys)
            break;
        chosen++;
        for (size_t k = i; k < n; k++)
            if (!landed[k] && skip[k] && strcmp(pts[k].key, pts[i].key) == 0) {
                skip[k] = 0;
                live++;
            }
    }
    return live;
}

enum mt_upload_result mt_mlflow__send_points(void *p, const struct mt_upload_point *pts, size_t n)
{
    struct mt_mlflow__be *b = p;
    struct mt_mlflow__check *c = &b->check;
    if (!b->verify_next && !c->landed && b->piece_keys == 0) {
        /* the common case: the last batch went through; nothing to keep */
        enum mt_upload_result res = mt_mlflow__send_items(b, MT_MLFLOW__METRIC, pts, n, NULL);
        if (res == MT_UPLOAD_RETRY && b->verify_next) {
            size_t keys = count_keys(pts, n, NULL);
            b->piece_keys = keys > 1 ? keys / 2 : 1;
        }
        return res;
    }
    if (check_begin(b, pts, n) != 0)
        return MT_UPLOAD_RETRY;
    /* settle the unsure keys, one lookup each; what a lookup settled stays */
    for (size_t i = 0; i < n; i++) {
        if (!c->unsure[i])
            continue;
        enum mt_upload_result res = check_key(b, pts, n, i);
        if (res != MT_UPLOAD_OK)
            return res;
    }
    size_t have = 0;
    for (size_t i = 0; i < n; i++)
        have += c->landed[i];
    unsigned char *skip = malloc(n ? n : 1);
    if (!skip)
        return MT_UPLOAD_RETRY;
    enum mt_upload_result res = MT_UPLOAD_OK;
    while (res == MT_UPLOAD_OK && next_piece(pts, n, c->landed, b->piece_keys, skip)) {
        res = mt_mlflow__send_items(b, MT_MLFLOW__METRIC, pts, n, skip);
        if (res == MT_UPLOAD_OK) {
            for (size_t i = 0; i < n; i++)
                c->landed[i] |= !skip[i];
            if (b->piece_keys && (b->piece_keys *= 2) > 64)
                b->piece_keys = 0; /* whole batches again */
            if (b->io->progress)
                b->io->progress(b->io->ctx);
        } else if (res == MT_UPLOAD_RETRY && b->verify_next) {
            /* the piece may have landed: check its keys before anything
             * else, and send fewer keys at once while the path fails */
            for (size_t i = 0; i < n; i++)
                c->unsure[i] |= !skip[i];
            b->verify_next = 0;
            size_t keys = count_keys(pts, n, skip);
            b->piece_keys = keys > 1 ? keys / 2 : 1;
        }
    }
    free(skip);
    if (res != MT_UPLOAD_OK)
        return res;
    /* All of it had landed before we sent anything: the next batch may have too. */
    if (n && have == n)
        b->verify_next = 1;
    mt_mlflow__check_reset(c);
    return MT_UPLOAD_OK;
}
