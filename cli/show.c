/* metrictap show RUN [--metric NAME]... [--compare RUN2 ...] [--x AXIS]
 *                    [--lines N] [--follow]:
 * one run's identity, state, config, summary, system metrics (min/mean/max),
 * the last lines of its output and a terminal chart per metric against its
 * step axis (or AXIS), as wide as the terminal.  --compare puts up to 10
 * runs side by side (show_compare.c) and overlays them on the charts,
 * aligned on each metric's axis.  --follow redraws as rows arrive and ends
 * when the run does.  The index finds the run; its directory supplies
 * everything else. */
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
#include "select.h"
#include "show.h"

#define MAX_COMPARE 10
#define FOLLOW_POLL_NS 250000000L

/* ---- the run ---- */

struct shown {
    char *id, *dir;
    cJSON *run;     /* run.json */
    cJSON *summary; /* summary.json */
    char damage[256]; /* what is wrong with run.json, or "" */
    char label[160];  /* in chart legends: id and name */
    struct mt_hist hist;
    double runtime;
};

static cJSON *read_json(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = mt_index_read_file(path, 64 << 20, NULL);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    return o;
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
    mt_cli_format_duration(s->runtime, rt, sizeof rt);
    printf("%-9s%s%s\n", "runtime", rt, state && strcmp(state, "running") == 0 ? " so far" : "");
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

/* run.json's runtime is written when run.json is; a running run's is up to
 * now (its start to this moment), not the 0 of its first run.json. */
static double runtime_of(const cJSON *run)
{
    double rt = jnum(run, "runtime", 0), start = jnum(run, "start_time", 0);
    const char *state = jstr(run, "state");
    if (state && strcmp(state, "running") == 0 && start > 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double since = (double)now.tv_sec + now.tv_nsec / 1e9 - start;
        if (since > rt)
            rt = since;
    }
    return rt;
}

/* (Re)reads a found run's files. */
static void read_shown(struct shown *s, const char *x_axis)
{
    cJSON_Delete(s->run);
    cJSON_Delete(s->summary);
    mt_hist_free(&s->hist);
    mt_cli_settle(s->dir, 0); /* a run whose agent died is finished first */
    s->run = mt_index_read_run_json(s->dir, s->damage, sizeof s->damage);
    if (!s->run) /* what the other files hold is still worth showing */
        s->run = cJSON_CreateObject();
    s->summary = read_json(s->dir, "summary.json");
    mt_hist_load(&s->hist, s->dir, s->run, x_axis);
    s->runtime = runtime_of(s->run);
}

/* Finds RUN (cli/find_run.c: id, prefix, name, latest, -N, within --project)
 * and reads its files.  0, or 1 with the message printed. */
static int load_shown(struct mt_index *ix, const char *arg, const char *store,
                      const char *project, struct shown *s, const char *x_axis)
{
    if (mt_cli_find_run(ix, store, project, arg, &s->id, &s->dir) != 0)
        return 1;
    read_shown(s, x_axis);
    return 0;
}

static int finite_points(const struct mt_hist_series *s)
{
    int n = 0;
    for (size_t i = 0; i < s->n && n < 2; i++)
        n += isfinite(s->y[i]) && isfinite(s->x[i]);
    return n;
}

/* The chart's width: the terminal's ($COLUMNS or the tty's), 80 when
 * stdout is no terminal. */
static int chart_width(void)
{
    int width = mt_cli_term_width();
    if (width <= 0)
        width = 80;
    if (width < 30)
        width = 30;
    if (width > 400)
        width = 400;
    return width;
}

static void print_charts(struct shown *runs, size_t nruns, const char *const *metrics,
                         size_t nmetrics)
{
    int width = chart_width();
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
        int drawable = 0, mixed = 0;
        const char *axis = "_step";
        for (size_t r = 0; r < nruns && ns < 64; r++) {
            const struct mt_hist_series *s = mt_hist_find(&runs[r].hist, keys[j]);
            if (!s)
                continue;
            if (s->is_axis && !asked)
                continue;
            ser[ns++] = (struct mt_chart_series){ runs[r].label, s->x, s->y, s->n };
            nonfinite += s->nonfinite;
            drawable |= finite_points(s) >= 2;
            if (ns == 1)
                axis = s->axis;
            else if (strcmp(axis, s->axis) != 0)
                mixed = 1;
        }
        if (!ns)
            continue;
        /* A metric with one value in each run: a line of values for one run,
         * markers on the chart when runs are compared. */
        if (!drawable && !asked && nruns == 1) {
            if (nruns == 1 && ser[0].n) {
                char v[64];
                struct mt_value mv = { MT_V_NUM, ser[0].y[ser[0].n - 1], NULL };
                mt_cli_format_value(&mv, v, sizeof v, 0);
                mt_buf_printf(&single, "%s%s=%s", single.len ? ", " : "", keys[j], v);
            }
            continue;
        }
        char title[512];
        snprintf(title, sizeof title, "%s  (vs %s%s%s)", keys[j], axis,
                 mixed ? "; other runs against their own step axes" : "",
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

static const char USAGE[] =
    "usage: metrictap show [--project P] RUN [--metric NAME]... [--compare RUN2 ...] [--x AXIS]\n"
    "                          [--lines N] [--follow]\n";

/* One picture of the runs: the run (or the runs side by side), then charts. */
static void draw(struct shown *runs, size_t nruns, const char *const *metrics, size_t nmetrics,
                 int lines)
{
    if (nruns == 1) {
        print_identity(&runs[0]);
        mt_show_notes(runs[0].dir, runs[0].damage);
        print_values("config", cJSON_GetObjectItemCaseSensitive(runs[0].run, "config"));
        print_values("summary", runs[0].summary);
        print_system(runs[0].dir);
        mt_cli_print_uploads(runs[0].dir);
        print_output(runs[0].dir, lines);
    } else {
        struct mt_show_run side[MAX_COMPARE + 1];
        for (size_t r = 0; r < nruns; r++)
            side[r] = (struct mt_show_run){ runs[r].id, runs[r].run, runs[r].summary,
                                            runs[r].runtime };
        mt_show_compare(side, nruns, chart_width());
    }
    for (size_t r = 0; r < nruns; r++) {
        if (runs[r].hist.bad_lines)
            printf("history of %s: %zu rows, %zu unreadable lines skipped\n", runs[r].id,
                   runs[r].hist.rows, runs[r].hist.bad_lines);
        if (runs[r].hist.before_axis)
            printf("history of %s: %zu values before their axis had a value, not drawn\n",
                   runs[r].id, runs[r].hist.before_axis);
    }
    print_charts(runs, nruns, metrics, nmetrics);
}

static int running(const struct shown *s)
{
    const char *state = jstr(s->run, "state");
    return state && strcmp(state, "running") == 0;
}

/* What changes when a run writes: its history's and run.json's size and
 * time.  A redraw happens when this moves. */
static unsigned long long file_mark(const char *dir)
{
    unsigned long long m = 0;
    const char *names[] = { "history.jsonl", "run.json", "summary.json", "output.log" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[PATH_MAX];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &sb) == 0)
            m = m * 1000003u + (unsigned long long)sb.st_size * 31u +
                (unsigned long long)sb.st_mtim.tv_nsec + (unsigned long long)sb.st_mtim.tv_sec;
    }
    return m;
}

/* --follow: like tail -f, with the charts.  On a terminal each picture
 * replaces the last (cursor home, clear); into a pipe or file the pictures
 * follow each other, a form feed between.  Ends, after a last picture,
 * once no run shown is running any more. */
static int follow(struct shown *runs, size_t nruns, const char *const *metrics, size_t nmetrics,
                  int lines, const char *x_axis)
{
    int tty = isatty(STDOUT_FILENO);
    static char frame[1 << 20];
    setvbuf(stdout, frame, _IOFBF, sizeof frame); /* one write a picture: no flicker */
    unsigned long long shown_mark = 0;
    for (int first = 1;; first = 0) {
        unsigned long long mark = 0;
        int live = 0;
        for (size_t r = 0; r < nruns; r++) {
            if (!first)
                read_shown(&runs[r], x_axis);
            mark = mark * 7919u + file_mark(runs[r].dir);
            live |= running(&runs[r]);
        }
        if (first || mark != shown_mark || !live) {
            if (tty)
                fputs("\x1b[H\x1b[2J", stdout);
            else if (!first)
                fputs("\f\n", stdout);
            draw(runs, nruns, metrics, nmetrics, lines);
            if (live)
                printf("\nfollowing %s; ends when the run does (Ctrl-C stops)\n", runs[0].id);
            if (fflush(stdout) != 0)
                return 1;
            shown_mark = mark;
        }
        if (!live)
            return 0;
        struct timespec ts = { 0, FOLLOW_POLL_NS };
        nanosleep(&ts, NULL);
    }
}

/* --x names an axis some shown run has; else say which there are. */
static int check_axis(const struct shown *runs, size_t nruns, const char *x_axis)
{
    for (size_t r = 0; r < nruns; r++)
        if (mt_hist_has_axis(&runs[r].hist, x_axis) || running(&runs[r]))
            return 0;
    fprintf(stderr, "metrictap: no run shown has the axis \"%s\"; axes of %s:", x_axis, runs[0].id);
    for (size_t k = 0; k < runs[0].hist.naxes; k++)
        fprintf(stderr, "%s %s", k ? "," : "", runs[0].hist.axes[k]);
    fputc('\n', stderr);
    return 1;
}

int mt_cmd_show(int argc, char **argv)
{
    const char *run_arg = NULL, *x_axis = NULL;
    const char *metrics[64], *compare[MAX_COMPARE];
    size_t nmetrics = 0, ncompare = 0;
    int lines = 10, in_compare = 0, following = 0;
    const char *project = mt_cli_take_project(&argc, argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--metric") == 0 && i + 1 < argc && nmetrics < 64) {
            metrics[nmetrics++] = argv[++i];
            in_compare = 0;
        } else if (strcmp(argv[i], "--lines") == 0 && i + 1 < argc) {
            lines = (int)strtol(argv[++i], NULL, 10);
            in_compare = 0;
        } else if (strcmp(argv[i], "--x") == 0 && i + 1 < argc) {
            x_axis = argv[++i];
            in_compare = 0;
        } else if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            following = 1;
            in_compare = 0;
        } else if (strcmp(argv[i], "--compare") == 0) {
            in_compare = 1;
        } else if ((argv[i][0] != '-' || mt_cli_is_run_position(argv[i])) && in_compare) {
            if (ncompare == MAX_COMPARE - 1) {
                fprintf(stderr, "metrictap: show compares at most %d runs\n", MAX_COMPARE);
                return 2;
            }
            compare[ncompare++] = argv[i];
        } else if ((argv[i][0] != '-' || argv[i][1] == '\0' ||
                    (argv[i][1] >= '0' && argv[i][1] <= '9')) && !run_arg) {
            run_arg = argv[i]; /* "-1" counts back from the newest run */
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (!run_arg) {
        fputs(USAGE, stderr);
        return 2;
    }
    struct mt_config cfg;
    mt_cli_load_config(&cfg);
    struct shown runs[MAX_COMPARE];
    size_t nruns = 0;
    int rc = 1;
    memset(runs, 0, sizeof runs);
    struct mt_index *ix = mt_cli_open_index(&cfg);
    if (!ix)
        goto out;
    for (size_t c = 0; c <= ncompare; c++) {
        struct shown *s = &runs[nruns++];
        if (load_shown(ix, c ? compare[c - 1] : run_arg, cfg.dir, project, s, x_axis) != 0)
            goto out;
        const char *name = jstr(s->run, "name");
        snprintf(s->label, sizeof s->label, "%s%s%s", s->id, name && *name ? " " : "",
                 name ? name : "");
    }
    if (x_axis && check_axis(runs, nruns, x_axis) != 0)
        goto out;
    if (following) {
        rc = follow(runs, nruns, metrics, nmetrics, lines, x_axis);
        goto out;
    }
    draw(runs, nruns, metrics, nmetrics, lines);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    for (size_t r = 0; r < nruns; r++)
        shown_free(&runs[r]);
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc;
}
