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
#include "../agent/mt_stack_agent.h"
#include "mt_cli.h"
#include "select.h"

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

/* A column of the table: a built-in shown as ls shows it, the upload state
 * (from the run directory, not the index), or the value of --columns entry
 * `val`. */
#define DCOL_VALUE (-1)
#define DCOL_UPLOAD (-2)
struct dcol {
    char *head;
    int builtin; /* enum mt_col_builtin, DCOL_UPLOAD or DCOL_VALUE */
    size_t val;
};

/* A built-in's cell, as the table shows it. */
static void builtin_cell(const struct mt_select_row *r, int b, char *buf, size_t n)
{
    const char *t = NULL;
    buf[0] = '\0';
    switch (b) {
    case DCOL_UPLOAD: /* uploaded, pending N points, failed: why (README Uploading) */
        if (r->dir)
            mt_cli_upload_column(r->dir, buf, n);
        return;
    case MT_B_ID: t = r->id; break;
    case MT_B_NAME: t = r->name; break;
    case MT_B_PROJECT: t = r->project; break;
    case MT_B_GROUP: t = r->group; break;
    case MT_B_JOB_TYPE: t = r->job_type; break;
    case MT_B_TAGS: t = r->tags; break;
    case MT_B_STATE:
        /* '!': some of the run's output was dropped or cut (see the note). */
        snprintf(buf, n, "%s%s", r->state ? r->state : "", r->dropped > 0 || r->cut > 0 ? "!" : "");
        return;
    case MT_B_CREATED: format_time(r->start_time, buf, n, 0); return;
    case MT_B_END_TIME:
        if (r->end_time > 0)
            format_time(r->end_time, buf, n, 0);
        return;
    case MT_B_RUNTIME: mt_cli_format_duration(r->runtime, buf, n); return;
    case MT_B_EXIT_CODE:
        if (r->exit_code >= 0)
            snprintf(buf, n, "%d", r->exit_code);
        return;
    case MT_B_SIGNAL:
        if (r->signal)
            snprintf(buf, n, "%d", r->signal);
        return;
    default: return;
    }
    snprintf(buf, n, "%s", t ? t : "");
}

static int builtin_right(int b)
{
    return b == MT_B_RUNTIME || b == MT_B_EXIT_CODE || b == MT_B_SIGNAL;
}

static int builtin_flex(int b)
{
    return b == MT_B_NAME || b == MT_B_TAGS || b == MT_B_GROUP || b == MT_B_PROJECT ||
           b == MT_B_JOB_TYPE || b == DCOL_UPLOAD;
}

static char *upper(const char *s)
{
    char *u = mt_xstrdup(s);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return u;
}

/* Several projects among the rows: the table says which is which. */
static int several_projects(const struct mt_select_rows *rows)
{
    for (size_t i = 1; i < rows->n; i++)
        if (strcmp(rows->v[i].project ? rows->v[i].project : "",
                   rows->v[0].project ? rows->v[0].project : "") != 0)
            return 1;
    return 0;
}

/* Some run among the rows is uploaded somewhere (else no UPLOAD column). */
static int some_upload(const struct mt_select_rows *rows)
{
    char buf[256];
    for (size_t i = 0; i < rows->n; i++) {
        buf[0] = '\0';
        if (rows->v[i].dir)
            mt_cli_upload_column(rows->v[i].dir, buf, sizeof buf);
        if (buf[0])
            return 1;
    }
    return 0;
}

static size_t table_columns(const struct mt_select *s, const struct mt_select_rows *rows,
                            struct dcol *out)
{
    static const int FIXED[] = { MT_B_ID, MT_B_NAME, MT_B_PROJECT, MT_B_STATE, MT_B_CREATED,
                                 MT_B_RUNTIME, MT_B_TAGS, MT_B_GROUP };
    size_t n = 0;
    for (size_t i = 0; !s->replace_cols && i < sizeof FIXED / sizeof *FIXED; i++) {
        if (FIXED[i] == MT_B_PROJECT && !several_projects(rows))
            continue;
        out[n++] = (struct dcol){ upper(mt_col_builtin_name(FIXED[i])), FIXED[i], 0 };
    }
    if (!s->replace_cols && some_upload(rows))
        out[n++] = (struct dcol){ mt_xstrdup("UPLOAD"), DCOL_UPLOAD, 0 };
    for (size_t k = 0; k < s->ncols; k++) {
        if (k + 1 == s->hidden_col)
            continue;
        const struct mt_col *c = &s->cols[k];
        if (c->src == MT_COL_BUILTIN && s->replace_cols)
            out[n++] = (struct dcol){ upper(c->label), (int)c->builtin, k };
        else
            out[n++] = (struct dcol){ mt_xstrdup(c->label), DCOL_VALUE, k };
    }
    return n;
}

/* Headers of values wider than the values below them, when the table must
 * shrink: "summary."/"config." dropped where no other column has that key,
 * then the middle cut out ("eval_a…_top1"), widened until no two headers read
 * the same.  Returns how many were shortened. */
static size_t shorten_headers(char **head, const size_t *want, const int *is_value, size_t n,
                              int cut_middle)
{
    size_t done = 0;
    for (size_t c = 0; c < n; c++) {
        if (!is_value[c])
            continue;
        const char *dot = strchr(head[c], '.');
        if (!dot || (cut_middle && mt_cli_text_width(head[c]) <= want[c]))
            continue;
        int clash = 0;
        for (size_t o = 0; o < n; o++)
            if (o != c && (strcmp(head[o], dot + 1) == 0 ||
                           (is_value[o] && strchr(head[o], '.') &&
                            strcmp(strchr(head[o], '.') + 1, dot + 1) == 0)))
                clash = 1;
        if (!clash) {
            char *k = mt_xstrdup(dot + 1);
            free(head[c]);
            head[c] = k;
            done++;
        }
    }
    if (!cut_middle)
        return done;
    /* Cut the middle of what is still too wide, by bytes of ASCII only (a
     * UTF-8 header is left whole rather than cut inside a character). */
    char **cut = mt_xcalloc(n, sizeof *cut);
    size_t *w = mt_xcalloc(n, sizeof *w);
    for (size_t c = 0; c < n; c++)
        w[c] = want[c] < 5 ? 5 : want[c];
    for (int round = 0; round < 200; round++) {
        for (size_t c = 0; c < n; c++) {
            free(cut[c]);
            cut[c] = NULL;
            size_t len = strlen(head[c]);
            int ascii = mt_cli_text_width(head[c]) == len;
            if (!is_value[c] || !ascii || len <= w[c])
                continue;
            size_t back = (w[c] - 1) / 2, front = w[c] - 1 - back;
            cut[c] = mt_xmalloc(len + 4);
            snprintf(cut[c], len + 4, "%.*s\xe2\x80\xa6%s", (int)front, head[c],
                     head[c] + len - back);
        }
        int clashes = 0;
        for (size_t c = 0; c < n; c++)
            for (size_t o = 0; o < n; o++)
                if (o != c && cut[c] && strcmp(cut[c], cut[o] ? cut[o] : head[o]) == 0) {
                    w[c]++;
                    clashes = 1;
                }
        if (!clashes)
            break;
    }
    for (size_t c = 0; c < n; c++)
        if (cut[c]) {
            free(head[c]);
            head[c] = cut[c];
            done++;
        }
    free(cut);
    free(w);
    return done;
}

static void print_table(const struct mt_select *s, const struct mt_select_rows *rows)
{
    struct dcol *dc = mt_xcalloc(s->ncols + 16, sizeof *dc);
    size_t ncol = table_columns(s, rows, dc), nrow = rows->n;
    char **cell = mt_xcalloc((nrow + 1) * ncol + 1, sizeof *cell);
    size_t *w = mt_xcalloc(ncol + 1, sizeof *w), *minw = mt_xcalloc(ncol + 1, sizeof *minw);
    size_t *cellw = mt_xcalloc(ncol + 1, sizeof *cellw);
    int *right = mt_xcalloc(ncol + 1, sizeof *right), *flex = mt_xcalloc(ncol + 1, sizeof *flex);
    int *is_value = mt_xcalloc(ncol + 1, sizeof *is_value);
    int marked = 0;
    for (size_t c = 0; c < ncol; c++) {
        cell[c] = dc[c].head;
        dc[c].head = NULL;
        is_value[c] = dc[c].builtin == DCOL_VALUE;
        flex[c] = is_value[c] || builtin_flex(dc[c].builtin);
        right[c] = !is_value[c] && builtin_right(dc[c].builtin);
    }
    for (size_t i = 0; i < nrow; i++) {
        const struct mt_select_row *r = &rows->v[i];
        char **row = cell + (i + 1) * ncol;
        marked |= r->dropped > 0 || r->cut > 0;
        for (size_t c = 0; c < ncol; c++) {
            char buf[256];
            if (!is_value[c]) {
                builtin_cell(r, dc[c].builtin, buf, sizeof buf);
                row[c] = mt_xstrdup(buf);
                continue;
            }
            const struct mt_value *v = &r->vals[dc[c].val];
            if (v->type == MT_V_TEXT)
                row[c] = mt_xstrdup(v->text);
            else {
                mt_cli_format_value(v, buf, sizeof buf, 0);
                row[c] = mt_xstrdup(buf);
                right[c] = 1;
                if (strlen(buf) > minw[c])
                    minw[c] = strlen(buf); /* numbers are never cut */
            }
        }
    }
    for (size_t c = 0; c < ncol; c++) {
        for (size_t i = 1; i <= nrow; i++) {
            size_t n = mt_cli_text_width(cell[i * ncol + c]);
            if (n > cellw[c])
                cellw[c] = n;
        }
    }
    /* Fit the terminal: shorten headers of values first (unambiguously),
     * then take a character at a time from the widest column that can give
     * one.  Ids, states, times and numbers are never cut. */
    int width = mt_cli_term_width();
    /* Passes: the widths as they are; "summary."/"config." dropped; middles
     * cut to 16, 10, then 6 characters (never narrower than the values). */
    static const size_t TARGET[] = { (size_t)-1, (size_t)-1, 16, 10, 6 };
    char **orig = mt_xcalloc(ncol + 1, sizeof *orig);
    for (size_t c = 0; c < ncol; c++)
        orig[c] = mt_xstrdup(cell[c]);
    for (size_t pass = 0; pass < sizeof TARGET / sizeof *TARGET; pass++) {
        if (pass) {
            for (size_t c = 0; c < ncol; c++) { /* each pass from the full names */
                free(cell[c]);
                cell[c] = mt_xstrdup(orig[c]);
            }
            size_t *want = mt_xcalloc(ncol + 1, sizeof *want);
            for (size_t c = 0; c < ncol; c++)
                want[c] = cellw[c] > TARGET[pass] ? cellw[c] : TARGET[pass];
            shorten_headers(cell, want, is_value, ncol, pass > 1);
            free(want);
        }
        size_t total = 2 * (ncol - 1);
        for (size_t c = 0; c < ncol; c++) {
            size_t hw = mt_cli_text_width(cell[c]);
            w[c] = cellw[c] > hw ? cellw[c] : hw;
            total += w[c];
        }
        if (width <= 0 || total <= (size_t)width)
            break;
    }
    for (size_t c = 0; c < ncol; c++)
        free(orig[c]);
    free(orig);
    size_t total = 2 * (ncol - 1);
    for (size_t c = 0; c < ncol; c++) {
        total += w[c];
        if (!flex[c])
            minw[c] = w[c];
        else if (minw[c] < 6)
            minw[c] = w[c] < 6 ? w[c] : 6;
        /* a value's header was shortened as far as it reads unambiguously */
        if (is_value[c] && minw[c] < mt_cli_text_width(cell[c]))
            minw[c] = mt_cli_text_width(cell[c]);
    }
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
    free(dc);
    free(w);
    free(minw);
    free(cellw);
    free(right);
    free(flex);
    free(is_value);
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

/* --columns =a,b,c: only those, times as ISO 8601 UTC. */
static void print_csv_chosen(const struct mt_select *s, const struct mt_select_rows *rows)
{
    for (size_t k = 0; k < s->ncols; k++) {
        if (k)
            putchar(',');
        csv_field(s->cols[k].label);
    }
    putchar('\n');
    for (size_t i = 0; i < rows->n; i++) {
        const struct mt_select_row *r = &rows->v[i];
        for (size_t k = 0; k < s->ncols; k++) {
            const struct mt_col *c = &s->cols[k];
            char buf[256];
            if (k)
                putchar(',');
            if (c->src == MT_COL_BUILTIN && (c->builtin == MT_B_CREATED ||
                                             (c->builtin == MT_B_END_TIME && r->end_time > 0))) {
                format_time(c->builtin == MT_B_CREATED ? r->start_time : r->end_time, buf,
                            sizeof buf, 1);
                fputs(buf, stdout);
            } else if (c->src == MT_COL_BUILTIN && c->builtin == MT_B_END_TIME) {
                ; /* still running */
            } else if (r->vals[k].type == MT_V_TEXT)
                csv_field(r->vals[k].text);
            else if (r->vals[k].type == MT_V_NUM) {
                mt_cli_format_value(&r->vals[k], buf, sizeof buf, 1);
                fputs(buf, stdout);
            }
        }
        putchar('\n');
    }
}

static void print_csv(const struct mt_select *s, const struct mt_select_rows *rows)
{
    if (s->replace_cols) {
        print_csv_chosen(s, rows);
        return;
    }
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
        else if (strcmp(argv[i], "--group-by") == 0 || strncmp(argv[i], "--group-by=", 11) == 0) {
            const char *v = argv[i][10] == '=' ? argv[i] + 11 : i + 1 < argc ? argv[++i] : NULL;
            char err[1024];
            if (!v || sel.hidden_col) {
                fprintf(stderr, "metrictap ls: give one --group-by COLUMN\n");
                goto out;
            }
            /* fetched as one more column, shown as the group */
            sel.cols = mt_xrealloc(sel.cols, (sel.ncols + 1) * sizeof *sel.cols);
            if (mt_col_parse(v, &sel.cols[sel.ncols], err, sizeof err) != 0) {
                fprintf(stderr, "metrictap ls: --group-by: %s\n", err);
                goto out;
            }
            sel.hidden_col = ++sel.ncols;
        } else {
            fprintf(stderr, "metrictap ls: unknown option \"%s\"\n%s", argv[i], mt_cli_usage("ls"));
            goto out;
        }
    }
    rc = 1;
    if (mt_select_run(&sel, cfg.dir, &rows) == 0) {
        /* A run still "running" whose agent is gone shows what it is. */
        for (size_t i = 0; i < rows.n; i++) {
            struct mt_select_row *r = &rows.v[i];
            const char *shown = r->dir ? mt_recover_state_to_show(r->dir, r->state) : r->state;
            if (shown && r->dir && strcmp(shown, "running") == 0 && mt_stack_stalled(r->dir))
                shown = "stalled"; /* the stall watchdog's mark (mt_stack_agent.h) */
            if (shown && r->state && strcmp(shown, r->state) != 0) {
                free(r->state);
                r->state = mt_xstrdup(shown);
            }
        }
        if (sel.hidden_col) {
            if (mt_ls_print_groups(&sel, &rows, json ? 1 : csv ? 2 : 0) != 0)
                fprintf(stderr, "metrictap ls: the grouped table is too large\n");
        } else if (json)
            print_json(&sel, &rows);
        else if (csv)
            print_csv(&sel, &rows);
        else
            print_table(&sel, &rows);
        /* A name that matched nothing was said on stderr; the rows that
         * match are printed, and the exit says the request was not right. */
        rc = fflush(stdout) == 0 && sel.unknown_names == 0 ? 0 : 1;
    }
out:
    mt_select_rows_free(&rows, sel.ncols);
    mt_config_free(&cfg);
    mt_select_free(&sel);
    return rc;
}
