/* Names of a selection that match nothing: a --project no run has, a
 * --state that is no state, a summary/config key of a filter, sort or
 * column that no run of the project has.  Each is said on stderr with the
 * nearest existing name; the rows are still selected (see select.h).
 *
 * Existence is an index lookup per name (cheap at any size); the names to
 * suggest are listed only when something is missing.  With --scan the
 * scan marks which keys it saw and the suggestions come from the run
 * directories. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "select.h"

static const char *const STATES[] = { "running", "finished", "failed", "crashed", "killed",
                                      "lost", NULL };

struct name_list {
    char **v;
    size_t n, cap;
};

static void add_name(void *ctx, const char *name)
{
    struct name_list *l = ctx;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0)
            return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = mt_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = mt_xstrdup(name);
}

static void free_names(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Edit distance, case-insensitive, over bytes; long names are cut at 128. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 128)
        la = 128;
    if (lb > 128)
        lb = 128;
    size_t prev[129], cur[129];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = strncasecmp(a + i - 1, b + j - 1, 1) != 0;
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb];
}

/* The nearest of `names` to `want` (ties: the first in byte order), or
 * NULL when there are none. */
static const char *nearest(char *const *names, size_t n, const char *want)
{
    const char *best = NULL;
    size_t bd = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(want, names[i]);
        if (d < bd || (d == bd && strcmp(names[i], best) < 0)) {
            best = names[i];
            bd = d;
        }
    }
    return best;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "(projects: a, b, c, and 12 more)" */
static void list_some(struct mt_buf *b, const char *what, struct name_list *l)
{
    qsort(l->v, l->n, sizeof *l->v, cmp_str);
    mt_buf_printf(b, " (%s: ", what);
    for (size_t i = 0; i < l->n && i < 8; i++)
        mt_buf_printf(b, "%s%s", i ? ", " : "", l->v[i]);
    if (l->n > 8)
        mt_buf_printf(b, " and %zu more", l->n - 8);
    mt_buf_adds(b, ")");
}

int mt_select_stat_name(const char *s)
{
    static const char *const STATS[] = { "min", "max", "mean", "first", "last", "best", NULL };
    for (size_t i = 0; STATS[i]; i++)
        if (strcmp(s, STATS[i]) == 0)
            return 1;
    return 0;
}

/* ---- the wanted keys ---- */

static void want_col(void *ctx, const struct mt_col *col)
{
    struct mt_select_keys *k = ctx;
    if (col->src == MT_COL_BUILTIN)
        return;
    int src = col->src == MT_COL_SUMMARY ? 0 : 1;
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].src == src && strcmp(k->v[i].key, col->key) == 0)
            return;
    k->v = mt_xrealloc(k->v, (k->n + 1) * sizeof *k->v);
    k->v[k->n++] = (struct mt_select_key){ src, col->key, col->label, 0 };
}

void mt_select__wanted(const struct mt_select *s, struct mt_select_keys *out)
{
    memset(out, 0, sizeof *out);
    if (s->filter)
        mt_filter_each_col(s->filter, want_col, out);
    for (size_t i = 0; i < s->nsort; i++)
        want_col(out, &s->sort[i].col);
    for (size_t i = 0; i < s->ncols; i++)
        want_col(out, &s->cols[i]);
}

void mt_select__keys_free(struct mt_select_keys *k)
{
    free(k->v);
    memset(k, 0, sizeof *k);
}

/* ---- names from the run directories (--scan) ---- */

static void add_flat(void *ctx, const char *key, const struct mt_value *v)
{
    (void)v;
    add_name(ctx, key);
}

static void scan_names(const char *store, const char *project, int src, struct name_list *out,
                       struct name_list *projects)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/runs", store);
    DIR *d = opendir(path);
    struct dirent *pe;
    while (d && (pe = readdir(d))) {
        if (pe->d_name[0] == '.')
            continue;
        if (projects) {
            add_name(projects, pe->d_name);
            continue;
        }
        if (project && strcmp(project, pe->d_name) != 0)
            continue;
        char pdir[PATH_MAX];
        snprintf(pdir, sizeof pdir, "%s/%s", path, pe->d_name);
        DIR *pd = opendir(pdir);
        struct dirent *e;
        while (pd && (e = readdir(pd))) {
            struct mt_index_loaded l;
            if (e->d_name[0] == '.' || mt_index_load_dir(store, pe->d_name, e->d_name, &l) != 0)
                continue;
            const cJSON *o = src == 0 ? l.summary_obj
                                      : cJSON_GetObjectItemCaseSensitive(l.json, "config");
            mt_flatten_json(o, 100000, add_flat, out);
            mt_index_loaded_free(&l);
        }
        if (pd)
            closedir(pd);
    }
    if (d)
        closedir(d);
}

static int project_exists(const char *store, struct mt_index *ix, const char *project)
{
    if (ix) {
        int n = mt_index_lookup(ix, project, MT_INDEX_BY_NEWEST, NULL, 1, NULL, NULL);
        return n != 0; /* an error counts as existing: say nothing false */
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/runs/%s", store, project);
    DIR *d = opendir(path);
    if (d)
        closedir(d);
    return d != NULL;
}

/* A summary key "K.max" (min, mean, first, last, best) whose metric K some
 * run has is computed from history (summary_stats.c), so it is not unknown. */
static int is_stat_of_known(struct mt_index *ix, const char *project, const struct mt_select_key *k,
                            const struct mt_select_keys *all)
{
    const char *dot = strrchr(k->key, '.');
    if (k->src != 0 || !dot || !mt_select_stat_name(dot + 1))
        return 0;
    char *base = mt_xstrndup(k->key, (size_t)(dot - k->key));
    int known = 0;
    if (ix)
        known = mt_index_has_key(ix, project, 0, base) != 0;
    for (size_t i = 0; !ix && i < all->n; i++)
        if (all->v[i].src == 0 && all->v[i].found && strcmp(all->v[i].key, base) == 0)
            known = 1;
    free(base);
    return known;
}

size_t mt_select__check(const struct mt_select *s, const char *store, struct mt_index *ix,
                        const struct mt_select_keys *keys)
{
    size_t unknown = 0;
    const char *scope = s->project;
    struct mt_buf msg;
    if (!s->project && !s->state && !keys->n)
        return 0;
    mt_buf_init(&msg, 1 << 16);
    if (s->project && !project_exists(store, ix, s->project)) {
        struct name_list l = { 0 };
        if (ix)
            mt_index_projects(ix, add_name, &l);
        else
            scan_names(store, NULL, 0, NULL, &l);
        const char *near = nearest(l.v, l.n, s->project);
        mt_buf_reset(&msg);
        mt_buf_printf(&msg, "metrictap: no run has project \"%s\"", s->project);
        if (near) {
            mt_buf_printf(&msg, "; did you mean \"%s\"?", near);
            list_some(&msg, "projects", &l);
        } else
            mt_buf_adds(&msg, " (the store has no runs)");
        fprintf(stderr, "%s\n", msg.data);
        free_names(&l);
        mt_buf_free(&msg);
        return 1; /* its keys would all be unknown: the project says it */
    }
    if (s->state) {
        char *copy = mt_xstrdup(s->state), *cursor = copy;
        for (char *st; (st = strsep(&cursor, ","));) {
            int ok = 0;
            for (size_t i = 0; STATES[i]; i++)
                ok |= strcmp(st, STATES[i]) == 0;
            if (ok)
                continue;
            const char *near = nearest((char *const *)STATES, 6, st);
            fprintf(stderr, "metrictap: --state: no state \"%s\"; did you mean \"%s\"? (states:"
                            " running, finished, failed, crashed, killed, lost)\n", st, near);
            unknown++;
        }
        free(copy);
    }
    for (size_t i = 0; i < keys->n; i++) {
        const struct mt_select_key *k = &keys->v[i];
        int found = ix ? mt_index_has_key(ix, scope, k->src, k->key) != 0 : k->found;
        if (found || is_stat_of_known(ix, scope, k, keys))
            continue;
        struct name_list l = { 0 };
        if (ix)
            mt_index_keys(ix, scope, k->src, add_name, &l);
        else
            scan_names(store, scope, k->src, &l, NULL);
        const char *near = nearest(l.v, l.n, k->key);
        const char *src = k->src == 0 ? "summary" : "config";
        mt_buf_reset(&msg);
        mt_buf_printf(&msg, "metrictap: no run%s%s%s has %s", scope ? " of project \"" : "",
                      scope ? scope : "", scope ? "\"" : "", k->label);
        if (near)
            mt_buf_printf(&msg, "; did you mean %s.%s?", src, near);
        else
            mt_buf_printf(&msg, " (no run has %s keys)", src);
        fprintf(stderr, "%s\n", msg.data);
        free_names(&l);
        unknown++;
    }
    mt_buf_free(&msg);
    return unknown;
}
