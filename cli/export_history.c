/* metrictap export --csv|--json [--columns KEY,...] [--project P] RUN... | --all:
 * the runs' history on stdout for pandas, R or a spreadsheet.  One row per
 * history row: the run's id and name, then the axes and values (--columns:
 * those keys, in that order; else every key, in the order the rows first
 * show them).  Numbers are written as history.jsonl holds them, which is as
 * the program printed them (1.5100 stays 1.5100).  --json writes JSON lines,
 * one object per row with "run" and "name" added. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "select.h"

#define HISTORY_MAX ((size_t)1 << 31)
#define RUNS_MAX 100000

/* One member of a history row: its key (decoded) and its value as written. */
struct member {
    char *key;
    const char *raw;
    size_t len;
};

/* The end of the JSON value starting at p (string, number, literal, or a
 * nested object/array), or NULL when it is not well formed. */
static const char *value_end(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = value_end(p, end);
                if (!p)
                    return NULL;
                p--;
            } else if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
        }
        return NULL;
    }
    while (p < end && !strchr(",}] \t\r", *p))
        p++;
    return p;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* Splits a one-line JSON object into members (keys owned).  n, or -1. */
static long split_row(const char *line, size_t len, struct member **out, size_t *cap)
{
    const char *p = skip_ws(line, line + len), *end = line + len;
    long n = 0;
    if (p >= end || *p != '{')
        return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return 0;
    while (p < end) {
        const char *kend = value_end(p, end);
        if (*p != '"' || !kend)
            goto bad;
        char *kjson = mt_xstrndup(p, (size_t)(kend - p));
        cJSON *k = cJSON_Parse(kjson);
        free(kjson);
        if (!cJSON_IsString(k)) {
            cJSON_Delete(k);
            goto bad;
        }
        p = skip_ws(kend, end);
        if (p >= end || *p != ':') {
            cJSON_Delete(k);
            goto bad;
        }
        p = skip_ws(p + 1, end);
        const char *vend = value_end(p, end);
        if (!vend || vend == p) {
            cJSON_Delete(k);
            goto bad;
        }
        if ((size_t)n == *cap) {
            *cap = *cap ? 2 * *cap : 32;
            *out = mt_xrealloc(*out, *cap * sizeof **out);
        }
        (*out)[n++] = (struct member){ mt_xstrdup(k->valuestring), p, (size_t)(vend - p) };
        cJSON_Delete(k);
        p = skip_ws(vend, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return n;
        goto bad;
    }
bad:
    for (long i = 0; i < n; i++)
        free((*out)[i].key);
    return -1;
}

struct run_text {
    char *id, *name, *text;
    size_t len;
};

struct keys {
    char **v;
    size_t n, cap;
};

static void key_add(struct keys *k, const char *name)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->v[i], name) == 0)
            return;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 32;
        k->v = mt_xrealloc(k->v, k->cap * sizeof *k->v);
    }
    k->v[k->n++] = mt_xstrdup(name);
}

static void csv_put(struct mt_buf *b, const char *s, size_t n)
{
    if (!memchr(s, ',', n) && !memchr(s, '"', n) && !memchr(s, '\n', n) && !memchr(s, '\r', n)) {
        mt_buf_add(b, s, n);
        return;
    }
    mt_buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            mt_buf_addc(b, '"');
        mt_buf_addc(b, s[i]);
    }
    mt_buf_addc(b, '"');
}

/* A value as a CSV cell: strings decoded, null empty, the rest as written. */
static void csv_value(struct mt_buf *b, const char *raw, size_t len)
{
    if (len == 4 && memcmp(raw, "null", 4) == 0)
        return;
    if (raw[0] != '"') {
        csv_put(b, raw, len);
        return;
    }
    char *j = mt_xstrndup(raw, len);
    cJSON *s = cJSON_Parse(j);
    free(j);
    if (cJSON_IsString(s))
        csv_put(b, s->valuestring, strlen(s->valuestring));
    cJSON_Delete(s);
}

/* Every line of a run's history.jsonl, split; calls fn per good row and
 * counts the others. */
typedef void (*row_fn)(void *ctx, const struct run_text *r, const struct member *m, size_t n);
static size_t each_row(const struct run_text *r, row_fn fn, void *ctx)
{
    struct member *m = NULL;
    size_t cap = 0, bad = 0;
    for (char *line = r->text, *nl; r->text && line < r->text + r->len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(r->text + r->len - line));
        if (!nl)
            break; /* a torn last line: the run is still writing it */
        if (nl == line)
            continue;
        long n = split_row(line, (size_t)(nl - line), &m, &cap);
        if (n < 0) {
            bad++;
            continue;
        }
        fn(ctx, r, m, (size_t)n);
        for (long i = 0; i < n; i++)
            free(m[i].key);
    }
    free(m);
    return bad;
}

static void collect_keys(void *ctx, const struct run_text *r, const struct member *m, size_t n)
{
    (void)r;
    for (size_t i = 0; i < n; i++)
        key_add(ctx, m[i].key);
}

struct writer {
    struct mt_buf *b;
    const struct keys *cols;
    int json;
    int chosen; /* --columns given */
};

static void write_row(void *ctx, const struct run_text *r, const struct member *m, size_t n)
{
    struct writer *w = ctx;
    struct mt_buf *b = w->b;
    if (w->json) {
        mt_buf_adds(b, "{\"run\":");
        mt_buf_json_string(b, r->id, strlen(r->id));
        mt_buf_adds(b, ",\"name\":");
        mt_buf_json_string(b, r->name, strlen(r->name));
        for (size_t c = 0; c < (w->chosen ? w->cols->n : n); c++) {
            const struct member *x = NULL;
            if (!w->chosen)
                x = &m[c];
            else
                for (size_t i = 0; i < n && !x; i++)
                    if (strcmp(m[i].key, w->cols->v[c]) == 0)
                        x = &m[i];
            if (!x)
                continue;
            mt_buf_addc(b, ',');
            mt_buf_json_string(b, x->key, strlen(x->key));
            mt_buf_addc(b, ':');
            mt_buf_add(b, x->raw, x->len);
        }
        mt_buf_adds(b, "}\n");
    } else {
        csv_put(b, r->id, strlen(r->id));
        mt_buf_addc(b, ',');
        csv_put(b, r->name, strlen(r->name));
        for (size_t c = 0; c < w->cols->n; c++) {
            mt_buf_addc(b, ',');
            for (size_t i = 0; i < n; i++)
                if (strcmp(m[i].key, w->cols->v[c]) == 0) {
                    csv_value(b, m[i].raw, m[i].len);
                    break;
                }
        }
        mt_buf_addc(b, '\n');
    }
    if (b->len > (1 << 20)) { /* write as it goes */
        fwrite(b->data, 1, b->len, stdout);
        mt_buf_reset(b);
    }
}

static int add_run(struct run_text **runs, size_t *n, const char *id, const char *dir,
                   const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*runs)[i].id, id) == 0)
            return 0;
    if (*n == RUNS_MAX) {
        fprintf(stderr, "metrictap export: at most %d runs at once\n", RUNS_MAX);
        return -1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/history.jsonl", dir);
    size_t len = 0;
    char *text = mt_index_read_file(path, HISTORY_MAX, &len);
    if (!text)
        fprintf(stderr, "metrictap export: run %s has no history.jsonl (%s)\n", id, path);
    *runs = mt_xrealloc(*runs, (*n + 1) * sizeof **runs);
    (*runs)[(*n)++] = (struct run_text){ mt_xstrdup(id), mt_xstrdup(name ? name : ""), text, len };
    return 0;
}

struct all_ctx {
    struct run_text **runs;
    size_t *n;
    int failed;
};

static int on_any_run(void *ctx, const struct mt_index_run *r)
{
    struct all_ctx *a = ctx;
    if (add_run(a->runs, a->n, r->id, r->dir, r->name) != 0) {
        a->failed = 1;
        return 1;
    }
    return 0;
}

/* The name of a run the resolver found, from its run.json. */
static char *run_name(const char *dir)
{
    char why[256];
    cJSON *run = mt_index_read_run_json(dir, why, sizeof why);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(run, "name");
    char *out = mt_xstrdup(cJSON_IsString(n) ? n->valuestring : "");
    cJSON_Delete(run);
    return out;
}

int mt_cli_export_history(int argc, char **argv)
{
    const char *project = mt_cli_take_project(&argc, argv);
    const char *columns = NULL;
    int json = 0, csv = 0, all = 0, rc = 2;
    struct mt_config cfg;
    struct mt_index *ix = NULL;
    struct run_text *runs = NULL;
    size_t nruns = 0;
    struct keys cols = { 0 };
    mt_cli_load_config(&cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--csv") == 0)
            csv = 1;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--all") == 0)
            all = 1;
        else if (strcmp(argv[i], "--columns") == 0 && i + 1 < argc)
            columns = argv[++i];
        else if (strncmp(argv[i], "--columns=", 10) == 0)
            columns = argv[i] + 10;
        else if (argv[i][0] == '-' && !mt_cli_is_run_position(argv[i])) {
            fprintf(stderr, "metrictap export: unknown option %s\n%s", argv[i],
                    mt_cli_usage("export"));
            goto out;
        }
    }
    if (csv == json) {
        fprintf(stderr, "metrictap export: give one of --csv and --json\n%s", mt_cli_usage("export"));
        goto out;
    }
    rc = 1;
    if (!(ix = mt_cli_open_index(&cfg)))
        goto out;
    int named = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && !mt_cli_is_run_position(argv[i])) {
            if (strcmp(argv[i], "--columns") == 0)
                i++;
            continue;
        }
        char *id = NULL, *dir = NULL;
        named = 1;
        if (mt_cli_find_run(ix, cfg.dir, project, argv[i], &id, &dir) != 0)
            goto out;
        char *name = run_name(dir);
        int added = add_run(&runs, &nruns, id, dir, name);
        free(name);
        free(id);
        free(dir);
        if (added != 0)
            goto out;
    }
    if (all) {
        mt_index_sync(ix, project, NULL);
        struct all_ctx a = { &runs, &nruns, 0 };
        if (mt_index_lookup(ix, project, MT_INDEX_BY_NEWEST, NULL, RUNS_MAX, on_any_run, &a) < 0 ||
            a.failed) {
            fprintf(stderr, "metrictap export: %s\n", mt_index_error(ix));
            goto out;
        }
    }
    if (!named && !all) {
        fprintf(stderr, "metrictap export: name the runs (RUN... or --all)\n%s",
                mt_cli_usage("export"));
        rc = 2;
        goto out;
    }
    if (columns) {
        char *copy = mt_xstrdup(columns), *cur = copy;
        for (char *k; (k = strsep(&cur, ","));)
            if (*k)
                key_add(&cols, k);
        free(copy);
    } else if (csv)
        for (size_t r = 0; r < nruns; r++)
            each_row(&runs[r], collect_keys, &cols);
    struct mt_buf b;
    mt_buf_init(&b, (size_t)1 << 30);
    if (csv) {
        mt_buf_adds(&b, "run,name");
        for (size_t c = 0; c < cols.n; c++) {
            mt_buf_addc(&b, ',');
            csv_put(&b, cols.v[c], strlen(cols.v[c]));
        }
        mt_buf_addc(&b, '\n');
    }
    struct writer w = { &b, &cols, json, columns != NULL };
    rc = 0;
    for (size_t r = 0; r < nruns; r++) {
        size_t bad = each_row(&runs[r], write_row, &w);
        if (bad) {
            fprintf(stderr, "metrictap export: %zu line%s of run %s's history.jsonl %s not a JSON"
                            " object; left out\n", bad, bad == 1 ? "" : "s", runs[r].id,
                    bad == 1 ? "is" : "are");
            rc = 1;
        }
    }
    fwrite(b.data ? b.data : "", 1, b.len, stdout);
    mt_buf_free(&b);
    if (fflush(stdout) != 0)
        rc = 1;
out:
    for (size_t r = 0; r < nruns; r++) {
        free(runs[r].id);
        free(runs[r].name);
        free(runs[r].text);
    }
    free(runs);
    for (size_t c = 0; c < cols.n; c++)
        free(cols.v[c]);
    free(cols.v);
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc;
}
