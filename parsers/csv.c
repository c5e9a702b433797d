/* The csv preset: the first line of a source is the header; each later line
 * gives one field per numeric cell, named after its column.  Columns named
 * like an axis (epoch, step, iteration...) are axes.  Cells may be quoted
 * ("a,b" and "" inside quotes); a tab-separated header switches to tabs. */
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "mt_fields.h"

#define MAX_COLS MT_MAX_FIELDS
#define NAMES_MAX 8192

struct mt_csv {
    int have_header;
    char sep;
    uint32_t ncols;
    uint32_t off[MAX_COLS], len[MAX_COLS]; /* into names */
    char names[NAMES_MAX];
    uint32_t names_len;
};

struct mt_csv *mt_csv_create(void)
{
    struct mt_csv *c = mt_xcalloc(1, sizeof *c);
    c->sep = ',';
    return c;
}

void mt_csv_destroy(struct mt_csv *c)
{
    free(c);
}

/* The next cell of s from *i: its bounds without quotes. */
static void cell(const char *s, size_t len, size_t *i, char sep, size_t *a, size_t *b)
{
    size_t k = *i;
    while (k < len && s[k] == ' ')
        k++;
    if (k < len && s[k] == '"') {
        *a = ++k;
        while (k < len && !(s[k] == '"' && (k + 1 >= len || s[k + 1] != '"')))
            k += (s[k] == '"') ? 2 : 1;
        *b = k < len ? k : len;
        while (k < len && s[k] != sep)
            k++;
    } else {
        *a = k;
        while (k < len && s[k] != sep)
            k++;
        *b = k;
        while (*b > *a && s[*b - 1] == ' ')
            (*b)--;
    }
    *i = k < len ? k + 1 : len + 1;
}

int mt_csv_extract(struct mt_csv *c, const char *s, size_t len, struct mt_fields *out)
{
    if (len == 0)
        return 0;
    if (!c->have_header) {
        c->sep = memchr(s, ',', len) || !memchr(s, '\t', len) ? ',' : '\t';
        size_t i = 0;
        while (i <= len && c->ncols < MAX_COLS) {
            size_t a, b;
            cell(s, len, &i, c->sep, &a, &b);
            if (b - a > NAMES_MAX - c->names_len)
                break;
            c->off[c->ncols] = c->names_len;
            c->len[c->ncols++] = (uint32_t)(b - a);
            memcpy(c->names + c->names_len, s + a, b - a);
            c->names_len += (uint32_t)(b - a);
        }
        c->have_header = 1;
        return 1;
    }
    size_t i = 0;
    for (uint32_t col = 0; col < c->ncols && i <= len; col++) {
        size_t a, b;
        cell(s, len, &i, c->sep, &a, &b);
        if (!c->len[col])
            continue;
        struct mt_field tmp;
        if (mt_value_parse(s + a, b - a, 0, &tmp) != 0)
            continue;
        struct mt_field *f = mt_fields_add(out);
        if (!f)
            break;
        *f = tmp;
        f->key = c->names + c->off[col];
        f->key_len = c->len[col] > MT_MAX_KEY ? MT_MAX_KEY : c->len[col];
        f->lower_key = 0;
        f->role = mt_is_default_axis(f->key, f->key_len) ? MT_ROLE_AXIS : MT_ROLE_METRIC;
    }
    return 1;
}
