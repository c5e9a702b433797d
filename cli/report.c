/* metrictap report [ls selection options] [-o FILE] [--metric M]... [--title T]:
 * one self-contained HTML file (inline CSS and SVG, no script needed, nothing
 * fetched) with the runs table and a line chart per metric across the
 * selected runs, each against its step axis.  Readable offline, attachable
 * to a ticket.  Without --limit the newest 100 selected runs are reported. */
#include <cjson/cJSON.h>
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
#include "select.h"
#include "show.h"

#define DEFAULT_LIMIT 100
#define MAX_POINTS 600 /* per series in a chart */
#define MAX_TABLE_KEYS 12

static const char *const PALETTE[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };
#define NPALETTE (sizeof PALETTE / sizeof *PALETTE)

static void esc(struct mt_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': mt_buf_adds(b, "&lt;"); break;
        case '>': mt_buf_adds(b, "&gt;"); break;
        case '&': mt_buf_adds(b, "&amp;"); break;
        case '"': mt_buf_adds(b, "&quot;"); break;
        case '\'': mt_buf_adds(b, "&#39;"); break;
        default: mt_buf_addc(b, *s);
        }
    }
}

static void fmt(char *out, size_t size, double v)
{
    struct mt_value mv = { MT_V_NUM, v, NULL };
    mt_cli_format_value(&mv, out, size, 0);
}

/* "Nice" tick step for a range split into about n parts. */
static double nice_step(double range, int n)
{
    double raw = range / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

struct report_run {
    const struct mt_select_row *row;
    struct mt_hist hist;
    int color;
};

static void chart(struct mt_buf *b, const char *key, struct report_run *runs, size_t nruns)
{
    const double W = 640, H = 300, L = 64, R = 16, T = 28, B = 40;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    const char *axis = "_step";
    size_t nonfinite = 0;
    for (size_t r = 0; r < nruns; r++) {
        const struct mt_hist_series *s = mt_hist_find(&runs[r].hist, key);
        for (size_t i = 0; s && i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i]))
                continue;
            xmin = fmin(xmin, s->x[i]);
            xmax = fmax(xmax, s->x[i]);
            ymin = fmin(ymin, s->y[i]);
            ymax = fmax(ymax, s->y[i]);
        }
        if (s) {
            axis = s->axis;
            nonfinite += s->nonfinite;
        }
    }
    if (!isfinite(xmin))
        return;
    if (xmax == xmin)
        xmin -= 0.5, xmax += 0.5;
    if (ymax == ymin)
        ymin -= 0.5, ymax += 0.5;
    mt_buf_adds(b, "<figure class=\"chart\" data-metric=\"");
    esc(b, key);
    mt_buf_adds(b, "\"><figcaption>");
    esc(b, key);
    mt_buf_adds(b, " <span class=\"axis\">vs ");
    esc(b, axis);
    if (nonfinite)
        mt_buf_printf(b, "; %zu non-finite values not drawn", nonfinite);
    mt_buf_printf(b, "</span></figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                     "viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\">\n",
                  W, H, W, H);
    mt_buf_printf(b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" class=\"plot\"/>\n",
                  L, T, W - L - R, H - T - B);
    double px = (W - L - R) / (xmax - xmin), py = (H - T - B) / (ymax - ymin);
    char t[64];
    double ys = nice_step(ymax - ymin, 5);
    for (double v = ceil(ymin / ys) * ys; v <= ymax + ys * 1e-9; v += ys) {
        double y = H - B - (v - ymin) * py;
        fmt(t, sizeof t, fabs(v) < ys * 1e-9 ? 0 : v);
        mt_buf_printf(b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                         "<text x=\"%.0f\" y=\"%.1f\" class=\"yt\">%s</text>\n",
                      L, W - R, y, y, L - 6, y + 4, t);
    }
    double xs = nice_step(xmax - xmin, 6);
    for (double v = ceil(xmin / xs) * xs; v <= xmax + xs * 1e-9; v += xs) {
        double x = L + (v - xmin) * px;
        fmt(t, sizeof t, fabs(v) < xs * 1e-9 ? 0 : v);
        mt_buf_printf(b, "<text x=\"%.1f\" y=\"%.0f\" class=\"xt\">%s</text>\n", x, H - B + 16, t);
    }
    mt_buf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" class=\"xl\">", L + (W - L - R) / 2, H - 6);
    esc(b, axis);
    mt_buf_adds(b, "</text>\n");
    for (size_t r = 0; r < nruns; r++) {
        const struct mt_hist_series *s = mt_hist_find(&runs[r].hist, key);
        if (!s)
            continue;
        size_t stride = s->n > MAX_POINTS ? (s->n + MAX_POINTS - 1) / MAX_POINTS : 1;
        mt_buf_adds(b, "<path data-run=\"");
        esc(b, runs[r].row->id);
        mt_buf_printf(b, "\" stroke=\"%s\" d=\"", PALETTE[runs[r].color % NPALETTE]);
        int pen = 0;
        double last_x = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i])) {
                pen = 0;
                continue;
            }
            if (i % stride && i + 1 != s->n)
                continue;
            if (s->x[i] < last_x) /* the axis starts over (a fold): a new stroke */
                pen = 0;
            mt_buf_printf(b, "%c%.1f %.1f", pen ? 'L' : 'M', L + (s->x[i] - xmin) * px,
                          H - B - (s->y[i] - ymin) * py);
            pen = 1;
            last_x = s->x[i];
        }
        mt_buf_adds(b, "\"><title>");
        esc(b, runs[r].row->id);
        mt_buf_adds(b, " ");
        esc(b, runs[r].row->name);
        mt_buf_adds(b, "</title></path>\n");
    }
    mt_buf_adds(b, "</svg></figure>\n");
}

static const char *CSS =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}"
    "h1{font-size:20px;margin:0 0 4px}p.meta{color:#666;margin:0 0 16px}"
    ".tw{overflow-x:auto;margin-bottom:24px}table{border-collapse:collapse}"
    "th,td{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left;white-space:nowrap}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "th{background:#f4f4f4;position:sticky;top:0}"
    ".sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}"
    ".charts{display:flex;flex-wrap:wrap;gap:16px}"
    "figure.chart{margin:0;border:1px solid #ddd;border-radius:4px;padding:8px}"
    "figcaption{font-weight:600}figcaption .axis{font-weight:400;color:#666}"
    "svg .plot{fill:#fafafa;stroke:#ccc}svg .grid{stroke:#e4e4e4}"
    "svg text{font-size:11px;fill:#555}svg .yt{text-anchor:end}svg .xt,svg .xl{text-anchor:middle}"
    "svg path{fill:none;stroke-width:1.6}"
    "svg path:hover{stroke-width:3.5}";

static void table(struct mt_buf *b, const struct mt_select *sel, struct report_run *runs,
                  size_t nruns, char **keys, size_t nkeys)
{
    mt_buf_adds(b, "<div class=\"tw\"><table id=\"runs\"><thead><tr><th>id</th><th>name</th><th>state</th>"
                   "<th>created</th><th>runtime</th><th>tags</th><th>group</th>");
    for (size_t k = 0; k < sel->ncols; k++) {
        mt_buf_adds(b, "<th>");
        esc(b, sel->cols[k].label);
        mt_buf_adds(b, "</th>");
    }
    for (size_t k = 0; k < nkeys; k++) {
        mt_buf_adds(b, "<th>summary.");
        esc(b, keys[k]);
        mt_buf_adds(b, "</th>");
    }
    mt_buf_adds(b, "</tr></thead><tbody>\n");
    for (size_t r = 0; r < nruns; r++) {
        const struct mt_select_row *row = runs[r].row;
        char created[64], rt[32];
        time_t t = (time_t)row->start_time;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(created, sizeof created, "%Y-%m-%d %H:%M", &tm);
        mt_cli_format_duration(row->runtime, rt, sizeof rt);
        mt_buf_adds(b, "<tr data-run=\"");
        esc(b, row->id);
        mt_buf_printf(b, "\"><td><span class=\"sw\" style=\"background:%s\"></span>",
                      PALETTE[runs[r].color % NPALETTE]);
        esc(b, row->id);
        const char *cells[] = { row->name, row->state, created, rt, row->tags, row->group };
        for (size_t c = 0; c < 6; c++) {
            mt_buf_adds(b, c == 3 ? "</td><td class=\"num\">" : "</td><td>");
            esc(b, cells[c]);
        }
        mt_buf_adds(b, "</td>");
        for (size_t k = 0; k < sel->ncols; k++) {
            char v[4096];
            mt_cli_format_value(&row->vals[k], v, sizeof v, 0);
            mt_buf_adds(b, row->vals[k].type == MT_V_NUM ? "<td class=\"num\" data-col=\""
                                                           : "<td data-col=\"");
            esc(b, sel->cols[k].label);
            mt_buf_adds(b, "\">");
            esc(b, v);
            mt_buf_adds(b, "</td>");
        }
        cJSON *sum = row->summary ? cJSON_Parse(row->summary) : NULL;
        for (size_t k = 0; k < nkeys; k++) {
            char v[4096] = "", *owned = NULL;
            struct mt_value mv = mt_value_of_json(cJSON_GetObjectItemCaseSensitive(sum, keys[k]),
                                                  &owned);
            mt_cli_format_value(&mv, v, sizeof v, 0);
            free(owned);
            mt_buf_adds(b, mv.type == MT_V_NUM ? "<td class=\"num\" data-col=\"summary."
                                               : "<td data-col=\"summary.");
            esc(b, keys[k]);
            mt_buf_adds(b, "\">");
            esc(b, v);
            mt_buf_adds(b, "</td>");
        }
        cJSON_Delete(sum);
        mt_buf_adds(b, "</tr>\n");
    }
    mt_buf_adds(b, "</tbody></table></div>\n");
}

static int add_key(char ***keys, size_t *n, const char *k, size_t max)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*keys)[i], k) == 0)
            return 0;
    if (*n == max)
        return 0;
    *keys = mt_xrealloc(*keys, (*n + 1) * sizeof **keys);
    (*keys)[(*n)++] = mt_xstrdup(k);
    return 1;
}

int mt_cmd_report(int argc, char **argv)
{
    struct mt_select sel = { 0 };
    struct mt_select_rows rows = { 0 };
    struct mt_config cfg;
    const char *outpath = NULL, *title = "metrictap report";
    const char *metrics[64];
    size_t nmetrics = 0;
    struct report_run *runs = NULL;
    char **keys = NULL, **table_keys = NULL;
    size_t nkeys = 0, ntable = 0;
    struct mt_buf b;
    int rc = 2;
    mt_buf_init(&b, (size_t)1 << 31);
    mt_cli_load_config(&cfg);
    for (int i = 1; i < argc; i++) {
        int taken = mt_select_arg(&sel, argc, argv, &i);
        if (taken < 0)
            goto out;
        if (taken)
            continue;
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            outpath = argv[++i];
        else if (strcmp(argv[i], "--title") == 0 && i + 1 < argc)
            title = argv[++i];
        else if (strcmp(argv[i], "--metric") == 0 && i + 1 < argc && nmetrics < 64)
            metrics[nmetrics++] = argv[++i];
        else {
            fprintf(stderr, "usage: metrictap report %s\n    [--metric M]... [--title T]"
                            " -o report.html\n", mt_select_usage());
            goto out;
        }
    }
    if (!outpath) {
        fprintf(stderr, "metrictap report: give -o FILE.html\n");
        goto out;
    }
    if (!sel.limit)
        sel.limit = DEFAULT_LIMIT;
    rc = 1;
    if (mt_select_run(&sel, cfg.dir, &rows) != 0)
        goto out;
    runs = mt_xcalloc(rows.n + 1, sizeof *runs);
    for (size_t r = 0; r < rows.n; r++) {
        runs[r].row = &rows.v[r];
        runs[r].color = (int)r;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/run.json", rows.v[r].dir);
        char *text = mt_index_read_file(path, 64 << 20, NULL);
        cJSON *rj = text ? cJSON_Parse(text) : NULL;
        free(text);
        mt_hist_load(&runs[r].hist, rows.v[r].dir, cJSON_GetObjectItemCaseSensitive(rj, "metrics"));
        cJSON_Delete(rj);
        for (size_t i = 0; i < runs[r].hist.n; i++) {
            const struct mt_hist_series *s = &runs[r].hist.v[i];
            int asked = 0;
            for (size_t m = 0; m < nmetrics; m++)
                asked |= strcmp(metrics[m], s->key) == 0;
            if ((nmetrics && !asked) || (s->is_axis && !asked) || s->n < 2)
                continue;
            add_key(&keys, &nkeys, s->key, 256);
        }
        cJSON *sum = rows.v[r].summary ? cJSON_Parse(rows.v[r].summary) : NULL;
        for (cJSON *it = sum ? sum->child : NULL; it && !sel.ncols; it = it->next)
            if (it->string && it->string[0] != '_' && (cJSON_IsNumber(it) || cJSON_IsString(it)))
                add_key(&table_keys, &ntable, it->string, MAX_TABLE_KEYS);
        cJSON_Delete(sum);
    }
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    mt_buf_adds(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"generator\" content=\"metrictap\"><title>");
    esc(&b, title);
    mt_buf_printf(&b, "</title>\n<style>%s</style></head>\n<body>\n<h1>", CSS);
    esc(&b, title);
    mt_buf_printf(&b, "</h1>\n<p class=\"meta\">%zu run%s", rows.n, rows.n == 1 ? "" : "s");
    if (sel.project) {
        mt_buf_adds(&b, " in project ");
        esc(&b, sel.project);
    }
    if (sel.filter_text) {
        mt_buf_adds(&b, " matching <code>");
        esc(&b, sel.filter_text);
        mt_buf_adds(&b, "</code>");
    }
    mt_buf_printf(&b, "; made %s by metrictap</p>\n", when);
    table(&b, &sel, runs, rows.n, table_keys, ntable);
    mt_buf_adds(&b, "<div class=\"charts\">\n");
    for (size_t k = 0; k < nkeys; k++)
        chart(&b, keys[k], runs, rows.n);
    if (!nkeys)
        mt_buf_adds(&b, "<p>No metric has two or more points.</p>\n");
    mt_buf_adds(&b, "</div>\n</body></html>\n");
    if (b.refused) {
        fprintf(stderr, "metrictap: the report is larger than 2 GiB; select fewer runs\n");
        goto out;
    }
    FILE *f = fopen(outpath, "we");
    if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
        fprintf(stderr, "metrictap: cannot write %s\n", outpath);
        goto out;
    }
    fprintf(stderr, "metrictap: wrote %s (%zu runs, %zu charts)\n", outpath, rows.n, nkeys);
    rc = 0;
out:
    for (size_t r = 0; runs && r < rows.n; r++)
        mt_hist_free(&runs[r].hist);
    free(runs);
    for (size_t k = 0; k < nkeys; k++)
        free(keys[k]);
    free(keys);
    for (size_t k = 0; k < ntable; k++)
        free(table_keys[k]);
    free(table_keys);
    mt_select_rows_free(&rows, sel.ncols);
    mt_config_free(&cfg);
    mt_select_free(&sel);
    mt_buf_free(&b);
    return rc;
}
