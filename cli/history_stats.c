/* Summary statistics computed after the fact (select.h): summary.KEY.max
 * (min, mean, first, last, best) of any history metric, read from the run's
 * history.jsonl when its summary.json does not hold it (a metric nobody
 * configured `summary: [max]` for before the run).  One pass over the file
 * per run, for every statistic the request names. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "select.h"

#define HISTORY_MAX ((size_t)1 << 31) /* history.jsonl read whole, up to 2 GiB */

enum { ST_MIN, ST_MAX, ST_MEAN, ST_FIRST, ST_LAST, ST_BEST };

static int stat_of(const char *name)
{
    static const char *const N[] = { "min", "max", "mean", "first", "last", "best" };
    for (int i = 0; i < 6; i++)
        if (strcmp(name, N[i]) == 0)
            return i;
    return -1;
}

/* Whether larger is better for `metric`: run.json's metrics.<m>.goal, else
 * by its name (accuracy, precision, recall, f1, auc, score, map, bleu, iou,
 * reward are maximized; everything else, losses and errors, minimized). */
static int maximize(const cJSON *metrics, const char *metric)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(metrics, metric), "goal");
    if (cJSON_IsString(g))
        return strncmp(g->valuestring, "max", 3) == 0;
    static const char *const UP[] = { "acc", "precision", "recall", "f1", "auc", "score",
                                      "map", "bleu", "iou", "reward", NULL };
    for (size_t i = 0; UP[i]; i++)
        if (strcasestr(metric, UP[i]))
            return 1;
    return 0;
}

struct acc {
    char *metric;      /* "loss" of "loss.max" */
    size_t n;
    double sum, min, max, first, last;
};

void mt_select__history_stats(const char *dir, const cJSON *run_json,
                              const struct mt_select_keys *keys, double *out, int *have)
{
    struct acc *a = mt_xcalloc(keys->n + 1, sizeof *a);
    size_t nwanted = 0;
    for (size_t i = 0; i < keys->n; i++) {
        have[i] = 0;
        const char *dot = keys->v[i].src == 0 ? strrchr(keys->v[i].key, '.') : NULL;
        if (dot && stat_of(dot + 1) >= 0) {
            a[i].metric = mt_xstrndup(keys->v[i].key, (size_t)(dot - keys->v[i].key));
            nwanted++;
        }
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/history.jsonl", dir);
    size_t len = 0;
    char *text = nwanted ? mt_index_read_file(path, HISTORY_MAX, &len) : NULL;
    for (char *line = text, *nl; text && line < text + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl)
            break; /* a torn last line */
        *nl = '\0';
        cJSON *row = cJSON_Parse(line);
        for (size_t i = 0; row && i < keys->n; i++) {
            if (!a[i].metric)
                continue;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, a[i].metric);
            char *owned;
            struct mt_value x = mt_value_of_json(v, &owned);
            free(owned);
            if (x.type != MT_V_NUM || !isfinite(x.num))
                continue;
            if (!a[i].n++) {
                a[i].first = a[i].min = a[i].max = x.num;
            }
            a[i].min = x.num < a[i].min ? x.num : a[i].min;
            a[i].max = x.num > a[i].max ? x.num : a[i].max;
            a[i].sum += x.num;
            a[i].last = x.num;
        }
        cJSON_Delete(row);
    }
    free(text);
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(run_json, "metrics");
    for (size_t i = 0; i < keys->n; i++) {
        if (!a[i].metric)
            continue;
        if (a[i].n) {
            int st = stat_of(strrchr(keys->v[i].key, '.') + 1);
            if (st == ST_BEST)
                st = maximize(metrics, a[i].metric) ? ST_MAX : ST_MIN;
            out[i] = st == ST_MIN ? a[i].min : st == ST_MAX ? a[i].max
                   : st == ST_MEAN ? a[i].sum / (double)a[i].n
                   : st == ST_FIRST ? a[i].first : a[i].last;
            have[i] = 1;
        }
        free(a[i].metric);
    }
    free(a);
}
