/* The report's charts as inline SVG: see report.h.  Everything is drawn
 * here, so the file reads without its script; the script (report_assets.c)
 * only redraws the lines when log scale or smoothing is switched on, from
 * the points each figure carries. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_chart.h"
#include "../common/mt_filter.h"
#include "mt_cli.h"
#include "report.h"
#include "select.h"

#define MAX_POINTS 600 /* per series in a chart */
#define SPARSE 20      /* series with this many points or fewer get markers */
#define MAX_AXES 12    /* parallel coordinates */

static const char *const TABLEAU[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };
static const char *const DASHES[] = { "", "7 3", "2 2", "9 3 2 3" };

void mt_report_style(size_t i, char colour[8], const char **dash)
{
    *dash = DASHES[(i / 10) % 4];
    if (i < 10) {
        snprintf(colour, 8, "%s", TABLEAU[i]);
        return;
    }
    /* HSL to RGB: the ten runs sharing a dash are 36 degrees of hue apart,
     * each later ten turned half a step, at another lightness. */
    double h = fmod((double)(i % 10) * 36.0 + (double)(i / 10) * 18.0 + 10.0, 360.0) / 60.0;
    double s = 0.70;
    double l = (double[]){ 0.42, 0.55, 0.33 }[(i / 10) % 3];
    double c = (1 - fabs(2 * l - 1)) * s, x = c * (1 - fabs(fmod(h, 2) - 1)), m = l - c / 2;
    double r = 0, g = 0, b = 0;
    switch ((int)h) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
    }
    snprintf(colour, 8, "#%02x%02x%02x", (unsigned)lround((r + m) * 255),
             (unsigned)lround((g + m) * 255), (unsigned)lround((b + m) * 255));
}

void mt_report_esc(struct mt_buf *b, const char *s)
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

static void esc(struct mt_buf *b, const char *s)
{
    mt_report_esc(b, s);
}

static void run_label(struct mt_buf *b, const struct mt_report_run *r)
{
    esc(b, r->row->name && *r->row->name ? r->row->name : r->row->id);
    if (r->row->name && *r->row->name && strcmp(r->row->name, r->row->id) != 0) {
        mt_buf_adds(b, " <span class=\"id\">");
        esc(b, r->row->id);
        mt_buf_adds(b, "</span>");
    }
}

/* ---- line charts ---- */

enum { W = 560, H = 300, L = 62, R = 14, T = 12, B = 38 };

struct frame {
    double x_lo, x_hi, y_lo, y_hi, xstep, ystep;
};

static double px(const struct frame *f, double x)
{
    return L + (x - f->x_lo) / (f->x_hi - f->x_lo) * (W - L - R);
}

static double py(const struct frame *f, double y)
{
    return T + (f->y_hi - y) / (f->y_hi - f->y_lo) * (H - T - B);
}

static void axes(struct mt_buf *b, const struct frame *f, const char *axis)
{
    char t[48];
    mt_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>\n", L, T,
                  W - L - R, H - T - B);
    mt_buf_adds(b, "<g class=\"yticks\">");
    for (double v = f->y_lo; v <= f->y_hi + f->ystep * 1e-6; v += f->ystep) {
        double y = py(f, v);
        mt_chart_tick_label(t, sizeof t, v, f->ystep);
        mt_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                         "<text x=\"%d\" y=\"%.1f\" class=\"yt\">%s</text>",
                      L, W - R, y, y, L - 6, y + 4, t);
    }
    mt_buf_adds(b, "</g><g class=\"xticks\">");
    for (double v = ceil(f->x_lo / f->xstep - 1e-9) * f->xstep; v <= f->x_hi + f->xstep * 1e-6;
         v += f->xstep) {
        double x = px(f, v);
        mt_chart_tick_label(t, sizeof t, v, f->xstep);
        mt_buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" class=\"tick\"/>"
                         "<text x=\"%.1f\" y=\"%d\" class=\"xt\">%s</text>",
                      x, x, H - B, H - B + 4, x, H - B + 16, t);
    }
    mt_buf_printf(b, "</g>\n<text x=\"%d\" y=\"%d\" class=\"xl\">", L + (W - L - R) / 2, H - 4);
    esc(b, axis);
    mt_buf_adds(b, "</text>\n");
}

static void json_num(struct mt_buf *b, double v)
{
    if (isfinite(v))
        mt_buf_printf(b, "%.9g", v);
    else
        mt_buf_adds(b, "null");
}

size_t mt_report_chart(struct mt_buf *b, const char *key, struct mt_report_run *runs,
                       size_t nruns)
{
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    const char *axis = NULL;
    size_t nonfinite = 0, drawn = 0;
    int xint = 1, yint = 1;
    for (size_t r = 0; r < nruns; r++) {
        const struct mt_hist_series *s = mt_hist_find(&runs[r].hist, key);
        for (size_t i = 0; s && i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i]))
                continue;
            xmin = fmin(xmin, s->x[i]);
            xmax = fmax(xmax, s->x[i]);
            ymin = fmin(ymin, s->y[i]);
            ymax = fmax(ymax, s->y[i]);
            xint &= s->x[i] == floor(s->x[i]);
            yint &= s->y[i] == floor(s->y[i]);
        }
        if (s) {
            axis = axis ? axis : s->axis;
            nonfinite += s->nonfinite;
        }
    }
    if (!isfinite(xmin))
        return 0;
    struct frame f = { xmin, xmax, ymin, ymax, 1, 1 };
    mt_chart_widen(&f.x_lo, &f.x_hi, xint);
    mt_chart_widen(&f.y_lo, &f.y_hi, yint);
    f.ystep = mt_chart_nice_step(f.y_hi - f.y_lo, 5, yint);
    f.y_lo = floor(f.y_lo / f.ystep + 1e-9) * f.ystep;
    f.y_hi = ceil(f.y_hi / f.ystep - 1e-9) * f.ystep;
    f.xstep = mt_chart_nice_step(f.x_hi - f.x_lo, 6, xint);
    mt_buf_adds(b, "<figure class=\"chart\" data-metric=\"");
    esc(b, key);
    mt_buf_printf(b, "\" data-xint=\"%d\" data-yint=\"%d\"><figcaption>", xint, yint);
    esc(b, key);
    mt_buf_adds(b, " <span class=\"axis\">vs ");
    esc(b, axis);
    if (nonfinite)
        mt_buf_printf(b, "; %zu non-finite values not drawn", nonfinite);
    mt_buf_printf(b, "</span></figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                     "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">\n",
                  W, H, W, H);
    axes(b, &f, axis);
    mt_buf_adds(b, "<g class=\"lines\">\n");
    struct mt_buf pts;
    mt_buf_init(&pts, (size_t)256 << 20);
    mt_buf_adds(&pts, "[");
    for (size_t r = 0; r < nruns; r++) {
        const struct mt_hist_series *s = mt_hist_find(&runs[r].hist, key);
        if (!s)
            continue;
        size_t stride = s->n > MAX_POINTS ? (s->n + MAX_POINTS - 1) / MAX_POINTS : 1;
        size_t finite = 0;
        for (size_t i = 0; i < s->n; i++)
            finite += isfinite(s->x[i]) && isfinite(s->y[i]);
        mt_buf_printf(&pts, "%s{\"r\":", drawn ? "," : "");
        mt_buf_json_string(&pts, runs[r].row->id, strlen(runs[r].row->id));
        mt_buf_printf(&pts, ",\"c\":\"%s\",\"d\":\"%s\",\"p\":[", runs[r].colour, runs[r].dash);
        mt_buf_adds(b, "<path data-run=\"");
        esc(b, runs[r].row->id);
        mt_buf_printf(b, "\" stroke=\"%s\" d=\"", runs[r].colour);
        int pen = 0, first = 1;
        double last_x = 0;
        for (size_t i = 0; i < s->n; i++) {
            int ok = isfinite(s->x[i]) && isfinite(s->y[i]);
            if (ok && i % stride && i + 1 != s->n)
                continue;
            mt_buf_adds(&pts, first ? "" : ",");
            json_num(&pts, s->x[i]);
            mt_buf_addc(&pts, ',');
            json_num(&pts, ok ? s->y[i] : NAN);
            first = 0;
            if (!ok) {
                pen = 0;
                continue;
            }
            if (pen && s->x[i] < last_x)
                pen = 0; /* the axis starts over (a fold): a new stroke */
            mt_buf_printf(b, "%c%.1f %.1f", pen ? 'L' : 'M', px(&f, s->x[i]), py(&f, s->y[i]));
            pen = 1;
            last_x = s->x[i];
        }
        mt_buf_adds(&pts, "]}");
        mt_buf_adds(b, "\"");
        if (*runs[r].dash)
            mt_buf_printf(b, " stroke-dasharray=\"%s\"", runs[r].dash);
        mt_buf_adds(b, "><title>");
        esc(b, runs[r].row->id);
        mt_buf_adds(b, " ");
        esc(b, runs[r].row->name);
        mt_buf_adds(b, "</title></path>\n");
        /* Markers: a lone value is a dot, a sparse series shows its points. */
        if (finite <= SPARSE) {
            mt_buf_adds(b, "<g class=\"marks\" data-run=\"");
            esc(b, runs[r].row->id);
            mt_buf_printf(b, "\" fill=\"%s\">", runs[r].colour);
            for (size_t i = 0; i < s->n; i++)
                if (isfinite(s->x[i]) && isfinite(s->y[i]))
                    mt_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\"/>",
                                  px(&f, s->x[i]), py(&f, s->y[i]), finite == 1 ? "4.5" : "2.5");
            mt_buf_adds(b, "</g>\n");
        }
        drawn++;
    }
    mt_buf_adds(&pts, "]");
    mt_buf_adds(b, "</g></svg>\n<ul class=\"legend\">");
    for (size_t r = 0; r < nruns; r++) {
        if (!mt_hist_find(&runs[r].hist, key))
            continue;
        mt_buf_adds(b, "<li data-run=\"");
        esc(b, runs[r].row->id);
        mt_buf_printf(b, "\"><svg width=\"26\" height=\"10\"><line x1=\"1\" x2=\"25\" y1=\"5\" "
                         "y2=\"5\" stroke=\"%s\" stroke-width=\"3\"%s%s%s/></svg>",
                      runs[r].colour, *runs[r].dash ? " stroke-dasharray=\"" : "",
                      runs[r].dash, *runs[r].dash ? "\"" : "");
        run_label(b, &runs[r]);
        mt_buf_adds(b, "</li>");
    }
    mt_buf_adds(b, "</ul>\n<script type=\"application/json\" class=\"pts\">");
    /* "</" cannot appear in the JSON: ids and colours are plain. */
    mt_buf_add(b, pts.data, pts.len);
    mt_buf_adds(b, "</script></figure>\n");
    mt_buf_free(&pts);
    return drawn;
}

/* ---- parallel coordinates ---- */

struct pc_axis {
    char *key;
    int numeric, logscale;
    double lo, hi;
    char **cats; /* categorical: the values, sorted */
    size_t ncats;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The value of a flattened config key of a run, as text and number. */
static int value_of(const cJSON *config, const char *key, char *text, size_t size, double *num)
{
    const cJSON *v = config;
    char part[512];
    for (const char *p = key; v && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, p);
        v = cJSON_GetObjectItemCaseSensitive(v, part);
        p += n + (p[n] == '.');
    }
    if (!v || cJSON_IsObject(v) || cJSON_IsNull(v))
        return 0;
    char *owned = NULL;
    struct mt_value mv = mt_value_of_json(v, &owned);
    mt_cli_format_value(&mv, text, size, 1);
    free(owned);
    *num = mv.type == MT_V_NUM ? mv.num : NAN;
    return mv.type == MT_V_NUM ? 2 : 1;
}

struct keys_ctx {
    char **keys;
    size_t n;
};

static void collect_key(void *ctx, const char *key, const struct mt_value *v)
{
    struct keys_ctx *k = ctx;
    (void)v;
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->keys[i], key) == 0)
            return;
    if (k->n == 256)
        return;
    k->keys = mt_xrealloc(k->keys, (k->n + 1) * sizeof *k->keys);
    k->keys[k->n++] = mt_xstrdup(key);
}

static void axis_free(struct pc_axis *a)
{
    for (size_t c = 0; c < a->ncats; c++)
        free(a->cats[c]);
    free(a->cats);
    free(a->key);
}

/* A config key as an axis, when its values differ between the runs. */
static int make_axis(struct pc_axis *a, const char *key, struct mt_report_run *runs, size_t n)
{
    memset(a, 0, sizeof *a);
    a->numeric = 1;
    a->lo = INFINITY;
    a->hi = -INFINITY;
    char text[256];
    for (size_t r = 0; r < n; r++) {
        double num;
        int kind = value_of(runs[r].config, key, text, sizeof text, &num);
        if (!kind)
            continue;
        if (kind == 1)
            a->numeric = 0;
        else {
            a->lo = fmin(a->lo, num);
            a->hi = fmax(a->hi, num);
        }
        size_t c = 0;
        while (c < a->ncats && strcmp(a->cats[c], text) != 0)
            c++;
        if (c == a->ncats) {
            a->cats = mt_xrealloc(a->cats, (a->ncats + 1) * sizeof *a->cats);
            a->cats[a->ncats++] = mt_xstrdup(text);
        }
    }
    if (a->ncats < 2) { /* the same for every run: no axis */
        axis_free(a);
        return 0;
    }
    a->key = mt_xstrdup(key);
    if (a->numeric)
        a->logscale = a->lo > 0 && a->hi / a->lo >= 20;
    else
        qsort(a->cats, a->ncats, sizeof *a->cats, cmp_str);
    return 1;
}

/* Position 0 (bottom) .. 1 (top) of a value on an axis; NAN: missing. */
static double axis_pos(const struct pc_axis *a, const cJSON *config)
{
    char text[256];
    double num;
    int kind = value_of(config, a->key, text, sizeof text, &num);
    if (!kind)
        return NAN;
    if (a->numeric && kind == 2) {
        if (a->hi == a->lo)
            return 0.5;
        if (a->logscale)
            return (log10(num) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
        return (num - a->lo) / (a->hi - a->lo);
    }
    for (size_t c = 0; c < a->ncats; c++)
        if (strcmp(a->cats[c], text) == 0)
            return a->ncats == 1 ? 0.5 : (double)c / (double)(a->ncats - 1);
    return NAN;
}

/* Dark blue (low) through teal to yellow (high), after viridis. */
static void ramp(double t, char out[8])
{
    static const double STOPS[3][3] = { { 68, 1, 84 }, { 33, 145, 140 }, { 253, 231, 37 } };
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    int k = t < 0.5 ? 0 : 1;
    double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
    unsigned c[3];
    for (int i = 0; i < 3; i++)
        c[i] = (unsigned)lround(STOPS[k][i] + (STOPS[k + 1][i] - STOPS[k][i]) * u);
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

struct pc_line {
    size_t run;
    double metric;
};

static int cmp_line(const void *a, const void *b)
{
    double x = ((const struct pc_line *)a)->metric, y = ((const struct pc_line *)b)->metric;
    return x < y ? -1 : x > y;
}

int mt_report_parallel(struct mt_buf *b, const char *metric, struct mt_report_run *runs,
                       size_t nruns, char *err, size_t errsz)
{
    struct pc_line *lines = mt_xcalloc(nruns + 1, sizeof *lines);
    size_t nlines = 0;
    double mlo = INFINITY, mhi = -INFINITY;
    for (size_t r = 0; r < nruns; r++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(runs[r].summary, metric);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            continue;
        lines[nlines++] = (struct pc_line){ r, v->valuedouble };
        mlo = fmin(mlo, v->valuedouble);
        mhi = fmax(mhi, v->valuedouble);
    }
    struct keys_ctx keys = { 0 };
    for (size_t r = 0; r < nruns; r++)
        mt_flatten_json(runs[r].config, 256, collect_key, &keys);
    struct pc_axis ax[MAX_AXES];
    size_t nax = 0;
    for (size_t k = 0; k < keys.n && nax < MAX_AXES; k++)
        nax += make_axis(&ax[nax], keys.keys[k], runs, nruns);
    int rc = -1;
    if (!nlines) {
        snprintf(err, errsz, "no selected run has a number summary.%s", metric);
        goto out;
    }
    if (!nax) {
        snprintf(err, errsz, "no config key differs between the selected runs");
        goto out;
    }
    qsort(lines, nlines, sizeof *lines, cmp_line); /* the best drawn last, on top */
    const int h = 340, top = 34, bottom = 28, left = 70, right = 70;
    int w = (int)nax * 170 + left + right;
    if (w < 560)
        w = 560;
    double step = (double)(w - left - right) / (double)nax;
    mt_buf_adds(b, "<figure class=\"chart parallel\" data-metric=\"");
    esc(b, metric);
    mt_buf_adds(b, "\"><figcaption>config against summary.");
    esc(b, metric);
    mt_buf_printf(b, " <span class=\"axis\">%zu of %zu runs", nlines, nruns);
    if (nlines < nruns)
        mt_buf_printf(b, "; %zu without the metric not drawn", nruns - nlines);
    mt_buf_printf(b, "</span></figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                     "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">\n",
                  w, h, w, h);
    double ph = h - top - bottom;
#define PC_Y(t) (top + (1 - (t)) * ph)
    char t[64];
    for (size_t l = 0; l < nlines; l++) {
        const struct mt_report_run *run = &runs[lines[l].run];
        double tm = mhi > mlo ? (lines[l].metric - mlo) / (mhi - mlo) : 1;
        char colour[8];
        ramp(tm, colour);
        mt_buf_adds(b, "<path class=\"pcline\" data-run=\"");
        esc(b, run->row->id);
        mt_buf_printf(b, "\" stroke=\"%s\" d=\"", colour);
        int pen = 0;
        for (size_t a = 0; a <= nax; a++) {
            double u = a < nax ? axis_pos(&ax[a], run->config) : tm;
            if (!isfinite(u)) {
                pen = 0;
                continue;
            }
            mt_buf_printf(b, "%c%.1f %.1f", pen ? 'L' : 'M', left + (double)a * step, PC_Y(u));
            pen = 1;
        }
        mt_buf_adds(b, "\"><title>");
        esc(b, run->row->id);
        mt_buf_adds(b, " ");
        esc(b, run->row->name);
        snprintf(t, sizeof t, ": %s = %.6g", metric, lines[l].metric);
        esc(b, t);
        mt_buf_adds(b, "</title></path>\n");
    }
    /* The axes after the lines, so their labels stay readable on top. */
    struct mt_buf ab;
    mt_buf_init(&ab, (size_t)16 << 20);
    for (size_t a = 0; a <= nax; a++) {
        double x = left + (double)a * step;
        mt_buf_printf(&ab, "<g class=\"pcaxis\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.1f\"/>"
                         "<text x=\"%.1f\" y=\"%d\" class=\"pcname\">",
                      x, x, top, top + ph, x, top - 18);
        esc(&ab, a < nax ? ax[a].key : metric);
        if (a < nax && ax[a].logscale)
            mt_buf_adds(&ab, " (log)");
        mt_buf_adds(&ab, "</text>");
        if (a < nax && ax[a].numeric && ax[a].ncats <= 8) {
            /* a sweep's few values: each labelled where it sits */
            for (size_t c = 0; c < ax[a].ncats; c++) {
                double num = strtod(ax[a].cats[c], NULL), u;
                if (ax[a].hi == ax[a].lo)
                    u = 0.5;
                else if (ax[a].logscale)
                    u = (log10(num) - log10(ax[a].lo)) / (log10(ax[a].hi) - log10(ax[a].lo));
                else
                    u = (num - ax[a].lo) / (ax[a].hi - ax[a].lo);
                mt_buf_printf(&ab, "<text x=\"%.1f\" y=\"%.1f\" class=\"pct\">", x - 5, PC_Y(u) + 4);
                esc(&ab, ax[a].cats[c]);
                mt_buf_adds(&ab, "</text>");
            }
        } else if (a == nax || ax[a].numeric) {
            double lo = a == nax ? mlo : ax[a].lo, hi = a == nax ? mhi : ax[a].hi;
            int lg = a < nax && ax[a].logscale;
            for (int k = 0; k <= 4; k++) {
                double u = k / 4.0;
                double v = lg ? pow(10, log10(lo) + u * (log10(hi) - log10(lo))) : lo + u * (hi - lo);
                snprintf(t, sizeof t, "%.4g", v);
                if (hi == lo && k != 2)
                    continue;
                mt_buf_printf(&ab, "<text x=\"%.1f\" y=\"%.1f\" class=\"pct\">%s</text>", x - 5,
                              PC_Y(hi == lo ? 0.5 : u) + 4, t);
            }
        } else {
            for (size_t c = 0; c < ax[a].ncats; c++) {
                mt_buf_printf(&ab, "<text x=\"%.1f\" y=\"%.1f\" class=\"pct\">", x - 5,
                              PC_Y(ax[a].ncats == 1 ? 0.5 : (double)c / (double)(ax[a].ncats - 1)) + 4);
                esc(&ab, ax[a].cats[c]);
                mt_buf_adds(&ab, "</text>");
            }
        }
        mt_buf_adds(&ab, "</g>\n");
    }
    mt_buf_add(b, ab.data, ab.len);
    mt_buf_free(&ab);
#undef PC_Y
    mt_buf_printf(b, "</svg>\n<p class=\"ramp\"><span class=\"bar\"></span> colour: summary.");
    esc(b, metric);
    mt_buf_printf(b, " from %.6g (dark) to %.6g (bright); the best lines are drawn last; "
                     "hover a line for its run</p></figure>\n",
                  mlo, mhi);
    rc = 0;
out:
    for (size_t a = 0; a < nax; a++)
        axis_free(&ax[a]);
    for (size_t k = 0; k < keys.n; k++)
        free(keys.keys[k]);
    free(keys.keys);
    free(lines);
    return rc;
}
