/* mt_filter: see mt_filter.h.  A recursive-descent parser:
 *     or   := and (("or" | "||") and)*
 *     and  := not (("and" | "&&") not)*
 *     not  := ("not" | "!") not | "(" or ")" | cmp
 *     cmp  := operand op operand
 *     operand := column | number | string | true | false */
#include "mt_filter.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mt_buf.h"

/* ---- columns ---- */

static const struct {
    const char *name, *alias, *sql;
    int numeric;
} BUILTINS[MT_B_COUNT] = {
    [MT_B_ID] = { "id", NULL, "r.id", 0 },
    [MT_B_NAME] = { "name", NULL, "r.name", 0 },
    [MT_B_PROJECT] = { "project", NULL, "r.project", 0 },
    [MT_B_STATE] = { "state", NULL, "r.state", 0 },
    [MT_B_GROUP] = { "group", "grp", "r.grp", 0 },
    [MT_B_JOB_TYPE] = { "job_type", NULL, "r.job_type", 0 },
    [MT_B_TAGS] = { "tags", "tag", "r.tags", 0 },
    [MT_B_CREATED] = { "created", "start_time", "r.start_time", 1 },
    [MT_B_END_TIME] = { "end_time", "ended", "r.end_time", 1 },
    [MT_B_RUNTIME] = { "runtime", NULL, "r.runtime", 1 },
    [MT_B_EXIT_CODE] = { "exit_code", "exit", "r.exit_code", 1 },
    [MT_B_SIGNAL] = { "signal", NULL, "r.signal", 1 },
};

const char *mt_col_builtin_name(enum mt_col_builtin b) { return BUILTINS[b].name; }
const char *mt_col_builtin_sql(enum mt_col_builtin b) { return BUILTINS[b].sql; }
int mt_col_builtin_numeric(enum mt_col_builtin b) { return BUILTINS[b].numeric; }

/* Copies `s` (n bytes) dropping quotes: `backticks` anywhere, and "double"
 * or 'single' quotes around a whole dotted part (summary."P@3").  Inside
 * quotes every character is the key's. */
static char *unquote_key(const char *s, size_t n)
{
    char *out = mt_xmalloc(n + 1), quote = 0;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (quote) {
            if (s[i] == quote)
                quote = 0;
            else
                out[j++] = s[i];
        } else if (s[i] == '`' ||
                   ((s[i] == '"' || s[i] == '\'') && (i == 0 || s[i - 1] == '.')))
            quote = s[i];
        else
            out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

int mt_col_parse(const char *text, struct mt_col *col, char *err, size_t errsz)
{
    memset(col, 0, sizeof *col);
    static const struct { const char *prefix; enum mt_col_src src; } PREFIXES[] = {
        { "summary.", MT_COL_SUMMARY }, { "s.", MT_COL_SUMMARY },
        { "config.", MT_COL_CONFIG }, { "c.", MT_COL_CONFIG },
    };
    for (size_t i = 0; i < sizeof PREFIXES / sizeof *PREFIXES; i++) {
        size_t pl = strlen(PREFIXES[i].prefix);
        if (strncmp(text, PREFIXES[i].prefix, pl) == 0) {
            col->src = PREFIXES[i].src;
            col->key = unquote_key(text + pl, strlen(text + pl));
            if (!col->key[0]) {
                snprintf(err, errsz, "column \"%s\" names no key", text);
                mt_col_free(col);
                return -1;
            }
            size_t ll = strlen(col->key) + 9;
            col->label = mt_xmalloc(ll);
            snprintf(col->label, ll, "%s.%s", col->src == MT_COL_SUMMARY ? "summary" : "config",
                     col->key);
            return 0;
        }
    }
    for (int b = 0; b < MT_B_COUNT; b++)
        if (strcasecmp(text, BUILTINS[b].name) == 0 ||
            (BUILTINS[b].alias && strcasecmp(text, BUILTINS[b].alias) == 0)) {
            col->src = MT_COL_BUILTIN;
            col->builtin = (enum mt_col_builtin)b;
            col->label = mt_xstrdup(BUILTINS[b].name);
            return 0;
        }
    struct mt_buf b;
    mt_buf_init(&b, 1024);
    for (int i = 0; i < MT_B_COUNT; i++)
        mt_buf_printf(&b, "%s%s", i ? ", " : "", BUILTINS[i].name);
    snprintf(err, errsz, "unknown column \"%s\"; use summary.KEY, config.KEY or one of %s", text,
             b.data);
    mt_buf_free(&b);
    return -1;
}

void mt_col_free(struct mt_col *col)
{
    if (!col)
        return;
    free(col->key);
    free(col->label);
    col->key = col->label = NULL;
}

/* ---- values ---- */

struct mt_value mt_value_of_json(const cJSON *v, char **owned)
{
    struct mt_value out = { MT_V_NONE, 0, NULL };
    *owned = NULL;
    if (cJSON_IsBool(v)) {
        out.type = MT_V_NUM;
        out.num = cJSON_IsTrue(v) ? 1 : 0;
    } else if (cJSON_IsNumber(v)) {
        out.type = MT_V_NUM;
        out.num = v->valuedouble;
    } else if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "Infinity") == 0 || strcmp(v->valuestring, "-Infinity") == 0) {
            out.type = MT_V_NUM;
            out.num = v->valuestring[0] == '-' ? -INFINITY : INFINITY;
        } else {
            out.type = MT_V_TEXT;
            out.text = v->valuestring;
        }
    } else if (cJSON_IsArray(v)) {
        *owned = cJSON_PrintUnformatted(v);
        if (*owned) {
            out.type = MT_V_TEXT;
            out.text = *owned;
        }
    }
    return out;
}

static size_t flatten(const cJSON *obj, struct mt_buf *key, size_t *left, mt_flatten_fn fn,
                      void *ctx, int depth)
{
    size_t skipped = 0;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string)
            continue;
        size_t mark = key->len;
        if (mark)
            mt_buf_addc(key, '.');
        mt_buf_adds(key, it->string);
        if (cJSON_IsObject(it) && depth < 8) {
            skipped += flatten(it, key, left, fn, ctx, depth + 1);
        } else {
            char *owned;
            struct mt_value v = mt_value_of_json(it, &owned);
            if (v.type == MT_V_NONE)
                ;
            else if (*left == 0 || key->refused)
                skipped++;
            else {
                fn(ctx, key->data, &v);
                (*left)--;
            }
            free(owned);
        }
        key->len = mark;
        key->data[mark] = '\0';
        key->refused = 0;
    }
    return skipped;
}

size_t mt_flatten_json(const cJSON *obj, size_t max_keys, mt_flatten_fn fn, void *ctx)
{
    if (!cJSON_IsObject(obj))
        return 0;
    struct mt_buf key;
    mt_buf_init(&key, 512);
    mt_buf_add(&key, "", 0);
    size_t left = max_keys;
    size_t skipped = flatten(obj, &key, &left, fn, ctx, 0);
    mt_buf_free(&key);
    return skipped;
}

int mt_value_cmp(const struct mt_value *a, const struct mt_value *b)
{
    if (a->type != b->type) {
        if (a->type == MT_V_NONE)
            return 1;
        if (b->type == MT_V_NONE)
            return -1;
        return a->type == MT_V_NUM ? -1 : 1;
    }
    if (a->type == MT_V_NUM)
        return a->num < b->num ? -1 : a->num > b->num ? 1 : 0;
    if (a->type == MT_V_TEXT)
        return strcmp(a->text, b->text);
    return 0;
}

/* ---- the parse tree ---- */

enum op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_GLOB };
static const char *const OP_SQL[] = { "=", "!=", "<", "<=", ">", ">=", "GLOB" };

enum node_kind { N_AND, N_OR, N_NOT, N_CMP };
enum operand_kind { O_COL, O_NUM, O_STR };

struct operand {
    enum operand_kind kind;
    struct mt_col col;
    double num;
    int span; /* O_NUM written as a span of time (-2h) */
    char *str;
};

struct node {
    enum node_kind kind;
    struct node *a, *b;         /* AND/OR: a, b; NOT: a */
    struct operand lhs, rhs;    /* CMP: lhs is always a column */
    enum op op;
};

struct mt_filter {
    struct node *root;
};

static void node_free(struct node *n)
{
    if (!n)
        return;
    node_free(n->a);
    node_free(n->b);
    mt_col_free(&n->lhs.col);
    mt_col_free(&n->rhs.col);
    free(n->lhs.str);
    free(n->rhs.str);
    free(n);
}

void mt_filter_destroy(struct mt_filter *f)
{
    if (!f)
        return;
    node_free(f->root);
    free(f);
}

/* ---- the tokenizer ---- */

enum tok_kind { T_END, T_COL, T_NUM, T_STR, T_LP, T_RP, T_OP, T_AND, T_OR, T_NOT, T_BAD };

struct parser {
    const char *text;
    size_t pos;             /* after the current token */
    enum tok_kind kind;
    size_t start, len;      /* the current token */
    double num;
    int num_is_span;        /* T_NUM was a span of time: -2h, 30m, 1.5d (in seconds) */
    enum op op;
    char *str;              /* T_STR's value, T_COL's text (owned until taken) */
    double now;             /* for relative times: the clock read once at the start */
    char *err;
    size_t errsz, errpos;
    int failed;
};

static void fail(struct parser *p, size_t at, const char *fmt, const char *arg)
{
    if (p->failed)
        return;
    p->failed = 1;
    p->errpos = at;
    snprintf(p->err, p->errsz, fmt, arg);
}

/* Bytes of UTF-8 sequences (>= 0x80) are key characters: summary.précision. */
static int ident_start(int c) { return isalpha(c) || c == '_' || c == '`' || c >= 0x80; }
static int ident_char(int c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '-' || c == '/' || c == '`' || c >= 0x80;
}

/* Seconds in a unit of a span of time (s m h d w), or 0. */
static double span_unit(char u)
{
    switch (u) {
    case 's': return 1;
    case 'm': return 60;
    case 'h': return 3600;
    case 'd': return 86400;
    case 'w': return 7 * 86400;
    default: return 0;
    }
}

/* "-2h", "30m", "1.5d": *secs, 1; else 0. */
static int parse_span(const char *s, double *secs)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !span_unit(*end) || end[1])
        return 0;
    *secs = v * span_unit(*end);
    return 1;
}

/* A date as ls prints it, in local time ("2026-12-02", "2026-12-02 06:00",
 * "2026-12-02T06:00:30"), or UTC with a trailing Z: unix seconds, 1; else 0. */
static int parse_date(const char *s, double *out)
{
    static const char *const FORMATS[] = { "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                                           "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d" };
    for (size_t i = 0; i < sizeof FORMATS / sizeof *FORMATS; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, FORMATS[i], &tm);
        if (!end)
            continue;
        int utc = end[0] == 'Z' && !end[1];
        if (*end && !utc)
            continue;
        tm.tm_isdst = -1;
        time_t t = utc ? timegm(&tm) : mktime(&tm);
        if (t == (time_t)-1)
            continue;
        *out = (double)t;
        return 1;
    }
    return 0;
}

static void next(struct parser *p)
{
    const char *t = p->text;
    size_t i = p->pos;
    free(p->str);
    p->str = NULL;
    while (t[i] && isspace((unsigned char)t[i]))
        i++;
    p->start = i;
    char c = t[i];
    if (!c) {
        p->kind = T_END;
    } else if (c == '(' || c == ')') {
        p->kind = c == '(' ? T_LP : T_RP;
        i++;
    } else if (strchr("=!<>~&|", c)) {
        static const struct { const char *s; enum tok_kind k; enum op op; } OPS[] = {
            { "==", T_OP, OP_EQ }, { "!=", T_OP, OP_NE }, { "<>", T_OP, OP_NE },
            { "<=", T_OP, OP_LE }, { ">=", T_OP, OP_GE }, { "&&", T_AND, 0 },
            { "||", T_OR, 0 },     { "=", T_OP, OP_EQ },  { "<", T_OP, OP_LT },
            { ">", T_OP, OP_GT },  { "~", T_OP, OP_GLOB }, { "!", T_NOT, 0 },
        };
        p->kind = T_BAD;
        for (size_t k = 0; k < sizeof OPS / sizeof *OPS; k++) {
            size_t n = strlen(OPS[k].s);
            if (strncmp(t + i, OPS[k].s, n) == 0) {
                p->kind = OPS[k].k;
                p->op = OPS[k].op;
                i += n;
                break;
            }
        }
        if (p->kind == T_BAD)
            i++;
    } else if (c == '"' || c == '\'') {
        struct mt_buf b;
        mt_buf_init(&b, 1 << 16);
        mt_buf_add(&b, "", 0);
        i++;
        while (t[i] && t[i] != c) {
            char ch = t[i++];
            if (ch == '\\' && t[i]) {
                ch = t[i++];
                ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
            }
            mt_buf_addc(&b, ch);
        }
        if (!t[i]) {
            mt_buf_free(&b);
            fail(p, p->start, "unterminated string%s", "");
            p->kind = T_BAD;
        } else {
            i++;
            p->kind = T_STR;
            p->str = b.data;
        }
    } else if (isdigit((unsigned char)c) || c == '.' ||
               ((c == '-' || c == '+') && (isdigit((unsigned char)t[i + 1]) || t[i + 1] == '.'))) {
        char *end;
        p->num = strtod(t + i, &end);
        p->num_is_span = 0;
        if (end != t + i && span_unit(*end) && !ident_char((unsigned char)end[1])) {
            p->num *= span_unit(*end); /* -2h: a span of time, in seconds */
            p->num_is_span = 1;
            i = (size_t)(end + 1 - t);
            p->kind = T_NUM;
        } else if (end == t + i || ident_char((unsigned char)*end)) {
            p->kind = T_BAD;
            while (t[i] && ident_char((unsigned char)t[i]))
                i++;
            if (i == p->start)
                i++;
            p->len = i - p->start;
            fail(p, p->start, "bad number \"%s\"", "");
            snprintf(p->err, p->errsz, "bad number \"%.*s\"", (int)p->len, t + p->start);
        } else {
            i = (size_t)(end - t);
            p->kind = T_NUM;
        }
    } else if (ident_start((unsigned char)c)) {
        /* A key may be quoted: `batch size` anywhere, or "P@3" / 'P@3' as a
         * whole dotted part (summary."P@3"). */
        char quote = 0;
        for (; t[i]; i++) {
            char ch = t[i];
            if (quote) {
                if (ch == quote)
                    quote = 0;
            } else if (ch == '`' || ((ch == '"' || ch == '\'') && t[i - 1] == '.'))
                quote = ch;
            else if (!ident_char((unsigned char)ch))
                break;
        }
        int quoted = quote != 0;
        if (quoted) {
            fail(p, p->start, "unterminated `quoted key`%s", "");
            p->kind = T_BAD;
        } else {
            size_t n = i - p->start;
            p->str = mt_xstrndup(t + p->start, n);
            if (strcasecmp(p->str, "and") == 0)
                p->kind = T_AND;
            else if (strcasecmp(p->str, "or") == 0)
                p->kind = T_OR;
            else if (strcasecmp(p->str, "not") == 0)
                p->kind = T_NOT;
            else if (strcasecmp(p->str, "true") == 0 || strcasecmp(p->str, "false") == 0) {
                p->kind = T_NUM;
                p->num = strcasecmp(p->str, "true") == 0;
            } else
                p->kind = T_COL;
        }
    } else {
        p->kind = T_BAD;
        i++;
    }
    p->pos = i;
    p->len = i - p->start;
}

static void fail_here(struct parser *p, const char *what)
{
    if (p->kind == T_END)
        fail(p, p->start, "%s, found the end of the filter", what);
    else {
        char msg[256];
        snprintf(msg, sizeof msg, "%s, found \"%.*s\"", what, (int)(p->len > 40 ? 40 : p->len),
                 p->text + p->start);
        fail(p, p->start, "%s", msg);
    }
}

/* ---- the grammar ---- */

static struct node *parse_or(struct parser *p);

/* value_pos: the operand after the operator, where a bare word is most
 * likely text without its quotes. */
static int parse_operand(struct parser *p, struct operand *o, size_t *at, int value_pos)
{
    *at = p->start;
    if (p->kind == T_NUM) {
        o->kind = O_NUM;
        o->num = p->num;
        o->span = p->num_is_span;
    } else if (p->kind == T_STR) {
        o->kind = O_STR;
        o->str = p->str;
        p->str = NULL;
    } else if (p->kind == T_COL) {
        char err[512];
        o->kind = O_COL;
        if (mt_col_parse(p->str, &o->col, err, sizeof err) != 0) {
            if (value_pos && !strchr(p->str, '.')) {
                /* config.optimizer = adam: a value written without quotes */
                snprintf(err, sizeof err, "%s is no column; did you mean \"%s\"? (text is"
                         " quoted)", p->str, p->str);
            }
            fail(p, p->start, "%s", err);
            return -1;
        }
    } else {
        return -1;
    }
    next(p);
    return 0;
}

static enum op flip(enum op op)
{
    switch (op) {
    case OP_LT: return OP_GT;
    case OP_LE: return OP_GE;
    case OP_GT: return OP_LT;
    case OP_GE: return OP_LE;
    default: return op;
    }
}

/* Checks the types of a comparison; the column is on the left. */
static void check_cmp(struct parser *p, struct node *n, size_t lhs_at, size_t rhs_at)
{
    const struct mt_col *c = &n->lhs.col;
    int builtin = c->src == MT_COL_BUILTIN;
    if (n->rhs.kind == O_COL) {
        if (n->op == OP_GLOB)
            fail(p, rhs_at, "~ matches text against a \"glob*\" string, not a column%s", "");
        else if ((builtin && c->builtin == MT_B_TAGS) ||
                 (n->rhs.col.src == MT_COL_BUILTIN && n->rhs.col.builtin == MT_B_TAGS))
            fail(p, lhs_at, "tags can only be compared with a string: tags = \"x\"%s", "");
        return;
    }
    if (n->op == OP_GLOB && n->rhs.kind != O_STR) {
        fail(p, rhs_at, "~ matches text against a \"glob*\" string%s", "");
        return;
    }
    if (!builtin)
        return;
    int is_time = c->builtin == MT_B_CREATED || c->builtin == MT_B_END_TIME;
    if (is_time && n->rhs.kind == O_STR) {
        /* created > "2026-12-02 06:00" or created > "-2h" */
        double v;
        if (parse_span(n->rhs.str, &v))
            n->rhs.num = p->now + v;
        else if (!parse_date(n->rhs.str, &n->rhs.num)) {
            fail(p, rhs_at, "%s takes a date (\"2026-12-02 06:00\" local time, \"...Z\" UTC)"
                            " or a time relative to now (-2h, -30m, -7d)", c->label);
            return;
        }
        free(n->rhs.str);
        n->rhs.str = NULL;
        n->rhs.kind = O_NUM;
        return;
    }
    if (is_time && n->rhs.kind == O_NUM && n->rhs.span) {
        n->rhs.num += p->now; /* created > -2h: later than two hours ago */
        return;
    }
    if (c->builtin == MT_B_TAGS) {
        if (n->rhs.kind != O_STR || (n->op != OP_EQ && n->op != OP_NE && n->op != OP_GLOB))
            fail(p, lhs_at, "tags takes = \"x\", != \"x\" or ~ \"glob*\"%s", "");
    } else if (mt_col_builtin_numeric(c->builtin) && n->rhs.kind == O_STR) {
        fail(p, rhs_at, "%s is a number; compare it with a number", c->label);
    } else if (!mt_col_builtin_numeric(c->builtin) && n->rhs.kind == O_NUM) {
        fail(p, rhs_at, "%s is text; compare it with a \"string\"", c->label);
    }
}

static struct node *parse_cmp(struct parser *p)
{
    struct node *n = mt_xcalloc(1, sizeof *n);
    n->kind = N_CMP;
    size_t lhs_at, rhs_at;
    if (parse_operand(p, &n->lhs, &lhs_at, 0) != 0) {
        fail_here(p, "expected a column, a value or \"(\"");
        goto fail;
    }
    if (p->kind != T_OP) {
        char what[300];
        snprintf(what, sizeof what, "expected a comparison (= != < <= > >= ~) after \"%.*s\"",
                 (int)(p->start - lhs_at > 200 ? 200 : p->start - lhs_at), p->text + lhs_at);
        /* trim the trailing space the slice may hold */
        fail_here(p, what);
        goto fail;
    }
    n->op = p->op;
    size_t op_at = p->start;
    next(p);
    if (parse_operand(p, &n->rhs, &rhs_at, 1) != 0) {
        char what[64];
        snprintf(what, sizeof what, "expected a value after \"%s\"",
                 n->op == OP_GLOB ? "~" : OP_SQL[n->op]);
        fail_here(p, what);
        goto fail;
    }
    if (n->lhs.kind != O_COL) {
        if (n->rhs.kind != O_COL) {
            fail(p, lhs_at, "a comparison needs a column such as summary.acc%s", "");
            goto fail;
        }
        struct operand tmp = n->lhs;
        n->lhs = n->rhs;
        n->rhs = tmp;
        size_t t = lhs_at;
        lhs_at = rhs_at;
        rhs_at = t;
        if (n->op == OP_GLOB) {
            fail(p, op_at, "~ takes the column on its left: name ~ \"glob*\"%s", "");
            goto fail;
        }
        n->op = flip(n->op);
    }
    check_cmp(p, n, lhs_at, rhs_at);
    if (p->failed)
        goto fail;
    return n;
fail:
    node_free(n);
    return NULL;
}

static struct node *parse_not(struct parser *p)
{
    if (p->kind == T_NOT) {
        next(p);
        struct node *inner = parse_not(p);
        if (!inner)
            return NULL;
        struct node *n = mt_xcalloc(1, sizeof *n);
        n->kind = N_NOT;
        n->a = inner;
        return n;
    }
    if (p->kind == T_LP) {
        size_t open_at = p->start;
        next(p);
        struct node *inner = parse_or(p);
        if (!inner)
            return NULL;
        if (p->kind != T_RP) {
            if (p->kind == T_END)
                fail(p, open_at, "this \"(\" is never closed%s", "");
            else
                fail_here(p, "expected \")\", \"and\" or \"or\"");
            node_free(inner);
            return NULL;
        }
        next(p);
        return inner;
    }
    return parse_cmp(p);
}

static struct node *parse_binary(struct parser *p, enum tok_kind tok, enum node_kind kind,
                                 struct node *(*sub)(struct parser *))
{
    struct node *left = sub(p);
    while (left && p->kind == tok) {
        next(p);
        struct node *right = sub(p);
        if (!right) {
            node_free(left);
            return NULL;
        }
        struct node *n = mt_xcalloc(1, sizeof *n);
        n->kind = kind;
        n->a = left;
        n->b = right;
        left = n;
    }
    return left;
}

static struct node *parse_and(struct parser *p) { return parse_binary(p, T_AND, N_AND, parse_not); }
static struct node *parse_or(struct parser *p) { return parse_binary(p, T_OR, N_OR, parse_and); }

struct mt_filter *mt_filter_create(const char *text, char *err, size_t errsz, size_t *errpos)
{
    struct parser p = { .text = text, .err = err, .errsz = errsz, .now = (double)time(NULL) };
    struct mt_filter *f = mt_xcalloc(1, sizeof *f);
    next(&p);
    if (p.kind == T_END) {
        fail(&p, 0, "the filter is empty%s", "");
        goto out;
    }
    f->root = parse_or(&p);
    if (f->root && p.kind != T_END)
        fail_here(&p, p.kind == T_RP ? "this \")\" closes nothing" : "expected \"and\", \"or\" or the end");
    if (!f->root && !p.failed)
        fail_here(&p, "cannot parse the filter");
out:
    free(p.str);
    if (p.failed) {
        if (errpos)
            *errpos = p.errpos;
        mt_filter_destroy(f);
        return NULL;
    }
    return f;
}

/* ---- SQL ---- */

void mt_sql_params_add_num(struct mt_sql_params *p, double num)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->v = mt_xrealloc(p->v, p->cap * sizeof *p->v);
    }
    p->v[p->n++] = (struct mt_sql_param){ 0, num, NULL };
}

void mt_sql_params_add_text(struct mt_sql_params *p, const char *text)
{
    mt_sql_params_add_num(p, 0);
    p->v[p->n - 1].is_text = 1;
    p->v[p->n - 1].text = text;
}

void mt_sql_params_free(struct mt_sql_params *p)
{
    free(p->v);
    memset(p, 0, sizeof *p);
}

void mt_col_sql(const struct mt_col *col, struct mt_buf *sql, struct mt_sql_params *params)
{
    if (col->src == MT_COL_BUILTIN) {
        mt_buf_adds(sql, BUILTINS[col->builtin].sql);
        return;
    }
    mt_buf_printf(sql, "(SELECT coalesce(num, txt) FROM kv WHERE kv.rid = r.rid AND src = %d"
                       " AND key = ?)",
                  col->src == MT_COL_SUMMARY ? 0 : 1);
    mt_sql_params_add_text(params, col->key);
}

static void cmp_sql(const struct node *n, struct mt_buf *sql, struct mt_sql_params *params)
{
    const struct mt_col *c = &n->lhs.col;
    const char *op = OP_SQL[n->op];
    if (n->rhs.kind == O_COL) {
        /* Unary + strips the columns' affinity so both sides compare as the
         * scan does: numbers before text, text by bytes. */
        mt_buf_adds(sql, "coalesce(+");
        mt_col_sql(c, sql, params);
        mt_buf_printf(sql, " %s +", op);
        mt_col_sql(&n->rhs.col, sql, params);
        mt_buf_adds(sql, ", 0)");
        return;
    }
    if (c->src == MT_COL_BUILTIN && c->builtin == MT_B_TAGS) {
        mt_buf_printf(sql, "r.rid %sIN (SELECT rid FROM tags WHERE tag %s ?)",
                      n->op == OP_NE ? "NOT " : "", n->op == OP_GLOB ? "GLOB" : "=");
        mt_sql_params_add_text(params, n->rhs.str);
        return;
    }
    if (c->src == MT_COL_BUILTIN) {
        mt_buf_printf(sql, "coalesce(%s %s ?, 0)", BUILTINS[c->builtin].sql, op);
    } else {
        mt_buf_printf(sql, "r.rid IN (SELECT rid FROM kv WHERE src = %d AND key = ? AND %s %s ?)",
                      c->src == MT_COL_SUMMARY ? 0 : 1, n->rhs.kind == O_NUM ? "num" : "txt", op);
        mt_sql_params_add_text(params, c->key);
    }
    if (n->rhs.kind == O_NUM)
        mt_sql_params_add_num(params, n->rhs.num);
    else
        mt_sql_params_add_text(params, n->rhs.str);
}

static void node_sql(const struct node *n, struct mt_buf *sql, struct mt_sql_params *params)
{
    switch (n->kind) {
    case N_AND:
    case N_OR:
        mt_buf_addc(sql, '(');
        node_sql(n->a, sql, params);
        mt_buf_adds(sql, n->kind == N_AND ? " AND " : " OR ");
        node_sql(n->b, sql, params);
        mt_buf_addc(sql, ')');
        break;
    case N_NOT:
        mt_buf_adds(sql, "(NOT ");
        node_sql(n->a, sql, params);
        mt_buf_addc(sql, ')');
        break;
    case N_CMP:
        cmp_sql(n, sql, params);
        break;
    }
}

void mt_filter_sql(const struct mt_filter *f, struct mt_buf *sql, struct mt_sql_params *params)
{
    node_sql(f->root, sql, params);
}

/* ---- evaluation on a run's values ---- */

static int test_op(enum op op, int c)
{
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    case OP_GE: return c >= 0;
    default: return 0;
    }
}

static int cmp_eval(const struct node *n, const struct mt_filter_run *run)
{
    const struct mt_col *c = &n->lhs.col;
    if (c->src == MT_COL_BUILTIN && c->builtin == MT_B_TAGS && n->rhs.kind == O_STR) {
        int has = run->has_tag(run->ctx, n->rhs.str, n->op == OP_GLOB) == 1;
        return n->op == OP_NE ? !has : has;
    }
    struct mt_value a = run->get(run->ctx, c);
    if (a.type == MT_V_NONE)
        return 0;
    if (n->rhs.kind == O_COL) {
        struct mt_value b = run->get(run->ctx, &n->rhs.col);
        if (b.type == MT_V_NONE)
            return 0;
        return test_op(n->op, mt_value_cmp(&a, &b));
    }
    if (n->rhs.kind == O_NUM) {
        if (a.type != MT_V_NUM)
            return 0;
        return test_op(n->op, a.num < n->rhs.num ? -1 : a.num > n->rhs.num ? 1 : 0);
    }
    if (a.type != MT_V_TEXT)
        return 0;
    if (n->op == OP_GLOB)
        return fnmatch(n->rhs.str, a.text, FNM_NOESCAPE) == 0;
    return test_op(n->op, strcmp(a.text, n->rhs.str));
}

static int node_eval(const struct node *n, const struct mt_filter_run *run)
{
    switch (n->kind) {
    case N_AND: return node_eval(n->a, run) && node_eval(n->b, run);
    case N_OR: return node_eval(n->a, run) || node_eval(n->b, run);
    case N_NOT: return !node_eval(n->a, run);
    case N_CMP: return cmp_eval(n, run);
    }
    return 0;
}

int mt_filter_eval(const struct mt_filter *f, const struct mt_filter_run *run)
{
    return node_eval(f->root, run);
}

static void node_cols(const struct node *n, void (*fn)(void *, const struct mt_col *), void *ctx)
{
    if (!n)
        return;
    if (n->kind == N_CMP) {
        fn(ctx, &n->lhs.col);
        if (n->rhs.kind == O_COL)
            fn(ctx, &n->rhs.col);
        return;
    }
    node_cols(n->a, fn, ctx);
    node_cols(n->b, fn, ctx);
}

void mt_filter_each_col(const struct mt_filter *f, void (*fn)(void *ctx, const struct mt_col *col),
                        void *ctx)
{
    node_cols(f->root, fn, ctx);
}
