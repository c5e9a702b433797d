/* Choosing runs for ls and report: see select.h. */
#include "select.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "mt_cli.h"

const char *mt_select_usage(void)
{
    return "[--project P] [--tag T]... [--group G] [--state S[,S...]]\n"
           "    [--filter 'summary.val_acc > 0.9 and config.lr < 0.01']\n"
           "    [--sort [-]COLUMN[,[-]COLUMN...]]... [--limit N]\n"
           "    [--columns [=]summary.X,config.Y,...] [--scan]";
}

/* "--name value" or "--name=value". */
static const char *opt_value(const char *name, int argc, char **argv, int *i, int *bad)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "metrictap: %s needs a value\n", name);
        *bad = 1;
        return NULL;
    }
    return argv[++*i];
}

/* The next item of a comma list, a comma inside "quotes", 'quotes' or
 * `quotes` staying in it; NULL at the end.  *p moves past the item. */
static char *next_item(char **p)
{
    char *start = *p, quote = 0, *q = start;
    if (!start)
        return NULL;
    for (; *q && (quote || *q != ','); q++)
        if (*q == '"' || *q == '`' || *q == '\'')
            quote = quote == *q ? 0 : quote ? quote : *q;
    *p = *q ? q + 1 : NULL;
    *q = '\0';
    return start;
}

static int parse_columns(struct mt_select *s, const char *list)
{
    if (list[0] == '=') { /* replace the default columns */
        s->replace_cols = 1;
        list++;
    }
    char *copy = mt_xstrdup(list), *cursor = copy, *p;
    int rc = -1;
    while ((p = next_item(&cursor))) {
        if (!*p)
            continue;
        char err[1024];
        s->cols = mt_xrealloc(s->cols, (s->ncols + 1) * sizeof *s->cols);
        if (mt_col_parse(p, &s->cols[s->ncols], err, sizeof err) != 0) {
            fprintf(stderr, "metrictap: --columns: %s\n", err);
            goto out;
        }
        s->ncols++;
    }
    if (s->replace_cols && !s->ncols) {
        fprintf(stderr, "metrictap: --columns =%s names no column\n", list);
        goto out;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

/* --sort A,-B: each key appended after those already given. */
static int parse_sort(struct mt_select *s, const char *list)
{
    char *copy = mt_xstrdup(list), *cursor = copy, *p;
    int rc = -1, any = 0;
    while ((p = next_item(&cursor))) {
        int desc = p[0] == '-';
        if (p[0] == '-' || p[0] == '+')
            p++;
        if (!*p)
            continue;
        char err[1024];
        s->sort = mt_xrealloc(s->sort, (s->nsort + 1) * sizeof *s->sort);
        if (mt_col_parse(p, &s->sort[s->nsort].col, err, sizeof err) != 0) {
            fprintf(stderr, "metrictap: --sort: %s\n", err);
            goto out;
        }
        s->sort[s->nsort++].desc = desc;
        any = 1;
    }
    if (!any) {
        fprintf(stderr, "metrictap: --sort \"%s\" names no column\n", list);
        goto out;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

int mt_select_arg(struct mt_select *s, int argc, char **argv, int *i)
{
    int bad = 0;
    const char *v;
    char err[1024];
    if ((v = opt_value("--project", argc, argv, i, &bad)))
        s->project = v;
    else if (!bad && (v = opt_value("--group", argc, argv, i, &bad)))
        s->group = v;
    else if (!bad && (v = opt_value("--state", argc, argv, i, &bad)))
        s->state = v;
    else if (!bad && (v = opt_value("--tag", argc, argv, i, &bad))) {
        if (s->ntags == MT_SELECT_MAX_TAGS) {
            fprintf(stderr, "metrictap: at most %d --tag options\n", MT_SELECT_MAX_TAGS);
            return -1;
        }
        s->tags[s->ntags++] = v;
    } else if (!bad && (v = opt_value("--filter", argc, argv, i, &bad))) {
        size_t pos = 0;
        if (s->filter) {
            fprintf(stderr, "metrictap: give one --filter; join conditions with \"and\"\n");
            return -1;
        }
        s->filter_text = v;
        s->filter = mt_filter_create(v, err, sizeof err, &pos);
        if (!s->filter) {
            mt_cli_filter_error("--filter", v, pos, err);
            return -1;
        }
    } else if (!bad && (v = opt_value("--sort", argc, argv, i, &bad))) {
        if (parse_sort(s, v) != 0)
            return -1;
    } else if (!bad && (v = opt_value("--limit", argc, argv, i, &bad))) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end || !*v || v[0] == '-') {
            fprintf(stderr, "metrictap: --limit takes a count, not \"%s\"\n", v);
            return -1;
        }
        s->limit = (size_t)n;
    } else if (!bad && (v = opt_value("--columns", argc, argv, i, &bad))) {
        if (parse_columns(s, v) != 0)
            return -1;
    } else if (!bad && strcmp(argv[*i], "--scan") == 0) {
        s->scan = 1;
    } else if (!bad && strcmp(argv[*i], "--no-sync") == 0) {
        s->no_sync = 1;
    } else
        return bad ? -1 : 0;
    return 1;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? mt_xstrdup(s) : NULL;
}

static void own_value(struct mt_value *dst, const struct mt_value *src)
{
    *dst = *src;
    if (src->type == MT_V_TEXT)
        dst->text = mt_xstrdup(src->text);
}

static struct mt_select_row *add_row(struct mt_select_rows *rows, const struct mt_index_run *r)
{
    if (rows->n == rows->cap) {
        rows->cap = rows->cap ? 2 * rows->cap : 64;
        rows->v = mt_xrealloc(rows->v, rows->cap * sizeof *rows->v);
    }
    struct mt_select_row *row = &rows->v[rows->n++];
    memset(row, 0, sizeof *row);
    row->id = dup_or_null(r->id);
    row->project = dup_or_null(r->project);
    row->name = dup_or_null(r->name);
    row->state = dup_or_null(r->state);
    row->group = dup_or_null(r->group);
    row->job_type = dup_or_null(r->job_type);
    row->tags = dup_or_null(r->tags);
    row->config = dup_or_null(r->config_json);
    row->summary = dup_or_null(r->summary_json);
    row->dir = dup_or_null(r->dir);
    row->start_time = r->start_time;
    row->end_time = r->end_time;
    row->runtime = r->runtime;
    row->exit_code = r->exit_code;
    row->signal = r->signal;
    row->dropped = r->dropped;
    row->cut = r->cut;
    return row;
}

struct query_ctx {
    struct mt_select_rows *rows;
    size_t ncols;
};

static int on_index_row(void *vctx, const struct mt_index_run *r, const struct mt_value *vals)
{
    struct query_ctx *c = vctx;
    struct mt_select_row *row = add_row(c->rows, r);
    row->vals = mt_xcalloc(c->ncols + 1, sizeof *row->vals);
    for (size_t i = 0; i < c->ncols; i++)
        own_value(&row->vals[i], &vals[i]);
    return 0;
}

/* ---- the scan: every run dir's run.json and summary.json ---- */

struct scan_run {
    const struct mt_index_loaded *l;
    const cJSON *config, *summary;
    char *owned[8];
    size_t nowned;
    /* summary.METRIC.stat from history (history_stats.c), read on first use */
    const struct mt_select_keys *wanted;
    double *derived;
    int *have, derived_read;
};

/* A summary statistic the run's summary.json lacks, from its history. */
static struct mt_value derived_get(struct scan_run *c, const char *key)
{
    struct mt_value v = { MT_V_NONE, 0, NULL };
    const char *dot = strrchr(key, '.');
    if (!c->wanted || !dot || !mt_select_stat_name(dot + 1))
        return v;
    for (size_t i = 0; i < c->wanted->n; i++) {
        if (c->wanted->v[i].src != 0 || strcmp(c->wanted->v[i].key, key) != 0)
            continue;
        if (!c->derived_read) {
            mt_select__history_stats(c->l->dir, c->l->json, c->wanted, c->derived, c->have);
            c->derived_read = 1;
        }
        if (c->have[i])
            v = (struct mt_value){ MT_V_NUM, c->derived[i], NULL };
        break;
    }
    return v;
}

/* The value of a flattened key ("a.b.c" may be nested objects). */
static const cJSON *lookup_flat(const cJSON *o, const char *key)
{
    for (const cJSON *it = o ? o->child : NULL; it; it = it->next) {
        if (!it->string)
            continue;
        size_t n = strlen(it->string);
        if (strcmp(it->string, key) == 0 && !cJSON_IsObject(it))
            return it;
        if (cJSON_IsObject(it) && strncmp(it->string, key, n) == 0 && key[n] == '.') {
            const cJSON *v = lookup_flat(it, key + n + 1);
            if (v)
                return v;
        }
    }
    return NULL;
}

static struct mt_value scan_get(void *vctx, const struct mt_col *col)
{
    struct scan_run *c = vctx;
    const struct mt_index_run *r = &c->l->run;
    struct mt_value v = { MT_V_NONE, 0, NULL };
    if (col->src != MT_COL_BUILTIN) {
        const cJSON *j = lookup_flat(col->src == MT_COL_SUMMARY ? c->summary : c->config, col->key);
        char *owned = NULL;
        if (j)
            v = mt_value_of_json(j, &owned);
        else if (col->src == MT_COL_SUMMARY)
            return derived_get(c, col->key);
        if (owned && c->nowned < sizeof c->owned / sizeof *c->owned)
            c->owned[c->nowned++] = owned;
        else
            free(owned);
        return v;
    }
    const char *text = NULL;
    switch (col->builtin) {
    case MT_B_ID: text = r->id; break;
    case MT_B_NAME: text = r->name; break;
    case MT_B_PROJECT: text = r->project; break;
    case MT_B_STATE: text = r->state; break;
    case MT_B_GROUP: text = r->group; break;
    case MT_B_JOB_TYPE: text = r->job_type; break;
    case MT_B_TAGS: text = r->tags; break;
    case MT_B_CREATED: return (struct mt_value){ MT_V_NUM, r->start_time, NULL };
    case MT_B_END_TIME: return (struct mt_value){ MT_V_NUM, r->end_time, NULL };
    case MT_B_RUNTIME: return (struct mt_value){ MT_V_NUM, r->runtime, NULL };
    case MT_B_EXIT_CODE:
        if (r->exit_code >= 0)
            return (struct mt_value){ MT_V_NUM, r->exit_code, NULL };
        return v;
    case MT_B_SIGNAL: return (struct mt_value){ MT_V_NUM, r->signal, NULL };
    default: break;
    }
    if (text)
        v = (struct mt_value){ MT_V_TEXT, 0, text };
    return v;
}

static int scan_has_tag(void *vctx, const char *tag, int glob)
{
    struct scan_run *c = vctx;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(c->l->json, "tags"))
        if (cJSON_IsString(t) && t->valuestring[0]) {
            if (glob ? fnmatch(tag, t->valuestring, FNM_NOESCAPE) == 0
                     : strcmp(tag, t->valuestring) == 0)
                return 1;
        }
    return 0;
}

static int in_list(const char *list, const char *s)
{
    size_t n = strlen(s ? s : "");
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (s && strncmp(p, s, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static int scan_matches(const struct mt_select *s, struct scan_run *c)
{
    const struct mt_index_run *r = &c->l->run;
    struct mt_filter_run fr = { c, scan_get, scan_has_tag };
    for (size_t i = 0; i < s->ntags; i++)
        if (!scan_has_tag(c, s->tags[i], 0))
            return 0;
    if (s->group && (!r->group || strcmp(r->group, s->group) != 0))
        return 0;
    if (s->state && !in_list(s->state, r->state))
        return 0;
    return !s->filter || mt_filter_eval(s->filter, &fr);
}

static void scan_project(const struct mt_select *s, const char *store, const char *project,
                         struct mt_select_rows *rows, struct mt_select_keys *wanted)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/runs/%s", store, project);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        struct mt_index_loaded l;
        if (mt_index_load_dir(store, project, e->d_name, &l) != 0)
            continue;
        double derived[wanted->n + 1];
        int have[wanted->n + 1];
        struct scan_run c = { .l = &l, .wanted = wanted, .derived = derived, .have = have };
        c.config = cJSON_GetObjectItemCaseSensitive(l.json, "config");
        c.summary = l.summary_obj;
        for (size_t k = 0; k < wanted->n; k++)
            if (!wanted->v[k].found) {
                struct mt_col col = { .src = wanted->v[k].src == 0 ? MT_COL_SUMMARY : MT_COL_CONFIG,
                                      .key = (char *)wanted->v[k].key };
                wanted->v[k].found = scan_get(&c, &col).type != MT_V_NONE;
            }
        if (scan_matches(s, &c)) {
            struct mt_select_row *row = add_row(rows, &l.run);
            row->vals = mt_xcalloc(s->ncols + 1, sizeof *row->vals);
            for (size_t i = 0; i < s->ncols; i++) {
                struct mt_value v = scan_get(&c, &s->cols[i]);
                own_value(&row->vals[i], &v);
            }
            row->sortv = mt_xcalloc(s->nsort + 1, sizeof *row->sortv);
            row->nsortv = s->nsort;
            for (size_t k = 0; k < s->nsort; k++) {
                struct mt_value v = scan_get(&c, &s->sort[k].col);
                own_value(&row->sortv[k], &v);
            }
        }
        for (size_t i = 0; i < c.nowned; i++)
            free(c.owned[i]);
        mt_index_loaded_free(&l);
    }
    closedir(d);
}

static const struct mt_select *sorting; /* qsort has no context argument */

static int cmp_rows(const void *pa, const void *pb)
{
    const struct mt_select_row *a = pa, *b = pb;
    /* Numbers, then text, then missing values, as the index orders them. */
    static const int RANK[] = { [MT_V_NUM] = 0, [MT_V_TEXT] = 1, [MT_V_NONE] = 2 };
    for (size_t k = 0; k < sorting->nsort; k++) {
        const struct mt_value *x = &a->sortv[k], *y = &b->sortv[k];
        int c = RANK[x->type] - RANK[y->type];
        if (c == 0) {
            c = mt_value_cmp(x, y);
            if (sorting->sort[k].desc)
                c = -c;
        }
        if (c)
            return c;
    }
    return a->start_time > b->start_time ? -1 : a->start_time < b->start_time ? 1 : 0;
}

/* check: say which names match nothing (not when the index said it). */
static int scan(struct mt_select *s, const char *store, struct mt_select_rows *rows, int check)
{
    struct mt_select_keys wanted;
    mt_select__wanted(s, &wanted);
    if (s->project)
        scan_project(s, store, s->project, rows, &wanted);
    else {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/runs", store);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.')
                scan_project(s, store, e->d_name, rows, &wanted);
        if (d)
            closedir(d);
    }
    if (check)
        s->unknown_names = mt_select__check(s, store, NULL, &wanted);
    mt_select__keys_free(&wanted);
    sorting = s;
    qsort(rows->v, rows->n, sizeof *rows->v, cmp_rows);
    if (s->limit && rows->n > s->limit) {
        size_t keep = s->limit;
        struct mt_select_rows tail = { NULL, 0, 0 };
        tail.v = mt_xcalloc(rows->n - keep, sizeof *tail.v);
        memcpy(tail.v, rows->v + keep, (rows->n - keep) * sizeof *tail.v);
        tail.n = tail.cap = rows->n - keep;
        rows->n = keep;
        mt_select_rows_free(&tail, s->ncols);
    }
    return 0;
}

int mt_select_run(struct mt_select *s, const char *store_dir, struct mt_select_rows *rows)
{
    memset(rows, 0, sizeof *rows);
    if (s->scan)
        return scan(s, store_dir, rows, 1);
    char err[1024];
    int rc = -1;
    struct mt_index *ix = mt_index_open(store_dir, err, sizeof err);
    if (!ix && errno == ENOENT) { /* no store yet: no runs, which is no error */
        fprintf(stderr, "metrictap: no runs yet (there is no run store at %s)\n", store_dir);
        return 0;
    }
    if (!ix) {
        fprintf(stderr, "metrictap: %s\n", err);
        return -1;
    }
    if (*mt_index_notice(ix))
        fprintf(stderr, "metrictap: %s\n", mt_index_notice(ix));
    if (!s->no_sync) {
        struct mt_index_sync_stats st;
        if (mt_index_sync(ix, s->project, &st) != 0)
            fprintf(stderr, "metrictap: the index may be stale (%s); try metrictap reindex\n",
                    mt_index_error(ix));
    }
    struct mt_select_keys wanted;
    mt_select__wanted(s, &wanted);
    s->unknown_names = mt_select__check(s, store_dir, ix, &wanted);
    /* summary.METRIC.max of a metric: computed from history where a run's
     * summary lacks it, which only the files can answer. */
    int from_history = 0;
    for (size_t i = 0; i < wanted.n; i++) {
        const char *dot = wanted.v[i].src == 0 ? strrchr(wanted.v[i].key, '.') : NULL;
        if (dot && mt_select_stat_name(dot + 1)) {
            char *base = mt_xstrndup(wanted.v[i].key, (size_t)(dot - wanted.v[i].key));
            from_history |= mt_index_has_key(ix, s->project, 0, base) == 1;
            free(base);
        }
    }
    mt_select__keys_free(&wanted);
    if (from_history) {
        mt_index_close(ix);
        return scan(s, store_dir, rows, 0);
    }
    struct mt_index_query q = {
        .project = s->project, .tags = s->tags, .ntags = s->ntags, .group = s->group,
        .state = s->state, .filter = s->filter, .sort = s->sort, .nsort = s->nsort, .cols = s->cols, .ncols = s->ncols, .limit = s->limit,
    };
    struct query_ctx c = { rows, s->ncols };
    if (mt_index_query(ix, &q, on_index_row, &c) != 0) {
        fprintf(stderr, "metrictap: %s\n", mt_index_error(ix));
        goto out;
    }
    rc = 0;
out:
    mt_index_close(ix);
    return rc;
}

void mt_select_rows_free(struct mt_select_rows *rows, size_t ncols)
{
    for (size_t i = 0; i < rows->n; i++) {
        struct mt_select_row *r = &rows->v[i];
        char *strs[] = { r->id, r->project, r->name, r->state, r->group,
                         r->job_type, r->tags, r->config, r->summary, r->dir };
        for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
            free(strs[k]);
        for (size_t k = 0; r->vals && k < ncols; k++)
            if (r->vals[k].type == MT_V_TEXT)
                free((char *)r->vals[k].text);
        free(r->vals);
        for (size_t k = 0; k < r->nsortv; k++)
            if (r->sortv[k].type == MT_V_TEXT)
                free((char *)r->sortv[k].text);
        free(r->sortv);
    }
    free(rows->v);
    memset(rows, 0, sizeof *rows);
}

void mt_select_free(struct mt_select *s)
{
    mt_filter_destroy(s->filter);
    for (size_t i = 0; i < s->nsort; i++)
        mt_col_free(&s->sort[i].col);
    free(s->sort);
    for (size_t i = 0; i < s->ncols; i++)
        mt_col_free(&s->cols[i]);
    free(s->cols);
    memset(s, 0, sizeof *s);
}
