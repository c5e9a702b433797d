/* mt_history: see mt_history.h. */
#include "mt_history.h"

#include <ctype.h>
#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../config/mt_config.h"

#define MAX_KEYS 10000     /* distinct keys per run; more are dropped and counted */
#define TEXT_MAX 40        /* numbers longer than this are re-formatted */
#define ROW_MAX (1u << 20) /* bytes of one row's JSON */
#define STR_MAX 1024       /* bytes of a text value kept */
#define UNIT_MAX 16

struct key {
    char *name;
    char *json_name;   /* ,"name": ready to copy into rows */
    uint32_t json_len;
    uint32_t len;
    uint32_t hash;
    uint8_t is_axis;
    uint8_t has_value;
    uint8_t text_len;  /* 0: format `value` */
    uint8_t kind;      /* enum mt_value_kind of the last value */
    uint8_t unit_len;
    uint8_t goal;
    uint16_t summary;  /* MT_SUM_* */
    char text[TEXT_MAX];
    char unit[UNIT_MAX];
    double value;
    char *str;         /* the last text value (MT_VAL_TEXT) */
    const char *step_metric;
    uint8_t step_metric_fixed; /* chosen (settings, or the axis of its first line) */
    uint64_t since;    /* h->values when an axis took its current value */
    double first, min, max, sum, best;
    uint64_t count, nstat;
    uint64_t pending_gen; /* == h->gen: in the row being assembled */
};

struct mt_history {
    struct key *keys;
    uint32_t nkeys;
    uint32_t *slots; /* open addressing: index+1, 0 empty */
    uint32_t nslots;
    uint32_t *pending; /* key indexes of the row being assembled, in order */
    uint32_t npending, pending_metrics;
    uint64_t last_metric; /* h->values when the row's latest metric was added */
    uint64_t metrics_gen; /* bumped when a metric's settings become known */
    uint64_t gen;
    uint32_t *axes; /* axis keys ever seen, in order */
    uint32_t naxes;
    int line_axis;  /* the axis the current line gave (its `step`, else its first), or -1 */
    int last_axis;  /* the axis set most recently, or -1 */
    double start_unix, runtime_offset, last_ts;
    uint64_t step, rows, values, keys_dropped;
    struct mt_buf row;
    cJSON *restored; /* summary of the run before it was resumed */
    /* The key each field of the last line had, by its place in the line
     * (index + 1, 0 none): a loop prints the same keys in the same order,
     * so most fields find their key with one compare and no hash. */
    uint32_t hint[MT_MAX_FIELDS];
    mt_history_row_fn emit;
    void *ctx;
    const struct mt_metric_spec *user, *defaults;
    size_t nuser, ndefaults;
};

void mt_history_set_metrics(struct mt_history *h, const struct mt_metric_spec *user, size_t nuser,
                            const struct mt_metric_spec *defaults, size_t ndefaults)
{
    h->user = user;
    h->nuser = nuser;
    h->defaults = defaults;
    h->ndefaults = ndefaults;
}

static const struct mt_metric_spec *spec_for(const struct mt_history *h, const char *name)
{
    for (size_t i = 0; i < h->nuser; i++)
        if (fnmatch(h->user[i].name, name, 0) == 0)
            return &h->user[i];
    for (size_t i = 0; i < h->ndefaults; i++)
        if (fnmatch(h->defaults[i].name, name, 0) == 0)
            return &h->defaults[i];
    return NULL;
}

/* ASCII only, like the keys' folding elsewhere: no locale lookup per byte. */
static inline unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static uint32_t hash_key(const char *s, size_t n, int lower)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (lower)
            c = ascii_lower(c);
        h = (h ^ c) * 16777619u;
    }
    return h;
}

static inline __attribute__((always_inline)) int key_equal(const struct key *k, const char *s,
                                                         size_t n, int lower)
{
    if (k->len != n)
        return 0;
    if (!lower) {
        /* keys are short: a byte loop beats a call to memcmp */
        for (size_t i = 0; i < n; i++)
            if (k->name[i] != s[i])
                return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (k->name[i] != (char)ascii_lower((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Finds a key that has a value; -1 when there is none. */
static int find_key(const struct mt_history *h, const char *s, size_t n)
{
    uint32_t hv = hash_key(s, n, 0), mask = h->nslots - 1;
    for (uint32_t i = hv & mask;; i = (i + 1) & mask) {
        uint32_t slot = h->slots[i];
        if (!slot)
            return -1;
        const struct key *k = &h->keys[slot - 1];
        if (k->hash == hv && key_equal(k, s, n, 0))
            return k->has_value ? (int)slot - 1 : -1;
    }
}

static const char *const stat_suffix[] = { ".first", ".min", ".max", ".mean", ".best", NULL };

static int restored_number(const struct mt_history *h, const char *name, const char *suffix,
                           double *out)
{
    char full[MT_MAX_KEY + 16];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h->restored, full);
    if (cJSON_IsNumber(v))
        return *out = v->valuedouble, 1;
    return 0;
}

/* A metric of a resumed run goes on from the statistics its summary had
 * (min, max, best, first; the mean goes on as if from one value). */
static void seed_stats(const struct mt_history *h, struct key *k)
{
    double v;
    if (restored_number(h, k->name, "", &v))
        k->count = 1, k->first = v;
    if (restored_number(h, k->name, ".first", &v))
        k->count = 1, k->first = v;
    int any = 0;
    double mn = 0, mx = 0, mean = 0, best = 0;
    int has_min = restored_number(h, k->name, ".min", &mn);
    int has_max = restored_number(h, k->name, ".max", &mx);
    int has_mean = restored_number(h, k->name, ".mean", &mean);
    int has_best = restored_number(h, k->name, ".best", &best);
    any = has_min || has_max || has_mean || has_best;
    if (!any)
        return;
    double base = has_mean ? mean : has_best ? best : has_min ? mn : mx;
    k->nstat = 1;
    k->min = has_min ? mn : has_best && k->goal == MT_GOAL_MIN ? best : base;
    k->max = has_max ? mx : has_best && k->goal == MT_GOAL_MAX ? best : base;
    k->sum = base;
    k->best = has_best ? best : k->goal == MT_GOAL_MAX ? k->max : k->min;
    if (!k->count)
        k->count = 1;
}

/* Is a restored summary entry shadowed by a live key ("loss.min" by loss)? */
static int restored_shadowed(const struct mt_history *h, const char *name, size_t n)
{
    if (find_key(h, name, n) >= 0)
        return 1;
    for (int s = 0; stat_suffix[s]; s++) {
        size_t sl = strlen(stat_suffix[s]);
        if (n > sl && strcmp(name + n - sl, stat_suffix[s]) == 0 && find_key(h, name, n - sl) >= 0)
            return 1;
    }
    return 0;
}

/* Finds or adds a key; returns its index or -1 when the table is full. */
static int intern(struct mt_history *h, const char *s, size_t n, int lower, int is_axis)
{
    uint32_t hv = hash_key(s, n, lower);
    uint32_t mask = h->nslots - 1;
    for (uint32_t i = hv & mask;; i = (i + 1) & mask) {
        uint32_t slot = h->slots[i];
        if (!slot) {
            if (h->nkeys >= MAX_KEYS) {
                h->keys_dropped++;
                return -1;
            }
            struct key *k = &h->keys[h->nkeys];
            memset(k, 0, sizeof *k);
            k->name = mt_xstrndup(s, n);
            if (lower)
                for (size_t j = 0; j < n; j++)
                    k->name[j] = (char)ascii_lower((unsigned char)k->name[j]);
            k->len = (uint32_t)n;
            k->hash = hv;
            struct mt_buf jn;
            mt_buf_init(&jn, 8 * n + 16);
            mt_buf_addc(&jn, ',');
            mt_buf_json_string(&jn, k->name, n);
            mt_buf_addc(&jn, ':');
            k->json_name = jn.data;
            k->json_len = (uint32_t)jn.len;
            k->is_axis = (uint8_t)is_axis;
            const struct mt_metric_spec *spec = spec_for(h, k->name);
            k->summary = spec && spec->summary ? (uint16_t)spec->summary : MT_SUM_LAST;
            k->goal = spec ? (uint8_t)spec->goal : 0;
            k->step_metric = spec ? spec->step_metric : NULL;
            k->step_metric_fixed = k->step_metric != NULL;
            if (h->restored && !is_axis)
                seed_stats(h, k);
            h->slots[i] = ++h->nkeys;
            if (is_axis)
                h->axes[h->naxes++] = h->nkeys - 1;
            return (int)h->nkeys - 1;
        }
        struct key *k = &h->keys[slot - 1];
        if (k->hash == hv && key_equal(k, s, n, lower))
            return (int)slot - 1;
    }
}

/* intern, trying the key of the same field of the last line first. */
static inline int intern_hinted(struct mt_history *h, uint32_t *hint, const char *s, size_t n,
                                int lower, int is_axis)
{
    if (*hint && key_equal(&h->keys[*hint - 1], s, n, lower))
        return (int)*hint - 1;
    int id = intern(h, s, n, lower, is_axis);
    if (id >= 0)
        *hint = (uint32_t)id + 1;
    return id;
}

struct mt_history *mt_history_create(double start_unix, uint64_t first_step,
                                     double runtime_offset, mt_history_row_fn row, void *ctx)
{
    struct mt_history *h = mt_xcalloc(1, sizeof *h);
    h->keys = mt_xcalloc(MAX_KEYS, sizeof *h->keys);
    h->nslots = 32768; /* power of two, > 2 * MAX_KEYS */
    h->slots = mt_xcalloc(h->nslots, sizeof *h->slots);
    h->pending = mt_xcalloc(MAX_KEYS, sizeof *h->pending);
    h->axes = mt_xcalloc(MAX_KEYS, sizeof *h->axes);
    h->gen = 1;
    h->line_axis = h->last_axis = -1;
    h->start_unix = start_unix;
    h->runtime_offset = runtime_offset;
    h->step = first_step;
    h->emit = row;
    h->ctx = ctx;
    mt_buf_init(&h->row, ROW_MAX);
    return h;
}

void mt_history_destroy(struct mt_history *h)
{
    if (!h)
        return;
    for (uint32_t i = 0; i < h->nkeys; i++) {
        free(h->keys[i].name);
        free(h->keys[i].json_name);
        free(h->keys[i].str);
    }
    free(h->keys);
    free(h->slots);
    free(h->pending);
    free(h->axes);
    mt_buf_free(&h->row);
    cJSON_Delete(h->restored);
    free(h);
}

static void put_value(struct mt_buf *b, const struct key *k)
{
    if (k->kind == MT_VAL_TEXT)
        mt_buf_json_string(b, k->str ? k->str : "", k->str ? strlen(k->str) : 0);
    else if (k->text_len)
        mt_buf_add(b, k->text, k->text_len);
    else
        mt_buf_json_number(b, k->value);
}

static void put_pair(struct mt_buf *b, const struct key *k)
{
    mt_buf_add(b, k->json_name, k->json_len);
    put_value(b, k);
}

/* The keys of the row being closed, in row order: the axes in force first,
 * then the row's own values in the order seen.  Walk with *i starting at 0;
 * NULL at the end. */
static inline const struct key *row_key(const struct mt_history *h, uint32_t *i)
{
    for (; *i < h->naxes; (*i)++) {
        const struct key *k = &h->keys[h->axes[*i]];
        if (k->has_value)
            return (*i)++, k;
    }
    for (; *i - h->naxes < h->npending; (*i)++) {
        const struct key *k = &h->keys[h->pending[*i - h->naxes]];
        if (!k->is_axis)
            return (*i)++, k;
    }
    return NULL;
}

/* Copies n bytes with at most a few word moves, no call: the pieces of a
 * row are short (a key, a number) and a row has about ten of them. */
static inline char *put_bytes(char *p, const void *src, size_t n)
{
    const char *s = src;
    if (n >= 8) {
        uint64_t w;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, s + i, 8);
            memcpy(p + i, &w, 8);
        }
        memcpy(&w, s + n - 8, 8); /* the last 8, overlapping what was copied */
        memcpy(p + n - 8, &w, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(p, &a, 4);
        memcpy(p + n - 4, &b, 4);
    } else if (n) {
        p[0] = s[0];
        p[n / 2] = s[n / 2];
        p[n - 1] = s[n - 1];
    }
    return p + n;
}

/* The common row, every value written as it was printed (numbers and
 * booleans): sized once, then copied straight into the buffer, with no
 * check per piece.  Rows are written at up to a million a second.  Returns
 * 0 when the row needs the general path. */
static int flush_verbatim(struct mt_history *h, struct mt_buf *b, double runtime, double ts_unix)
{
    if (!(runtime < 9e9) || !(ts_unix > -9e9 && ts_unix < 9e9))
        return 0;
    size_t need = 96; /* {"_step":20 digits,"_runtime":...,"_timestamp":...} */
    const struct key *k;
    for (uint32_t i = 0; (k = row_key(h, &i));) {
        if (k->kind == MT_VAL_TEXT || !k->text_len)
            return 0;
        need += k->json_len + k->text_len;
    }
    char *p = mt_buf_reserve(b, need);
    if (!p)
        return 0;
    char tmp[32], *end = tmp + sizeof tmp, *t;
    p = put_bytes(p, "{\"_step\":", 9);
    t = mt_digits_before(end, h->step, 1);
    p = put_bytes(p, t, (size_t)(end - t));
    p = put_bytes(p, ",\"_runtime\":", 12);
    t = mt_fixed_before(end, runtime, 3);
    p = put_bytes(p, t, (size_t)(end - t));
    p = put_bytes(p, ",\"_timestamp\":", 14);
    t = mt_fixed_before(end, ts_unix, 6);
    p = put_bytes(p, t, (size_t)(end - t));
    for (uint32_t i = 0; (k = row_key(h, &i));) {
        p = put_bytes(p, k->json_name, k->json_len);
        p = put_bytes(p, k->text, k->text_len);
    }
    *p++ = '}';
    mt_buf_commit(b, p);
    return 1;
}

/* Any row: values of every kind, through the buffer's checked appends. */
static void flush_general(struct mt_history *h, struct mt_buf *b, double runtime, double ts_unix)
{
    mt_buf_adds(b, "{\"_step\":");
    mt_buf_u64(b, h->step);
    mt_buf_adds(b, ",\"_runtime\":");
    mt_buf_fixed(b, runtime, 3);
    mt_buf_adds(b, ",\"_timestamp\":");
    mt_buf_fixed(b, ts_unix, 6);
    const struct key *k;
    for (uint32_t i = 0; (k = row_key(h, &i));)
        put_pair(b, k);
    mt_buf_addc(b, '}');
}

void mt_history_flush(struct mt_history *h, double ts_unix)
{
    if (!h->pending_metrics) {
        h->npending = 0;
        h->gen++;
        return;
    }
    if (ts_unix < h->last_ts)
        ts_unix = h->last_ts;
    struct mt_buf *b = &h->row;
    mt_buf_reset(b);
    double runtime = ts_unix - h->start_unix + h->runtime_offset;
    if (runtime < 0)
        runtime = 0;
    if (!flush_verbatim(h, b, runtime, ts_unix)) {
        mt_buf_reset(b);
        flush_general(h, b, runtime, ts_unix);
    }
    h->emit(h->ctx, b->data, b->len);
    h->step++;
    h->rows++;
    h->npending = 0;
    h->pending_metrics = 0;
    h->gen++;
}

static inline __attribute__((always_inline)) void set_value(struct key *k,
                                                           const struct mt_field *f)
{
    k->value = f->value;
    k->has_value = 1;
    k->text_len = 0;
    k->kind = f->kind;
    if (f->kind == MT_VAL_TEXT) {
        size_t n = f->text_len < STR_MAX ? f->text_len : STR_MAX;
        char *s = realloc(k->str, n + 1);
        if (!s)
            abort();
        memcpy(s, f->text, n);
        s[n] = '\0';
        k->str = s;
        return;
    }
    if (f->kind == MT_VAL_BOOL) {
        memcpy(k->text, f->value ? "true" : "false", f->value ? 4 : 5);
        k->text_len = f->value ? 4 : 5;
    } else if (f->text_is_json && f->text_len <= TEXT_MAX && isfinite(f->value)) {
        /* verbatim, as printed; 1e400 is not (it reads back as infinity) */
        put_bytes(k->text, f->text, f->text_len);
        k->text_len = (uint8_t)f->text_len;
    }
    if (f->unit_len && !k->unit_len) {
        size_t n = f->unit_len < UNIT_MAX ? f->unit_len : UNIT_MAX;
        memcpy(k->unit, f->unit, n);
        k->unit_len = (uint8_t)n;
    }
    /* summary statistics; NaN takes part only in first/last */
    double v = f->value;
    if (k->count++ == 0)
        k->first = v;
    if (isnan(v))
        return;
    if (k->nstat++ == 0) {
        k->min = k->max = k->best = v;
        k->sum = v;
        return;
    }
    k->sum += v;
    if (v < k->min)
        k->min = v;
    if (v > k->max)
        k->max = v;
    k->best = k->goal == MT_GOAL_MAX ? k->max : k->min;
}

static void add_field(struct mt_history *h, const struct mt_field *f, uint32_t *hint,
                      double ts_unix)
{
    int axis = f->role == MT_ROLE_AXIS;
    int id = intern_hinted(h, hint, f->key, f->key_len, f->lower_key, axis);
    if (id < 0)
        return;
    struct key *k = &h->keys[id];
    if (k->is_axis) {
        /* A new axis value closes the row of the old one. */
        /* A new value of an axis closes the row whose metrics were printed
         * at its old value.  Metrics printed before the axis had its old
         * value do not belong to it (a progress line on stderr between a
         * trainer's stdout lines must not split them, however the two
         * streams interleaved on their way to the console). */
        if (k->has_value && k->value != f->value && h->pending_metrics &&
            k->since < h->last_metric)
            mt_history_flush(h, h->last_ts);
    } else if (k->pending_gen == h->gen) {
        mt_history_flush(h, h->last_ts); /* key repeats: next step (Guild) */
    }
    int changed = !k->has_value || k->value != f->value;
    set_value(k, f);
    h->values++;
    if (k->is_axis && changed)
        k->since = h->values;
    else if (!k->is_axis)
        h->last_metric = h->values;
    if (k->is_axis) {
        /* The line's own step: a group named `step` wins over other axes. */
        if (h->line_axis < 0 || (k->len == 4 && memcmp(k->name, "step", 4) == 0))
            h->line_axis = id;
        h->last_axis = id;
    } else if (!k->step_metric_fixed) {
        /* As W&B's define_metric(step_metric=...): a metric is plotted
         * against the axis printed beside it the first time (else the axis
         * in force), unless the config says otherwise. */
        int axis = h->line_axis >= 0 ? h->line_axis : h->last_axis;
        k->step_metric = axis >= 0 ? h->keys[axis].name : NULL;
        k->step_metric_fixed = 1;
        h->metrics_gen++;
    }
    if (k->pending_gen != h->gen) {
        k->pending_gen = h->gen;
        h->pending[h->npending++] = (uint32_t)id;
        if (!k->is_axis)
            h->pending_metrics++;
    }
    h->last_ts = ts_unix;
}

/* A result printed once (MT_ROLE_SUMMARY): the summary's value of the key,
 * in no row.  A row being assembled that holds the key is complete first,
 * so that it keeps the value it was printed with. */
static void add_summary(struct mt_history *h, const struct mt_field *f)
{
    int id = intern(h, f->key, f->key_len, f->lower_key, 0);
    if (id < 0)
        return;
    struct key *k = &h->keys[id];
    if (k->is_axis)
        return;
    if (k->pending_gen == h->gen)
        mt_history_flush(h, h->last_ts);
    if (!k->has_value)
        h->metrics_gen++; /* run.json's metrics lists it */
    set_value(k, f);
    h->values++;
}

void mt_history_add(struct mt_history *h, const struct mt_fields *fs, double ts_unix)
{
    /* The axes of a line first: they apply to the metrics beside them. */
    h->line_axis = -1;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < fs->n; i++) {
            const struct mt_field *f = &fs->f[i];
            if (pass && f->role == MT_ROLE_SUMMARY)
                add_summary(h, f);
            if (f->role != (pass ? MT_ROLE_METRIC : MT_ROLE_AXIS))
                continue;
            if (f->role == MT_ROLE_AXIS && f->kind != MT_VAL_NUMBER)
                continue;
            add_field(h, f, &h->hint[i], ts_unix);
        }
}

static void put_stat(struct mt_buf *b, int *first, const struct key *k, const char *suffix,
                     double v)
{
    if (!*first)
        mt_buf_addc(b, ',');
    *first = 0;
    if (suffix) {
        struct mt_buf name;
        mt_buf_init(&name, MT_MAX_KEY + 16);
        mt_buf_add(&name, k->name, k->len);
        mt_buf_adds(&name, suffix);
        mt_buf_json_string(b, name.data, name.len);
        mt_buf_free(&name);
        mt_buf_addc(b, ':');
        mt_buf_json_number(b, v);
    } else {
        mt_buf_json_string(b, k->name, k->len);
        mt_buf_addc(b, ':');
        put_value(b, k);
    }
}

char *mt_history_summary_json(const struct mt_history *h)
{
    struct mt_buf b;
    mt_buf_init(&b, (size_t)64 << 20);
    mt_buf_addc(&b, '{');
    int first = 1;
    for (uint32_t i = 0; i < h->nkeys; i++) {
        const struct key *k = &h->keys[i];
        if (!k->has_value)
            continue;
        unsigned m = k->is_axis ? MT_SUM_LAST : k->summary;
        if (m & MT_SUM_NONE)
            continue;
        if (m & MT_SUM_LAST)
            put_stat(&b, &first, k, NULL, 0);
        int numeric = k->kind != MT_VAL_TEXT && k->count;
        if (numeric && (m & MT_SUM_FIRST))
            put_stat(&b, &first, k, ".first", k->first);
        if (numeric && k->nstat && (m & MT_SUM_MIN))
            put_stat(&b, &first, k, ".min", k->min);
        if (numeric && k->nstat && (m & MT_SUM_MAX))
            put_stat(&b, &first, k, ".max", k->max);
        if (numeric && k->nstat && (m & MT_SUM_MEAN))
            put_stat(&b, &first, k, ".mean", k->sum / (double)k->nstat);
        if (numeric && k->nstat && (m & MT_SUM_BEST))
            put_stat(&b, &first, k, ".best", k->best);
    }
    for (cJSON *it = h->restored ? h->restored->child : NULL; it; it = it->next) {
        size_t n = strlen(it->string);
        if (it->string[0] == '_' || restored_shadowed(h, it->string, n))
            continue;
        char *value = cJSON_PrintUnformatted(it);
        if (!value)
            continue;
        if (!first)
            mt_buf_addc(&b, ',');
        first = 0;
        mt_buf_json_string(&b, it->string, n);
        mt_buf_addc(&b, ':');
        mt_buf_adds(&b, value);
        free(value);
    }
    if (h->step > 0)
        mt_buf_printf(&b, "%s\"_step\":%llu", first ? "" : ",",
                      (unsigned long long)(h->step - 1));
    mt_buf_addc(&b, '}');
    return b.data;
}

char *mt_history_metrics_json(const struct mt_history *h)
{
    static const char *names[] = { "last", "first", "min", "max", "mean", "best", "none" };
    struct mt_buf b;
    mt_buf_init(&b, (size_t)64 << 20);
    mt_buf_addc(&b, '{');
    int first = 1;
    for (uint32_t i = 0; i < h->nkeys; i++) {
        const struct key *k = &h->keys[i];
        if (!k->has_value || k->is_axis)
            continue;
        if (!first)
            mt_buf_addc(&b, ',');
        first = 0;
        mt_buf_json_string(&b, k->name, k->len);
        mt_buf_adds(&b, ":{");
        if (k->step_metric) {
            mt_buf_adds(&b, "\"step_metric\":");
            mt_buf_json_string(&b, k->step_metric, strlen(k->step_metric));
            mt_buf_addc(&b, ',');
        }
        mt_buf_adds(&b, "\"summary\":[");
        int n = 0;
        for (int j = 0; j < 7; j++)
            if (k->summary & (1u << j))
                mt_buf_printf(&b, "%s\"%s\"", n++ ? "," : "", names[j]);
        mt_buf_addc(&b, ']');
        if (k->goal)
            mt_buf_printf(&b, ",\"goal\":\"%s\"", k->goal == MT_GOAL_MAX ? "maximize" : "minimize");
        if (k->unit_len) {
            mt_buf_adds(&b, ",\"unit\":");
            mt_buf_json_string(&b, k->unit, k->unit_len);
        }
        mt_buf_printf(&b, ",\"type\":\"%s\"",
                      k->kind == MT_VAL_TEXT ? "text" : k->kind == MT_VAL_BOOL ? "bool" : "number");
        if (k->count == 1)
            mt_buf_adds(&b, ",\"summary_only\":true");
        mt_buf_addc(&b, '}');
    }
    mt_buf_addc(&b, '}');
    return b.data;
}

char *mt_history_axes_json(const struct mt_history *h)
{
    struct mt_buf b;
    mt_buf_init(&b, (size_t)16 << 20);
    mt_buf_addc(&b, '[');
    for (uint32_t i = 0; i < h->naxes; i++) {
        const struct key *k = &h->keys[h->axes[i]];
        if (i)
            mt_buf_addc(&b, ',');
        mt_buf_json_string(&b, k->name, k->len);
    }
    mt_buf_addc(&b, ']');
    return b.data;
}

/* A resumed run's summary: kept aside and merged under the new values, so an
 * old epoch is not taken as the axis in force for the new rows. */
int mt_history_restore_summary(struct mt_history *h, const char *json)
{
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    cJSON_Delete(h->restored);
    h->restored = root;
    return 0;
}

void mt_history_set_start(struct mt_history *h, double start_unix)
{
    h->start_unix = start_unix;
}

uint64_t mt_history_next_step(const struct mt_history *h) { return h->step; }
uint64_t mt_history_metrics_gen(const struct mt_history *h) { return h->metrics_gen; }
uint64_t mt_history_rows(const struct mt_history *h) { return h->rows; }
uint64_t mt_history_values(const struct mt_history *h) { return h->values; }
uint64_t mt_history_keys_dropped(const struct mt_history *h) { return h->keys_dropped; }
