/* metrictap ls: the runs table, from the index (or with --scan from the run
 * directories), as a table fitted to the terminal, --json or --csv. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/mt_buf.h"
#include "../config/mt_config.h"
#include "../agent/mt_recover.h"
#include "mt_cli.h"
#include "select.h"

enum { C_ID, C_NAME, C_STATE, C_CREATED, C_RUNTIME, C_TAGS, C_GROUP, C_UPLOAD, C_FIXED };
static const char *const FIXED_HEAD[C_FIXED] = { "ID",      "NAME", "STATE", "CREATED",
                                                 "RUNTIME", "TAGS", "GROUP", "UPLOAD" };

static void format_time(double t, char *out, size_t size, int iso)
{
    time_t s = (time_t)t;
    struct tm tm;
    if (iso) {
        gmtime_r(&s, &tm);
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    } else {
        localtime_r(&s, &tm);
        strftime(out, size, "%Y-%m-%d %H:%M", &tm);
    }
}

/* Writes `s` padded or cut to `w` characters; a cut cell ends in an ellipsis. */
static void put_cell(struct mt_buf *out, const char *s, size_t w, int right)
{
    size_t n = mt_cli_text_width(s);
    if (n > w) {
        size_t keep = w ? w - 1 : 0, i = 0, chars = 0;
        while (s[i] && chars <= keep) {
            if (((unsigned char)s[i] & 0xC0) != 0x80) {
                if (chars == keep)
                    break;
                chars++;
            }
            i++;
        }
        mt_buf_add(out, s, i);
        if (w)
            mt_buf_adds(out, "\xe2\x80\xa6");
        return;
    }
    if (right)
        for (size_t k = n; k < w; k++)
            mt_buf_addc(out, ' ');
    mt_buf_adds(out, s);
    if (!right)
        for (size_t k = n; k < w; k++)
            mt_buf_addc(out, ' ');
}

static void print_table(const struct mt_select *s, const struct mt_select_rows *rows)
{
    size_t ncol = C_FIXED + s->ncols, nrow = rows->n;
    char **cell = mt_xcalloc((nrow + 1) * ncol, sizeof *cell);
    size_t *w = mt_xcalloc(ncol, sizeof *w), *minw = mt_xcalloc(ncol, sizeof *minw);
    int *right = mt_xcalloc(ncol, sizeof *right), *flex = mt_xcalloc(ncol, sizeof *flex);
    int marked = 0;
    for (size_t c = 0; c < ncol; c++) {
        cell[c] = mt_xstrdup(c < C_FIXED ? FIXED_HEAD[c] : s->cols[c - C_FIXED].label);
        flex[c] = c == C_NAME || c == C_TAGS || c == C_GROUP || c == C_UPLOAD || c >= C_FIXED;
        right[c] = c == C_RUNTIME;
    }
    for (size_t i = 0; i < nrow; i++) {
        const struct mt_select_row *r = &rows->v[i];
        char **row = cell + (i + 1) * ncol;
        char buf[256];
        row[C_ID] = mt_xstrdup(r->id ? r->id : "");
        row[C_NAME] = mt_xstrdup(r->name ? r->name : "");
        /* '!': some of the run's output was dropped or cut (see the note). */
        snprintf(buf, sizeof buf, "%s%s", r->state ? r->state : "",
                 r->dropped > 0 || r->cut > 0 ? "!" : "");
        row[C_STATE] = mt_xstrdup(buf);
        marked |= r->dropped > 0 || r->cut > 0;
        format_time(r->start_time, buf, sizeof buf, 0);
        row[C_CREATED] = mt_xstrdup(buf);
        mt_cli_format_duration(r->runtime, buf, sizeof buf);
        row[C_RUNTIME] = mt_xstrdup(buf);
        row[C_TAGS] = mt_xstrdup(r->tags ? r->tags : "");
        row[C_GROUP] = mt_xstrdup(r->group ? r->group : "");
        char up[1024] = "";
        if (r->dir)
            mt_cli_upload_column(r->dir, up, sizeof up);
        row[C_UPLOAD] = mt_xstrdup(up);
        for (size_t k = 0; k < s->ncols; k++) {
            struct mt_buf b;
            mt_buf_init(&b, 1 << 16);
            char num[64];
            if (r->vals[k].type == MT_V_TEXT)
                mt_buf_adds(&b, r->vals[k].text);
            else {
                mt_cli_format_value(&r->vals[k], num, sizeof num, 0);
                mt_buf_adds(&b, num);
                right[C_FIXED + k] = 1;
                size_t nw = strlen(num);
                if (nw > minw[C_FIXED + k])
                    minw[C_FIXED + k] = nw; /* numbers are never cut */
            }
            mt_buf_add(&b, "", 0);
            row[C_FIXED + k] = b.data;
        }
    }
    for (size_t c = 0; c < ncol; c++) {
        for (size_t i = 0; i <= nrow; i++) {
            size_t n = mt_cli_text_width(cell[i * ncol + c]);
            if (n > w[c])
                w[c] = n;
        }
        if (!flex[c])
            minw[c] = w[c];
        else if (minw[c] < 6)
            minw[c] = w[c] < 6 ? w[c] : 6;
    }
    /* Fit the terminal: take a character at a time from the widest column
     * that can give one.  Ids, states, times and numbers are never cut. */
    int width = mt_cli_term_width();
    size_t total = 2 * (ncol - 1);
    for (size_t c = 0; c < ncol; c++)
        total += w[c];
    while (width > 0 && total > (size_t)width) {
        size_t best = ncol;
        for (size_t c = 0; c < ncol; c++)
            if (flex[c] && w[c] > minw[c] && (best == ncol || w[c] > w[best]))
                best = c;
        if (best == ncol)
            break;
        w[best]--;
        total--;
    }
    struct mt_buf line;
    mt_buf_init(&line, 1 << 20);
    for (size_t i = 0; i <= nrow; i++) {
        mt_buf_reset(&line);
        for (size_t c = 0; c < ncol; c++) {
            if (c)
                mt_buf_adds(&line, "  ");
            /* The last column is not padded. */
            put_cell(&line, cell[i * ncol + c], c + 1 == ncol && !right[c] &&
                     mt_cli_text_width(cell[i * ncol + c]) <= w[c]
                         ? mt_cli_text_width(cell[i * ncol + c]) : w[c],
                     right[c]);
        }
        while (line.len && line.data[line.len - 1] == ' ')
            line.data[--line.len] = '\0';
        fputs(line.data ? line.data : "", stdout);
        fputc('\n', stdout);
    }
    mt_buf_free(&line);
    for (size_t i = 0; i < (nrow + 1) * ncol; i++)
        free(cell[i]);
    free(cell);
    free(w);
    free(minw);
    free(right);
    free(flex);
    if (marked)
        printf("! some output of the run was dropped or cut: metrictap show RUN says what\n");
}

static void csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_csv(const struct mt_select *s, const struct mt_select_rows *rows)
{
    fputs("id,project,name,state,created,runtime,tags,group", stdout);
    for (size_t k = 0; k < s->ncols; k++) {
        putchar(',');
        csv_field(s->cols[k].label);
    }
    putchar('\n');
    for (size_t i = 0; i < rows->n; i++) {
        const struct mt_select_row *r = &rows->v[i];
        char buf[64];
        const char *f[] = { r->id, r->project, r->name, r->state };
        for (size_t k = 0; k < 4; k++) {
            if (k)
                putchar(',');
            csv_field(f[k] ? f[k] : "");
        }
        format_time(r->start_time, buf, sizeof buf, 1);
        printf(",%s,%.3f,", buf, r->runtime);
        csv_field(r->tags ? r->tags : "");
        putchar(',');
        csv_field(r->group ? r->group : "");
        for (size_t k = 0; k < s->ncols; k++) {
            char num[64];
            putchar(',');
            if (r->vals[k].type == MT_V_TEXT)
                csv_field(r->vals[k].text);
            else {
                mt_cli_format_value(&r->vals[k], num, sizeof num, 1);
                fputs(num, stdout);
            }
        }
        putchar('\n');
    }
}

static void json_str_or_null(struct mt_buf *b, const char *s)
{
    if (s)
        mt_buf_json_string(b, s, strlen(s));
    else
        mt_buf_adds(b, "null");
}

static void json_value(struct mt_buf *b, const struct mt_value *v)
{
    char num[64];
    if (v->type == MT_V_NONE)
        mt_buf_adds(b, "null");
    else if (v->type == MT_V_TEXT)
        mt_buf_json_string(b, v->text, strlen(v->text));
    else if (isinf(v->num))
        mt_buf_adds(b, v->num > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else {
        mt_cli_format_value(v, num, sizeof num, 1);
        mt_buf_adds(b, num);
    }
}

/* One JSON object per run, in an array, one run a line. */
static void print_json(const struct mt_select *s, const struct mt_select_rows *rows)
{
    struct mt_buf b;
    mt_buf_init(&b, (size_t)1 << 30);
    fputs("[", stdout);
    for (size_t i = 0; i < rows->n; i++) {
        const struct mt_select_row *r = &rows->v[i];
        char created[64];
        mt_buf_reset(&b);
        mt_buf_adds(&b, i ? ",\n" : "\n");
        mt_buf_adds(&b, "{\"id\":");
        json_str_or_null(&b, r->id);
        const char *keys[] = { "project", "name", "state", "group", "job_type" };
        const char *vals[] = { r->project, r->name, r->state, r->group, r->job_type };
        for (size_t k = 0; k < 5; k++) {
            mt_buf_printf(&b, ",\"%s\":", keys[k]);
            json_str_or_null(&b, vals[k]);
        }
        mt_buf_adds(&b, ",\"tags\":[");
        const char *p = r->tags ? r->tags : "";
        int first = 1;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (n) {
                mt_buf_adds(&b, first ? "" : ",");
                mt_buf_json_string(&b, p, n);
                first = 0;
            }
            if (!comma)
                break;
            p = comma + 1;
        }
        format_time(r->start_time, created, sizeof created, 1);
        mt_buf_printf(&b, "],\"created\":\"%s\",\"start_time\":%.6f,\"end_time\":", created,
                      r->start_time);
        if (r->end_time > 0)
            mt_buf_printf(&b, "%.6f", r->end_time);
        else
            mt_buf_adds(&b, "null");
        mt_buf_printf(&b, ",\"runtime\":%.3f,\"exit_code\":", r->runtime);
        if (r->exit_code >= 0)
            mt_buf_printf(&b, "%d", r->exit_code);
        else
            mt_buf_adds(&b, "null");
        mt_buf_printf(&b, ",\"signal\":%d,\"dropped\":%.0f,\"cut\":%.0f,\"dir\":", r->signal,
                      r->dropped, r->cut);
        json_str_or_null(&b, r->dir);
        char up[1024] = "";
        if (r->dir)
            mt_cli_upload_column(r->dir, up, sizeof up);
        mt_buf_adds(&b, ",\"upload\":");
        mt_buf_json_string(&b, up, strlen(up));
        mt_buf_adds(&b, ",\"config\":");
        mt_buf_adds(&b, r->config && *r->config ? r->config : "{}");
        mt_buf_adds(&b, ",\"summary\":");
        mt_buf_adds(&b, r->summary && *r->summary ? r->summary : "{}");
        if (s->ncols) {
            mt_buf_adds(&b, ",\"columns\":{");
            for (size_t k = 0; k < s->ncols; k++) {
                if (k)
                    mt_buf_addc(&b, ',');
                mt_buf_json_string(&b, s->cols[k].label, strlen(s->cols[k].label));
                mt_buf_addc(&b, ':');
                json_value(&b, &r->vals[k]);
            }
            mt_buf_addc(&b, '}');
        }
        mt_buf_addc(&b, '}');
        fwrite(b.data, 1, b.len, stdout);
    }
    fputs(rows->n ? "\n]\n" : "]\n", stdout);
    mt_buf_free(&b);
}

int mt_cmd_ls(int argc, char **argv)
{
    struct mt_select sel = { 0 };
    struct mt_select_rows rows = { 0 };
    struct mt_config cfg;
    int json = 0, csv = 0, rc = 2;
    mt_cli_load_config(&cfg);
    for (int i = 1; i < argc; i++) {
        int taken = mt_select_arg(&sel, argc, argv, &i);
        if (taken < 0)
            goto out;
        if (taken)
            continue;
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--csv") == 0)
            csv = 1;
        else {
            fprintf(stderr, "metrictap ls: unknown option \"%s\"\nusage: metrictap ls %s\n"
                            "    [--json | --csv]\n",
                    argv[i], mt_select_usage());
            goto out;
        }
    }
    rc = 1;
    if (mt_select_run(&sel, cfg.dir, &rows) == 0) {
        /* A run still "running" whose agent is gone shows what it is. */
        for (size_t i = 0; i < rows.n; i++) {
            struct mt_select_row *r = &rows.v[i];
            const char *shown = r->dir ? mt_recover_state_to_show(r->dir, r->state) : r->state;
            if (shown && r->state && strcmp(shown, r->state) != 0) {
                free(r->state);
                r->state = mt_xstrdup(shown);
            }
        }
        if (json)
            print_json(&sel, &rows);
        else if (csv)
            print_csv(&sel, &rows);
        else
            print_table(&sel, &rows);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
out:
    mt_select_rows_free(&rows, sel.ncols);
    mt_config_free(&cfg);
    mt_select_free(&sel);
    return rc;
}
