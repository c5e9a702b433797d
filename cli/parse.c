/* metrictap parse [-c rules.yaml] [--program NAME] [--json|--table] FILE|-
 *
 * Runs a log through the same parsers a run uses and prints what the run
 * would have recorded: one JSON object per line, {"row": {...}} for each
 * history row, then {"config": ...}, {"tags": ...}, {"metrics": ...},
 * {"summary": ...} and {"stats": ...}; on a terminal, a table.  Times are
 * those the rules capture from the log (a `timestamp` group), else 0, so the
 * output of a log is always the same.  A bad config prints the error and
 * exits 2. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_json.h"
#include "../config/mt_config.h"
#include "../parsers/mt_parse.h"
#include "mt_cli.h"

struct out {
    int table;
    int quiet; /* --stats: rows are made but not printed (benchmarks) */
    cJSON *rows; /* kept for the table */
    size_t nrows;
};

static void on_row(void *ctx, const char *json, size_t len)
{
    struct out *o = ctx;
    if (o->quiet)
        return;
    if (!o->table) {
        fputs("{\"row\":", stdout);
        fwrite(json, 1, len, stdout);
        fputs("}\n", stdout);
        return;
    }
    if (o->nrows++ < 100000) {
        char *text = mt_xstrndup(json, len);
        cJSON *r = mt_json_parse_literal(text); /* numbers shown as printed */
        free(text);
        if (r)
            cJSON_AddItemToArray(o->rows, r);
    }
}

static void cell(const cJSON *v, char *out, size_t size)
{
    if (!v)
        snprintf(out, size, "%s", "");
    else if (cJSON_IsNumber(v))
        snprintf(out, size, "%s", mt_json_number_text(v, (char[40]){ 0 }, 40));
    else if (cJSON_IsString(v))
        snprintf(out, size, "%s", v->valuestring);
    else if (cJSON_IsBool(v))
        snprintf(out, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else
        snprintf(out, size, "%s", "?");
}

static void print_table(struct out *o)
{
    /* Columns: _step, then every key in the order first seen. */
    const char *cols[64];
    int ncols = 0;
    cols[ncols++] = "_step";
    cJSON *r;
    cJSON_ArrayForEach(r, o->rows)
    {
        cJSON *it;
        cJSON_ArrayForEach(it, r)
        {
            if (it->string[0] == '_')
                continue;
            int seen = 0;
            for (int i = 0; i < ncols; i++)
                if (strcmp(cols[i], it->string) == 0)
                    seen = 1;
            if (!seen && ncols < 64)
                cols[ncols++] = it->string;
        }
    }
    for (int i = 0; i < ncols; i++)
        printf("%-14.14s%s", cols[i], i + 1 < ncols ? " " : "\n");
    cJSON_ArrayForEach(r, o->rows)
    {
        for (int i = 0; i < ncols; i++) {
            char c[64];
            cell(cJSON_GetObjectItemCaseSensitive(r, cols[i]), c, sizeof c);
            printf("%-14.14s%s", c, i + 1 < ncols ? " " : "\n");
        }
    }
    if (o->nrows > 100000)
        printf("(%zu rows; the first 100000 shown)\n", o->nrows);
}

static void print_object(const char *title, const char *json)
{
    cJSON *o = mt_json_parse_literal(json);
    printf("%s:\n", title);
    if (!o || !o->child)
        printf("  (none)\n");
    cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        char c[256];
        if (cJSON_IsObject(it)) {
            char *s = cJSON_PrintUnformatted(it);
            printf("  %-24s %s\n", it->string, s ? s : "");
            free(s);
            continue;
        }
        cell(it, c, sizeof c);
        printf("  %-24s %s\n", it->string ? it->string : "", c);
    }
    cJSON_Delete(o);
}

static int usage(void)
{
    fputs(mt_cli_usage("parse"), stderr);
    return 2;
}

int mt_cmd_parse(int argc, char **argv)
{
    const char *config = NULL, *program = NULL, *file = NULL;
    int force = -1; /* -1: table on a terminal */
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(a, "--config=", 9) == 0)
            config = a + 9;
        else if (strcmp(a, "--program") == 0 && i + 1 < argc)
            program = argv[++i];
        else if (strncmp(a, "--program=", 10) == 0)
            program = a + 10;
        else if (strcmp(a, "--json") == 0)
            force = 0;
        else if (strcmp(a, "--table") == 0)
            force = 1;
        else if (strcmp(a, "--stats") == 0)
            quiet = 1, force = 0;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "metrictap parse: unknown option %s\n", a);
            return usage();
        } else if (!file)
            file = a;
        else
            return usage();
    }
    if (!file)
        return usage();
    if (config)
        setenv("METRICTAP_CONFIG", config, 1);
    struct mt_config cfg;
    mt_cli_load_config(&cfg); /* prints the error and exits 2 */
    char err[4096];
    int result = 1;
    mt_parse *p = NULL;
    int fd = -1;
    struct out o = { .table = force >= 0 ? force : isatty(1), .quiet = quiet };
    o.rows = cJSON_CreateArray();
    struct mt_parse_opts opts = { .cfg = &cfg, .program = program, .log_time = 1 };
    struct mt_parse_sink sink = { .ctx = &o, .row = on_row };
    p = mt_parse_create(&opts, &sink, err, sizeof err);
    if (!p) {
        fprintf(stderr, "metrictap: %s\n", err);
        result = 2;
        goto out;
    }
    fd = strcmp(file, "-") == 0 ? 0 : open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "metrictap: %s: %s\n", file, strerror(errno));
        goto out;
    }
    static char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        mt_parse_log_bytes(p, file, 0, buf, (size_t)n);
    if (n < 0) {
        fprintf(stderr, "metrictap: %s: %s\n", file, strerror(errno));
        goto out;
    }
    mt_parse_close_file(p, file, 0);
    mt_parse_flush(p, 0);
    char *config_json = mt_parse_config_json(p), *tags = mt_parse_tags_json(p);
    char *metrics = mt_parse_metrics_json(p), *summary = mt_parse_summary_json(p);
    char *axes = mt_parse_axes_json(p);
    struct mt_parse_stats st;
    mt_parse_stats(p, &st);
    if (o.table) {
        print_table(&o);
        print_object("config", config_json);
        print_object("summary", summary);
        printf("rules: %s; %llu lines, %llu rows, %llu lines cut at the length cap\n",
               mt_parse_rules(p), (unsigned long long)st.lines, (unsigned long long)st.rows,
               (unsigned long long)st.lines_truncated);
    } else {
        if (!quiet)
            printf("{\"config\":%s}\n{\"tags\":%s}\n{\"metrics\":%s}\n{\"axes\":%s}\n"
                   "{\"summary\":%s}\n",
                   config_json, tags, metrics, axes, summary);
        printf("{\"stats\":{\"rules\":\"%s\",\"lines\":%llu,\"rows\":%llu,\"values\":%llu,"
               "\"lines_truncated\":%llu,\"keys_dropped\":%llu,\"limit_hits\":%llu}}\n",
               mt_parse_rules(p), (unsigned long long)st.lines, (unsigned long long)st.rows,
               (unsigned long long)st.values, (unsigned long long)st.lines_truncated,
               (unsigned long long)st.keys_dropped, (unsigned long long)st.limit_hits);
    }
    free(config_json);
    free(axes);
    free(tags);
    free(metrics);
    free(summary);
    result = fflush(stdout) == 0 ? 0 : 1;
out:
    if (fd > 0)
        close(fd);
    mt_parse_destroy(p);
    cJSON_Delete(o.rows);
    mt_config_free(&cfg);
    return result;
}
