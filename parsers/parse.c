/* mt_parse: line assembly per process and stream, then extraction and the
 * step logic.  See mt_parse.h. */
#include "mt_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../config/mt_config.h"
#include "mt_fields.h"
#include "mt_history.h"

#define MAX_STREAMS 4096
#define DEFAULT_LINE_MAX (64u << 10)

/* The partial line of one stream of one process. */
struct pending_line {
    uint32_t pid;
    int stream;
    int cr;              /* a '\r' was the last byte seen */
    uint64_t truncated;  /* bytes cut from the current line */
    struct mt_buf text;  /* the line as it will be shown */
};

struct mt_parse {
    struct mt_parse_sink sink;
    struct mt_history *history;
    struct pending_line *lines;
    size_t nlines;
    size_t line_max;
    struct mt_fields fields;
    struct mt_buf clean; /* a line with ANSI escapes removed */
    uint64_t nlines_seen, lines_truncated, streams_dropped;
};

static void emit_row(void *ctx, const char *json, size_t len)
{
    mt_parse *p = ctx;
    if (p->sink.row)
        p->sink.row(p->sink.ctx, json, len);
}

mt_parse *mt_parse_create(const struct mt_parse_opts *opts, const struct mt_parse_sink *sink,
                          char *err, size_t errsz)
{
    (void)err, (void)errsz;
    mt_parse *p = mt_xcalloc(1, sizeof *p);
    p->sink = *sink;
    p->line_max = opts->cfg && opts->cfg->line_max ? opts->cfg->line_max : DEFAULT_LINE_MAX;
    p->lines = mt_xcalloc(MAX_STREAMS, sizeof *p->lines);
    p->history = mt_history_create(opts->start_unix, opts->first_step, opts->runtime_offset,
                                   emit_row, p);
    mt_buf_init(&p->clean, p->line_max + 1);
    return p;
}

void mt_parse_destroy(mt_parse *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nlines; i++)
        mt_buf_free(&p->lines[i].text);
    free(p->lines);
    mt_buf_free(&p->clean);
    mt_history_destroy(p->history);
    free(p);
}

static struct pending_line *line_for(mt_parse *p, uint32_t pid, int stream)
{
    for (size_t i = 0; i < p->nlines; i++)
        if (p->lines[i].pid == pid && p->lines[i].stream == stream)
            return &p->lines[i];
    if (p->nlines == MAX_STREAMS) {
        p->streams_dropped++;
        return NULL;
    }
    struct pending_line *l = &p->lines[p->nlines++];
    memset(l, 0, sizeof *l);
    l->pid = pid;
    l->stream = stream;
    mt_buf_init(&l->text, p->line_max);
    return l;
}

/* Removes ANSI escape sequences (CSI and OSC) before matching. */
static void strip_ansi(struct mt_buf *out, const char *s, size_t n)
{
    mt_buf_reset(out);
    size_t i = 0, run = 0;
    while (i < n) {
        if (s[i] != 0x1b) {
            i++, run++;
            continue;
        }
        if (run)
            mt_buf_add(out, s + i - run, run), run = 0;
        i++;
        if (i < n && s[i] == '[') { /* CSI: parameters then a final byte */
            i++;
            while (i < n && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e))
                i++;
            i++;
        } else if (i < n && s[i] == ']') { /* OSC: until BEL or ESC \ */
            while (i < n && s[i] != 0x07 && !(s[i] == 0x1b && i + 1 < n && s[i + 1] == '\\'))
                i++;
            i += (i < n && s[i] == 0x1b) ? 2 : 1;
        } else {
            i++;
        }
    }
    if (run)
        mt_buf_add(out, s + n - run, run);
}

/* Offers one line (or one '\r' update of it) to the extractors. */
static void parse_line(mt_parse *p, const char *s, size_t n, double ts)
{
    p->nlines_seen++;
    if (memchr(s, 0x1b, n)) {
        strip_ansi(&p->clean, s, n);
        s = p->clean.data ? p->clean.data : "";
        n = p->clean.len;
    }
    p->fields.n = 0;
    mt_keyvalue_extract(s, n, &p->fields);
    if (p->fields.n)
        mt_history_add(p->history, &p->fields, ts);
}

static void end_line(mt_parse *p, struct pending_line *l, double ts, int newline)
{
    const char *s = l->text.data ? l->text.data : "";
    if (p->sink.console)
        p->sink.console(p->sink.ctx, l->pid, l->stream, s, l->text.len, newline);
    parse_line(p, s, l->text.len, ts);
    if (l->truncated) {
        p->lines_truncated++;
        l->truncated = 0;
    }
    mt_buf_reset(&l->text);
}

void mt_parse_bytes(mt_parse *p, uint32_t pid, int stream, double ts, const char *data,
                    size_t len)
{
    struct pending_line *l = line_for(p, pid, stream);
    if (!l)
        return;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c != '\n' && c != '\r' && !l->cr)
            continue;
        if (l->cr && c != '\n') {
            /* A lone '\r': the line so far was one progress update.  Parse it
             * and start over, as a terminal would overwrite it. */
            l->cr = 0;
            parse_line(p, l->text.data ? l->text.data : "", l->text.len, ts);
            mt_buf_reset(&l->text);
            start = i;
            if (c != '\r')
                continue;
        }
        if (i > start && mt_buf_add(&l->text, data + start, i - start) != 0)
            l->truncated += l->text.refused, l->text.refused = 0;
        start = i + 1;
        if (c == '\r') {
            l->cr = 1;
        } else {
            l->cr = 0;
            end_line(p, l, ts, 1);
        }
    }
    if (start < len && mt_buf_add(&l->text, data + start, len - start) != 0)
        l->truncated += l->text.refused, l->text.refused = 0;
}

void mt_parse_close_pid(mt_parse *p, uint32_t pid, double ts)
{
    for (size_t i = 0; i < p->nlines; i++) {
        struct pending_line *l = &p->lines[i];
        if (l->pid != pid)
            continue;
        if (l->text.len || l->cr)
            end_line(p, l, ts, 0);
        l->cr = 0;
        mt_buf_free(&l->text);
        p->lines[i] = p->lines[--p->nlines];
        i--;
    }
}

void mt_parse_flush(mt_parse *p, double ts)
{
    mt_history_flush(p->history, ts);
}

char *mt_parse_summary_json(mt_parse *p)
{
    return mt_history_summary_json(p->history);
}

int mt_parse_restore_summary(mt_parse *p, const char *json)
{
    return mt_history_restore_summary(p->history, json);
}

void mt_parse_stats(const mt_parse *p, struct mt_parse_stats *out)
{
    memset(out, 0, sizeof *out);
    out->lines = p->nlines_seen;
    out->rows = mt_history_rows(p->history);
    out->values = mt_history_values(p->history);
    out->lines_truncated = p->lines_truncated;
    out->keys_dropped = mt_history_keys_dropped(p->history);
    out->next_step = mt_history_next_step(p->history);
}
