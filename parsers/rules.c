/* mt_rules: see mt_rules.h.  Patterns are compiled in byte mode (a line may
 * hold any bytes; \w is ASCII), JIT-compiled when the JIT is available, and
 * matched with one match data per rule and one match context holding the
 * match limit and a JIT stack.  Nothing is allocated per line. */
#include "mt_rules.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "../common/mt_buf.h"
#include "../config/mt_config.h"
#include "mt_parse.h"
#include "mt_presets.h"

#define MAX_RULES MT_RULES_MAX
#define MATCH_LIMIT 200000
#define DEPTH_LIMIT 2000
#define JIT_STACK_MAX (1u << 20)

/* ---- the presets (presets.c) ---- */

int mt_preset_rule_count(const char *name)
{
    const struct mt_preset *p = name ? mt_presets__find(name) : NULL;
    int n = 0;
    if (p && p->kind != MT_PRESET_REGEX)
        return 1;
    for (const struct mt_preset_rule *r = p ? p->rules : NULL; r && r->pattern; r++)
        n++;
    return n;
}

int mt_preset_known(const char *name)
{
    return name && mt_presets__find(name) != NULL;
}

const char *mt_preset_list(void)
{
    return "keyvalue, json, csv, xgboost, lightgbm, fasttext, keras, hf, svm-train, "
           "svm-predict, liblinear-train, liblinear-predict, darknet";
}

/* ---- compiled rules ---- */

struct group {
    uint32_t num;
    uint8_t role;
    uint8_t text_ok;
    char *name;
    uint32_t name_len;
};

struct crule {
    int kind;
    unsigned streams; /* 1 << MT_PARSE_STDOUT | ... */
    char *file_glob;  /* file:GLOB */
    pcre2_code *re;
    pcre2_match_data *md;
    int jit;
    struct group *groups;
    uint32_t ngroups;
    int key_num, value_num, subkey_num;
    int repeat, keep_going;
    int (*may_match)(const char *line, size_t len); /* see struct mt_preset_rule */
    enum mt_fold_action fold;
    const struct mt_preset *preset;  /* the preset it is from, if any */
    const struct mt_preset *trainer; /* a trainer preset's: only for its programs */
};

struct mt_rules {
    struct crule rules[MAX_RULES];
    size_t n;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    uint64_t limit_hits;
    char describe[256];
    char base_describe[256];     /* what create chose; trainers are added as used */
    const struct mt_preset *used[16]; /* trainer presets some source was given */
    size_t nused;
    struct mt_metric_spec metric_defaults[8];
    size_t nmetric_defaults;
};

static int in_list(char **list, const char *name)
{
    for (char **p = list; p && *p; p++)
        if (strcmp(*p, name) == 0)
            return 1;
    return 0;
}

static int in_csv(const char *csv, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = csv; p && *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        if (!c)
            break;
        p = c + 1;
    }
    return 0;
}

static unsigned stream_bits(const char *stream, char **glob)
{
    *glob = NULL;
    if (!stream || strcmp(stream, "any") == 0) /* any: watched files too */
        return (1u << MT_PARSE_STDOUT) | (1u << MT_PARSE_STDERR) | (1u << MT_PARSE_FILE);
    if (strcmp(stream, "stdout") == 0)
        return 1u << MT_PARSE_STDOUT;
    if (strcmp(stream, "stderr") == 0)
        return 1u << MT_PARSE_STDERR;
    if (strncmp(stream, "file:", 5) == 0) {
        *glob = mt_xstrdup(stream + 5);
        return 0;
    }
    return (1u << MT_PARSE_STDOUT) | (1u << MT_PARSE_STDERR) | (1u << MT_PARSE_FILE);
}

static int by_number(const void *a, const void *b)
{
    const struct group *x = a, *y = b;
    return (x->num > y->num) - (x->num < y->num);
}

/* Compiles one pattern into rs->rules[rs->n]: a configured rule's (spec),
 * or a preset's (pr, and spec when the config named the preset). */
static int add_regex(struct mt_rules *rs, const char *pattern, const struct mt_rule_spec *spec,
                     const struct mt_preset_rule *pr, int repeat, const char *stream, char *err,
                     size_t errsz)
{
    const char *preset_axes = pr ? pr->axes : NULL, *preset_summary = pr ? pr->summary : NULL;
    if (rs->n >= MAX_RULES) {
        snprintf(err, errsz, "more than %d rules (presets count one per pattern)", MAX_RULES);
        return -1;
    }
    struct crule *r = &rs->rules[rs->n];
    memset(r, 0, sizeof *r);
    r->kind = MT_PRESET_REGEX;
    r->streams = stream_bits(stream, &r->file_glob);
    r->repeat = repeat;
    r->keep_going = (spec && spec->keep_going) || (pr && pr->keep_going);
    r->may_match = pr ? pr->may_match : NULL;
    r->fold = pr ? pr->fold : MT_FOLD_NONE;
    r->key_num = r->value_num = r->subkey_num = -1;
    int code;
    PCRE2_SIZE off;
    r->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!r->re) {
        char msg[256];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        snprintf(err, errsz, "pattern %s: %s at offset %zu", pattern, msg, (size_t)off);
        free(r->file_glob);
        return -1;
    }
    rs->n++; /* from here destroy frees it */
    r->jit = pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE) == 0;
    r->md = pcre2_match_data_create_from_pattern(r->re, NULL);
    if (!r->md)
        abort();
    uint32_t count = 0, entry = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMETABLE, &table);
    r->groups = mt_xcalloc(count ? count : 1, sizeof *r->groups);
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = table + (size_t)i * entry;
        uint32_t num = (uint32_t)(e[0] << 8 | e[1]);
        const char *name = (const char *)e + 2;
        if (strcmp(name, "key") == 0) {
            r->key_num = (int)num;
            continue;
        }
        if (strcmp(name, "value") == 0) {
            r->value_num = (int)num;
            continue;
        }
        if (strcmp(name, "subkey") == 0) {
            r->subkey_num = (int)num;
            continue;
        }
        struct group *g = &r->groups[r->ngroups++];
        g->num = num;
        g->name = mt_xstrdup(name);
        g->name_len = (uint32_t)strlen(name);
        if (strcmp(name, "step") == 0 || in_csv(preset_axes, name) ||
            (spec && in_list(spec->axes, name)))
            g->role = MT_ROLE_AXIS;
        else if (in_csv(preset_summary, name))
            g->role = MT_ROLE_SUMMARY;
        else if (spec && in_list(spec->config, name))
            g->role = MT_ROLE_CONFIG;
        else if (spec && in_list(spec->tags, name))
            g->role = MT_ROLE_TAG;
        else if (strcmp(name, "timestamp") == 0)
            g->role = MT_ROLE_TIME;
        else
            g->role = MT_ROLE_METRIC;
        g->text_ok = spec && in_list(spec->text, name);
    }
    /* The name table is sorted by name; fields come in pattern order. */
    qsort(r->groups, r->ngroups, sizeof *r->groups, by_number);
    return 0;
}

static int add_builtin(struct mt_rules *rs, int kind, const struct mt_rule_spec *spec,
                       const char *stream, char *err, size_t errsz)
{
    if (rs->n >= MAX_RULES) {
        snprintf(err, errsz, "more than %d rules", MAX_RULES);
        return -1;
    }
    struct crule *r = &rs->rules[rs->n++];
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->streams = stream_bits(stream, &r->file_glob);
    r->keep_going = spec ? spec->keep_going : 0;
    return 0;
}

static void note(struct mt_rules *rs, const char *name)
{
    size_t n = strlen(rs->describe);
    snprintf(rs->describe + n, sizeof rs->describe - n, "%s%s", n ? "," : "", name);
}

/* `fallback`: one of the generic presets tried when nothing was chosen; its
 * metric settings (keras: val_* against epoch) would be guesses, so none. */
static int add_preset(struct mt_rules *rs, const struct mt_preset *p,
                      const struct mt_rule_spec *spec, int fallback, char *err, size_t errsz)
{
    const char *stream = spec ? spec->stream : NULL;
    note(rs, p->name);
    for (const struct mt_preset_metric *m = p->metrics; !fallback && m && m->glob; m++)
        if (rs->nmetric_defaults < sizeof rs->metric_defaults / sizeof *rs->metric_defaults) {
            struct mt_metric_spec *ms = &rs->metric_defaults[rs->nmetric_defaults++];
            ms->name = (char *)m->glob;
            ms->step_metric = (char *)m->step_metric;
        }
    if (p->kind != MT_PRESET_REGEX) {
        if (add_builtin(rs, p->kind, spec, stream, err, errsz) != 0)
            return -1;
        rs->rules[rs->n - 1].preset = p;
        return 0;
    }
    for (const struct mt_preset_rule *pr = p->rules; pr->pattern; pr++) {
        if (add_regex(rs, pr->pattern, spec, pr, pr->repeat, stream, err, errsz) != 0)
            return -1;
        rs->rules[rs->n - 1].preset = p;
    }
    return 0;
}

static int program_matches(const char *programs, const char *program)
{
    char pat[64];
    for (const char *p = programs; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        snprintf(pat, sizeof pat, "%.*s", (int)n, p);
        if (fnmatch(pat, program, 0) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

const char *mt_preset_flags_of(const char *program)
{
    const char *slash = program ? strrchr(program, '/') : NULL;
    program = slash ? slash + 1 : program;
    for (const struct mt_preset *p = mt_presets__all; program && p->name; p++)
        if (p->programs && p->flags && program_matches(p->programs, program))
            return p->flags;
    return "";
}

/* The trainer presets in use first, in the order first used, then the rest. */
static void note_used(struct mt_rules *rs, const struct mt_preset *p)
{
    for (size_t i = 0; i < rs->nused; i++)
        if (rs->used[i] == p)
            return;
    if (rs->nused == sizeof rs->used / sizeof *rs->used)
        return;
    rs->used[rs->nused++] = p;
    rs->describe[0] = '\0';
    for (size_t i = 0; i < rs->nused; i++)
        note(rs, rs->used[i]->name);
    if (rs->base_describe[0])
        note(rs, rs->base_describe);
}

struct mt_rules *mt_rules_create(const struct mt_config *cfg, const char *program, char *err,
                                 size_t errsz)
{
    struct mt_rules *result = NULL;
    struct mt_rules *rs = mt_xcalloc(1, sizeof *rs);
    rs->mctx = pcre2_match_context_create(NULL);
    rs->jit_stack = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL);
    if (!rs->mctx)
        abort();
    pcre2_set_match_limit(rs->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(rs->mctx, DEPTH_LIMIT);
    if (rs->jit_stack)
        pcre2_jit_stack_assign(rs->mctx, NULL, rs->jit_stack);
    if (program) {
        const char *slash = strrchr(program, '/');
        program = slash ? slash + 1 : program;
    }
    size_t nrules = cfg ? cfg->nrules : 0;
    /* files: entries alone do not replace the defaults for the console. */
    size_t console_rules = 0;
    for (size_t i = 0; i < nrules; i++)
        if (!cfg->rules[i].from_files)
            console_rules++;
    for (size_t i = 0; i < nrules; i++) {
        const struct mt_rule_spec *s = &cfg->rules[i];
        int rc;
        if (s->preset) {
            const struct mt_preset *p = mt_presets__find(s->preset);
            if (!p) {
                snprintf(err, errsz, "rule %zu: unknown preset \"%s\"; presets: %s", i + 1,
                         s->preset, mt_preset_list());
                goto out;
            }
            rc = add_preset(rs, p, s, 0, err, errsz);
        } else {
            note(rs, s->name ? s->name : "pattern");
            rc = add_regex(rs, s->pattern ? s->pattern : "", s, NULL, s->repeat, s->stream, err,
                           errsz);
        }
        if (rc != 0)
            goto out;
    }
    if (console_rules == 0) {
        /* No rule configured: every trainer's preset, each seen only by the
         * lines of processes named like its trainer, then the generic ones. */
        for (const struct mt_preset *p = mt_presets__all; p->name; p++) {
            if (!p->programs)
                continue;
            size_t first = rs->n;
            char keep[sizeof rs->describe];
            memcpy(keep, rs->describe, sizeof keep);
            if (add_preset(rs, p, NULL, 0, err, errsz) != 0)
                goto out;
            memcpy(rs->describe, keep, sizeof keep); /* named once used */
            for (size_t i = first; i < rs->n; i++)
                rs->rules[i].trainer = p;
        }
        if (add_preset(rs, mt_presets__find("hf"), NULL, 1, err, errsz) != 0 ||
            add_preset(rs, mt_presets__find("keras"), NULL, 1, err, errsz) != 0 ||
            add_preset(rs, mt_presets__find("keyvalue"), NULL, 1, err, errsz) != 0)
            goto out;
    }
    memcpy(rs->base_describe, rs->describe, sizeof rs->describe);
    /* The default program's trainer is in use from the start (parse, import). */
    for (size_t i = 0; program && i < rs->n; i++)
        if (rs->rules[i].trainer && program_matches(rs->rules[i].trainer->programs, program)) {
            note_used(rs, rs->rules[i].trainer);
            break;
        }
    result = rs;
out:
    if (!result)
        mt_rules_destroy(rs);
    return result;
}


void mt_rules_destroy(struct mt_rules *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        struct crule *r = &rs->rules[i];
        pcre2_match_data_free(r->md);
        pcre2_code_free(r->re);
        for (uint32_t g = 0; g < r->ngroups; g++)
            free(r->groups[g].name);
        free(r->groups);
        free(r->file_glob);
    }
    pcre2_jit_stack_free(rs->jit_stack);
    pcre2_match_context_free(rs->mctx);
    free(rs);
}

/* Does a file:GLOB match the path, or a tail of it after a '/'? */
static int glob_matches(const char *glob, const char *path)
{
    for (const char *p = path; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (fnmatch(glob, p, FNM_PATHNAME) == 0)
            return 1;
    }
    return 0;
}

void mt_rules_select(struct mt_rules *rs, int stream, const char *path, const char *program,
                     int argc, char *const *argv, struct mt_rules_source *src)
{
    memset(src, 0, sizeof *src);
    int fold_mode_known = 0;
    if (program) {
        const char *slash = strrchr(program, '/');
        program = slash ? slash + 1 : program;
    }
    for (size_t i = 0; i < rs->n; i++) {
        const struct crule *r = &rs->rules[i];
        int on = (stream >= 0 && stream < 32 && (r->streams & (1u << stream))) ||
                 (r->file_glob && path && glob_matches(r->file_glob, path));
        if (on && r->trainer) {
            on = program && program_matches(r->trainer->programs, program);
            if (on)
                note_used(rs, r->trainer);
        }
        if (!on)
            continue;
        src->mask[i / 64] |= 1ull << (i % 64);
        if (r->kind == MT_PRESET_CSV && !src->csv)
            src->csv = mt_csv_create();
        if (r->fold && !fold_mode_known) {
            src->fold_mode = r->preset && r->preset->folds ? r->preset->folds(argc, argv)
                                                            : MT_FOLDS_BY_MODEL;
            fold_mode_known = 1;
        }
    }
}

void mt_rules_source_free(struct mt_rules_source *src)
{
    mt_csv_destroy(src->csv);
    src->csv = NULL;
}

/* "1700000000.5", "2024-03-01T12:00:05.25Z", "2024-03-01 12:00:05+02:00". */
static int parse_time(const char *s, size_t n, double *out)
{
    struct mt_field f;
    if (mt_value_parse(s, n, 0, &f) == 0 && f.kind == MT_VAL_NUMBER && !f.unit_len &&
        f.value > 1e8 && isfinite(f.value)) {
        *out = f.value > 1e14 ? f.value / 1e3 : f.value; /* milliseconds */
        return 0;
    }
    char buf[64];
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(buf, "%Y-%m-%d", &tm);
    if (!p || (*p != 'T' && *p != ' '))
        return -1;
    p = strptime(p + 1, "%H:%M:%S", &tm);
    if (!p)
        return -1;
    double frac = 0;
    if (*p == '.' || *p == ',') {
        double scale = 0.1;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    double zone = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9') {
        int sign = *p == '-' ? -1 : 1;
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) < 1)
            return -1;
        zone = sign * (hh * 3600.0 + mm * 60.0);
        p += strlen(p);
    } else if (*p) {
        return -1;
    }
    time_t t = timegm(&tm);
    *out = (double)t + frac - zone;
    return 0;
}

static void add_group(struct mt_fields *out, const struct group *g, const char *s, size_t n)
{
    if (g->role == MT_ROLE_TIME) {
        double t;
        if (parse_time(s, n, &t) == 0)
            out->ts = t;
        return;
    }
    struct mt_field tmp;
    int allow_text = g->text_ok || g->role == MT_ROLE_CONFIG || g->role == MT_ROLE_TAG;
    if (mt_value_parse(s, n, allow_text, &tmp) != 0)
        return;
    if (g->role == MT_ROLE_TAG) {
        tmp.kind = MT_VAL_TEXT;
        tmp.text = s;
        tmp.text_len = (uint32_t)n;
    }
    if (g->role == MT_ROLE_AXIS && tmp.kind != MT_VAL_NUMBER)
        return;
    struct mt_field *f = mt_fields_add(out);
    if (!f)
        return;
    *f = tmp;
    f->key = g->name;
    f->key_len = g->name_len;
    f->role = g->role;
    f->lower_key = 0;
}

static void add_pair(struct mt_fields *out, const char *line, const PCRE2_SIZE *ov,
                     const struct crule *r)
{
    PCRE2_SIZE k0 = ov[2 * r->key_num], k1 = ov[2 * r->key_num + 1];
    PCRE2_SIZE v0 = ov[2 * r->value_num], v1 = ov[2 * r->value_num + 1];
    if (k0 == PCRE2_UNSET || v0 == PCRE2_UNSET || k1 == k0)
        return;
    struct mt_field tmp;
    if (mt_value_parse(line + v0, v1 - v0, 0, &tmp) != 0)
        return;
    const char *key = line + k0;
    size_t klen = k1 - k0;
    while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
        klen--;
    if (r->subkey_num > 0 && ov[2 * r->subkey_num] != PCRE2_UNSET) {
        PCRE2_SIZE s0 = ov[2 * r->subkey_num], s1 = ov[2 * r->subkey_num + 1];
        char *k = mt_fields_keep(out, key, klen);
        if (!k || !mt_fields_keep(out, "_", 1) || !mt_fields_keep(out, line + s0, s1 - s0))
            return;
        key = k;
        klen += 1 + (s1 - s0);
    }
    struct mt_field *f = mt_fields_add(out);
    if (!f)
        return;
    *f = tmp;
    f->key = key;
    f->key_len = (uint32_t)(klen > MT_MAX_KEY ? MT_MAX_KEY : klen);
    f->role = mt_is_default_axis(key, klen) ? MT_ROLE_AXIS : MT_ROLE_METRIC;
    f->lower_key = 0;
}

static int match_regex(struct mt_rules *rs, struct crule *r, const char *line, size_t len,
                       struct mt_fields *out)
{
    int matched = 0;
    PCRE2_SIZE start = 0;
    if (r->may_match && !r->may_match(line, len))
        return 0;
    for (int iter = 0; iter < MT_MAX_FIELDS && start <= len; iter++) {
        int rc = r->jit ? pcre2_jit_match(r->re, (PCRE2_SPTR)line, len, start, 0, r->md, rs->mctx)
                        : pcre2_match(r->re, (PCRE2_SPTR)line, len, start, 0, r->md, rs->mctx);
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
            rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
            rs->limit_hits++;
            break;
        }
        if (rc < 0)
            break;
        matched = 1;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        for (uint32_t g = 0; g < r->ngroups; g++) {
            const struct group *gr = &r->groups[g];
            PCRE2_SIZE a = ov[2 * gr->num], b = ov[2 * gr->num + 1];
            if (a != PCRE2_UNSET)
                add_group(out, gr, line + a, b - a);
        }
        if (r->key_num > 0 && r->value_num > 0)
            add_pair(out, line, ov, r);
        if (!r->repeat)
            break;
        start = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
    }
    return matched;
}

/* A training begins or ends (the line matched rule r): the source's fold
 * counter.  Returns 1 when the line starts a fold, whose number it then
 * carries as the `fold` axis. */
static int count_fold(const struct crule *r, struct mt_rules_source *src)
{
    if (src->fold_mode == MT_FOLDS_OFF)
        return 0;
    switch (r->fold) {
    case MT_FOLD_BEGIN:
        if (src->fold_open && src->fold_mode != MT_FOLDS_PER_TRAINING)
            return 0;
        /* fall through */
    case MT_FOLD_NEXT:
        src->fold++;
        src->fold_open = 1;
        return 1;
    case MT_FOLD_END:
        src->fold_open = 0;
        return 0;
    default:
        return 0;
    }
}

/* The `fold` axis, after the line's own fields: a line's first axis is its
 * step (liblinear's iter), the fold only the outer one. */
static void add_fold(struct mt_fields *out, uint32_t fold)
{
    char digits[16];
    int n = snprintf(digits, sizeof digits, "%u", fold);
    char *text = mt_fields_keep(out, digits, (size_t)n);
    struct mt_field *f = text ? mt_fields_add(out) : NULL;
    if (!f)
        return;
    memset(f, 0, sizeof *f);
    f->key = "fold";
    f->key_len = 4;
    f->role = MT_ROLE_AXIS;
    f->kind = MT_VAL_NUMBER;
    f->text = text;
    f->text_len = (uint32_t)n;
    f->text_is_json = 1;
    f->value = fold;
}

void mt_rules_extract(struct mt_rules *rs, struct mt_rules_source *src, const char *line,
                      size_t len, struct mt_fields *out)
{
    int new_fold = 0;
    for (size_t w = 0; w < MT_RULES_MAX / 64; w++) {
        for (uint64_t mask = src->mask[w]; mask; mask &= mask - 1) {
            size_t i = w * 64 + (size_t)__builtin_ctzll(mask);
            struct crule *r = &rs->rules[i];
            uint32_t before = out->n;
            int matched;
            switch (r->kind) {
            case MT_PRESET_KEYVALUE:
                mt_keyvalue_extract(line, len, out);
                matched = out->n > before;
                break;
            case MT_PRESET_JSON:
                matched = mt_json_extract(line, len, out);
                break;
            case MT_PRESET_CSV:
                matched = src->csv ? mt_csv_extract(src->csv, line, len, out) : 0;
                break;
            default:
                matched = match_regex(rs, r, line, len, out);
                break;
            }
            if (matched && r->fold)
                new_fold |= count_fold(r, src);
            if (matched && !r->keep_going)
                goto done;
        }
    }
done:
    if (new_fold)
        add_fold(out, src->fold);
}

const char *mt_rules_describe(const struct mt_rules *rs)
{
    return rs->describe;
}

const struct mt_metric_spec *mt_rules_metric_defaults(const struct mt_rules *rs, size_t *n)
{
    *n = rs->nmetric_defaults;
    return rs->metric_defaults;
}

uint64_t mt_rules_limit_hits(const struct mt_rules *rs)
{
    return rs->limit_hits;
}
