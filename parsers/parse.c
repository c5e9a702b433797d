/* mt_parse: line assembly per process and stream, then extraction and the
 * step logic.  See mt_parse.h. */
#include "mt_parse.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_json.h"
#include "../config/mt_config.h"
#include "mt_fields.h"
#include "mt_history.h"
#include "mt_rules.h"

#define MAX_STREAMS 4096
#define DEFAULT_LINE_MAX (64u << 10)
#define MAX_TAGS 100
#define MAX_CONFIG 1000

/* The partial line of one stream of one process, or of one file. */
struct pending_line {
    uint32_t pid;
    int stream;
    char *path;          /* files and logs */
    int cr;              /* a '\r' was the last byte seen */
    uint64_t truncated;  /* bytes cut from the current line */
    struct mt_buf text;  /* the line as it will be shown */
    struct mt_rules_source src; /* the rules that see it */
    int told_metric;     /* sink.metrics_from was called for it */
};

struct mt_parse {
    struct mt_parse_sink sink;
    struct mt_history *history;
    struct mt_rules *rules;
    struct pending_line *lines;
    size_t nlines;
    size_t line_max;
    struct mt_fields fields;
    struct mt_buf clean; /* a line with ANSI escapes removed */
    uint64_t nlines_seen, lines_truncated, streams_dropped;
    cJSON *argv_config;  /* the trainer's command line */
    cJSON *config;       /* values captured from the output (they win) */
    char *program;       /* opts.program */
    cJSON *tags;
    int log_time;
    int have_start;
    double last_log_ts;
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
    mt_parse *p = mt_xcalloc(1, sizeof *p);
    p->sink = *sink;
    p->line_max = opts->cfg && opts->cfg->line_max ? opts->cfg->line_max : DEFAULT_LINE_MAX;
    p->lines = mt_xcalloc(MAX_STREAMS, sizeof *p->lines);
    p->history = mt_history_create(opts->start_unix, opts->first_step, opts->runtime_offset,
                                   emit_row, p);
    mt_buf_init(&p->clean, p->line_max + 1);
    p->log_time = opts->log_time;
    p->have_start = 0; /* with log_time the first captured time is the start */
    mt_parse_set_argv(p, opts->argv ? opts->argc : 0, opts->argv);
    p->config = cJSON_CreateObject();
    p->program = opts->program ? mt_xstrdup(opts->program) : NULL;
    p->tags = cJSON_CreateArray();
    p->rules = mt_rules_create(opts->cfg, opts->program, err, errsz);
    if (!p->rules || !p->config || !p->tags) {
        mt_parse_destroy(p);
        return NULL;
    }
    size_t ndef = 0;
    const struct mt_metric_spec *def = mt_rules_metric_defaults(p->rules, &ndef);
    mt_history_set_metrics(p->history, opts->cfg ? opts->cfg->metrics : NULL,
                           opts->cfg ? opts->cfg->nmetrics : 0, def, ndef);
    return p;
}

void mt_parse_destroy(mt_parse *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nlines; i++) {
        mt_buf_free(&p->lines[i].text);
        mt_rules_source_free(&p->lines[i].src);
        free(p->lines[i].path);
    }
    free(p->lines);
    mt_buf_free(&p->clean);
    mt_history_destroy(p->history);
    mt_rules_destroy(p->rules);
    cJSON_Delete(p->config);
    cJSON_Delete(p->argv_config);
    cJSON_Delete(p->tags);
    free(p->program);
    free(p);
}

void mt_parse_set_argv(mt_parse *p, int argc, char *const *argv)
{
    char *json = argv ? mt_argv_config_json(argc, argv) : NULL;
    cJSON *c = json ? mt_json_parse_literal(json) : NULL;
    free(json);
    cJSON_Delete(p->argv_config);
    p->argv_config = c ? c : cJSON_CreateObject();
}

/* The source of a process's stream, or of a file (whoever writes it; `pid`
 * then only picks the preset). */
static struct pending_line *line_for(mt_parse *p, uint32_t pid, int stream, const char *path)
{
    for (size_t i = 0; i < p->nlines; i++)
        if (p->lines[i].stream == stream && !path == !p->lines[i].path &&
            (path ? strcmp(p->lines[i].path, path) == 0 : p->lines[i].pid == pid))
            return &p->lines[i];
    if (p->nlines == MAX_STREAMS) {
        p->streams_dropped++;
        return NULL;
    }
    struct pending_line *l = &p->lines[p->nlines++];
    memset(l, 0, sizeof *l);
    l->pid = pid;
    l->stream = stream;
    l->path = path ? mt_xstrdup(path) : NULL;
    mt_buf_init(&l->text, p->line_max);
    const char *program = p->sink.program_of && pid ? p->sink.program_of(p->sink.ctx, pid) : NULL;
    int argc = 0;
    char *const *argv = p->sink.argv_of && pid ? p->sink.argv_of(p->sink.ctx, pid, &argc) : NULL;
    mt_rules_select(p->rules, stream, path, program ? program : p->program, argc, argv, &l->src);
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

static void capture_config(mt_parse *p, const struct mt_field *f)
{
    char key[MT_MAX_KEY + 1];
    memcpy(key, f->key, f->key_len);
    key[f->key_len] = '\0';
    cJSON *v;
    if (f->kind == MT_VAL_BOOL)
        v = cJSON_CreateBool(f->value != 0);
    else if (f->kind == MT_VAL_NUMBER && f->value == f->value && f->value - f->value == 0)
        v = mt_json_create_number(f->value, f->text, f->text ? f->text_len : 0);
    else {
        char *t = mt_xstrndup(f->text, f->text_len);
        v = cJSON_CreateString(t);
        free(t);
    }
    if (!v)
        return;
    cJSON *old = cJSON_GetObjectItemCaseSensitive(p->config, key);
    if (old && cJSON_Compare(old, v, 1)) {
        cJSON_Delete(v);
        return;
    }
    if (old)
        cJSON_ReplaceItemInObjectCaseSensitive(p->config, key, v);
    else if (cJSON_GetArraySize(p->config) < MAX_CONFIG)
        cJSON_AddItemToObject(p->config, key, v);
    else {
        cJSON_Delete(v);
        return;
    }
    if (p->sink.config) {
        char *json = mt_json_print_literal(v, 0);
        if (json)
            p->sink.config(p->sink.ctx, key, json);
        free(json);
    }
}

static void capture_tag(mt_parse *p, const struct mt_field *f)
{
    char *t = mt_xstrndup(f->text, f->text_len > 256 ? 256 : f->text_len);
    int seen = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, p->tags)
        if (cJSON_IsString(it) && strcmp(it->valuestring, t) == 0)
            seen = 1;
    if (!seen && *t && cJSON_GetArraySize(p->tags) < MAX_TAGS) {
        cJSON_AddItemToArray(p->tags, cJSON_CreateString(t));
        if (p->sink.tag)
            p->sink.tag(p->sink.ctx, t);
    }
    free(t);
}

/* Offers one line (or one '\r' update of it) to the rules. */
static void parse_line(mt_parse *p, struct pending_line *l, const char *s, size_t n, double ts)
{
    p->nlines_seen++;
    if (memchr(s, 0x1b, n)) {
        strip_ansi(&p->clean, s, n);
        s = p->clean.data ? p->clean.data : "";
        n = p->clean.len;
    }
    struct mt_fields *fs = &p->fields;
    mt_fields_reset(fs);
    mt_rules_extract(p->rules, &l->src, s, n, fs);
    if (!fs->n)
        return;
    int other = 0;
    for (uint32_t i = 0; i < fs->n; i++) {
        const struct mt_field *f = &fs->f[i];
        if (f->role == MT_ROLE_CONFIG)
            capture_config(p, f), other = 1;
        else if (f->role == MT_ROLE_TAG)
            capture_tag(p, f), other = 1;
    }
    if (p->log_time) {
        if (fs->ts > 0)
            p->last_log_ts = fs->ts;
        if (p->last_log_ts > 0) {
            ts = p->last_log_ts;
            if (!p->have_start) {
                mt_history_set_start(p->history, ts);
                p->have_start = 1;
            }
        }
    }
    (void)other;
    mt_history_add(p->history, fs, ts);
    if (!l->told_metric && p->sink.metrics_from)
        for (uint32_t i = 0; i < fs->n; i++)
            if (fs->f[i].role == MT_ROLE_METRIC) {
                l->told_metric = 1;
                p->sink.metrics_from(p->sink.ctx, l->pid, l->stream, l->path);
                break;
            }
}

static void end_line(mt_parse *p, struct pending_line *l, double ts, int newline)
{
    const char *s = l->text.data ? l->text.data : "";
    if (p->sink.console && l->stream != MT_PARSE_FILE)
        p->sink.console(p->sink.ctx, l->pid, l->stream, s, l->text.len, newline);
    parse_line(p, l, s, l->text.len, ts);
    if (l->truncated) {
        p->lines_truncated++;
        l->truncated = 0;
    }
    mt_buf_reset(&l->text);
}

static void append(mt_parse *p, struct pending_line *l, const char *s, size_t n)
{
    (void)p;
    if (n && mt_buf_add(&l->text, s, n) != 0)
        l->truncated += l->text.refused, l->text.refused = 0;
}

/* A lone '\r': the line so far was one progress update.  Parse it and start
 * over, as a terminal would overwrite it. */
static void end_update(mt_parse *p, struct pending_line *l, double ts)
{
    parse_line(p, l, l->text.data ? l->text.data : "", l->text.len, ts);
    if (l->truncated) {
        p->lines_truncated++;
        l->truncated = 0;
    }
    mt_buf_reset(&l->text);
}

static void feed(mt_parse *p, struct pending_line *l, double ts, const char *data, size_t len)
{
    /* '\r' is rare: one memchr over the chunk finds the next one, instead of
     * one per line. */
    const char *end = data + len;
    const char *next_cr = memchr(data, '\r', len);
    if (!next_cr)
        next_cr = end;
    size_t i = 0;
    while (i < len) {
        if (l->cr) {
            l->cr = 0;
            if (data[i] == '\n') { /* CRLF */
                end_line(p, l, ts, 1);
                i++;
                continue;
            }
            end_update(p, l, ts);
        }
        if (next_cr < data + i) {
            next_cr = memchr(data + i, '\r', len - i);
            if (!next_cr)
                next_cr = end;
        }
        /* the next '\n' or '\r' */
        const char *nl = memchr(data + i, '\n', (size_t)(next_cr - (data + i)));
        size_t j = (size_t)((nl ? nl : next_cr) - data);
        if (j == len) {
            append(p, l, data + i, len - i);
            return;
        }
        if (data[j] == '\n' && l->text.len == 0) {
            /* The whole line is in this chunk: parse it where it lies. */
            size_t n = j - i;
            if (n > p->line_max) {
                n = p->line_max;
                p->lines_truncated++;
            }
            if (p->sink.console && l->stream != MT_PARSE_FILE)
                p->sink.console(p->sink.ctx, l->pid, l->stream, data + i, n, 1);
            parse_line(p, l, data + i, n, ts);
            i = j + 1;
            continue;
        }
        append(p, l, data + i, j - i);
        if (data[j] == '\r')
            l->cr = 1;
        else
            end_line(p, l, ts, 1);
        i = j + 1;
    }
}

void mt_parse_bytes(mt_parse *p, uint32_t pid, int stream, double ts, const char *data,
                    size_t len)
{
    struct pending_line *l = line_for(p, pid, stream, NULL);
    if (l)
        feed(p, l, ts, data, len);
}

void mt_parse_file_bytes(mt_parse *p, const char *path, double ts, const char *data, size_t len)
{
    struct pending_line *l = line_for(p, 0, MT_PARSE_FILE, path);
    if (l)
        feed(p, l, ts, data, len);
}

void mt_parse_file_writer(mt_parse *p, const char *path, uint32_t pid)
{
    line_for(p, pid, MT_PARSE_FILE, path);
}

void mt_parse_log_bytes(mt_parse *p, const char *path, double ts, const char *data, size_t len)
{
    struct pending_line *l = line_for(p, 0, MT_PARSE_STDOUT, path ? path : "-");
    if (l)
        feed(p, l, ts, data, len);
}

static void close_line(mt_parse *p, size_t i, double ts)
{
    struct pending_line *l = &p->lines[i];
    if (l->text.len || l->cr)
        end_line(p, l, ts, 0);
    l->cr = 0;
    mt_buf_free(&l->text);
    mt_rules_source_free(&l->src);
    free(l->path);
    p->lines[i] = p->lines[--p->nlines];
}

void mt_parse_close_file(mt_parse *p, const char *path, double ts)
{
    for (size_t i = 0; i < p->nlines; i++)
        if (p->lines[i].path && strcmp(p->lines[i].path, path) == 0) {
            close_line(p, i, ts);
            return;
        }
}

void mt_parse_close_pid(mt_parse *p, uint32_t pid, double ts)
{
    for (size_t i = 0; i < p->nlines; i++) {
        if (p->lines[i].pid != pid || p->lines[i].path)
            continue;
        close_line(p, i, ts);
        i--;
    }
}

void mt_parse_flush(mt_parse *p, double ts)
{
    /* A row carries the time of its last value, not of the flush (an idle
     * flush comes a second later; import reads the log long after). */
    (void)ts;
    ts = 0;
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

void mt_parse_each_partial(const mt_parse *p, mt_parse_partial_fn fn, void *ctx)
{
    for (size_t i = 0; i < p->nlines; i++) {
        const struct pending_line *l = &p->lines[i];
        if (!l->path && (l->text.len || l->cr))
            fn(ctx, l->pid, l->stream, l->text.data ? l->text.data : "", l->text.len, l->cr);
    }
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
    out->limit_hits = mt_rules_limit_hits(p->rules);
    out->streams_dropped = p->streams_dropped;
}

char *mt_parse_config_json(mt_parse *p)
{
    cJSON *all = cJSON_Duplicate(p->argv_config, 1), *it;
    cJSON_ArrayForEach(it, p->config) {
        cJSON *v = cJSON_Duplicate(it, 1);
        if (cJSON_GetObjectItemCaseSensitive(all, it->string))
            cJSON_ReplaceItemInObjectCaseSensitive(all, it->string, v);
        else
            cJSON_AddItemToObject(all, it->string, v);
    }
    char *s = mt_json_print_literal(all, 0);
    cJSON_Delete(all);
    return s ? s : mt_xstrdup("{}");
}

uint64_t mt_parse_metrics_gen(const mt_parse *p)
{
    return mt_history_metrics_gen(p->history);
}

char *mt_parse_metrics_json(mt_parse *p)
{
    return mt_history_metrics_json(p->history);
}

char *mt_parse_axes_json(mt_parse *p)
{
    return mt_history_axes_json(p->history);
}

char *mt_parse_tags_json(mt_parse *p)
{
    char *s = cJSON_PrintUnformatted(p->tags);
    return s ? s : mt_xstrdup("[]");
}

const char *mt_parse_rules(const mt_parse *p)
{
    return mt_rules_describe(p->rules);
}
