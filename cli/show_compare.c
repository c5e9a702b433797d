/* `show RUN --compare RUN2 ...`: the runs side by side, one column each.
 * Identity first (name, state, runtime), then config and summary, the keys
 * whose values differ between the runs first and marked with '*', so what
 * changed between a sweep's neighbours is the first thing read.  A key a
 * run lacks shows "-" and counts as a difference. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_filter.h"
#include "mt_cli.h"
#include "show.h"

#define MAX_KEYS 2000

struct row {
    char *key;
    char **vals; /* per run; NULL: missing */
    int differs;
};

struct table {
    struct row *v;
    size_t n, cap, nruns;
    size_t cur; /* the run being flattened */
    int more;   /* keys over MAX_KEYS */
};

static struct row *row_get(struct table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].key, key) == 0)
            return &t->v[i];
    if (t->n == MAX_KEYS) {
        t->more = 1;
        return NULL;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->v = mt_xrealloc(t->v, t->cap * sizeof *t->v);
    }
    struct row *r = &t->v[t->n++];
    r->key = mt_xstrdup(key);
    r->vals = mt_xcalloc(t->nruns, sizeof *r->vals);
    r->differs = 0;
    return r;
}

static void take(void *ctx, const char *key, const struct mt_value *v)
{
    struct table *t = ctx;
    char buf[4096];
    mt_cli_format_value(v, buf, sizeof buf, 1); /* as printed, not rounded */
    struct row *r = row_get(t, key);
    if (r && !r->vals[t->cur])
        r->vals[t->cur] = mt_xstrdup(buf);
}

static void put(struct table *t, const char *key, const char *val)
{
    struct row *r = row_get(t, key);
    if (r && !r->vals[t->cur])
        r->vals[t->cur] = mt_xstrdup(val ? val : "");
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        for (size_t r = 0; r < t->nruns; r++)
            free(t->v[i].vals[r]);
        free(t->v[i].vals);
        free(t->v[i].key);
    }
    free(t->v);
}

/* s cut to `w` characters (UTF-8 aware), padded to w. */
static void cell(struct mt_buf *b, const char *s, size_t w)
{
    size_t chars = mt_cli_text_width(s);
    if (chars <= w) {
        mt_buf_adds(b, s);
        mt_buf_printf(b, "%*s", (int)(w - chars), "");
        return;
    }
    size_t n = 0, i = 0;
    while (s[i] && n < w - 1) {
        i++;
        while ((s[i] & 0xC0) == 0x80)
            i++;
        n++;
    }
    mt_buf_add(b, s, i);
    mt_buf_adds(b, "\xe2\x80\xa6"); /* ... */
}

static void mark_differences(struct table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct row *r = &t->v[i];
        for (size_t k = 1; k < t->nruns && !r->differs; k++) {
            const char *a = r->vals[0], *b = r->vals[k];
            r->differs = (!a != !b) || (a && strcmp(a, b) != 0);
        }
    }
}

static void print_table(struct mt_buf *b, const char *title, struct table *t, size_t keyw,
                        size_t colw, int differing_first)
{
    mark_differences(t);
    size_t ndiff = 0;
    for (size_t i = 0; i < t->n; i++)
        ndiff += t->v[i].differs;
    if (title)
        mt_buf_printf(b, "%s (%zu of %zu differ):\n", title, ndiff, t->n);
    if (!t->n)
        mt_buf_adds(b, "  (none)\n");
    for (int pass = differing_first ? 0 : 1; pass < 2; pass++)
        for (size_t i = 0; i < t->n; i++) {
            const struct row *r = &t->v[i];
            if (differing_first && r->differs != (pass == 0))
                continue;
            mt_buf_adds(b, r->differs && differing_first ? "* " : "  ");
            cell(b, r->key, keyw);
            for (size_t k = 0; k < t->nruns; k++) {
                mt_buf_adds(b, "  ");
                cell(b, r->vals[k] ? r->vals[k] : "-", colw);
            }
            /* no trailing blanks */
            while (b->len && b->data[b->len - 1] == ' ')
                b->len--;
            mt_buf_addc(b, '\n');
        }
    if (t->more)
        mt_buf_printf(b, "  (more than %d keys; the rest not shown)\n", MAX_KEYS);
}

static size_t key_width(const struct table *t, size_t keyw)
{
    for (size_t i = 0; i < t->n; i++) {
        size_t w = mt_cli_text_width(t->v[i].key);
        if (w > keyw)
            keyw = w;
    }
    return keyw;
}

void mt_show_compare(const struct mt_show_run *runs, size_t nruns, int width)
{
    struct table ident = { .nruns = nruns }, config = { .nruns = nruns },
                 summary = { .nruns = nruns };
    for (size_t k = 0; k < nruns; k++) {
        const cJSON *r = runs[k].run;
        ident.cur = config.cur = summary.cur = k;
        put(&ident, "run", runs[k].id);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "name");
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(r, "state");
        put(&ident, "name", cJSON_IsString(name) ? name->valuestring : "");
        put(&ident, "state", cJSON_IsString(state) ? state->valuestring : "?");
        char rt[32];
        mt_cli_format_duration(runs[k].runtime, rt, sizeof rt);
        put(&ident, "runtime", rt);
        mt_flatten_json(cJSON_GetObjectItemCaseSensitive(r, "config"), MAX_KEYS, take, &config);
        mt_flatten_json(runs[k].summary, MAX_KEYS, take, &summary);
    }
    size_t keyw = key_width(&config, key_width(&summary, 7));
    if (keyw > 28)
        keyw = 28;
    if (width <= 0)
        width = 80;
    /* Columns share what the keys leave, 8 to 24 characters each. */
    long room = (long)width - (long)keyw - 2 - 2 * (long)nruns;
    size_t colw = room > 0 ? (size_t)room / nruns : 8;
    colw = colw < 8 ? 8 : colw > 24 ? 24 : colw;
    struct mt_buf b;
    mt_buf_init(&b, (size_t)64 << 20);
    mt_buf_printf(&b, "compare  %zu runs; * marks the keys whose values differ\n", nruns);
    print_table(&b, NULL, &ident, keyw, colw, 0);
    print_table(&b, "config", &config, keyw, colw, 1);
    print_table(&b, "summary", &summary, keyw, colw, 1);
    fwrite(b.data, 1, b.len, stdout);
    mt_buf_free(&b);
    table_free(&ident);
    table_free(&config);
    table_free(&summary);
}
