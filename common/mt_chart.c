/* mt_chart: see mt_chart.h. */
#include "mt_chart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_buf.h"

static const int COLORS[] = { 36, 33, 35, 32, 31, 34, 96, 93, 95, 92 };
#define NCOLORS (sizeof COLORS / sizeof *COLORS)

/* Without colour a series is told by its marker and its dash pattern: a
 * bit mask over 8 consecutive dots of its line (1 drawn). */
static const char MARKERS[] = "ox+*#@%&=$";
#define NMARKERS (sizeof MARKERS - 1)
static const unsigned char DASHES[] = { 0xFF, 0x3F, 0x55, 0x33 };
static const char *const DASH_SAMPLE[] = { "\xe2\x94\x81\xe2\x94\x81", "\xe2\x95\x8d\xe2\x95\x8d",
                                           "\xe2\x94\x88\xe2\x94\x88", "\xe2\x95\x8c\xe2\x95\x8c" };

int mt_chart_color(size_t i)
{
    return COLORS[i % NCOLORS];
}

char mt_chart_marker(size_t i)
{
    return MARKERS[i % NMARKERS];
}

/* Dot (dx, dy) within a cell, dy 0 at the top: braille bit. */
static unsigned char dot_bit(int dx, int dy)
{
    static const unsigned char BITS[2][4] = { { 0x01, 0x02, 0x04, 0x40 },
                                              { 0x08, 0x10, 0x20, 0x80 } };
    return BITS[dx][dy];
}

struct canvas {
    int w, h;             /* cells */
    unsigned char *bits;  /* w*h */
    signed char *owner;   /* series drawing last in the cell, -1 none */
    char *mark;           /* marker character of the cell, 0 none */
    unsigned dash;        /* dots drawn so far by the current series */
    unsigned char pattern;
};

static void plot(struct canvas *c, int px, int py, int s)
{
    if (px < 0 || py < 0 || px >= c->w * 2 || py >= c->h * 4)
        return;
    if (!(c->pattern >> (c->dash++ % 8) & 1))
        return;
    int cell = (py / 4) * c->w + px / 2;
    c->bits[cell] |= dot_bit(px % 2, py % 4);
    c->owner[cell] = (signed char)s;
}

static void put_mark(struct canvas *c, int px, int py, int s, char m)
{
    if (px < 0 || py < 0 || px >= c->w * 2 || py >= c->h * 4)
        return;
    int cell = (py / 4) * c->w + px / 2;
    c->mark[cell] = m;
    c->owner[cell] = (signed char)s;
}

static void line(struct canvas *c, int x0, int y0, int x1, int y1, int s)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        plot(c, x0, y0, s);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

/* "Nice" tick step (1, 2 or 5 times a power of ten) splitting range into
 * about n parts; at least 1 on an integer axis. */
double mt_chart_nice_step(double range, int n, int integer)
{
    if (!(range > 0) || n < 1)
        return 1;
    double raw = range / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    if (integer && step < 1)
        step = 1;
    return step;
}

/* A tick's label: as many decimals as the step needs, no float noise. */
void mt_chart_tick_label(char *out, size_t size, double v, double step)
{
    if (fabs(v) < step * 1e-9)
        v = 0;
    double a = fabs(v);
    if ((a >= 1e6 || (a > 0 && a < 1e-4)) || step < 1e-4) {
        snprintf(out, size, "%.3g", v);
        return;
    }
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 6)
        decimals = 6;
    snprintf(out, size, "%.*f", decimals, v);
}

static void add_braille(struct mt_buf *out, unsigned char b)
{
    unsigned cp = 0x2800u + b;
    char u[3] = { (char)(0xE0 | (cp >> 12)), (char)(0x80 | ((cp >> 6) & 0x3F)),
                  (char)(0x80 | (cp & 0x3F)) };
    mt_buf_add(out, u, 3);
}

static int all_integers(const struct mt_chart_series *series, size_t nseries, int want_x)
{
    for (size_t s = 0; s < nseries; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double v = want_x ? series[s].x[i] : series[s].y[i];
            if (isfinite(series[s].x[i]) && isfinite(series[s].y[i]) && v != floor(v))
                return 0;
        }
    return 1;
}

void mt_chart_widen(double *lo, double *hi, int integer)
{
    if (*hi > *lo)
        return;
    double d = *lo != 0 ? fabs(*lo) * 0.1 : 1;
    if (integer && d < 1)
        d = 1;
    *lo -= d;
    *hi += d;
}

void mt_chart_render(struct mt_buf *out, const char *title, const char *xlabel,
                     const struct mt_chart_series *series, size_t nseries, int width, int height,
                     int color)
{
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    size_t points = 0;
    for (size_t s = 0; s < nseries; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            xmin = fmin(xmin, x);
            xmax = fmax(xmax, x);
            ymin = fmin(ymin, y);
            ymax = fmax(ymax, y);
            points++;
        }
    mt_buf_printf(out, "%s\n", title);
    if (!points) {
        mt_buf_adds(out, "  (no finite values)\n");
        return;
    }
    if (height < 2)
        height = 2;
    int xint = all_integers(series, nseries, 1), yint = all_integers(series, nseries, 0);
    double x_lo = xmin, x_hi = xmax, y_lo = ymin, y_hi = ymax;
    mt_chart_widen(&x_lo, &x_hi, xint);
    mt_chart_widen(&y_lo, &y_hi, yint);
    /* The y range is widened to whole ticks, so the top and bottom rows
     * carry labels; about one labelled row in two or three. */
    int nyt = height / 2 < 2 ? 2 : height / 2;
    double ystep = mt_chart_nice_step(y_hi - y_lo, nyt, yint);
    y_lo = floor(y_lo / ystep + 1e-9) * ystep;
    y_hi = ceil(y_hi / ystep - 1e-9) * ystep;
    char **ylab = mt_xcalloc((size_t)height, sizeof *ylab);
    int lw = 1;
    int ph = height * 4 - 1;
    for (double v = y_hi; v >= y_lo - ystep * 1e-6; v -= ystep) {
        int row = (int)lround((y_hi - v) / (y_hi - y_lo) * ph) / 4;
        if (row < 0 || row >= height || ylab[row])
            continue;
        char t[40];
        mt_chart_tick_label(t, sizeof t, v, ystep);
        ylab[row] = mt_xstrdup(t);
        if ((int)strlen(t) > lw)
            lw = (int)strlen(t);
    }
    struct canvas c = { .w = width - lw - 3, .h = height };
    if (c.w < 8)
        c.w = 8;
    size_t cells = (size_t)c.w * (size_t)c.h;
    c.bits = mt_xcalloc(cells, 1);
    c.mark = mt_xcalloc(cells, 1);
    c.owner = mt_xmalloc(cells);
    memset(c.owner, -1, cells);
    int pw = c.w * 2 - 1;
    int marked = nseries > 1;
    for (size_t s = 0; s < nseries; s++) {
        int have = 0, lx = 0, ly = 0;
        size_t finite = 0;
        for (size_t i = 0; i < series[s].n; i++)
            finite += isfinite(series[s].x[i]) && isfinite(series[s].y[i]);
        c.dash = 0;
        c.pattern = color || nseries == 1 ? 0xFF : DASHES[s % 4];
        /* Markers on every point of a sparse series (and on a lone point);
         * on a dense one a few, shifted per series so overlays stay apart. */
        size_t every = finite <= (size_t)c.w / 3 ? 1 : finite / 6 + 1;
        size_t offset = every > 1 ? (every * s) / (nseries ? nseries : 1) : 0;
        size_t k = 0;
        double last_x = 0;
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) {
                have = 0; /* a gap */
                continue;
            }
            int px = (int)lround((x - x_lo) / (x_hi - x_lo) * pw);
            int py = ph - (int)lround((y - y_lo) / (y_hi - y_lo) * ph);
            /* An axis that goes back starts over (the next fold of a
             * cross-validation: liblinear's iter from 1): a new line, not a
             * stroke back across the chart. */
            if (have && x < last_x)
                have = 0;
            last_x = x;
            if (have)
                line(&c, lx, ly, px, py, (int)s);
            else
                plot(&c, px, py, (int)s);
            if ((marked || finite == 1) && (k + offset) % every == 0)
                put_mark(&c, px, py, (int)s, mt_chart_marker(s));
            k++;
            have = 1;
            lx = px;
            ly = py;
        }
    }
    for (int row = 0; row < c.h; row++) {
        mt_buf_printf(out, " %*s %s", lw, ylab[row] ? ylab[row] : "",
                      ylab[row] ? "\xe2\x94\xa4" : "\xe2\x94\x82");
        int cur = -1;
        for (int col = 0; col < c.w; col++) {
            int cell = row * c.w + col;
            int want = (c.bits[cell] || c.mark[cell]) && color ? c.owner[cell] : -1;
            if (want != cur) {
                if (want < 0)
                    mt_buf_adds(out, "\x1b[0m");
                else
                    mt_buf_printf(out, "\x1b[%dm", mt_chart_color((size_t)want));
                cur = want;
            }
            if (c.mark[cell])
                mt_buf_addc(out, c.mark[cell]);
            else
                add_braille(out, c.bits[cell]);
        }
        if (cur >= 0)
            mt_buf_adds(out, "\x1b[0m");
        mt_buf_addc(out, '\n');
    }
    /* The x axis: a tick mark under each labelled value, labels that do not
     * run into each other, the axis name at the end. */
    double xstep = mt_chart_nice_step(x_hi - x_lo, c.w / 12 < 2 ? 2 : c.w / 12, xint);
    char *labels = mt_xmalloc((size_t)c.w + 1);
    memset(labels, ' ', (size_t)c.w);
    labels[c.w] = '\0';
    char *ticks = mt_xcalloc((size_t)c.w, 1);
    int next_free = 0, last_end = 0;
    for (double v = ceil(x_lo / xstep - 1e-9) * xstep; v <= x_hi + xstep * 1e-6; v += xstep) {
        int col = (int)lround((v - x_lo) / (x_hi - x_lo) * pw) / 2;
        if (col < 0 || col >= c.w)
            continue;
        char t[40];
        mt_chart_tick_label(t, sizeof t, v, xstep);
        int len = (int)strlen(t), at = col - len / 2;
        if (at + len > c.w)
            at = c.w - len; /* the last label ends under the axis's end */
        if (at < 0)
            at = 0;
        if (at < next_free || at + len > c.w)
            continue;
        memcpy(labels + at, t, (size_t)len);
        ticks[col] = 1;
        next_free = at + len + 1;
        last_end = at + len;
    }
    mt_buf_printf(out, " %*s \xe2\x94\x94", lw, "");
    for (int col = 0; col < c.w; col++)
        mt_buf_adds(out, ticks[col] ? "\xe2\x94\xac" : "\xe2\x94\x80");
    mt_buf_addc(out, '\n');
    labels[last_end] = '\0';
    mt_buf_printf(out, " %*s  %s", lw, "", labels);
    if (xlabel && *xlabel) {
        int room = c.w - last_end - 2;
        if (room >= (int)strlen(xlabel))
            mt_buf_printf(out, "%*s%s", room - (int)strlen(xlabel) + 2, "", xlabel);
        else
            mt_buf_printf(out, "\n %*s  %*s", lw, "", c.w, xlabel);
    }
    mt_buf_addc(out, '\n');
    if (nseries > 1) {
        /* One entry a series: colour, marker and dash sample, so it reads
         * without colour too; wrapped at the chart's width. */
        int used = width;
        for (size_t s = 0; s < nseries; s++) {
            const char *label = series[s].label ? series[s].label : "";
            int len = (int)strlen(label) + 7;
            if (used + len > width) {
                while (s && out->len && out->data[out->len - 1] == ' ')
                    out->len--;
                mt_buf_printf(out, "%s %*s  ", s ? "\n" : "", lw, "");
                used = lw + 3;
            }
            const char *dash = color ? DASH_SAMPLE[0] : DASH_SAMPLE[s % 4];
            if (color)
                mt_buf_printf(out, "\x1b[%dm%c%s %s\x1b[0m  ", mt_chart_color(s),
                              mt_chart_marker(s), dash, label);
            else
                mt_buf_printf(out, "%c%s %s  ", mt_chart_marker(s), dash, label);
            used += len;
        }
        while (out->len && out->data[out->len - 1] == ' ')
            out->len--;
        mt_buf_addc(out, '\n');
    }
    for (int row = 0; row < height; row++)
        free(ylab[row]);
    free(ylab);
    free(labels);
    free(ticks);
    free(c.bits);
    free(c.mark);
    free(c.owner);
}
