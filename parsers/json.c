/* The json preset: a line holding one JSON object, or the repr of a Python
 * dict as Hugging Face's Trainer prints it ({'loss': 0.5, 'epoch': 1.0}).
 * Numbers and booleans become fields; nested objects are flattened with '.'
 * ({"val": {"acc": 1}} gives val.acc); strings, nulls and lists are skipped.
 * A recursive-descent scanner with a depth cap; no allocation. */
#include <string.h>
#include <strings.h>

#include "mt_fields.h"

#define MAX_DEPTH 16

struct jscan {
    const char *s;
    size_t len, i;
    struct mt_fields *out;
    char prefix[1024];
    size_t plen;
    int bad;
};

static void blanks(struct jscan *j)
{
    while (j->i < j->len && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                             j->s[j->i] == '\r'))
        j->i++;
}

/* A quoted string; returns its raw body (escapes left as they are). */
static int string(struct jscan *j, const char **body, size_t *n)
{
    char q = j->s[j->i];
    if (q != '"' && q != '\'')
        return -1;
    size_t start = ++j->i;
    while (j->i < j->len && j->s[j->i] != q) {
        if (j->s[j->i] == '\\')
            j->i++;
        j->i++;
    }
    if (j->i >= j->len)
        return -1;
    *body = j->s + start;
    *n = j->i - start;
    j->i++;
    return 0;
}

static int word(struct jscan *j, const char *w)
{
    size_t n = strlen(w);
    if (j->len - j->i >= n && strncmp(j->s + j->i, w, n) == 0) {
        j->i += n;
        return 1;
    }
    return 0;
}

static void emit(struct jscan *j, const char *text, size_t tlen, double v, int kind, int json)
{
    struct mt_field *f = mt_fields_add(j->out);
    if (!f)
        return;
    const char *key = mt_fields_keep(j->out, j->prefix, j->plen);
    if (!key) {
        j->out->n--;
        j->out->dropped++;
        return;
    }
    f->key = key;
    f->key_len = (uint32_t)(j->plen > MT_MAX_KEY ? MT_MAX_KEY : j->plen);
    f->role = mt_is_default_axis(key, j->plen) ? MT_ROLE_AXIS : MT_ROLE_METRIC;
    f->lower_key = 0;
    f->kind = (unsigned char)kind;
    f->text = text;
    f->text_len = (uint32_t)tlen;
    f->text_is_json = (uint8_t)json;
    f->unit = NULL;
    f->unit_len = 0;
    f->value = v;
}

static int value(struct jscan *j, int depth);

static int object(struct jscan *j, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    j->i++; /* '{' */
    blanks(j);
    if (j->i < j->len && j->s[j->i] == '}')
        return j->i++, 0;
    for (;;) {
        blanks(j);
        const char *k;
        size_t kn;
        if (j->i >= j->len || string(j, &k, &kn) != 0)
            return -1;
        blanks(j);
        if (j->i >= j->len || j->s[j->i] != ':')
            return -1;
        j->i++;
        size_t saved = j->plen;
        int saved_bad = j->bad;
        size_t need = (saved ? 1 : 0) + kn;
        if (saved + need < sizeof j->prefix) {
            if (saved)
                j->prefix[j->plen++] = '.';
            memcpy(j->prefix + j->plen, k, kn);
            j->plen += kn;
        } else {
            j->bad = 1; /* key too long: parse on, emit nothing under it */
        }
        blanks(j);
        if (value(j, depth + 1) != 0)
            return -1;
        j->plen = saved;
        j->bad = saved_bad;
        blanks(j);
        if (j->i < j->len && j->s[j->i] == ',') {
            j->i++;
            continue;
        }
        if (j->i < j->len && j->s[j->i] == '}')
            return j->i++, 0;
        return -1;
    }
}

static int list(struct jscan *j, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    char close = j->s[j->i] == '[' ? ']' : ')';
    j->i++;
    int saved_bad = j->bad;
    j->bad = 1; /* values inside lists are not fields */
    for (;;) {
        blanks(j);
        if (j->i < j->len && j->s[j->i] == close)
            break;
        if (value(j, depth + 1) != 0)
            return -1;
        blanks(j);
        if (j->i < j->len && j->s[j->i] == ',') {
            j->i++;
            continue;
        }
        if (j->i < j->len && j->s[j->i] == close)
            break;
        return -1;
    }
    j->i++;
    j->bad = saved_bad;
    return 0;
}

static int value(struct jscan *j, int depth)
{
    if (j->i >= j->len)
        return -1;
    char c = j->s[j->i];
    if (c == '{')
        return object(j, depth);
    if (c == '[' || c == '(')
        return list(j, depth);
    if (c == '"' || c == '\'') {
        const char *b;
        size_t n;
        return string(j, &b, &n);
    }
    if (word(j, "true") || word(j, "True")) {
        if (!j->bad)
            emit(j, "true", 4, 1, MT_VAL_BOOL, 0);
        return 0;
    }
    if (word(j, "false") || word(j, "False")) {
        if (!j->bad)
            emit(j, "false", 5, 0, MT_VAL_BOOL, 0);
        return 0;
    }
    if (word(j, "null") || word(j, "None"))
        return 0;
    double v;
    int json;
    size_t used = mt_number_scan_json(j->s + j->i, j->len - j->i, &v, &json);
    if (!used)
        return -1;
    const char *text = j->s + j->i;
    j->i += used;
    if (!j->bad)
        emit(j, text, used, v, MT_VAL_NUMBER, json);
    return 0;
}

int mt_json_extract(const char *s, size_t len, struct mt_fields *out)
{
    size_t a = 0, b = len;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    if (b - a < 2 || s[a] != '{' || s[b - 1] != '}')
        return 0;
    struct jscan j = { .s = s, .len = b, .i = a, .out = out };
    uint32_t n0 = out->n, scratch0 = out->scratch_len;
    if (object(&j, 0) != 0 || (blanks(&j), j.i != b)) {
        out->n = n0; /* not an object after all: take nothing */
        out->scratch_len = scratch0;
        return 0;
    }
    return 1;
}
