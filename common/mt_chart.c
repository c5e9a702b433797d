/* mt_chart: see mt_chart.h. */
#include "mt_chart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_buf.h"

static const int COLORS[] = { 36, 33, 35, 32, 31, 34 };

int mt_chart_color(size_t i)
{
    return COLORS[i % (sizeof COLORS / sizeof *COLORS)];
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
};

static void plot(struct canvas *c, int px, int py, int s)
{
    if (px < 0 || py < 0 || px >= c->w * 2 || py >= c->h * 4)
        return;
    int cell = (py / 4) * c->w + px / 2;
    c->bits[cell] |= dot_bit(px % 2, py % 4);
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

static void fmt_num(char *out, size_t size, double v)
{
    if (v != 0 && (fabs(v) >= 1e6 || fabs(v) < 1e-3))
        snprintf(out, size, "%.3g", v);
    else
        snprintf(out, size, "%.4g", v);
}

static void add_braille(struct mt_buf *out, unsigned char b)
{
    unsigned cp = 0x2800u + b;
    char u[3] = { (char)(0xE0 | (cp >> 12)), (char)(0x80 | ((cp >> 6) & 0x3F)),
                  (char)(0x80 | (cp & 0x3F)) };
    mt_buf_add(out, u, 3);
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
    double y_lo = ymin, y_hi = ymax, x_lo = xmin, x_hi = xmax;
    if (y_hi == y_lo) {
        y_lo -= 0.5;
        y_hi += 0.5;
    }
    if (x_hi == x_lo) {
        x_lo -= 0.5;
        x_hi += 0.5;
    }
    char top[32], bottom[32], left[32], right[32];
    fmt_num(top, sizeof top, ymax);
    fmt_num(bottom, sizeof bottom, ymin);
    fmt_num(left, sizeof left, xmin);
    fmt_num(right, sizeof right, xmax);
    int lw = (int)(strlen(top) > strlen(bottom) ? strlen(top) : strlen(bottom));
    if (height < 2)
        height = 2;
    struct canvas c = { .w = width - lw - 3, .h = height };
    if (c.w < 8)
        c.w = 8;
    c.bits = mt_xcalloc((size_t)c.w * (size_t)c.h, 1);
    c.owner = mt_xmalloc((size_t)c.w * (size_t)c.h);
    memset(c.owner, -1, (size_t)c.w * (size_t)c.h);
    int pw = c.w * 2 - 1, ph = c.h * 4 - 1;
    for (size_t s = 0; s < nseries; s++) {
        int have = 0, lx = 0, ly = 0;
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
            if (have && x >= last_x)
                line(&c, lx, ly, px, py, (int)s);
            else
                plot(&c, px, py, (int)s);
            have = 1;
            lx = px;
            ly = py;
            last_x = x;
        }
    }
    for (int row = 0; row < c.h; row++) {
        const char *label = row == 0 ? top : row == c.h - 1 ? bottom : "";
        mt_buf_printf(out, " %*s %s", lw, label,
                      row == 0 || row == c.h - 1 ? "\xe2\x94\xa4" : "\xe2\x94\x82");
        int cur = -1;
        for (int col = 0; col < c.w; col++) {
            int cell = row * c.w + col;
            int want = c.bits[cell] && color ? c.owner[cell] : -1;
            if (want != cur) {
                if (want < 0)
                    mt_buf_adds(out, "\x1b[0m");
                else
                    mt_buf_printf(out, "\x1b[%dm", mt_chart_color((size_t)want));
                cur = want;
            }
            add_braille(out, c.bits[cell]);
        }
        if (cur >= 0)
            mt_buf_adds(out, "\x1b[0m");
        mt_buf_addc(out, '\n');
    }
    mt_buf_printf(out, " %*s \xe2\x94\x94", lw, "");
    for (int col = 0; col < c.w; col++)
        mt_buf_adds(out, "\xe2\x94\x80");
    mt_buf_addc(out, '\n');
    int gap = c.w - (int)strlen(left) - (int)strlen(right);
    mt_buf_printf(out, " %*s  %s%*s%s  %s\n", lw, "", left, gap > 1 ? gap : 1, "", right,
                  xlabel ? xlabel : "");
    if (nseries > 1) {
        mt_buf_printf(out, " %*s  ", lw, "");
        for (size_t s = 0; s < nseries; s++) {
            if (color)
                mt_buf_printf(out, "\x1b[%dm\xe2\x94\x81\xe2\x94\x81 %s\x1b[0m  ",
                              mt_chart_color(s), series[s].label);
            else
                mt_buf_printf(out, "%s%s", s ? ", " : "", series[s].label);
        }
        mt_buf_addc(out, '\n');
    }
    free(c.bits);
    free(c.owner);
}
