/* The uploader's reading side: complete lines of history.jsonl and
 * system.jsonl from a read position, turned into points (a key, a value, a
 * time and a step) for point backends or handed over whole for row backends.
 * A torn last line (the agent is still writing it) is left for next time. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_json.h"
#include "upload_internal.h"
#include "backends/mt_state_json.h"

#define ROW_POINTS_MAX 4096      /* metrics in one row; more are counted and skipped */
#define LINE_MAX_BYTES (4 << 20) /* a longer line is skipped and counted */
#define HOLD_MS 5000             /* longest wait for run.json to describe a row's keys */

char *mt_upload__read_file(const char *path, size_t *len)
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

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* ---- step axes ---- */

void mt_upload__axes_load(const cJSON *c, struct mt_upload__axes *a)
{
    memset(a, 0, sizeof(*a));
    const cJSON *it;
    const cJSON *frac = cJSON_GetObjectItemCaseSensitive(c, "fractional_axes");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "axes"))
    {
        if (a->n < MT_UPLOAD__AXES_MAX && cJSON_IsNumber(it)) {
            snprintf(a->name[a->n], sizeof(a->name[0]), "%s", it->string);
            a->val[a->n] = it->valuedouble;
            const cJSON *f;
            cJSON_ArrayForEach(f, frac) if (cJSON_IsString(f) && strcmp(f->valuestring, it->string) == 0)
                a->fractional[a->n] = 1;
            a->n++;
        }
    }
}

void mt_upload__axes_store(cJSON *c, const struct mt_upload__axes *a)
{
    cJSON_DeleteItemFromObjectCaseSensitive(c, "axes");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "fractional_axes");
    cJSON *o = cJSON_AddObjectToObject(c, "axes");
    cJSON *f = NULL;
    for (int i = 0; i < a->n; i++) {
        cJSON_AddNumberToObject(o, a->name[i], a->val[i]);
        if (a->fractional[i]) {
            if (!f)
                f = cJSON_AddArrayToObject(c, "fractional_axes");
            cJSON_AddItemToArray(f, cJSON_CreateString(a->name[i]));
        }
    }
}

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

static int axis_index(const struct mt_upload__axes *a, const char *name)
{
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->name[i], name) == 0)
            return i;
    return -1;
}

static void axes_set(struct mt_upload__axes *a, const char *name, double v)
{
    int i = axis_index(a, name);
    if (i < 0) {
        if (a->n == MT_UPLOAD__AXES_MAX)
            return;
        i = a->n++;
        snprintf(a->name[i], sizeof(a->name[0]), "%s", name);
    }
    a->val[i] = v;
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

/* ---- waiting for run.json ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int described(const struct mt_uploader *u, const char *key)
{
    if (key[0] == '_' || axis_of(u, key))
        return 1;
    for (size_t i = 0; i < u->naxis_names; i++)
        if (strcmp(u->axis_names[i], key) == 0)
            return 1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(u->run, "metrics");
    return cJSON_GetObjectItemCaseSensitive(m, key) != NULL;
}

/* Should the reader stop before this history row?  The agent rewrites
 * run.json when a new key appears, before it flushes the row, but a full
 * stdio buffer can put the row on disk first; a key's step_metric must be
 * known before its first point goes out. */
static int hold_row(struct mt_uploader *u, int sys, const cJSON *j, unsigned skip)
{
    if (sys || skip || !u->running)
        return 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        if (it->string && !described(u, it->string)) {
            int64_t now = mono_ms();
            if (!u->hold_since_ms)
                u->hold_since_ms = now;
            if (now - u->hold_since_ms < HOLD_MS)
                return 1;
            break; /* waited long enough: as it is */
        }
    }
    u->hold_since_ms = 0;
    return 0;
}

/* ---- rows into points ---- */

static int is_axis(const struct mt_uploader *u, const char *key)
{
    for (size_t i = 0; i < u->naxis_names; i++)
        if (strcmp(u->axis_names[i], key) == 0)
            return 1;
    for (size_t i = 0; i < u->ndefs; i++)
        if (strcmp(u->defs[i].axis, key) == 0)
            return 1;
    return 0;
}

static void note_axis(struct mt_upload__axes *ax, const cJSON *row, const char *name)
{
    double v;
    if (!value_of(cJSON_GetObjectItemCaseSensitive(row, name), &v) || !isfinite(v))
        return;
    axes_set(ax, name, v);
    int i = axis_index(ax, name);
    /* Once fractional, always: a metric keeps one kind of step. */
    if (i >= 0 && (v != floor(v) || fabs(v) > 9007199254740992.0))
        ax->fractional[i] = 1;
}

/* The step of a point of metric `key` in a row whose counter is `row_step`.
 * Its step_metric's value when that axis is an integer one; for a fractional
 * axis (Hugging Face's epoch) another axis of the run that is an integer one
 * (run.json's axes, in order), else the row counter, and then *show_axis
 * names the fractional axis so that it goes up as a metric of its own (to
 * plot against).  No step_metric, or no value of it yet: the row counter. */
static int64_t step_of(const struct mt_uploader *u, const struct mt_upload__axes *ax,
                       const char *key, int64_t row_step, const char **show_axis)
{
    const char *axis = axis_of(u, key);
    int ai = axis ? axis_index(ax, axis) : -1;
    if (ai < 0)
        return row_step;
    if (!ax->fractional[ai])
        return (int64_t)llround(ax->val[ai]);
    for (size_t i = 0; i < u->naxis_names; i++) {
        int k = axis_index(ax, u->axis_names[i]);
        if (k >= 0 && !ax->fractional[k])
            return (int64_t)llround(ax->val[k]);
    }
    *show_axis = ax->name[ai];
    return row_step;
}

static int add_point(struct mt_uploader *u, int sys, const char *key, double v, int64_t ts_ms,
                     int64_t step, struct mt_upload_point *p)
{
    double scale = 1;
    if (u->be_ops->map_key(key, sys, p->key, sizeof(p->key), &scale) != 0)
        return 0;
    p->value = v * scale;
    p->ts_ms = ts_ms;
    p->step = step;
    return 1;
}

/* Turns one row into points.  Returns how many (<= max).  Step axes are the
 * x of the other metrics, not metrics of their own (see step_of). */
static size_t row_points(struct mt_uploader *u, int sys, const cJSON *j, long long lineno,
                         struct mt_upload__axes *ax, struct mt_upload_point *out, size_t max)
{
    size_t n = 0;
    double ts = num(j, "_timestamp", 0);
    int64_t ts_ms = llround(ts * 1000.0);
    int64_t row_step = sys ? lineno : (int64_t)llround(num(j, "_step", (double)lineno));
    const char *shown[MT_UPLOAD__AXES_MAX];
    int nshown = 0;
    const cJSON *it;
    if (!sys) {
        /* the axes this row sets apply to its own metrics */
        for (size_t i = 0; i < u->naxis_names; i++)
            note_axis(ax, j, u->axis_names[i]);
        for (size_t i = 0; i < u->ndefs; i++)
            note_axis(ax, j, u->defs[i].axis);
    }
    cJSON_ArrayForEach(it, j)
    {
        double v;
        if (!it->string || it->string[0] == '_' || !value_of(it, &v))
            continue;
        if (!sys && is_axis(u, it->string))
            continue;
        if (n == max) {
            u->skipped_points++;
            continue;
        }
        const char *show = NULL;
        int64_t step = sys ? row_step : step_of(u, ax, it->string, row_step, &show);
        n += (size_t)add_point(u, sys, it->string, v, ts_ms, step, &out[n]);
        int seen = 0;
        for (int k = 0; show && k < nshown; k++)
            seen |= strcmp(shown[k], show) == 0;
        if (show && !seen && nshown < MT_UPLOAD__AXES_MAX)
            shown[nshown++] = show;
    }
    /* A fractional axis a metric is plotted against, where no integer axis
     * could be the step: the axis as a metric, at the row counter. */
    for (int k = 0; k < nshown; k++) {
        double v;
        if (n < max && value_of(cJSON_GetObjectItemCaseSensitive(j, shown[k]), &v))
            n += (size_t)add_point(u, sys, shown[k], v, ts_ms, row_step, &out[n]);
    }
    return n;
}

/* ---- reading lines ---- */

/* Handles one complete line at *pos.  Returns 0 when the line is taken whole
 * (the reader moves past it), 1 to stop at *pos (pos->skip says how much of
 * the line was taken). */
typedef int (*line_fn)(struct mt_uploader *u, void *ctx, int sys, const char *line, size_t len,
                       struct mt_upload__pos *pos, struct mt_upload__axes *ax,
                       const struct mt_upload__pos *limit);

/* Reads complete rows of one file from *pos, up to `limit` (NULL: the end),
 * handing each to on_line.  Returns 1 when on_line stopped it, 0 at the end,
 * <0 on error. */
static int read_rows(struct mt_uploader *u, int sys, struct mt_upload__pos *pos,
                     struct mt_upload__axes *ax, const struct mt_upload__pos *limit,
                     line_fn on_line, void *ctx)
{
    char path[4200];
    int result = 0;
    snprintf(path, sizeof(path), "%s/%s", u->dir, sys ? "system.jsonl" : "history.jsonl");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
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
        if (on_line(u, ctx, sys, line, len, pos, ax, limit)) {
            result = 1;
            break;
        }
        pos->off += (long long)len + 1;
        pos->skip = 0;
        pos->line++;
    }
    close(fd);
    return result;
}

/* Called for each point; returns 0 to take it, 1 to stop before it. */
typedef int (*emit_fn)(void *ctx, struct mt_uploader *u, const struct mt_upload_point *p);
static int emit_batch(void *ctx, struct mt_uploader *u, const struct mt_upload_point *p);

static int line_points(struct mt_uploader *u, void *ctx, int sys, const char *line, size_t len,
                       struct mt_upload__pos *pos, struct mt_upload__axes *ax,
                       const struct mt_upload__pos *limit)
{
    emit_fn emit = *(emit_fn *)ctx;
    cJSON *j = cJSON_ParseWithLength(line, len);
    size_t n = 0;
    if (emit == emit_batch && cJSON_IsObject(j) && hold_row(u, sys, j, pos->skip)) {
        cJSON_Delete(j);
        return 1;
    }
    if (cJSON_IsObject(j))
        n = row_points(u, sys, j, pos->line, ax, u->rowpts, ROW_POINTS_MAX);
    else
        u->skipped_lines++;
    cJSON_Delete(j);
    unsigned stop_at = (unsigned)n;
    if (limit && pos->off == limit->off && limit->skip < stop_at)
        stop_at = limit->skip;
    for (unsigned k = pos->skip; k < stop_at; k++) {
        if (emit(ctx, u, &u->rowpts[k])) {
            pos->skip = k;
            return 1;
        }
    }
    if (stop_at < n) {
        pos->skip = stop_at;
        return 1; /* reached the limit inside this row */
    }
    return 0;
}

static int line_row(struct mt_uploader *u, void *ctx, int sys, const char *line, size_t len,
                    struct mt_upload__pos *pos, struct mt_upload__axes *ax,
                    const struct mt_upload__pos *limit)
{
    (void)ctx, (void)ax, (void)limit;
    if (u->nbatch >= u->cap)
        return 1;
    /* Whole rows keep each number's text as stored: a backend that writes
     * JSON text (W&B's value_json) need not format the double again. */
    char *copy = strndup(line, len);
    cJSON *j = copy ? mt_json_parse_literal(copy) : NULL;
    free(copy);
    if (!cJSON_IsObject(j)) {
        u->skipped_lines++;
        cJSON_Delete(j);
        return 0;
    }
    if (hold_row(u, sys, j, 0)) {
        cJSON_Delete(j);
        return 1;
    }
    struct mt_upload_row *r = &u->rows[u->nbatch++];
    r->system = sys;
    r->line = pos->line;
    r->json = j;
    return 0;
}

/* The batch's own emit, behind a pointer that line_points can find. */
struct batch_ctx {
    emit_fn emit;
};

static int emit_batch(void *ctx, struct mt_uploader *u, const struct mt_upload_point *p)
{
    (void)ctx;
    if (u->nbatch >= u->cap)
        return 1;
    u->batch[u->nbatch++] = *p;
    return 0;
}

int mt_upload__fill_batch(struct mt_uploader *u)
{
    if (u->frozen || u->nbatch >= u->cap)
        return 0;
    struct batch_ctx bc = {emit_batch};
    line_fn on_line = u->be_ops->whole_rows ? line_row : line_points;
    int r1 = read_rows(u, 0, &u->hpos, &u->ax, NULL, on_line, &bc);
    if (r1 < 0)
        return r1;
    int r2 = r1 == 1 ? 1 : read_rows(u, 1, &u->spos, &u->ax, NULL, on_line, &bc);
    if (r2 < 0)
        return r2;
    u->eof = r1 == 0 && r2 == 0;
    return 0;
}

void mt_upload__clear_batch(struct mt_uploader *u)
{
    if (u->rows)
        for (size_t i = 0; i < u->nbatch; i++) {
            cJSON_Delete((cJSON *)u->rows[i].json);
            u->rows[i].json = NULL;
        }
    u->nbatch = 0;
}

/* ---- count_prior: one pass over the store before the batch ---- */

struct prior_ctx {
    emit_fn emit; /* first: line_points finds it there */
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

static int emit_prior(void *ctx, struct mt_uploader *u, const struct mt_upload_point *p)
{
    (void)u;
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

int mt_upload__count_prior(void *ctx, const struct mt_upload_point *pts, size_t n,
                           unsigned *prior)
{
    struct mt_uploader *u = ctx;
    struct prior_ctx c = {emit_prior, pts, n, calloc(n ? n : 1, sizeof(size_t)), prior};
    int result = 0;
    if (!c.order)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        c.order[i] = i;
        prior[i] = 0;
    }
    qsort_r(c.order, n, sizeof(size_t), idx_cmp, (void *)pts);
    struct mt_upload__pos h = {0, 0, 0}, s = {0, 0, 0};
    struct mt_upload__axes ax;
    memset(&ax, 0, sizeof(ax));
    if ((result = read_rows(u, 0, &h, &ax, &u->hstart, line_points, &c)) < 0)
        goto out;
    result = read_rows(u, 1, &s, &ax, &u->sstart, line_points, &c);
out:
    free(c.order);
    return result < 0 ? result : 0;
}

int mt_upload__alloc_batch(struct mt_uploader *u)
{
    if (u->be_ops->whole_rows)
        u->rows = calloc(u->cap, sizeof(*u->rows));
    else
        u->batch = calloc(u->cap, sizeof(*u->batch));
    u->rowpts = calloc(ROW_POINTS_MAX, sizeof(*u->rowpts));
    return (u->rows || u->batch) && u->rowpts ? 0 : -ENOMEM;
}

/* ---- the other files of the run: summary, console, artifacts ---- */

static void set_num(cJSON *o, const char *key, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddNumberToObject(o, key, v);
}

static int ignored(const struct mt_uploader *u, const char *name)
{
    for (size_t i = 0; i < u->nignore; i++)
        if (fnmatch(u->ignore[i], name, 0) == 0)
            return 1;
    return 0;
}

enum mt_upload_result mt_upload__send_artifacts(struct mt_uploader *u)
{
    if (!u->be_ops->put_file)
        return MT_UPLOAD_OK;
    static const char *const names[] = {"output.log", "crash.txt", "stacks.txt", "diff.patch",
                                         "run.json"};
    cJSON *sent = mt_sj_obj(u->cursor, "artifacts");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", u->dir, names[i]);
        if (stat(path, &st) != 0 || ignored(u, names[i]))
            continue;
        /* The mtime is compared exactly, seconds and nanoseconds apart: as
         * one double it lost the last digits (cJSON prints 15 when they
         * come close), and every sync sent the files again. */
        cJSON *s = cJSON_GetObjectItemCaseSensitive(sent, names[i]);
        if (s && num(s, "size", -1) == (double)st.st_size &&
            num(s, "mtime_s", -1) == (double)st.st_mtim.tv_sec &&
            num(s, "mtime_ns", -1) == (double)st.st_mtim.tv_nsec)
            continue;
        enum mt_upload_result res = u->be_ops->put_file(u->be, names[i], path);
        if (res == MT_UPLOAD_RETRY)
            return res;
        /* DROP: reported by the backend; do not try this version again */
        cJSON_DeleteItemFromObjectCaseSensitive(sent, names[i]);
        s = cJSON_AddObjectToObject(sent, names[i]);
        cJSON_AddNumberToObject(s, "size", (double)st.st_size);
        cJSON_AddNumberToObject(s, "mtime_s", (double)st.st_mtim.tv_sec);
        cJSON_AddNumberToObject(s, "mtime_ns", (double)st.st_mtim.tv_nsec);
        if (res == MT_UPLOAD_DROP)
            cJSON_AddBoolToObject(s, "dropped", 1);
    }
    return MT_UPLOAD_OK;
}

/* Hands summary.json to the backend when it changed since the last time. */
enum mt_upload_result mt_upload__send_summary(struct mt_uploader *u)
{
    char path[4200];
    struct stat st;
    if (!u->be_ops->send_summary)
        return MT_UPLOAD_OK;
    snprintf(path, sizeof(path), "%s/summary.json", u->dir);
    if (stat(path, &st) != 0)
        return MT_UPLOAD_OK;
    if (st.st_ino == u->summary_st.st_ino && st.st_size == u->summary_st.st_size &&
        st.st_mtim.tv_sec == u->summary_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == u->summary_st.st_mtim.tv_nsec)
        return MT_UPLOAD_OK;
    char *txt = mt_upload__read_file(path, NULL);
    cJSON *j = txt ? mt_json_parse_literal(txt) : NULL;
    free(txt);
    enum mt_upload_result res = MT_UPLOAD_OK;
    if (cJSON_IsObject(j)) { /* else being replaced: next time */
        res = u->be_ops->send_summary(u->be, j);
        if (res == MT_UPLOAD_OK)
            u->summary_st = st;
    }
    cJSON_Delete(j);
    return res;
}

/* Hands the new bytes of output.log to the backend: complete lines while the
 * run goes, the rest at its end.  The cursor's "output" holds the offset. */
enum mt_upload_result mt_upload__send_output(struct mt_uploader *u, int final)
{
    enum { CHUNK = 1 << 20 };
    if (!u->be_ops->send_output)
        return MT_UPLOAD_OK;
    char path[4200];
    snprintf(path, sizeof(path), "%s/output.log", u->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MT_UPLOAD_OK;
    cJSON *o = mt_sj_obj(u->cursor, "output");
    long long off = (long long)num(o, "offset", 0);
    char *buf = malloc(CHUNK);
    enum mt_upload_result res = MT_UPLOAD_OK;
    while (buf) {
        ssize_t r = pread(fd, buf, CHUNK, off);
        if (r <= 0)
            break;
        size_t n = (size_t)r;
        if (!final || n == CHUNK) { /* up to the last newline */
            while (n && buf[n - 1] != '\n')
                n--;
            if (!n && (size_t)r == CHUNK)
                n = CHUNK; /* a line longer than a chunk goes in pieces */
        }
        if (!n)
            break;
        res = u->be_ops->send_output(u->be, buf, n);
        if (res != MT_UPLOAD_OK)
            break;
        off += (long long)n;
        set_num(o, "offset", (double)off);
    }
    free(buf);
    close(fd);
    return res;
}

