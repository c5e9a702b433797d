/* ls --group-by config.KEY: one line per value of the key (in the order
 * the selected runs first show it), with how many runs have it and the
 * count, mean, standard deviation (of a sample: n - 1), min and max of each
 * --columns value that is a number, as W&B's and MLflow's grouping of seeds
 * does.  Runs lacking the key form the group "(none)"; text values are not
 * aggregated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "mt_cli.h"
#include "select.h"

struct stat_acc {
    size_t n;
    double sum, sumsq, min, max;
};

struct group {
    char *key;   /* the value as text; NULL for "(none)" */
    size_t runs;
    struct stat_acc *acc; /* per shown column */
};

static void key_text(const struct mt_value *v, char *out, size_t n)
{
    if (v->type == MT_V_TEXT)
        snprintf(out, n, "%s", v->text);
    else
        mt_cli_format_value(v, out, n, 1);
}

static void add_stat(struct stat_acc *a, double x)
{
    if (!isfinite(x))
        return;
    if (!a->n || x < a->min)
        a->min = x;
    if (!a->n || x > a->max)
        a->max = x;
    a->n++;
    a->sum += x;
    a->sumsq += x * x;
}

static double mean_of(const struct stat_acc *a) { return a->sum / (double)a->n; }

static double std_of(const struct stat_acc *a)
{
    if (a->n < 2)
        return NAN;
    double m = mean_of(a), var = (a->sumsq - (double)a->n * m * m) / (double)(a->n - 1);
    return var > 0 ? sqrt(var) : 0;
}

static const char *const STAT_NAMES[] = { "n", "mean", "std", "min", "max" };
#define NSTATS 5

static double stat_value(const struct stat_acc *a, int k)
{
    switch (k) {
    case 0: return (double)a->n;
    case 1: return a->n ? mean_of(a) : NAN;
    case 2: return std_of(a);
    case 3: return a->n ? a->min : NAN;
    default: return a->n ? a->max : NAN;
    }
}

static void num_text(double v, char *out, size_t n, int full)
{
    if (isnan(v)) {
        out[0] = '\0';
        return;
    }
    struct mt_value x = { MT_V_NUM, v, NULL };
    mt_cli_format_value(&x, out, n, full);
}

static void csv_cell(struct mt_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        mt_buf_adds(b, s);
        return;
    }
    mt_buf_addc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            mt_buf_addc(b, '"');
        mt_buf_addc(b, *s);
    }
    mt_buf_addc(b, '"');
}

/* format: 0 table, 1 JSON, 2 CSV. */
int mt_ls_print_groups(const struct mt_select *s, const struct mt_select_rows *rows, int format)
{
    size_t kc = s->hidden_col - 1, nshown = 0;
    size_t *shown = mt_xcalloc(s->ncols + 1, sizeof *shown);
    for (size_t k = 0; k < s->ncols; k++) {
        int numeric = 0; /* text values are not aggregated */
        for (size_t i = 0; i < rows->n && !numeric; i++)
            numeric = rows->v[i].vals[k].type == MT_V_NUM;
        if (k != kc && numeric)
            shown[nshown++] = k;
        else if (k != kc)
            fprintf(stderr, "metrictap ls: %s has no numbers; --group-by aggregates numbers\n",
                    s->cols[k].label);
    }
    struct group *g = NULL;
    size_t ng = 0;
    for (size_t i = 0; i < rows->n; i++) {
        const struct mt_value *kv = &rows->v[i].vals[kc];
        char text[512];
        key_text(kv, text, sizeof text);
        const char *key = kv->type == MT_V_NONE ? NULL : text;
        size_t at = 0;
        while (at < ng && !((!key && !g[at].key) || (key && g[at].key && strcmp(key, g[at].key) == 0)))
            at++;
        if (at == ng) {
            g = mt_xrealloc(g, (ng + 1) * sizeof *g);
            g[ng] = (struct group){ key ? mt_xstrdup(key) : NULL, 0,
                                    mt_xcalloc(nshown + 1, sizeof(struct stat_acc)) };
            ng++;
        }
        g[at].runs++;
        for (size_t c = 0; c < nshown; c++) {
            const struct mt_value *v = &rows->v[i].vals[shown[c]];
            if (v->type == MT_V_NUM)
                add_stat(&g[at].acc[c], v->num);
        }
    }
    const char *klabel = s->cols[kc].label;
    struct mt_buf b;
    mt_buf_init(&b, (size_t)1 << 30);
    if (format == 1) {
        mt_buf_adds(&b, "[");
        for (size_t i = 0; i < ng; i++) {
            mt_buf_adds(&b, i ? ",\n{\"group\":" : "\n{\"group\":");
            if (g[i].key)
                mt_buf_json_string(&b, g[i].key, strlen(g[i].key));
            else
                mt_buf_adds(&b, "null");
            mt_buf_printf(&b, ",\"key\":");
            mt_buf_json_string(&b, klabel, strlen(klabel));
            mt_buf_printf(&b, ",\"runs\":%zu,\"columns\":{", g[i].runs);
            for (size_t c = 0; c < nshown; c++) {
                const char *l = s->cols[shown[c]].label;
                mt_buf_adds(&b, c ? "," : "");
                mt_buf_json_string(&b, l, strlen(l));
                mt_buf_adds(&b, ":{");
                for (int k = 0; k < NSTATS; k++) {
                    double v = stat_value(&g[i].acc[c], k);
                    mt_buf_printf(&b, "%s\"%s\":", k ? "," : "", STAT_NAMES[k]);
                    if (isnan(v))
                        mt_buf_adds(&b, "null");
                    else
                        mt_buf_json_number(&b, v);
                }
                mt_buf_adds(&b, "}");
            }
            mt_buf_adds(&b, "}}");
        }
        mt_buf_adds(&b, ng ? "\n]\n" : "]\n");
    } else {
        /* The table and CSV share the cells; the table pads them and puts
         * each column's name on a line of its own above its five numbers. */
        size_t ncol = 2 + nshown * NSTATS, nrow = ng + 1;
        char **cell = mt_xcalloc(ncol * nrow, sizeof *cell);
        cell[0] = mt_xstrdup(klabel);
        cell[1] = mt_xstrdup(format == 2 ? "runs" : "RUNS");
        for (size_t c = 0; c < nshown; c++)
            for (int k = 0; k < NSTATS; k++) {
                struct mt_buf h;
                mt_buf_init(&h, 4096);
                if (format == 2)
                    mt_buf_printf(&h, "%s %s", s->cols[shown[c]].label, STAT_NAMES[k]);
                else
                    mt_buf_adds(&h, STAT_NAMES[k]);
                cell[2 + c * NSTATS + (size_t)k] = h.data;
            }
        for (size_t i = 0; i < ng; i++) {
            char **row = cell + (i + 1) * ncol, num[64];
            row[0] = mt_xstrdup(g[i].key ? g[i].key : format == 2 ? "" : "(none)");
            snprintf(num, sizeof num, "%zu", g[i].runs);
            row[1] = mt_xstrdup(num);
            for (size_t c = 0; c < nshown; c++)
                for (int k = 0; k < NSTATS; k++) {
                    num_text(stat_value(&g[i].acc[c], k), num, sizeof num, format == 2);
                    row[2 + c * NSTATS + (size_t)k] = mt_xstrdup(num);
                }
        }
        size_t *w = mt_xcalloc(ncol, sizeof *w);
        for (size_t i = 0; i < nrow * ncol; i++) {
            size_t n = mt_cli_text_width(cell[i]);
            if (n > w[i % ncol])
                w[i % ncol] = n;
        }
        if (format != 2 && nshown) {
            /* the names' line: each over its five columns, widened to fit */
            mt_buf_printf(&b, "%*s  %*s", (int)w[0], "", (int)w[1], "");
            for (size_t c = 0; c < nshown; c++) {
                const char *l = s->cols[shown[c]].label;
                size_t span = 2 * (NSTATS - 1), lw = mt_cli_text_width(l);
                for (int k = 0; k < NSTATS; k++)
                    span += w[2 + c * NSTATS + (size_t)k];
                if (lw > span)
                    w[2 + c * NSTATS + NSTATS - 1] += lw - span, span = lw;
                mt_buf_printf(&b, "  %s", l);
                for (size_t k = lw; k < span; k++)
                    mt_buf_addc(&b, ' ');
            }
            while (b.len && b.data[b.len - 1] == ' ')
                b.data[--b.len] = '\0';
            mt_buf_addc(&b, '\n');
        }
        for (size_t i = 0; i < nrow; i++) {
            for (size_t c = 0; c < ncol; c++) {
                const char *t = cell[i * ncol + c];
                if (format == 2) {
                    mt_buf_adds(&b, c ? "," : "");
                    csv_cell(&b, t);
                    continue;
                }
                size_t pad = w[c] - mt_cli_text_width(t);
                if (c)
                    mt_buf_adds(&b, "  ");
                if (c) /* numbers (and their names) to the right */
                    for (size_t k = 0; k < pad; k++)
                        mt_buf_addc(&b, ' ');
                mt_buf_adds(&b, t);
                if (!c)
                    for (size_t k = 0; k < pad; k++)
                        mt_buf_addc(&b, ' ');
            }
            while (b.len && b.data[b.len - 1] == ' ')
                b.data[--b.len] = '\0';
            mt_buf_addc(&b, '\n');
        }
        for (size_t i = 0; i < nrow * ncol; i++)
            free(cell[i]);
        free(cell);
        free(w);
    }
    int rc = b.refused ? -1 : 0;
    if (b.len)
        fwrite(b.data, 1, b.len, stdout);
    mt_buf_free(&b);
    for (size_t i = 0; i < ng; i++) {
        free(g[i].key);
        free(g[i].acc);
    }
    free(g);
    free(shown);
    return rc;
}
