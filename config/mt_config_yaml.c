/* mt_config: YAML files (libyaml), read through the same table as the
 * environment, plus the sections only a file can hold: rules, files and
 * metrics.  Every message names file:line:column, the key, the bad value and
 * what is allowed. */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "../parsers/mt_rules.h"
#include "mt_config.h"
#include "mt_config_int.h"

#define MAX_DEPTH 8
#define MAX_FILE (4u << 20) /* a config file larger than this is refused */

struct yctx {
    struct mt_config *cfg;
    yaml_document_t *doc;
    const char *name;
    char *err;
    size_t errsz;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

static int fail(struct yctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct yctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    int off = snprintf(c->err, c->errsz, "%s:%zu:%zu: ", c->name,
                       n ? n->start_mark.line + 1 : 0, n ? n->start_mark.column + 1 : 0);
    if (off < 0 || (size_t)off >= c->errsz)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + off, c->errsz - (size_t)off, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n ? n->type : YAML_NO_NODE) {
    case YAML_SCALAR_NODE: return "a value";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static yaml_node_t *node(struct yctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

/* ---- generic table keys ---- */

/* The valid names at the level of `prefix` ("" or "system."), for messages. */
static void valid_keys(const char *prefix, char *out, size_t size)
{
    size_t n = 0, plen = strlen(prefix);
    out[0] = '\0';
    const char *extra[] = { "rules", "files", "metrics", NULL };
    for (const struct mt_config_key *k = mt_config_keys;; k++) {
        const char *name = k->key;
        if (!name)
            break;
        if (strncmp(name, prefix, plen) != 0)
            continue;
        const char *rest = name + plen;
        size_t len = strcspn(rest, ".");
        /* skip repeats of a section name (system.interval, system.window) */
        int seen = 0;
        for (const struct mt_config_key *j = mt_config_keys; j < k; j++)
            if (strncmp(j->key, prefix, plen) == 0 && strncmp(j->key + plen, rest, len) == 0 &&
                strcspn(j->key + plen, ".") == len)
                seen = 1;
        if (seen)
            continue;
        int w = snprintf(out + n, size - n, "%s%.*s", n ? ", " : "", (int)len, rest);
        if (w < 0 || (size_t)w >= size - n)
            return;
        n += (size_t)w;
    }
    for (int i = 0; !plen && extra[i]; i++) {
        int w = snprintf(out + n, size - n, "%s%s", n ? ", " : "", extra[i]);
        if (w < 0 || (size_t)w >= size - n)
            return;
        n += (size_t)w;
    }
}

static const struct mt_config_key *find_key(const char *key)
{
    for (const struct mt_config_key *k = mt_config_keys; k->key; k++)
        if (strcmp(k->key, key) == 0)
            return k;
    return NULL;
}

static int is_section(const char *prefix)
{
    size_t n = strlen(prefix);
    for (const struct mt_config_key *k = mt_config_keys; k->key; k++)
        if (strncmp(k->key, prefix, n) == 0 && k->key[n] == '.')
            return 1;
    return 0;
}

static int set_key(struct yctx *c, const struct mt_config_key *k, yaml_node_t *v)
{
    char source[600];
    snprintf(source, sizeof source, "%s:%zu:%zu", c->name, v->start_mark.line + 1,
             v->start_mark.column + 1);
    if (v->type == YAML_SCALAR_NODE)
        return mt_config__set(c->cfg, k, scalar(v), source, c->err, c->errsz);
    if (v->type == YAML_SEQUENCE_NODE && k->type == MT_CFG_LIST) {
        size_t cap = 256, len = 0;
        char *joined = xcalloc(1, cap);
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top; it++) {
            const char *s = scalar(node(c, *it));
            if (!s) {
                free(joined);
                return fail(c, node(c, *it), "%s: bad value: a list of plain values is "
                            "allowed, not %s inside it", k->key, kind_name(node(c, *it)));
            }
            size_t n = strlen(s);
            if (len + n + 2 > cap) {
                while (len + n + 2 > cap)
                    cap *= 2;
                joined = realloc(joined, cap);
                if (!joined)
                    abort();
            }
            if (len)
                joined[len++] = ',';
            memcpy(joined + len, s, n);
            len += n;
            joined[len] = '\0';
        }
        int rc = mt_config__set(c->cfg, k, joined, source, c->err, c->errsz);
        free(joined);
        return rc;
    }
    return fail(c, v, "%s: bad value: %s is not allowed here; allowed: %s", k->key, kind_name(v),
                k->type == MT_CFG_LIST ? "a value or a list of values" : "a single value");
}

/* ---- string lists and flags inside sections ---- */

static int string_list(struct yctx *c, const char *what, yaml_node_t *v, char ***out)
{
    size_t n = v->type == YAML_SEQUENCE_NODE
                   ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start)
                   : 1;
    if (v->type == YAML_MAPPING_NODE)
        return fail(c, v, "%s: bad value: a mapping; allowed: a name or a list of names", what);
    char **list = xcalloc(n + 1, sizeof *list);
    if (*out) {
        for (char **p = *out; *p; p++)
            free(*p);
        free(*out);
    }
    *out = list;
    if (v->type == YAML_SCALAR_NODE) {
        list[0] = xstrdup(scalar(v));
        return 0;
    }
    size_t i = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const char *s = scalar(node(c, *it));
        if (!s)
            return fail(c, node(c, *it), "%s: bad value: %s; allowed: names", what,
                        kind_name(node(c, *it)));
        list[i++] = xstrdup(s);
    }
    return 0;
}

static int flag(struct yctx *c, const char *what, yaml_node_t *v, int *out)
{
    const char *s = scalar(v);
    static const char *yes[] = { "true", "yes", "on", "1", NULL }, *no[] = { "false", "no",
                                                                             "off", "0", NULL };
    for (int i = 0; s && yes[i]; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (int i = 0; s && no[i]; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    return fail(c, v, "%s: bad value \"%s\"; allowed: true or false", what, s ? s : kind_name(v));
}

static void free_list(char **l)
{
    if (!l)
        return;
    for (char **p = l; *p; p++)
        free(*p);
    free(l);
}

/* ---- patterns ---- */

/* Display columns of s[0..off): UTF-8 continuation bytes take none. */
static size_t columns(const char *s, size_t off)
{
    size_t col = 0;
    for (size_t i = 0; i < off && s[i]; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            col++;
    return col;
}

int mt_config_check_pattern(const char *pattern, char *err, size_t errsz)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0,
                                   &code, &off, NULL);
    if (re) {
        pcre2_code_free(re);
        return 0;
    }
    char msg[256];
    pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
    size_t col = columns(pattern, off);
    char caret[512];
    if (col > sizeof caret - 2)
        col = sizeof caret - 2;
    memset(caret, ' ', col);
    caret[col] = '^';
    caret[col + 1] = '\0';
    snprintf(err, errsz, "%s at offset %zu\n    %s\n    %s", msg, (size_t)off, pattern, caret);
    return -1;
}

static int group_exists(const char *pattern, const char *group)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0,
                                   &code, &off, NULL);
    if (!re)
        return 0;
    int n = pcre2_substring_number_from_name(re, (PCRE2_SPTR)group);
    pcre2_code_free(re);
    return n > 0 || n == PCRE2_ERROR_NOUNIQUESUBSTRING;
}

/* ---- rules: and files: ---- */

static const char *const rule_keys = "name, preset, stream, pattern, axes, config, tags, text, "
                                     "repeat, continue";

static int check_stream(struct yctx *c, yaml_node_t *v, const char *where, const char *s)
{
    if (strcmp(s, "stdout") == 0 || strcmp(s, "stderr") == 0 || strcmp(s, "any") == 0 ||
        (strncmp(s, "file:", 5) == 0 && s[5]))
        return 0;
    return fail(c, v, "%s: stream: bad value \"%s\"; allowed: stdout, stderr, any, file:GLOB",
                where, s);
}

static int check_groups(struct yctx *c, yaml_node_t *at, const char *where,
                        const struct mt_rule_spec *r, char **list, const char *what)
{
    for (char **g = list; g && *g; g++)
        if (!group_exists(r->pattern, *g))
            return fail(c, at, "%s: %s: \"%s\" is not a named group of the pattern", where, what,
                        *g);
    return 0;
}

static int parse_rule(struct yctx *c, yaml_node_t *m, struct mt_rule_spec *r, const char *where,
                      int file_entry)
{
    r->line = (int)m->start_mark.line + 1;
    r->column = (int)m->start_mark.column + 1;
    if (m->type != YAML_MAPPING_NODE)
        return fail(c, m, "%s: bad value: %s; allowed: a mapping with %s", where, kind_name(m),
                    file_entry ? "glob and format" : rule_keys);
    yaml_node_t *pattern_node = NULL, *stream_node = NULL;
    char *glob = NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(c, p->key), *v = node(c, p->value);
        const char *k = scalar(kn);
        if (!k || !v)
            return fail(c, kn, "%s: keys must be plain names", where);
        const char *s = scalar(v);
        char **strp = NULL;
        if (file_entry && strcmp(k, "glob") == 0) {
            if (!s || !*s)
                return fail(c, v, "%s: glob: bad value; allowed: a file glob such as "
                            "'logs/*.csv'", where);
            free(glob);
            glob = xstrdup(s);
            continue;
        }
        if (file_entry && strcmp(k, "format") == 0) {
            if (!s || (strcmp(s, "csv") && strcmp(s, "json") && strcmp(s, "keyvalue") &&
                       strcmp(s, "lines"))) {
                free(glob);
                return fail(c, v, "%s: format: bad value \"%s\"; allowed: csv, json, keyvalue, "
                            "lines", where, s ? s : kind_name(v));
            }
            free(r->preset);
            r->preset = strcmp(s, "lines") ? xstrdup(s) : NULL;
            continue;
        }
        if (strcmp(k, "name") == 0)
            strp = &r->name;
        else if (strcmp(k, "preset") == 0 && !file_entry)
            strp = &r->preset;
        else if (strcmp(k, "stream") == 0 && !file_entry)
            strp = &r->stream, stream_node = v;
        else if (strcmp(k, "pattern") == 0)
            strp = &r->pattern, pattern_node = v;
        if (strp) {
            if (!s) {
                free(glob);
                return fail(c, v, "%s: %s: bad value: %s; allowed: a single value", where, k,
                            kind_name(v));
            }
            free(*strp);
            *strp = xstrdup(s);
            continue;
        }
        int rc;
        if (strcmp(k, "axes") == 0)
            rc = string_list(c, "axes", v, &r->axes);
        else if (strcmp(k, "config") == 0)
            rc = string_list(c, "config", v, &r->config);
        else if (strcmp(k, "tags") == 0)
            rc = string_list(c, "tags", v, &r->tags);
        else if (strcmp(k, "text") == 0)
            rc = string_list(c, "text", v, &r->text);
        else if (strcmp(k, "repeat") == 0)
            rc = flag(c, "repeat", v, &r->repeat);
        else if (strcmp(k, "continue") == 0)
            rc = flag(c, "continue", v, &r->keep_going);
        else {
            free(glob);
            return fail(c, kn, "%s: unknown key \"%s\"; valid keys: %s%s", where, k,
                        file_entry ? "glob, format, " : "", rule_keys);
        }
        if (rc != 0) {
            free(glob);
            return -1;
        }
    }
    if (file_entry) {
        if (!glob)
            return fail(c, m, "%s: glob is missing; a files: entry needs glob: 'PATTERN'", where);
        size_t n = strlen(glob) + 6;
        free(r->stream);
        r->stream = xcalloc(1, n);
        snprintf(r->stream, n, "file:%s", glob);
        free(glob);
        if (!r->preset && !r->pattern)
            r->preset = xstrdup("keyvalue");
    } else if (r->stream && check_stream(c, stream_node, where, r->stream) != 0) {
        return -1;
    }
    if (r->preset && r->pattern)
        return fail(c, m, "%s: give either preset or pattern, not both", where);
    if (!r->preset && !r->pattern)
        return fail(c, m, "%s: a rule needs a pattern or a preset (one of: %s)", where,
                    mt_preset_list());
    if (r->preset && !mt_preset_known(r->preset))
        return fail(c, m, "%s: preset: bad value \"%s\"; allowed: %s", where, r->preset,
                    mt_preset_list());
    if (r->pattern) {
        char perr[2048];
        if (mt_config_check_pattern(r->pattern, perr, sizeof perr) != 0)
            return fail(c, pattern_node, "%s: pattern: bad regular expression: %s", where, perr);
        if (check_groups(c, pattern_node, where, r, r->axes, "axes") ||
            check_groups(c, pattern_node, where, r, r->config, "config") ||
            check_groups(c, pattern_node, where, r, r->tags, "tags") ||
            check_groups(c, pattern_node, where, r, r->text, "text"))
            return -1;
        if (group_exists(r->pattern, "key") != group_exists(r->pattern, "value"))
            return fail(c, pattern_node, "%s: pattern: groups \"key\" and \"value\" go together "
                        "(the value of a metric named by the text of key)", where);
    }
    return 0;
}

static void free_rule(struct mt_rule_spec *r)
{
    free(r->name);
    free(r->preset);
    free(r->stream);
    free(r->pattern);
    free_list(r->axes);
    free_list(r->config);
    free_list(r->tags);
    free_list(r->text);
    memset(r, 0, sizeof *r);
}

static void free_rules(struct mt_config *cfg)
{
    for (size_t i = 0; i < cfg->nrules; i++)
        free_rule(&cfg->rules[i]);
    free(cfg->rules);
    cfg->rules = NULL;
    cfg->nrules = 0;
    free_list(cfg->watch_globs);
    cfg->watch_globs = NULL;
}

/* rules: and files: replace whatever a lower-precedence file gave; both are
 * kept in cfg->rules, files: entries as file:GLOB rules. */
static int parse_rule_list(struct yctx *c, yaml_node_t *v, int files)
{
    const char *section = files ? "files" : "rules";
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, "%s: bad value: %s; allowed: a list of %s", section, kind_name(v),
                    files ? "{glob, format} entries" : "rules");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    /* Keep the other section's entries. */
    size_t keep = 0;
    for (size_t i = 0; i < c->cfg->nrules; i++) {
        if (c->cfg->rules[i].from_files != files)
            c->cfg->rules[keep++] = c->cfg->rules[i];
        else
            free_rule(&c->cfg->rules[i]);
    }
    struct mt_rule_spec *rules = xcalloc(keep + n, sizeof *rules);
    if (keep)
        memcpy(rules, c->cfg->rules, keep * sizeof *rules);
    free(c->cfg->rules);
    c->cfg->rules = rules;
    c->cfg->nrules = keep;
    if (files) {
        free_list(c->cfg->watch_globs);
        c->cfg->watch_globs = xcalloc(n + 1, sizeof *c->cfg->watch_globs);
    }
    size_t nglobs = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node(c, v->data.sequence.items.start[i]);
        char where[64];
        snprintf(where, sizeof where, "%s[%zu]", section, i);
        struct mt_rule_spec *r = &c->cfg->rules[c->cfg->nrules++];
        if (!item || parse_rule(c, item, r, where, files) != 0)
            return -1;
        int patterns = 0;
        for (size_t k = 0; k < c->cfg->nrules; k++)
            patterns += c->cfg->rules[k].preset ? mt_preset_rule_count(c->cfg->rules[k].preset) : 1;
        if (patterns > MT_RULES_MAX - MT_RULES_RESERVED)
            return fail(c, item, "%s: too many rules: at most %d patterns in all (a preset counts "
                        "one per pattern)", where, MT_RULES_MAX - MT_RULES_RESERVED);
        if (files) {
            r->from_files = 1;
            c->cfg->watch_globs[nglobs++] = xstrdup(r->stream + 5);
        }
    }
    if (files && nglobs) {
        /* The tailer follows files.watch: add these globs to it. */
        const char *old = c->cfg->files_watch ? c->cfg->files_watch : "";
        size_t len = strlen(old) + 1;
        for (size_t i = 0; i < nglobs; i++)
            len += strlen(c->cfg->watch_globs[i]) + 1;
        char *joined = xcalloc(1, len);
        size_t n = (size_t)snprintf(joined, len, "%s", old);
        for (size_t i = 0; i < nglobs; i++)
            n += (size_t)snprintf(joined + n, len - n, "%s%s", n ? "," : "",
                                  c->cfg->watch_globs[i]);
        free(c->cfg->files_watch);
        c->cfg->files_watch = joined;
    }
    return 0;
}

/* ---- metrics: ---- */

static int summary_bit(const char *s, unsigned *bits)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        { "last", MT_SUM_LAST }, { "first", MT_SUM_FIRST }, { "min", MT_SUM_MIN },
        { "max", MT_SUM_MAX },   { "mean", MT_SUM_MEAN },   { "best", MT_SUM_BEST },
        { "none", MT_SUM_NONE }, { NULL, 0 },
    };
    for (int i = 0; names[i].name; i++)
        if (strcmp(s, names[i].name) == 0)
            return *bits |= names[i].bit, 0;
    return -1;
}

void mt_config_summary_names(unsigned bits, char *out, size_t size)
{
    static const char *names[] = { "last", "first", "min", "max", "mean", "best", "none" };
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < 7; i++)
        if (bits & (1u << i)) {
            int w = snprintf(out + n, size - n, "%s%s", n ? "," : "", names[i]);
            if (w < 0 || (size_t)w >= size - n)
                return;
            n += (size_t)w;
        }
}

static int parse_metric(struct yctx *c, const char *name, yaml_node_t *m,
                        struct mt_metric_spec *ms)
{
    ms->name = xstrdup(name);
    ms->line = (int)m->start_mark.line + 1;
    ms->column = (int)m->start_mark.column + 1;
    if (m->type != YAML_MAPPING_NODE)
        return fail(c, m, "metrics.%s: bad value: %s; allowed: a mapping with step_metric, "
                    "summary, goal", name, kind_name(m));
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(c, p->key), *v = node(c, p->value);
        const char *k = scalar(kn), *s = scalar(v);
        if (!k || !v)
            return fail(c, kn, "metrics.%s: keys must be plain names", name);
        if (strcmp(k, "step_metric") == 0) {
            if (!s || !*s)
                return fail(c, v, "metrics.%s.step_metric: bad value; allowed: the name of an "
                            "axis such as epoch", name);
            free(ms->step_metric);
            ms->step_metric = xstrdup(s);
        } else if (strcmp(k, "summary") == 0) {
            ms->summary = 0;
            size_t n = v->type == YAML_SEQUENCE_NODE
                           ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start)
                           : 1;
            for (size_t i = 0; i < n; i++) {
                yaml_node_t *it = v->type == YAML_SEQUENCE_NODE
                                      ? node(c, v->data.sequence.items.start[i])
                                      : v;
                const char *w = scalar(it);
                if (!w || summary_bit(w, &ms->summary) != 0)
                    return fail(c, it, "metrics.%s.summary: bad value \"%s\"; allowed: min, max, "
                                "mean, first, last, best, none (or a list of them)", name,
                                w ? w : kind_name(it));
            }
            if ((ms->summary & MT_SUM_NONE) && ms->summary != MT_SUM_NONE)
                return fail(c, v, "metrics.%s.summary: \"none\" cannot be combined with others",
                            name);
        } else if (strcmp(k, "goal") == 0) {
            if (s && (strcmp(s, "minimize") == 0 || strcmp(s, "min") == 0))
                ms->goal = MT_GOAL_MIN;
            else if (s && (strcmp(s, "maximize") == 0 || strcmp(s, "max") == 0))
                ms->goal = MT_GOAL_MAX;
            else
                return fail(c, v, "metrics.%s.goal: bad value \"%s\"; allowed: minimize, "
                            "maximize", name, s ? s : kind_name(v));
        } else {
            return fail(c, kn, "metrics.%s: unknown key \"%s\"; valid keys: step_metric, "
                        "summary, goal", name, k);
        }
    }
    if ((ms->summary & MT_SUM_BEST) && !ms->goal)
        return fail(c, m, "metrics.%s: summary \"best\" needs goal: minimize or maximize", name);
    return 0;
}

static void free_metrics(struct mt_config *cfg)
{
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        free(cfg->metrics[i].name);
        free(cfg->metrics[i].step_metric);
    }
    free(cfg->metrics);
    cfg->metrics = NULL;
    cfg->nmetrics = 0;
}

static int parse_metrics(struct yctx *c, yaml_node_t *v)
{
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, "metrics: bad value: %s; allowed: a mapping of metric names (globs "
                    "such as val_*) to settings", kind_name(v));
    free_metrics(c->cfg);
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    c->cfg->metrics = xcalloc(n, sizeof *c->cfg->metrics);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(c, p->key), *mv = node(c, p->value);
        const char *k = scalar(kn);
        if (!k || !*k || !mv)
            return fail(c, kn, "metrics: a metric name (or glob) is expected");
        if (parse_metric(c, k, mv, &c->cfg->metrics[c->cfg->nmetrics++]) != 0)
            return -1;
    }
    return 0;
}

void mt_config__free_sections(struct mt_config *cfg)
{
    free_rules(cfg);
    free_metrics(cfg);
    free(cfg->config_origin);
    cfg->config_origin = NULL;
}

/* ---- the document ---- */

static int walk_mapping(struct yctx *c, yaml_node_t *m, const char *prefix, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(c, m, "nested too deeply");
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(c, p->key), *v = node(c, p->value);
        const char *k = scalar(kn);
        if (!k || !v)
            return fail(c, kn, "keys must be plain names, not %s", kind_name(kn));
        char full[256];
        snprintf(full, sizeof full, "%s%s", prefix, k);
        int rc;
        if (!*prefix && strcmp(k, "rules") == 0)
            rc = parse_rule_list(c, v, 0);
        else if (!*prefix && strcmp(k, "files") == 0 && v->type == YAML_SEQUENCE_NODE)
            rc = parse_rule_list(c, v, 1); /* files: [{glob, format}]; files: {watch} below */
        else if (!*prefix && strcmp(k, "metrics") == 0)
            rc = parse_metrics(c, v);
        else if (find_key(full))
            rc = set_key(c, find_key(full), v);
        else if (is_section(full) && v->type == YAML_MAPPING_NODE) {
            char sub[260];
            snprintf(sub, sizeof sub, "%s.", full);
            rc = walk_mapping(c, v, sub, depth + 1);
        } else if (is_section(full)) {
            char valid[1024], sub[260];
            snprintf(sub, sizeof sub, "%s.", full);
            valid_keys(sub, valid, sizeof valid);
            rc = fail(c, v, "%s: bad value: %s; allowed: a mapping of %s", full, kind_name(v),
                      valid);
        } else {
            char valid[1024];
            valid_keys(prefix, valid, sizeof valid);
            rc = fail(c, kn, "unknown key \"%s\"; valid keys%s%.*s: %s", full,
                      *prefix ? " under " : "", *prefix ? (int)strlen(prefix) - 1 : 0, prefix,
                      valid);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

int mt_config_apply_yaml(struct mt_config *cfg, const char *text, size_t len, const char *name,
                         char *err, size_t errsz)
{
    int result = -1;
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_parser = 0, have_doc = 0;
    struct yctx c = { .cfg = cfg, .doc = &doc, .name = name, .err = err, .errsz = errsz };
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errsz, "%s: cannot start the YAML parser", name);
        goto out;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errsz, "%s:%zu:%zu: not valid YAML: %s%s%s", name,
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "syntax error",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || (root->type == YAML_SCALAR_NODE && !*scalar(root))) {
        result = 0; /* an empty file */
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE) {
        fail(&c, root, "the file must be a mapping of keys (project: ..., rules: ...), not %s",
             kind_name(root));
        goto out;
    }
    if (walk_mapping(&c, root, "", 0) != 0)
        goto out;
    free(cfg->config_origin);
    cfg->config_origin = xstrdup(name);
    result = 0;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    return result;
}

int mt_config_apply_file(struct mt_config *cfg, const char *path, char *err, size_t errsz)
{
    int result = -1;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "config file %s: %s", path, strerror(errno));
        goto out;
    }
    text = xcalloc(1, MAX_FILE + 1);
    size_t n = fread(text, 1, MAX_FILE + 1, f);
    if (ferror(f)) {
        snprintf(err, errsz, "config file %s: %s", path, strerror(errno));
        goto out;
    }
    if (n > MAX_FILE) {
        snprintf(err, errsz, "config file %s: larger than %u bytes", path, MAX_FILE);
        goto out;
    }
    result = mt_config_apply_yaml(cfg, text, n, path, err, errsz);
out:
    if (f)
        fclose(f);
    free(text);
    return result;
}
