/* metrictap show RUN [--metric NAME]... [--compare RUN2 ...] [--lines N]:
 * one run's identity, state, config, summary, system metrics (min/mean/max),
 * the last lines of its output and a terminal chart per metric against its
 * step axis; --compare overlays other runs on the same charts.  The index
 * finds the run; its directory supplies everything else. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../agent/mt_stack_agent.h"
#include "../common/mt_buf.h"
#include "../common/mt_chart.h"
#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "show.h"

#define HISTORY_MAX ((size_t)512 << 20)
#define MAX_SERIES 512

/* ---- history ---- */

static const char *const KNOWN_AXES[] = { "_step", "_runtime", "_timestamp", "epoch", "batch",
                                          "iteration", "iter", "step", "global_step", NULL };

static struct mt_hist_series *series_get(struct mt_hist *h, const char *key, const char *axis)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].key, key) == 0)
            return &h->v[i];
    if (h->n == MAX_SERIES) {
        h->dropped_keys++;
        return NULL;
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 16;
        h->v = mt_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    struct mt_hist_series *s = &h->v[h->n++];
    memset(s, 0, sizeof *s);
    s->key = mt_xstrdup(key);
    s->axis = mt_xstrdup(axis);
    return s;
}

static void series_add(struct mt_hist_series *s, double x, double y)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = mt_xrealloc(s->x, s->cap * sizeof *s->x);
        s->y = mt_xrealloc(s->y, s->cap * sizeof *s->y);
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    if (!isfinite(y))
        s->nonfinite++;
}

/* A history value as a number: numbers, and the strings JSON cannot write. */
static int number_of(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "Infinity") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            *out = -INFINITY;
        else
            return 0;
        return 1;
    }
    return 0;
}

static const char *axis_of(const cJSON *metrics, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(metrics, key);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "step_metric");
    return cJSON_IsString(a) && a->valuestring[0] ? a->valuestring : "_step";
}

static int is_axis(const cJSON *metrics, const char *key)
{
    for (int i = 0; KNOWN_AXES[i]; i++)
        if (strcmp(key, KNOWN_AXES[i]) == 0)
            return 1;
    const cJSON *m;
    cJSON_ArrayForEach(m, metrics)
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "step_metric");
        if (cJSON_IsString(a) && strcmp(a->valuestring, key) == 0)
            return 1;
    }
    return 0;
}

void mt_hist_load(struct mt_hist *h, const char *dir, const cJSON *metrics)
{
    char path[PATH_MAX];
    memset(h, 0, sizeof *h);
    snprintf(path, sizeof path, "%s/history.jsonl", dir);
    size_t len = 0;
    char *text = mt_index_read_file(path, HISTORY_MAX, &len);
    if (!text)
        return;
    /* Axes seen so far stay in force for later rows. */
    struct { char *name; double v; } last[32];
    size_t nlast = 0;
    char *line = text, *end = text + len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break; /* a torn last line is ignored */
        *nl = '\0';
        cJSON *row = cJSON_Parse(line);
        line = nl + 1;
        if (!cJSON_IsObject(row)) {
            h->bad_lines++;
            cJSON_Delete(row);
            continue;
        }
        h->rows++;
        for (cJSON *it = row->child; it; it = it->next) {
            double v;
            if (!it->string || !number_of(it, &v) || !is_axis(metrics, it->string))
                continue;
            size_t k = 0;
            while (k < nlast && strcmp(last[k].name, it->string) != 0)
                k++;
            if (k == nlast && nlast < sizeof last / sizeof *last)
                last[nlast++].name = mt_xstrdup(it->string);
            if (k < nlast)
                last[k].v = v;
        }
        for (cJSON *it = row->child; it; it = it->next) {
            double y;
            if (!it->string || !number_of(it, &y))
                continue;
            int axis_key = is_axis(metrics, it->string);
            if (axis_key && strcmp(it->string, "_step") == 0)
                continue;
            const char *axis = axis_of(metrics, it->string);
            if (axis_key)
                axis = "_step";
            size_t k = 0;
            while (k < nlast && strcmp(last[k].name, axis) != 0)
                k++;
            if (k == nlast)
                continue;
            struct mt_hist_series *s = series_get(h, it->string, axis);
            if (s) {
                s->is_axis = axis_key;
                series_add(s, last[k].v, y);
            }
        }
        cJSON_Delete(row);
    }
    for (size_t k = 0; k < nlast; k++)
        free(last[k].name);
    free(text);
}

void mt_hist_free(struct mt_hist *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].key);
        free(h->v[i].axis);
        free(h->v[i].x);
        free(h->v[i].y);
    }
    free(h->v);
    memset(h, 0, sizeof *h);
}

const struct mt_hist_series *mt_hist_find(const struct mt_hist *h, const char *key)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].key, key) == 0)
            return &h->v[i];
    return NULL;
}

/* ---- the run ---- */

struct shown {
    char *id, *dir;
    cJSON *run;     /* run.json */
    cJSON *summary; /* summary.json */
    char damage[256]; /* what is wrong with run.json, or "" */
    struct mt_hist hist;
};

static int copy_found(void *ctx, const struct mt_index_run *r)
{
    struct shown *s = ctx;
    s->id = mt_xstrdup(r->id);
    s->dir = mt_xstrdup(r->dir);
    return 0;
}

static cJSON *read_json(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = mt_index_read_file(path, 64 << 20, NULL);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    return o;
}

/* Finds RUN by id or prefix (repairing the index once when it is missing)
 * and reads its files.  0, or 1 with the message printed. */
int mt_show_find(struct mt_index *ix, const char *arg, const char *store, char **id, char **dir)
{
    struct shown s = { 0 };
    int rc = mt_index_find(ix, arg, copy_found, &s);
    if (rc == 1 && mt_index_sync(ix, NULL, NULL) == 0)
        rc = mt_index_find(ix, arg, copy_found, &s);
    if (rc == 1 && (rc = mt_show_find_dir(store, arg, &s.id, &s.dir)) == 0) {
        /* No row, but a directory: its run.json is damaged or not there. */
        char why[256];
        cJSON_Delete(mt_index_read_run_json(s.dir, why, sizeof why));
        fprintf(stderr, "metrictap: run %s is not in the index: %s, %s\n", s.id, s.dir, why);
    }
    if (rc == 1)
        fprintf(stderr, "metrictap: no run %s in %s\n", arg, store);
    else if (rc == 2)
        fprintf(stderr, "metrictap: %s matches several runs; give more of the id\n", arg);
    else if (rc < 0)
        fprintf(stderr, "metrictap: cannot read the index in %s: %s\n", store,
                mt_index_error(ix));
    if (rc != 0)
        return 1;
    *id = s.id;
    *dir = s.dir;
    return 0;
}

static void shown_free(struct shown *s)
{
    free(s->id);
    free(s->dir);
    cJSON_Delete(s->run);
    cJSON_Delete(s->summary);
    mt_hist_free(&s->hist);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* A labelled line of a JSON array's strings, or nothing for an empty one. */
static void print_strings(const char *label, const cJSON *arr, const char *sep)
{
    const cJSON *t;
    if (cJSON_GetArraySize(arr) <= 0)
        return;
    printf("%-9s", label);
    int first = 1;
    cJSON_ArrayForEach(t, arr) if (cJSON_IsString(t))
    {
        printf("%s%s", first ? "" : sep, t->valuestring);
        first = 0;
    }
    putchar('\n');
}

static void print_time(const char *label, double t)
{
    char buf[64];
    time_t s = (time_t)t;
    struct tm tm;
    localtime_r(&s, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%-9s%s\n", label, buf);
}

static void print_kv(void *ctx, const char *key, const struct mt_value *v)
{
    char buf[4096];
    (void)ctx;
    mt_cli_format_value(v, buf, sizeof buf, 1);
    printf("  %-28s %s\n", key, buf);
}

static void print_values(const char *title, const cJSON *o)
{
    printf("%s:\n", title);
    if (!cJSON_IsObject(o) || !o->child)
        printf("  (none)\n");
    else if (mt_flatten_json(o, 10000, print_kv, NULL))
        printf("  (more values not shown)\n");
}

static void print_identity(const struct shown *s)
{
    const cJSON *r = s->run;
    const char *state = jstr(r, "state");
    printf("%-9s%s\n", "run", s->id);
    const char *fields[][2] = { { "name", "name" },   { "project", "project" },
                                { "group", "group" }, { "job_type", "job type" },
                                { "notes", "notes" } };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const char *v = jstr(r, fields[i][0]);
        if (v && *v)
            printf("%-9s%s\n", fields[i][1], v);
    }
    print_strings("tags", cJSON_GetObjectItemCaseSensitive(r, "tags"), ", ");
    printf("%-9s%s", "state", state ? state : "?");
    if (state && strcmp(state, "running") == 0 && mt_stack_stalled(s->dir))
        printf(" (stalled: no output and no CPU, see stacks.txt)");
    double code = jnum(r, "exit_code", -1), sig = jnum(r, "signal", 0);
    if (code >= 0 && !(state && strcmp(state, "running") == 0))
        printf(" (exit code %d)", (int)code);
    if (sig > 0)
        printf(" (signal %d)", (int)sig);
    putchar('\n');
    char drops[1024];
    if (mt_cli_drops_line(r, drops, sizeof drops))
        printf("%-9s%s; see README \"Caps\" and events.jsonl\n", "lost", drops);
    if (jnum(r, "start_time", 0) > 0)
        print_time("started", jnum(r, "start_time", 0));
    if (jnum(r, "end_time", 0) > 0)
        print_time("ended", jnum(r, "end_time", 0));
    char rt[32];
    mt_cli_format_duration(jnum(r, "runtime", 0), rt, sizeof rt);
    printf("%-9s%s\n", "runtime", rt);
    print_strings("command", cJSON_GetObjectItemCaseSensitive(r, "command"), " ");
    const char *host = jstr(r, "host"), *user = jstr(r, "user"), *cwd = jstr(r, "cwd");
    if (host || user)
        printf("%-9s%s%s%s\n", "host", user ? user : "", user && host ? "@" : "",
               host ? host : "");
    if (cwd)
        printf("%-9s%s\n", "cwd", cwd);
    printf("%-9s%s\n", "dir", s->dir);
}

/* min/mean/max of each numeric key of system.jsonl. */
static void print_system(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/system.jsonl", dir);
    size_t len = 0;
    char *text = mt_index_read_file(path, (size_t)64 << 20, &len);
    struct stat_row { char *key; double min, max, sum; size_t n; } *st = NULL;
    size_t nst = 0, samples = 0;
    for (char *line = text, *nl; text && line < text + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl)
            break;
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        if (cJSON_IsObject(o))
            samples++;
        for (cJSON *it = cJSON_IsObject(o) ? o->child : NULL; it; it = it->next) {
            if (!cJSON_IsNumber(it) || !it->string || it->string[0] == '_')
                continue;
            size_t k = 0;
            while (k < nst && strcmp(st[k].key, it->string) != 0)
                k++;
            if (k == nst) {
                if (nst == 256)
                    continue;
                st = mt_xrealloc(st, (nst + 1) * sizeof *st);
                st[nst++] = (struct stat_row){ mt_xstrdup(it->string), INFINITY, -INFINITY, 0, 0 };
            }
            double v = it->valuedouble;
            st[k].min = fmin(st[k].min, v);
            st[k].max = fmax(st[k].max, v);
            st[k].sum += v;
            st[k].n++;
        }
        cJSON_Delete(o);
    }
    printf("system (%zu samples):\n", samples);
    if (!nst)
        printf("  (none)\n");
    else
        printf("  %-28s %12s %12s %12s\n", "", "min", "mean", "max");
    for (size_t k = 0; k < nst; k++) {
        printf("  %-28s %12.6g %12.6g %12.6g\n", st[k].key, st[k].min,
               st[k].sum / (double)st[k].n, st[k].max);
        free(st[k].key);
    }
    free(st);
    free(text);
}

/* The last `want` lines of output.log, read from its end. */
static void print_output(const char *dir, int want)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/output.log", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0)
            close(fd);
        printf("output:\n  (none)\n");
        return;
    }
    size_t take = sb.st_size > 65536 ? 65536 : (size_t)sb.st_size;
    char *buf = mt_xmalloc(take + 1);
    ssize_t n = pread(fd, buf, take, sb.st_size - (off_t)take);
    close(fd);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    /* Back from the end over `want` line breaks (a final one ends the last line). */
    char *start = buf + n;
    if (start > buf && start[-1] == '\n')
        start--;
    int lines = 0;
    while (start > buf && !(start[-1] == '\n' && ++lines >= want))
        start--;
    if (start[0] == '\n' && start < buf + n)
        start++;
    printf("output (last %d lines of output.log):\n", want);
    for (char *p = start, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        printf("  %s\n", p);
        if (!nl)
            break;
    }
    if (!n)
        printf("  (empty)\n");
    free(buf);
}

static int load_shown(struct mt_index *ix, const char *arg, const char *store, struct shown *s)
{
    if (mt_show_find(ix, arg, store, &s->id, &s->dir) != 0)
        return 1;
    mt_cli_settle(s->dir, 0); /* a run whose agent died is finished first */
    s->run = mt_index_read_run_json(s->dir, s->damage, sizeof s->damage);
    if (!s->run) /* what the other files hold is still worth showing */
        s->run = cJSON_CreateObject();
    s->summary = read_json(s->dir, "summary.json");
    mt_hist_load(&s->hist, s->dir, cJSON_GetObjectItemCaseSensitive(s->run, "metrics"));
    return 0;
}

static int finite_points(const struct mt_hist_series *s)
{
    int n = 0;
    for (size_t i = 0; i < s->n && n < 2; i++)
        n += isfinite(s->y[i]) && isfinite(s->x[i]);
    return n;
}

static void print_charts(struct shown *runs, size_t nruns, const char *const *metrics,
                         size_t nmetrics)
{
    int width = mt_cli_term_width();
    if (width <= 0)
        width = 80;
    if (width > 160)
        width = 160;
    int color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    struct mt_buf out;
    mt_buf_init(&out, (size_t)64 << 20);
    /* The metrics of the first run, then those only the others have. */
    size_t total = 0;
    for (size_t r = 0; r < nruns; r++)
        total += runs[r].hist.n;
    const char **keys = mt_xcalloc(total + 1, sizeof *keys);
    size_t nkeys = 0;
    for (size_t r = 0; r < nruns; r++)
        for (size_t i = 0; i < runs[r].hist.n; i++) {
            const char *k = runs[r].hist.v[i].key;
            size_t j = 0;
            while (j < nkeys && strcmp(keys[j], k) != 0)
                j++;
            if (j == nkeys)
                keys[nkeys++] = k;
        }
    struct mt_buf single;
    mt_buf_init(&single, 1 << 20);
    for (size_t j = 0; j < nkeys; j++) {
        int asked = 0;
        for (size_t m = 0; m < nmetrics; m++)
            asked |= strcmp(metrics[m], keys[j]) == 0;
        if (nmetrics && !asked)
            continue;
        struct mt_chart_series ser[64];
        size_t ns = 0, nonfinite = 0;
        int drawable = 0;
        const char *axis = "_step";
        for (size_t r = 0; r < nruns && ns < 64; r++) {
            const struct mt_hist_series *s = mt_hist_find(&runs[r].hist, keys[j]);
            if (!s)
                continue;
            if (s->is_axis && !asked)
                continue;
            ser[ns++] = (struct mt_chart_series){ runs[r].id, s->x, s->y, s->n };
            nonfinite += s->nonfinite;
            drawable |= finite_points(s) >= 2;
            axis = s->axis;
        }
        if (!ns)
            continue;
        if (!drawable && !asked) {
            if (nruns == 1 && ser[0].n) {
                char v[64];
                struct mt_value mv = { MT_V_NUM, ser[0].y[ser[0].n - 1], NULL };
                mt_cli_format_value(&mv, v, sizeof v, 0);
                mt_buf_printf(&single, "%s%s=%s", single.len ? ", " : "", keys[j], v);
            }
            continue;
        }
        char title[512];
        snprintf(title, sizeof title, "%s  (vs %s%s)", keys[j], axis,
                 nonfinite ? ", non-finite values not drawn" : "");
        mt_buf_addc(&out, '\n');
        mt_chart_render(&out, title, axis, ser, ns, width, 10, color);
    }
    if (single.len)
        mt_buf_printf(&out, "\nsingle values: %s\n", single.data);
    for (size_t m = 0; m < nmetrics; m++) {
        size_t j = 0;
        while (j < nkeys && strcmp(keys[j], metrics[m]) != 0)
            j++;
        if (j == nkeys)
            fprintf(stderr, "metrictap: no metric \"%s\" in the history\n", metrics[m]);
    }
    if (out.len)
        fwrite(out.data, 1, out.len, stdout);
    mt_buf_free(&single);
    mt_buf_free(&out);
    free(keys);
}

int mt_cmd_show(int argc, char **argv)
{
    const char *run_arg = NULL;
    const char *metrics[64], *compare[63];
    size_t nmetrics = 0, ncompare = 0;
    int lines = 10, in_compare = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--metric") == 0 && i + 1 < argc && nmetrics < 64) {
            metrics[nmetrics++] = argv[++i];
            in_compare = 0;
        } else if (strcmp(argv[i], "--lines") == 0 && i + 1 < argc) {
            lines = (int)strtol(argv[++i], NULL, 10);
            in_compare = 0;
        } else if (strcmp(argv[i], "--compare") == 0) {
            in_compare = 1;
        } else if (argv[i][0] != '-' && in_compare && ncompare < 63) {
            compare[ncompare++] = argv[i];
        } else if (argv[i][0] != '-' && !run_arg) {
            run_arg = argv[i];
        } else {
            fprintf(stderr, "usage: metrictap show RUN [--metric NAME]... [--compare RUN2 ...]"
                            " [--lines N]\n");
            return 2;
        }
    }
    if (!run_arg) {
        fprintf(stderr, "usage: metrictap show RUN [--metric NAME]... [--compare RUN2 ...]"
                        " [--lines N]\n");
        return 2;
    }
    struct mt_config cfg;
    mt_cli_load_config(&cfg);
    struct shown runs[64];
    size_t nruns = 0;
    int rc = 1;
    memset(runs, 0, sizeof runs);
    struct mt_index *ix = mt_cli_open_index(&cfg);
    if (!ix)
        goto out;
    if (load_shown(ix, run_arg, cfg.dir, &runs[nruns++]) != 0)
        goto out;
    for (size_t c = 0; c < ncompare; c++)
        if (load_shown(ix, compare[c], cfg.dir, &runs[nruns++]) != 0)
            goto out;
    print_identity(&runs[0]);
    mt_show_notes(runs[0].dir, runs[0].damage);
    print_values("config", cJSON_GetObjectItemCaseSensitive(runs[0].run, "config"));
    print_values("summary", runs[0].summary);
    print_system(runs[0].dir);
    mt_cli_print_uploads(runs[0].dir);
    print_output(runs[0].dir, lines);
    if (runs[0].hist.bad_lines)
        printf("history: %zu rows, %zu unreadable lines skipped\n", runs[0].hist.rows,
               runs[0].hist.bad_lines);
    print_charts(runs, nruns, metrics, nmetrics);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    for (size_t r = 0; r < nruns; r++)
        shown_free(&runs[r]);
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc;
}
