/* metrictap report [ls selection options] -o FILE [--metric M]... [--x AXIS]
 *                  [--parallel summary.KEY] [--title T]:
 * one self-contained HTML file (inline CSS, SVG and an optional inline
 * script; nothing fetched) with the runs table and a line chart per metric
 * across the selected runs, each against its step axis (or AXIS), grouped
 * by metric family (train_*, eval_*, system/..., ...).  Every chart has a
 * legend; each run keeps one colour and dash everywhere (report_svg.c),
 * and hovering any part of a run brings it forward.  --parallel adds a
 * parallel-coordinates chart of the config keys that vary against a
 * summary metric.  A selection or metric that matches nothing is an error
 * that names what exists.  Without --limit the newest 100 runs are
 * reported. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "report.h"
#include "select.h"

#define DEFAULT_LIMIT 100
#define MAX_CONFIG_COLS 8
#define MAX_SUMMARY_COLS 12
#define MAX_KEYS 256

static void esc(struct mt_buf *b, const char *s)
{
    mt_report_esc(b, s);
}

struct keys {
    char **v;
    size_t n;
};

static int key_index(const struct keys *k, const char *s)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->v[i], s) == 0)
            return (int)i;
    return -1;
}

static void key_add(struct keys *k, const char *s, size_t max)
{
    if (key_index(k, s) >= 0 || k->n >= max)
        return;
    k->v = mt_xrealloc(k->v, (k->n + 1) * sizeof *k->v);
    k->v[k->n++] = mt_xstrdup(s);
}

static void keys_free(struct keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    memset(k, 0, sizeof *k);
}

static void keys_list(FILE *f, const struct keys *k, size_t max)
{
    for (size_t i = 0; i < k->n && i < max; i++)
        fprintf(f, "%s %s", i ? "," : "", k->v[i]);
    if (k->n > max)
        fprintf(f, ", ... (%zu in all)", k->n);
    if (!k->n)
        fputs(" (none)", f);
    fputc('\n', f);
}

/* ---- the runs table ---- */

struct table {
    struct keys labels;
    char ***cells; /* [row][col], "" for none */
    int *numeric;  /* per column: right-aligned */
    size_t nrows;
};

static void value_text(const cJSON *v, char *out, size_t size, int *num)
{
    char *owned = NULL;
    struct mt_value mv = mt_value_of_json(v, &owned);
    mt_cli_format_value(&mv, out, size, 1);
    free(owned);
    *num = mv.type == MT_V_NUM;
}

static const cJSON *dotted(const cJSON *o, const char *key)
{
    char part[512];
    for (const char *p = key; o && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, p);
        o = cJSON_GetObjectItemCaseSensitive(o, part);
        p += n + (p[n] == '.');
    }
    return o;
}

/* Config keys whose values differ between the runs: a sweep's parameters. */
static void collect_varying(void *ctx, const char *key, const struct mt_value *v)
{
    (void)v;
    key_add(ctx, key, MAX_KEYS);
}

static void varying_config(struct mt_report_run *runs, size_t n, struct keys *out)
{
    struct keys all = { 0 };
    for (size_t r = 0; r < n; r++)
        mt_flatten_json(runs[r].config, MAX_KEYS, collect_varying, &all);
    for (size_t k = 0; k < all.n && out->n < MAX_CONFIG_COLS; k++) {
        char first[512] = "", text[512];
        int num, differs = 0, seen = 0;
        for (size_t r = 0; r < n && !differs; r++) {
            const cJSON *v = dotted(runs[r].config, all.v[k]);
            text[0] = '\0';
            if (v)
                value_text(v, text, sizeof text, &num);
            if (!seen++)
                snprintf(first, sizeof first, "%s", text);
            else
                differs = strcmp(first, text) != 0;
        }
        if (differs)
            key_add(out, all.v[k], MAX_CONFIG_COLS);
    }
    keys_free(&all);
}

static void build_table(struct table *t, const struct mt_select *sel, struct mt_report_run *runs,
                        size_t n, const struct keys *axes)
{
    struct keys config = { 0 }, summary = { 0 };
    if (!sel->ncols) {
        varying_config(runs, n, &config);
        /* The summary's metrics; axes (step, epoch) are where a run got to. */
        for (size_t r = 0; r < n; r++)
            for (const cJSON *it = runs[r].summary ? runs[r].summary->child : NULL; it;
                 it = it->next)
                if (it->string && it->string[0] != '_' && key_index(axes, it->string) < 0 &&
                    (cJSON_IsNumber(it) || cJSON_IsString(it) || cJSON_IsBool(it)))
                    key_add(&summary, it->string, MAX_SUMMARY_COLS);
    }
    t->nrows = n;
    t->cells = mt_xcalloc(n + 1, sizeof *t->cells);
    /* The columns in order: fixed ones, --columns, varying config, summary. */
    const char *fixed[] = { "name", "state", "created", "runtime", "tags", "group" };
    for (size_t i = 0; i < 6; i++)
        key_add(&t->labels, fixed[i], 1000);
    for (size_t k = 0; k < sel->ncols; k++)
        key_add(&t->labels, sel->cols[k].label, 1000);
    for (size_t k = 0; k < config.n; k++) {
        char label[600];
        snprintf(label, sizeof label, "config.%s", config.v[k]);
        key_add(&t->labels, label, 1000);
    }
    for (size_t k = 0; k < summary.n; k++) {
        char label[600];
        snprintf(label, sizeof label, "summary.%s", summary.v[k]);
        key_add(&t->labels, label, 1000);
    }
    size_t ncols = t->labels.n;
    t->numeric = mt_xcalloc(ncols + 1, sizeof *t->numeric);
    for (size_t r = 0; r < n; r++) {
        const struct mt_select_row *row = runs[r].row;
        t->cells[r] = mt_xcalloc(ncols + 1, sizeof **t->cells);
        char created[64], rt[32], v[4096];
        time_t tt = (time_t)row->start_time;
        struct tm tm;
        localtime_r(&tt, &tm);
        strftime(created, sizeof created, "%Y-%m-%d %H:%M", &tm);
        mt_cli_format_duration(row->runtime, rt, sizeof rt);
        const char *fixed_vals[] = { row->name, row->state, created, rt, row->tags, row->group };
        size_t c = 0;
        for (; c < 6; c++)
            t->cells[r][c] = mt_xstrdup(fixed_vals[c] ? fixed_vals[c] : "");
        t->numeric[3] = 1;
        for (size_t k = 0; k < sel->ncols; k++, c++) {
            mt_cli_format_value(&row->vals[k], v, sizeof v, 0);
            t->cells[r][c] = mt_xstrdup(v);
            t->numeric[c] |= row->vals[k].type == MT_V_NUM;
        }
        for (size_t k = 0; k < config.n; k++, c++) {
            const cJSON *cv = dotted(runs[r].config, config.v[k]);
            int num = 0;
            v[0] = '\0';
            if (cv)
                value_text(cv, v, sizeof v, &num);
            t->cells[r][c] = mt_xstrdup(v);
            t->numeric[c] |= num;
        }
        for (size_t k = 0; k < summary.n; k++, c++) {
            const cJSON *sv = cJSON_GetObjectItemCaseSensitive(runs[r].summary, summary.v[k]);
            int num = 0;
            char *owned = NULL;
            struct mt_value mv = mt_value_of_json(sv, &owned);
            mt_cli_format_value(&mv, v, sizeof v, 0);
            free(owned);
            num = mv.type == MT_V_NUM;
            t->cells[r][c] = mt_xstrdup(sv ? v : "");
            t->numeric[c] |= num;
        }
    }
    keys_free(&config);
    keys_free(&summary);
}

static void table_free(struct table *t)
{
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->labels.n; c++)
            free(t->cells[r][c]);
        free(t->cells[r]);
    }
    free(t->cells);
    free(t->numeric);
    keys_free(&t->labels);
}

/* Only the columns some run has a value in; the others are named below. */
static void table_html(struct mt_buf *b, const struct table *t, struct mt_report_run *runs)
{
    int *used = mt_xcalloc(t->labels.n + 1, sizeof *used);
    for (size_t c = 0; c < t->labels.n; c++)
        for (size_t r = 0; r < t->nrows && !used[c]; r++)
            used[c] = t->cells[r][c] && t->cells[r][c][0];
    mt_buf_adds(b, "<div class=\"tw\"><table id=\"runs\"><thead><tr><th>id</th>");
    for (size_t c = 0; c < t->labels.n; c++)
        if (used[c]) {
            mt_buf_adds(b, "<th>");
            esc(b, t->labels.v[c]);
            mt_buf_adds(b, "</th>");
        }
    mt_buf_adds(b, "</tr></thead><tbody>\n");
    for (size_t r = 0; r < t->nrows; r++) {
        mt_buf_adds(b, "<tr data-run=\"");
        esc(b, runs[r].row->id);
        mt_buf_printf(b, "\"><td><span class=\"sw\" style=\"background:%s\"></span>",
                      runs[r].colour);
        esc(b, runs[r].row->id);
        mt_buf_adds(b, "</td>");
        for (size_t c = 0; c < t->labels.n; c++) {
            if (!used[c])
                continue;
            mt_buf_adds(b, t->numeric[c] ? "<td class=\"num\" data-col=\"" : "<td data-col=\"");
            esc(b, t->labels.v[c]);
            mt_buf_adds(b, "\">");
            esc(b, t->cells[r][c]);
            mt_buf_adds(b, "</td>");
        }
        mt_buf_adds(b, "</tr>\n");
    }
    mt_buf_adds(b, "</tbody></table></div>\n");
    int first = 1;
    for (size_t c = 0; c < t->labels.n; c++)
        if (!used[c]) {
            mt_buf_adds(b, first ? "<p class=\"note\">Columns without values left out: " : ", ");
            esc(b, t->labels.v[c]);
            first = 0;
        }
    if (!first)
        mt_buf_adds(b, "</p>\n");
    free(used);
}

/* ---- metric families ---- */

/* train_loss -> "train", system/gpu.0.util and system.cpu_percent ->
 * "system", loss -> "" (a prefix counts when another metric shares it or
 * it is a usual one). */
static void family_of(const char *key, const struct keys *all, char *out, size_t size)
{
    static const char *const USUAL[] = { "train", "eval", "val", "valid", "test", "system", NULL };
    size_t n = strcspn(key, "/");
    if (strncmp(key, "system.", 7) == 0) { /* system.jsonl's samples */
        snprintf(out, size, "system");
        return;
    }
    if (key[n] == '/') {
        snprintf(out, size, "%.*s", (int)n, key);
        return;
    }
    n = strcspn(key, "_");
    out[0] = '\0';
    if (!key[n] || n == 0)
        return;
    for (int i = 0; USUAL[i]; i++)
        if (strlen(USUAL[i]) == n && strncmp(key, USUAL[i], n) == 0) {
            snprintf(out, size, "%.*s", (int)n, key);
            return;
        }
    for (size_t i = 0; i < all->n; i++)
        if (strcmp(all->v[i], key) != 0 && strncmp(all->v[i], key, n + 1) == 0) {
            snprintf(out, size, "%.*s", (int)n, key);
            return;
        }
}

static size_t charts_by_family(struct mt_buf *b, const struct keys *metrics,
                               struct mt_report_run *runs, size_t nruns)
{
    struct keys families = { 0 };
    char fam[256];
    for (size_t k = 0; k < metrics->n; k++) {
        family_of(metrics->v[k], metrics, fam, sizeof fam);
        if (strcmp(fam, "system") != 0)
            key_add(&families, fam, MAX_KEYS);
    }
    key_add(&families, "system", MAX_KEYS); /* last */
    size_t charts = 0;
    for (size_t f = 0; f < families.n; f++) {
        int opened = 0;
        for (size_t k = 0; k < metrics->n; k++) {
            family_of(metrics->v[k], metrics, fam, sizeof fam);
            if (strcmp(fam, families.v[f]) != 0)
                continue;
            if (!opened) {
                mt_buf_adds(b, "<section class=\"family\" data-family=\"");
                esc(b, families.v[f]);
                mt_buf_adds(b, "\"><h2>");
                if (families.v[f][0]) {
                    esc(b, families.v[f]);
                    mt_buf_adds(b, strcmp(families.v[f], "system") == 0 ? "" : "_*");
                } else {
                    mt_buf_adds(b, families.n > 2 ? "other metrics" : "metrics");
                }
                mt_buf_adds(b, "</h2><div class=\"charts\">\n");
                opened = 1;
            }
            charts += mt_report_chart(b, metrics->v[k], runs, nruns) > 0;
        }
        if (opened)
            mt_buf_adds(b, "</div></section>\n");
    }
    keys_free(&families);
    return charts;
}

/* ---- the command ---- */

/* The store's projects, for the message about one that does not exist. */
static void list_projects(const char *store, struct keys *out)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/runs", store);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.' && e->d_type == DT_DIR)
            key_add(out, e->d_name, 1000);
    if (d)
        closedir(d);
}

static const char USAGE[] =
    "usage: metrictap report %s\n"
    "    [--metric M]... [--x AXIS] [--parallel summary.KEY] [--title T] -o report.html\n";

struct opts {
    const char *outpath, *title, *x_axis, *parallel;
    const char *metrics[64];
    size_t nmetrics;
};

static int parse_opts(int argc, char **argv, struct mt_select *sel, struct opts *o)
{
    o->title = "metrictap report";
    for (int i = 1; i < argc; i++) {
        int taken = mt_select_arg(sel, argc, argv, &i);
        if (taken < 0)
            return -1;
        if (taken)
            continue;
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            o->outpath = argv[++i];
        else if (strcmp(argv[i], "--title") == 0 && i + 1 < argc)
            o->title = argv[++i];
        else if (strcmp(argv[i], "--x") == 0 && i + 1 < argc)
            o->x_axis = argv[++i];
        else if (strcmp(argv[i], "--parallel") == 0 && i + 1 < argc) {
            o->parallel = argv[++i];
            if (strncmp(o->parallel, "summary.", 8) == 0)
                o->parallel += 8;
        } else if (strcmp(argv[i], "--metric") == 0 && i + 1 < argc && o->nmetrics < 64)
            o->metrics[o->nmetrics++] = argv[++i];
        else {
            fprintf(stderr, USAGE, mt_select_usage());
            return -1;
        }
    }
    if (!o->outpath) {
        fprintf(stderr, "metrictap report: give -o FILE.html\n");
        return -1;
    }
    return 0;
}

/* No run selected: say what there is instead of writing an empty report. */
static void nothing_selected(const struct mt_select *sel, const char *store)
{
    struct keys projects = { 0 };
    list_projects(store, &projects);
    if (sel->project && key_index(&projects, sel->project) < 0) {
        fprintf(stderr, "metrictap: no project \"%s\" in %s; projects:", sel->project, store);
        keys_list(stderr, &projects, 30);
    } else {
        fprintf(stderr, "metrictap: no run matches the selection%s%s; nothing to report\n",
                sel->project ? " in project " : "", sel->project ? sel->project : "");
    }
    keys_free(&projects);
}

static void page_head(struct mt_buf *b, const struct opts *o, const struct mt_select *sel,
                      size_t nruns)
{
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    mt_buf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<meta name=\"generator\" content=\"metrictap\"><title>");
    esc(b, o->title);
    mt_buf_printf(b, "</title>\n<style>%s</style></head>\n<body>\n<h1>", mt_report_css);
    esc(b, o->title);
    mt_buf_printf(b, "</h1>\n<p class=\"meta\">%zu run%s", nruns, nruns == 1 ? "" : "s");
    if (sel->project) {
        mt_buf_adds(b, " in project ");
        esc(b, sel->project);
    }
    if (sel->filter_text) {
        mt_buf_adds(b, " matching <code>");
        esc(b, sel->filter_text);
        mt_buf_adds(b, "</code>");
    }
    if (o->x_axis) {
        mt_buf_adds(b, "; every metric against ");
        esc(b, o->x_axis);
    }
    mt_buf_printf(b, "; made %s by metrictap. Hover a line, legend entry or row to bring "
                     "its run forward.</p>\n"
                     "<div class=\"tools\" hidden><label><input type=\"checkbox\" id=\"logy\"> "
                     "log y</label><label>smoothing <input type=\"range\" id=\"smooth\" "
                     "min=\"0\" max=\"0.99\" step=\"0.01\" value=\"0\"> <span id=\"smoothv\">"
                     "0.00</span></label></div>\n",
                  when);
}

int mt_cmd_report(int argc, char **argv)
{
    struct mt_select sel = { 0 };
    struct mt_select_rows rows = { 0 };
    struct mt_config cfg;
    struct opts o = { 0 };
    struct mt_report_run *runs = NULL;
    struct keys metrics = { 0 }, axes = { 0 };
    struct table table = { 0 };
    struct mt_buf b;
    int rc = 2;
    mt_buf_init(&b, (size_t)1 << 31);
    mt_cli_load_config(&cfg);
    if (parse_opts(argc, argv, &sel, &o) != 0)
        goto out;
    if (!sel.limit)
        sel.limit = DEFAULT_LIMIT;
    rc = 1;
    if (mt_select_run(&sel, cfg.dir, &rows) != 0)
        goto out;
    if (!rows.n) {
        nothing_selected(&sel, cfg.dir);
        goto out;
    }
    runs = mt_xcalloc(rows.n + 1, sizeof *runs);
    int axis_found = 0;
    for (size_t r = 0; r < rows.n; r++) {
        struct mt_report_run *run = &runs[r];
        run->row = &rows.v[r];
        mt_report_style(r, run->colour, &run->dash);
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/run.json", rows.v[r].dir);
        char *text = mt_index_read_file(path, 64 << 20, NULL);
        cJSON *rj = text ? cJSON_Parse(text) : NULL;
        free(text);
        mt_hist_load(&run->hist, rows.v[r].dir, rj, o.x_axis);
        mt_hist_load_system(&run->hist, rows.v[r].dir);
        cJSON_Delete(rj);
        run->config = rows.v[r].config ? cJSON_Parse(rows.v[r].config) : NULL;
        run->summary = rows.v[r].summary ? cJSON_Parse(rows.v[r].summary) : NULL;
        for (size_t k = 0; k < run->hist.naxes; k++)
            key_add(&axes, run->hist.axes[k], MAX_KEYS);
        axis_found |= o.x_axis && mt_hist_has_axis(&run->hist, o.x_axis);
        for (size_t i = 0; i < run->hist.n; i++) {
            const struct mt_hist_series *s = &run->hist.v[i];
            int asked = 0;
            for (size_t m = 0; m < o.nmetrics; m++)
                asked |= strcmp(o.metrics[m], s->key) == 0;
            if ((o.nmetrics && !asked) || (s->is_axis && !asked) || !s->n)
                continue;
            key_add(&metrics, s->key, MAX_KEYS);
        }
    }
    if (o.x_axis && !axis_found) {
        fprintf(stderr, "metrictap: no selected run has the axis \"%s\"; axes:", o.x_axis);
        keys_list(stderr, &axes, 30);
        goto out;
    }
    for (size_t m = 0; m < o.nmetrics; m++)
        if (key_index(&metrics, o.metrics[m]) < 0) {
            struct keys have = { 0 };
            for (size_t r = 0; r < rows.n; r++)
                for (size_t i = 0; i < runs[r].hist.n; i++)
                    if (!runs[r].hist.v[i].is_axis)
                        key_add(&have, runs[r].hist.v[i].key, MAX_KEYS);
            fprintf(stderr, "metrictap: no selected run has the metric \"%s\"; metrics:",
                    o.metrics[m]);
            keys_list(stderr, &have, 40);
            keys_free(&have);
            goto out;
        }
    page_head(&b, &o, &sel, rows.n);
    build_table(&table, &sel, runs, rows.n, &axes);
    table_html(&b, &table, runs);
    if (o.parallel) {
        char err[256];
        mt_buf_adds(&b, "<section class=\"family\" data-family=\"parallel\"><h2>sweep</h2>\n");
        if (mt_report_parallel(&b, o.parallel, runs, rows.n, err, sizeof err) != 0) {
            fprintf(stderr, "metrictap: --parallel: %s\n", err);
            goto out;
        }
        mt_buf_adds(&b, "</section>\n");
    }
    size_t charts = charts_by_family(&b, &metrics, runs, rows.n);
    if (!charts)
        mt_buf_adds(&b, "<p>No metric has a value in the history.</p>\n");
    mt_buf_printf(&b, "<script>%s</script>\n</body></html>\n", mt_report_js);
    if (b.refused) {
        fprintf(stderr, "metrictap: the report is larger than 2 GiB; select fewer runs\n");
        goto out;
    }
    FILE *f = fopen(o.outpath, "we");
    if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
        fprintf(stderr, "metrictap: cannot write %s\n", o.outpath);
        goto out;
    }
    fprintf(stderr, "metrictap: wrote %s (%zu runs, %zu charts%s)\n", o.outpath, rows.n, charts,
            o.parallel ? ", parallel coordinates" : "");
    rc = 0;
out:
    for (size_t r = 0; runs && r < rows.n; r++) {
        mt_hist_free(&runs[r].hist);
        cJSON_Delete(runs[r].config);
        cJSON_Delete(runs[r].summary);
    }
    free(runs);
    table_free(&table);
    keys_free(&metrics);
    keys_free(&axes);
    mt_select_rows_free(&rows, sel.ncols);
    mt_config_free(&cfg);
    mt_select_free(&sel);
    mt_buf_free(&b);
    return rc;
}
