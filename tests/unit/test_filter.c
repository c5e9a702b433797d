/* mt_filter: parsing, error positions, evaluation; and mt_index: the SQL a
 * filter compiles to selects exactly the runs the scan's evaluation selects. */
#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/mt_buf.h"
#include "../../common/mt_filter.h"
#include "../../common/mt_index.h"
#include "mt_test.h"

/* ---- a run given as JSON, evaluated directly ---- */

struct fake_run {
    const char *name, *state, *group, *tags; /* tags comma-separated */
    double start, runtime;
    int exit_code;
    cJSON *summary, *config;
};

static const cJSON *lookup(const cJSON *o, const char *key)
{
    for (const cJSON *it = o ? o->child : NULL; it; it = it->next) {
        size_t n = strlen(it->string);
        if (strcmp(it->string, key) == 0 && !cJSON_IsObject(it))
            return it;
        if (cJSON_IsObject(it) && strncmp(it->string, key, n) == 0 && key[n] == '.')
            return lookup(it, key + n + 1);
    }
    return NULL;
}

static char *owned_text;

static struct mt_value fake_get(void *ctx, const struct mt_col *col)
{
    struct fake_run *r = ctx;
    struct mt_value v = { MT_V_NONE, 0, NULL };
    if (col->src != MT_COL_BUILTIN) {
        free(owned_text);
        owned_text = NULL;
        const cJSON *j = lookup(col->src == MT_COL_SUMMARY ? r->summary : r->config, col->key);
        return j ? mt_value_of_json(j, &owned_text) : v;
    }
    switch (col->builtin) {
    case MT_B_NAME: return (struct mt_value){ MT_V_TEXT, 0, r->name };
    case MT_B_STATE: return (struct mt_value){ MT_V_TEXT, 0, r->state };
    case MT_B_GROUP: return r->group ? (struct mt_value){ MT_V_TEXT, 0, r->group } : v;
    case MT_B_CREATED: return (struct mt_value){ MT_V_NUM, r->start, NULL };
    case MT_B_RUNTIME: return (struct mt_value){ MT_V_NUM, r->runtime, NULL };
    case MT_B_EXIT_CODE:
        return r->exit_code >= 0 ? (struct mt_value){ MT_V_NUM, r->exit_code, NULL } : v;
    default: return v;
    }
}

static int fake_has_tag(void *ctx, const char *tag, int glob)
{
    struct fake_run *r = ctx;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", r->tags);
    for (char *p = buf, *c; p; p = c ? c + 1 : NULL) {
        c = strchr(p, ',');
        if (c)
            *c = '\0';
        if (glob ? fnmatch(tag, p, FNM_NOESCAPE) == 0 : strcmp(tag, p) == 0)
            return 1;
    }
    return 0;
}

static int eval_on(const char *expr, struct fake_run *r)
{
    char err[512];
    size_t pos;
    struct mt_filter *f = mt_filter_create(expr, err, sizeof err, &pos);
    if (!f) {
        fprintf(stderr, "    cannot parse %s: %s\n", expr, err);
        return -1;
    }
    struct mt_filter_run fr = { r, fake_get, fake_has_tag };
    int m = mt_filter_eval(f, &fr);
    mt_filter_destroy(f);
    return m;
}

MT_TEST(evaluates_comparisons_and_logic)
{
    struct fake_run r = { "resnet-a", "finished", NULL, "baseline,fp16", 100, 30, 0,
                          cJSON_Parse("{\"val_acc\":0.93,\"loss\":\"NaN\",\"big\":\"Infinity\","
                                      "\"note\":\"ok\"}"),
                          cJSON_Parse("{\"lr\":0.001,\"optim\":{\"name\":\"adam\"},\"fp16\":true}") };
    static const struct { const char *expr; int want; } CASES[] = {
        { "summary.val_acc > 0.9", 1 },
        { "summary.val_acc > 0.9 and config.lr < 0.01", 1 },
        { "summary.val_acc > 0.95 or config.lr >= 0.001", 1 },
        { "not summary.val_acc > 0.9", 0 },
        { "!(summary.val_acc <= 0.9) && config.lr == 1e-3", 1 },
        { "config.optim.name = \"adam\"", 1 },
        { "config.optim.name = 'sgd'", 0 },
        { "config.fp16 = true", 1 },
        { "config.optim.name > 0", 0 },       /* text never equals a number */
        { "summary.loss > 0", 0 },            /* NaN is text, not a number */
        { "summary.loss = \"NaN\"", 1 },
        { "summary.big > 1e300", 1 },         /* Infinity is a number */
        { "summary.missing < 1", 0 },         /* absent: every comparison fails */
        { "not summary.missing < 1", 1 },
        { "tags = \"fp16\"", 1 },
        { "tags != \"fp16\"", 0 },
        { "tags ~ \"base*\"", 1 },
        { "name ~ \"resnet-?\"", 1 },
        { "state = \"finished\" and exit_code = 0", 1 },
        { "group = \"x\"", 0 },
        { "0.9 < summary.val_acc", 1 },       /* literal on the left */
        { "summary.val_acc > config.lr", 1 }, /* column against column */
        { "(summary.val_acc > 0.99 or runtime > 10) and created >= 100", 1 },
    };
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        int got = eval_on(CASES[i].expr, &r);
        if (got != CASES[i].want)
            fprintf(stderr, "    %s: got %d, want %d\n", CASES[i].expr, got, CASES[i].want);
        MT_CHECK(got == CASES[i].want);
    }
    cJSON_Delete(r.summary);
    cJSON_Delete(r.config);
}

MT_TEST(errors_point_at_the_column)
{
    static const struct { const char *expr; size_t pos; const char *msg; } CASES[] = {
        { "summary.val_acc > and x", 18, "expected a value after \">\"" },
        { "summary.val_acc 0.9", 16, "expected a comparison" },
        { "(summary.a > 1", 0, "never closed" },
        { "summary.a > 1)", 13, "closes nothing" },
        { "bogus > 1", 0, "unknown column \"bogus\"" },
        { "name > 3", 7, "name is text" },
        { "runtime = \"x\"", 10, "runtime is a number" },
        { "summary.a = \"open", 12, "unterminated string" },
        { "summary.a > 1 summary.b < 2", 14, "expected \"and\", \"or\"" },
        { "", 0, "empty" },
        { "1 < 2", 0, "needs a column" },
        { "tags > \"a\"", 0, "tags takes" },
        { "summary.a ~ 3", 12, "glob" },
        { "summary.a > 1.2.3", 12, "bad number" },
    };
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        char err[512] = "";
        size_t pos = 999;
        struct mt_filter *f = mt_filter_create(CASES[i].expr, err, sizeof err, &pos);
        MT_CHECK(f == NULL);
        mt_filter_destroy(f);
        if (pos != CASES[i].pos || !strstr(err, CASES[i].msg))
            fprintf(stderr, "    \"%s\": got pos %zu \"%s\", want pos %zu \"%s\"\n", CASES[i].expr,
                    pos, err, CASES[i].pos, CASES[i].msg);
        MT_CHECK(pos == CASES[i].pos);
        MT_CHECK(strstr(err, CASES[i].msg) != NULL);
    }
}

MT_TEST(columns_parse_and_list_the_valid_ones)
{
    struct mt_col c;
    char err[512];
    MT_CHECK(mt_col_parse("summary.train/loss", &c, err, sizeof err) == 0);
    MT_CHECK(c.src == MT_COL_SUMMARY);
    MT_CHECK_STR(c.key, "train/loss");
    mt_col_free(&c);
    MT_CHECK(mt_col_parse("config.`batch size`", &c, err, sizeof err) == 0);
    MT_CHECK_STR(c.key, "batch size");
    MT_CHECK_STR(c.label, "config.batch size");
    mt_col_free(&c);
    MT_CHECK(mt_col_parse("GROUP", &c, err, sizeof err) == 0);
    MT_CHECK(c.src == MT_COL_BUILTIN && c.builtin == MT_B_GROUP);
    mt_col_free(&c);
    MT_CHECK(mt_col_parse("nope", &c, err, sizeof err) != 0);
    MT_CHECK(strstr(err, "summary.KEY") && strstr(err, "runtime"));
}

static void fn(void *ctx, const char *key, const struct mt_value *v)
{
    struct mt_buf *b = ctx;
    if (v->type == MT_V_NUM)
        mt_buf_printf(b, "%s=%g;", key, v->num);
    else
        mt_buf_printf(b, "%s='%s';", key, v->text);
}

MT_TEST(flattens_nested_objects_with_a_cap)
{
    cJSON *o = cJSON_Parse("{\"a\":1,\"b\":{\"c\":\"x\",\"d\":{\"e\":true}},\"f\":[1,2],\"g\":null}");
    struct mt_buf seen;
    mt_buf_init(&seen, 4096);
    mt_buf_add(&seen, "", 0);
    MT_CHECK(mt_flatten_json(o, 100, fn, &seen) == 0);
    MT_CHECK_STR(seen.data, "a=1;b.c='x';b.d.e=1;f='[1,2]';");
    mt_buf_reset(&seen);
    MT_CHECK(mt_flatten_json(o, 2, fn, &seen) == 2);
    mt_buf_free(&seen);
    cJSON_Delete(o);
}

/* ---- the index agrees with the evaluation ---- */

static const char *const FILTERS[] = {
    "summary.val_acc > 0.9",
    "summary.val_acc > 0.5 and config.lr < 0.01",
    "not summary.val_acc > 0.5",
    "config.optim = \"adam\" or config.optim = \"sgd\"",
    "config.optim != \"adam\"",
    "tags = \"b\" and not tags = \"c\"",
    "tags ~ \"[ab]\"",
    "summary.loss >= 1 or summary.loss = \"NaN\"",
    "summary.val_acc > config.lr and state = \"finished\"",
    "summary.val_acc > summary.loss",
    "name ~ \"run-1*\" or exit_code != 0",
    "config.net.layers >= 4 and config.net.wide = true",
    "group = \"g1\" or runtime < 50",
    "summary.inf > 1e308",
};

static int collect_ids(void *ctx, const struct mt_index_run *r, const struct mt_value *v)
{
    (void)v;
    struct mt_buf *b = ctx;
    mt_buf_printf(b, "%s ", r->id);
    return 0;
}

MT_TEST(index_selects_what_the_scan_selects)
{
    char dir[] = "/tmp/mt_test_filter.XXXXXX";
    MT_CHECK(mkdtemp(dir) != NULL);
    char err[512];
    struct mt_index *ix = mt_index_open(dir, err, sizeof err);
    MT_CHECK(ix != NULL);
    if (!ix)
        return;
    enum { N = 300 };
    static struct fake_run runs[N];
    static char ids[N][16], names[N][32], tags[N][32];
    srand(7);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "r%04d", i);
        snprintf(names[i], sizeof names[i], "run-%d", i);
        tags[i][0] = '\0';
        const char *t[] = { "a", "b", "c" };
        for (int k = 0; k < 3; k++)
            if (rand() % 2)
                snprintf(tags[i] + strlen(tags[i]), sizeof tags[i] - strlen(tags[i]), "%s%s",
                         tags[i][0] ? "," : "", t[k]);
        char sum[512], cfg[512];
        const char *loss = rand() % 10 == 0 ? "\"NaN\"" : NULL;
        char lossbuf[32];
        snprintf(lossbuf, sizeof lossbuf, "%.3f", (rand() % 3000) / 1000.0);
        snprintf(sum, sizeof sum, "{%s\"loss\":%s%s}",
                 rand() % 5 ? "\"val_acc\":0." : "", loss ? loss : lossbuf,
                 rand() % 7 == 0 ? ",\"inf\":\"Infinity\"" : "");
        if (sum[1] == '"' && sum[2] == 'v') {
            /* val_acc present: give it digits */
            char tmp[512];
            snprintf(tmp, sizeof tmp, "{\"val_acc\":0.%03d,\"loss\":%s%s}", rand() % 1000,
                     loss ? loss : lossbuf, strstr(sum, "inf") ? ",\"inf\":\"Infinity\"" : "");
            snprintf(sum, sizeof sum, "%s", tmp);
        }
        const char *optim[] = { "adam", "sgd", "lamb" };
        snprintf(cfg, sizeof cfg, "{\"lr\":%g,\"optim\":\"%s\",\"net\":{\"layers\":%d,\"wide\":%s}}",
                 pow(10, -(rand() % 5)), optim[rand() % 3], rand() % 8,
                 rand() % 2 ? "true" : "false");
        runs[i] = (struct fake_run){ names[i], rand() % 4 ? "finished" : "failed",
                                     rand() % 3 ? "g1" : NULL, tags[i], 1000 + i,
                                     rand() % 100, rand() % 4 ? 0 : 1,
                                     cJSON_Parse(sum), cJSON_Parse(cfg) };
        struct mt_index_run r = { .id = ids[i], .project = "p", .name = names[i],
                                  .group = runs[i].group, .state = runs[i].state,
                                  .tags = tags[i], .config_json = cfg, .summary_json = sum,
                                  .start_time = runs[i].start, .runtime = runs[i].runtime,
                                  .exit_code = runs[i].exit_code };
        MT_CHECK(runs[i].summary && runs[i].config);
        MT_CHECK(mt_index_put(ix, &r) == 0);
    }
    for (size_t f = 0; f < sizeof FILTERS / sizeof *FILTERS; f++) {
        size_t pos;
        struct mt_filter *flt = mt_filter_create(FILTERS[f], err, sizeof err, &pos);
        MT_CHECK(flt != NULL);
        if (!flt)
            continue;
        struct mt_buf got, want;
        mt_buf_init(&got, 1 << 20);
        mt_buf_init(&want, 1 << 20);
        mt_buf_add(&got, "", 0);
        mt_buf_add(&want, "", 0);
        /* Both in start_time order, newest first. */
        struct mt_index_query q = { .project = "p", .filter = flt };
        MT_CHECK(mt_index_query(ix, &q, collect_ids, &got) == 0);
        size_t matched = 0;
        for (int i = N - 1; i >= 0; i--) {
            struct mt_filter_run fr = { &runs[i], fake_get, fake_has_tag };
            if (mt_filter_eval(flt, &fr)) {
                mt_buf_printf(&want, "%s ", ids[i]);
                matched++;
            }
        }
        if (strcmp(got.data, want.data) != 0)
            fprintf(stderr, "    %s:\n      index %s\n      scan  %s\n", FILTERS[f], got.data,
                    want.data);
        MT_CHECK_STR(got.data, want.data);
        /* A filter that selects nothing or everything would prove little. */
        MT_CHECK(matched > 0 && matched < N);
        mt_buf_free(&got);
        mt_buf_free(&want);
        mt_filter_destroy(flt);
    }
    mt_index_close(ix);
    for (int i = 0; i < N; i++) {
        cJSON_Delete(runs[i].summary);
        cJSON_Delete(runs[i].config);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    MT_CHECK(system(cmd) == 0);
}

MT_TEST(index_sorts_numbers_then_text_then_missing)
{
    char dir[] = "/tmp/mt_test_sort.XXXXXX";
    MT_CHECK(mkdtemp(dir) != NULL);
    char err[512];
    struct mt_index *ix = mt_index_open(dir, err, sizeof err);
    MT_CHECK(ix != NULL);
    if (!ix)
        return;
    const char *sums[] = { "{\"a\":2}", "{}", "{\"a\":3}", "{\"a\":\"text\"}", "{\"a\":1}" };
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i);
        struct mt_index_run r = { .id = id, .project = "p", .summary_json = sums[i],
                                  .start_time = i, .exit_code = -1 };
        MT_CHECK(mt_index_put(ix, &r) == 0);
    }
    struct mt_sort_key key = { .desc = 1 };
    MT_CHECK(mt_col_parse("summary.a", &key.col, err, sizeof err) == 0);
    struct mt_buf got;
    mt_buf_init(&got, 4096);
    struct mt_index_query q = { .sort = &key, .nsort = 1 };
    MT_CHECK(mt_index_query(ix, &q, collect_ids, &got) == 0);
    MT_CHECK_STR(got.data, "s2 s0 s4 s3 s1 "); /* numbers, text, missing: either way */
    mt_buf_reset(&got);
    key.desc = 0;
    q.limit = 3;
    MT_CHECK(mt_index_query(ix, &q, collect_ids, &got) == 0);
    MT_CHECK_STR(got.data, "s4 s0 s2 ");
    mt_buf_free(&got);
    mt_col_free(&key.col);
    mt_index_close(ix);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    MT_CHECK(system(cmd) == 0);
}

MT_TEST(index_sorts_by_several_keys_and_looks_runs_up)
{
    char dir[] = "/tmp/mt_test_sort2.XXXXXX";
    MT_CHECK(mkdtemp(dir) != NULL);
    char err[512];
    struct mt_index *ix = mt_index_open(dir, err, sizeof err);
    MT_CHECK(ix != NULL);
    if (!ix)
        return;
    /* a ties in pairs; b decides; c is missing in one */
    const char *sums[] = { "{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":1}", "{\"a\":2,\"b\":9}",
                           "{\"a\":2,\"b\":3}" };
    const char *names[] = { "x", "y", "x", "z" };
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "k%d", i);
        struct mt_index_run r = { .id = id, .project = i < 3 ? "p" : "q", .name = names[i],
                                  .summary_json = sums[i], .start_time = i, .exit_code = -1 };
        MT_CHECK(mt_index_put(ix, &r) == 0);
    }
    struct mt_sort_key keys[2] = { { .desc = 1 }, { .desc = 0 } };
    MT_CHECK(mt_col_parse("summary.a", &keys[0].col, err, sizeof err) == 0);
    MT_CHECK(mt_col_parse("summary.b", &keys[1].col, err, sizeof err) == 0);
    struct mt_buf got;
    mt_buf_init(&got, 4096);
    struct mt_index_query q = { .sort = keys, .nsort = 2 };
    MT_CHECK(mt_index_query(ix, &q, collect_ids, &got) == 0);
    MT_CHECK_STR(got.data, "k3 k2 k1 k0 ");
    mt_buf_reset(&got);
    keys[1].desc = 1;
    MT_CHECK(mt_index_query(ix, &q, collect_ids, &got) == 0);
    MT_CHECK_STR(got.data, "k2 k3 k0 k1 ");
    MT_CHECK(mt_index_lookup(ix, NULL, MT_INDEX_BY_NAME, "x", 10, NULL, NULL) == 2);
    MT_CHECK(mt_index_lookup(ix, "q", MT_INDEX_BY_NAME, "x", 10, NULL, NULL) == 0);
    MT_CHECK(mt_index_lookup(ix, NULL, MT_INDEX_BY_ID, "k", 10, NULL, NULL) == 4);
    MT_CHECK(mt_index_lookup(ix, "p", MT_INDEX_BY_NEWEST, NULL, 10, NULL, NULL) == 3);
    MT_CHECK(mt_index_has_key(ix, "q", 0, "b") == 1);
    MT_CHECK(mt_index_has_key(ix, "q", 0, "c") == 0);
    MT_CHECK(mt_index_has_key(ix, NULL, 1, "a") == 0);
    mt_buf_free(&got);
    mt_col_free(&keys[0].col);
    mt_col_free(&keys[1].col);
    mt_index_close(ix);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    MT_CHECK(system(cmd) == 0);
}

int main(void)
{
    return mt_test_main();
}
