/* mt_chart: braille line charts with labelled axes. */
#include <math.h>
#include <string.h>

#include "../../common/mt_buf.h"
#include "../../common/mt_chart.h"
#include "mt_test.h"

/* The n-th line of text (0-based), copied into out. */
static void nth_line(const char *s, int n, char *out, size_t size)
{
    while (n-- > 0 && s && (s = strchr(s, '\n')))
        s++;
    size_t len = s ? strcspn(s, "\n") : 0;
    if (len >= size)
        len = size - 1;
    memcpy(out, s ? s : "", len);
    out[len] = '\0';
}

MT_TEST(rising_line_goes_from_bottom_left_to_top_right_between_nice_ticks)
{
    double x[] = { 0, 10 }, y[] = { 0, 6 };
    struct mt_chart_series s = { "r", x, y, 2 };
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_chart_render(&b, "acc", "_step", &s, 1, 40, 6, 0);
    char l[512];
    nth_line(b.data, 0, l, sizeof l);
    MT_CHECK_STR(l, "acc");
    /* Top row: the top tick, and the line reaches the last cell's top dots. */
    nth_line(b.data, 1, l, sizeof l);
    MT_CHECK(strncmp(l, " 6 \xe2\x94\xa4", 6) == 0);
    MT_CHECK(strcmp(l + strlen(l) - 3, "\xe2\xa0\x80") != 0); /* not blank at the right */
    /* Ticks 0, 2, 4, 6 on 6 rows: four labelled rows, two not. */
    int labelled = 0, plain = 0;
    for (int row = 1; row <= 6; row++) {
        nth_line(b.data, row, l, sizeof l);
        labelled += strncmp(l + 3, "\xe2\x94\xa4", 3) == 0;
        plain += strncmp(l, "   \xe2\x94\x82", 6) == 0;
    }
    MT_CHECK(labelled == 4 && plain == 2);
    MT_CHECK(strstr(b.data, " 2 \xe2\x94\xa4") && strstr(b.data, " 4 \xe2\x94\xa4"));
    /* Bottom row: 0, first cell has the bottom-left dot (0x40). */
    nth_line(b.data, 6, l, sizeof l);
    MT_CHECK(strncmp(l, " 0 \xe2\x94\xa4", 6) == 0);
    MT_CHECK(memcmp(l + 6, "\xe2\xa1\x80", 3) == 0 || memcmp(l + 6, "\xe2\xa3\x80", 3) == 0);
    /* The x axis has tick marks and labels 0, 5, 10 (an integer axis), then its name. */
    nth_line(b.data, 7, l, sizeof l);
    MT_CHECK(strstr(l, "\xe2\x94\xac") != NULL);
    nth_line(b.data, 8, l, sizeof l);
    MT_CHECK(strstr(l, " 0 ") && strstr(l, " 5 ") && strstr(l, "10"));
    MT_CHECK(strstr(b.data, "_step") != NULL);
    mt_buf_free(&b);
}

MT_TEST(fractional_ticks_have_the_decimals_their_step_needs)
{
    char t[40];
    mt_chart_tick_label(t, sizeof t, 0.30000000000000004, 0.1);
    MT_CHECK_STR(t, "0.3");
    mt_chart_tick_label(t, sizeof t, 2.5, 0.5);
    MT_CHECK_STR(t, "2.5");
    mt_chart_tick_label(t, sizeof t, 1e-17, 0.2);
    MT_CHECK_STR(t, "0.0");
    MT_CHECK(mt_chart_nice_step(3, 6, 1) == 1);
    MT_CHECK(mt_chart_nice_step(3, 6, 0) == 0.5);
}

MT_TEST(a_single_point_is_a_marker_and_a_constant_gets_room)
{
    double x[] = { 7 }, y[] = { 0.25 };
    struct mt_chart_series s = { "r", x, y, 1 };
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_chart_render(&b, "lr", "_step", &s, 1, 40, 6, 0);
    MT_CHECK(strchr(b.data, 'o') != NULL);          /* the marker */
    /* 0.25 +- 10%: ticks around it, not -0.25..0.75 */
    MT_CHECK(strstr(b.data, "0.22") || strstr(b.data, "0.23") || strstr(b.data, "0.24"));
    MT_CHECK(strstr(b.data, "0.75") == NULL);
    mt_buf_free(&b);
}

MT_TEST(overlays_are_told_apart_without_colour)
{
    double x[] = { 0, 1, 2 }, a[] = { 0, 1, 2 }, c[] = { 2, 1, 0 };
    struct mt_chart_series s[2] = { { "run-a", x, a, 3 }, { "run-b", x, c, 3 } };
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_chart_render(&b, "m", "_step", s, 2, 40, 6, 0);
    MT_CHECK(strstr(b.data, "\x1b[") == NULL);
    /* Each series' marker is on the chart and names it in the legend. */
    MT_CHECK(mt_chart_marker(0) != mt_chart_marker(1));
    const char *legend = strstr(b.data, "run-a");
    MT_CHECK(legend && strstr(legend, "run-b"));
    MT_CHECK(strstr(b.data, "o\xe2\x94\x81\xe2\x94\x81 run-a") != NULL);
    MT_CHECK(strstr(b.data, "x\xe2\x95\x8d\xe2\x95\x8d run-b") != NULL);
    size_t na = 0, nb = 0;
    for (const char *p = b.data; p < legend; p++) {
        na += *p == mt_chart_marker(0);
        nb += *p == mt_chart_marker(1);
    }
    MT_CHECK(na >= 2 && nb >= 2); /* on the points, before the legend */
    mt_buf_free(&b);
}

/* liblinear's iter within each fold of a cross-validation: 1, 2, 1, 2.
 * Each fold is a flat line of its own (fold 1 at the bottom, fold 2 at the
 * top); nothing joins fold 1's last point to fold 2's first, so the rows
 * between stay blank. */
MT_TEST(an_axis_that_goes_back_starts_a_new_line)
{
    double x[] = { 1, 2, 1, 2 }, y[] = { 0, 0, 1, 1 };
    struct mt_chart_series s = { "f", x, y, 4 };
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_chart_render(&b, "f", "iter", &s, 1, 30, 4, 0);
    char l[512];
    for (int row = 2; row <= 3; row++) {
        nth_line(b.data, row, l, sizeof l);
        size_t dots = 0;
        for (const unsigned char *p = (const unsigned char *)l + 6; *p; p++)
            if (p[0] == 0xE2 && (p[1] & 0xFC) == 0xA0 && !(p[1] == 0xA0 && p[2] == 0x80))
                dots++;
        MT_CHECK(dots == 0);
    }
    /* in order, the same points are one line: it crosses the middle rows */
    double rx[] = { 1, 2, 3, 4 };
    s.x = rx;
    mt_buf_reset(&b);
    mt_chart_render(&b, "f", "iter", &s, 1, 30, 4, 0);
    size_t dots = 0;
    for (int row = 2; row <= 3; row++) {
        nth_line(b.data, row, l, sizeof l);
        for (const unsigned char *p = (const unsigned char *)l + 6; *p; p++)
            if (p[0] == 0xE2 && (p[1] & 0xFC) == 0xA0 && !(p[1] == 0xA0 && p[2] == 0x80))
                dots++;
    }
    MT_CHECK(dots > 0);
    mt_buf_free(&b);
}

MT_TEST(non_finite_values_break_the_line_and_empty_series_say_so)
{
    double x[] = { 0, 1, 2, 3 }, y[] = { 0, NAN, INFINITY, 3 };
    struct mt_chart_series s = { "r", x, y, 4 };
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_chart_render(&b, "loss", "_step", &s, 1, 30, 3, 0);
    /* Only the two finite points are drawn: few dots in all. */
    size_t dots = 0;
    for (const unsigned char *p = (const unsigned char *)b.data; *p; p++)
        if (p[0] == 0xE2 && (p[1] & 0xFC) == 0xA0 && !(p[1] == 0xA0 && p[2] == 0x80))
            dots++;
    MT_CHECK(dots == 2);
    mt_buf_reset(&b);
    double nx[] = { 0 }, ny[] = { NAN };
    struct mt_chart_series e = { "r", nx, ny, 1 };
    mt_chart_render(&b, "x", "_step", &e, 1, 30, 3, 0);
    MT_CHECK(strstr(b.data, "no finite values") != NULL);
    mt_buf_free(&b);
}

MT_TEST(overlays_get_colours_and_a_legend)
{
    double x[] = { 0, 1 }, a[] = { 0, 1 }, c[] = { 1, 0 };
    struct mt_chart_series s[2] = { { "run-a", x, a, 2 }, { "run-b", x, c, 2 } };
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_chart_render(&b, "m", "_step", s, 2, 40, 4, 1);
    char esc_a[16], esc_b[16];
    snprintf(esc_a, sizeof esc_a, "\x1b[%dm", mt_chart_color(0));
    snprintf(esc_b, sizeof esc_b, "\x1b[%dm", mt_chart_color(1));
    MT_CHECK(strstr(b.data, esc_a) && strstr(b.data, esc_b));
    MT_CHECK(strstr(b.data, "run-a") && strstr(b.data, "run-b"));
    mt_buf_free(&b);
}

int main(void)
{
    return mt_test_main();
}
