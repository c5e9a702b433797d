/* mt_json: see mt_json.h. */
#include "mt_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_json_is_number_literal(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i == n)
        return 0;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

cJSON *mt_json_create_number(double value, const char *literal, size_t len)
{
    cJSON *n = cJSON_CreateNumber(value);
    if (n && literal && mt_json_is_number_literal(literal, len)) {
        n->valuestring = malloc(len + 1);
        if (n->valuestring) {
            memcpy(n->valuestring, literal, len);
            n->valuestring[len] = '\0';
        }
    }
    return n;
}

/* The next number token of JSON text at *p, or NULL at the end.  Strings
 * (keys among them) and the words true/false/null are skipped.  The tokens
 * come in the order in which cJSON_Parse made the number nodes. */
static const char *next_number(const char **p, size_t *len)
{
    const char *s = *p;
    while (*s) {
        if (*s == '"') {
            for (s++; *s && *s != '"'; s++)
                if (*s == '\\' && s[1])
                    s++;
            if (*s)
                s++;
        } else if (*s == '-' || (*s >= '0' && *s <= '9')) {
            const char *start = s;
            while (*s && strchr("0123456789+-eE.", *s))
                s++;
            *len = (size_t)(s - start);
            *p = s;
            return start;
        } else {
            s++;
        }
    }
    *p = s;
    return NULL;
}

static void attach_literals(cJSON *item, const char **text)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            size_t len = 0;
            const char *tok = next_number(text, &len);
            if (tok && !item->valuestring && mt_json_is_number_literal(tok, len)) {
                item->valuestring = malloc(len + 1);
                if (item->valuestring) {
                    memcpy(item->valuestring, tok, len);
                    item->valuestring[len] = '\0';
                }
            }
        } else if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
            attach_literals(item->child, text);
        }
    }
}

cJSON *mt_json_parse_literal(const char *text)
{
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    if (root) {
        const char *p = text;
        attach_literals(root, &p);
    }
    return root;
}

/* Number nodes with a literal, collected so they print as raw text. */
struct nodes {
    cJSON **v;
    size_t n, cap;
};

static void collect(cJSON *item, int top, struct nodes *out)
{
    for (; item; item = top ? NULL : item->next) {
        if (cJSON_IsNumber(item) && item->valuestring &&
            mt_json_is_number_literal(item->valuestring, strlen(item->valuestring))) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 16;
                cJSON **v = realloc(out->v, cap * sizeof *v);
                if (!v)
                    continue; /* printed as its double instead */
                out->v = v, out->cap = cap;
            }
            out->v[out->n++] = item;
        } else if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
            collect(item->child, 0, out);
        }
    }
}

char *mt_json_print_literal(const cJSON *item, int formatted)
{
    if (!item)
        return NULL;
    /* cJSON prints a raw node's valuestring as is: our numbers turn raw for
     * the length of the print, then back. */
    struct nodes ours = { 0 };
    collect((cJSON *)item, 1, &ours);
    for (size_t i = 0; i < ours.n; i++)
        ours.v[i]->type = (ours.v[i]->type & ~0xff) | cJSON_Raw;
    char *s = formatted ? cJSON_Print(item) : cJSON_PrintUnformatted(item);
    for (size_t i = 0; i < ours.n; i++)
        ours.v[i]->type = (ours.v[i]->type & ~0xff) | cJSON_Number;
    free(ours.v);
    return s;
}

void mt_json_format_double(double d, char *buf, size_t size)
{
    if (!size)
        return;
    if (isfinite(d) && d == floor(d) && fabs(d) < 1e15) {
        snprintf(buf, size, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

const char *mt_json_number_text(const cJSON *item, char *buf, size_t size)
{
    if (item->valuestring && *item->valuestring)
        return item->valuestring;
    mt_json_format_double(item->valuedouble, buf, size);
    return buf;
}
