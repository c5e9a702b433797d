/* A run's history as series for `show` and `report`: see show.h. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "show.h"

#define HISTORY_MAX ((size_t)512 << 20)
#define MAX_SERIES 512
#define MAX_AXES 32

/* Names taken as axes even where run.json does not say so (older runs). */
static const char *const KNOWN_AXES[] = { "_step", "_runtime", "_timestamp", "epoch", "batch",
                                          "iteration", "iter", "step", "global_step", NULL };

static struct mt_hist_series *series_get(struct mt_hist *h, const char *key, const char *axis)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].key, key) == 0)
            return &h->v[i];
    if (h->n == MAX_SERIES) {
        h->dropped_keys++;
        return NULL;
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 16;
        h->v = mt_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    struct mt_hist_series *s = &h->v[h->n++];
    memset(s, 0, sizeof *s);
    s->key = mt_xstrdup(key);
    s->axis = mt_xstrdup(axis);
    return s;
}

static void series_add(struct mt_hist_series *s, double x, double y)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = mt_xrealloc(s->x, s->cap * sizeof *s->x);
        s->y = mt_xrealloc(s->y, s->cap * sizeof *s->y);
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    if (!isfinite(y))
        s->nonfinite++;
}

/* A history value as a number: numbers, and the strings JSON cannot write. */
static int number_of(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "Infinity") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            *out = -INFINITY;
        else
            return 0;
        return 1;
    }
    return 0;
}

static const char *axis_of(const cJSON *metrics, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(metrics, key);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "step_metric");
    return cJSON_IsString(a) && a->valuestring[0] ? a->valuestring : "_step";
}

/* A value printed once for the summary (the lr of a banner), not a curve. */
static int summary_only(const cJSON *metrics, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(metrics, key);
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "summary_only"));
}

static int is_axis(const cJSON *run, const char *x_axis, const char *key)
{
    if (x_axis && strcmp(key, x_axis) == 0)
        return 1;
    for (int i = 0; KNOWN_AXES[i]; i++)
        if (strcmp(key, KNOWN_AXES[i]) == 0)
            return 1;
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(run, "axes"))
    {
        if (cJSON_IsString(a) && strcmp(a->valuestring, key) == 0)
            return 1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(run, "metrics"))
    {
        const cJSON *sm = cJSON_GetObjectItemCaseSensitive(m, "step_metric");
        if (cJSON_IsString(sm) && strcmp(sm->valuestring, key) == 0)
            return 1;
    }
    return 0;
}

void mt_hist_load(struct mt_hist *h, const char *dir, const cJSON *run, const char *x_axis)
{
    char path[PATH_MAX];
    memset(h, 0, sizeof *h);
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(run, "metrics");
    snprintf(path, sizeof path, "%s/history.jsonl", dir);
    size_t len = 0;
    char *text = mt_index_read_file(path, HISTORY_MAX, &len);
    if (!text)
        return;
    /* Axes seen so far stay in force for later rows. */
    double last[MAX_AXES];
    h->axes = mt_xcalloc(MAX_AXES, sizeof *h->axes);
    char *line = text, *end = text + len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break; /* a torn last line is ignored */
        *nl = '\0';
        cJSON *row = cJSON_Parse(line);
        line = nl + 1;
        if (!cJSON_IsObject(row)) {
            h->bad_lines++;
            cJSON_Delete(row);
            continue;
        }
        h->rows++;
        for (cJSON *it = row->child; it; it = it->next) {
            double v;
            if (!it->string || !number_of(it, &v) || !is_axis(run, x_axis, it->string))
                continue;
            size_t k = 0;
            while (k < h->naxes && strcmp(h->axes[k], it->string) != 0)
                k++;
            if (k == h->naxes && h->naxes < MAX_AXES)
                h->axes[h->naxes++] = mt_xstrdup(it->string);
            if (k < h->naxes)
                last[k] = v;
        }
        for (cJSON *it = row->child; it; it = it->next) {
            double y;
            if (!it->string || !number_of(it, &y) || summary_only(metrics, it->string))
                continue;
            int axis_key = is_axis(run, x_axis, it->string);
            if (axis_key && strcmp(it->string, "_step") == 0)
                continue;
            const char *axis = x_axis ? x_axis : axis_of(metrics, it->string);
            if (axis_key)
                axis = "_step";
            size_t k = 0;
            while (k < h->naxes && strcmp(h->axes[k], axis) != 0)
                k++;
            if (k == h->naxes) {
                h->before_axis++; /* no value of its axis yet */
                continue;
            }
            struct mt_hist_series *s = series_get(h, it->string, axis);
            if (s) {
                s->is_axis = axis_key;
                series_add(s, last[k], y);
            }
        }
        cJSON_Delete(row);
    }
    free(text);
}

int mt_hist_has_axis(const struct mt_hist *h, const char *axis)
{
    for (size_t k = 0; k < h->naxes; k++)
        if (strcmp(h->axes[k], axis) == 0)
            return 1;
    return 0;
}

void mt_hist_free(struct mt_hist *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].key);
        free(h->v[i].axis);
        free(h->v[i].x);
        free(h->v[i].y);
    }
    for (size_t k = 0; k < h->naxes; k++)
        free(h->axes[k]);
    free(h->axes);
    free(h->v);
    memset(h, 0, sizeof *h);
}

const struct mt_hist_series *mt_hist_find(const struct mt_hist *h, const char *key)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].key, key) == 0)
            return &h->v[i];
    return NULL;
}

void mt_hist_load_system(struct mt_hist *h, const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/system.jsonl", dir);
    size_t len = 0;
    char *text = mt_index_read_file(path, HISTORY_MAX, &len);
    for (char *line = text, *nl; text && line < text + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl)
            break;
        *nl = '\0';
        cJSON *row = cJSON_Parse(line);
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(row, "_runtime");
        for (cJSON *it = cJSON_IsNumber(rt) ? row->child : NULL; it; it = it->next) {
            double y;
            if (!it->string || it->string[0] == '_' || !number_of(it, &y))
                continue;
            struct mt_hist_series *s = series_get(h, it->string, "_runtime");
            if (s)
                series_add(s, rt->valuedouble, y);
        }
        cJSON_Delete(row);
    }
    free(text);
}
