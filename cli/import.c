/* metrictap import [-c rules.yaml] [--program NAME] [--project P] [--name N]
 *                  [--tags a,b] LOGFILE
 *
 * Turns a historical log into a finished run in the store, as if the program
 * had run under metrictap: history, summary, config, output.log, run.json and
 * the index row.  Times come from the log where a rule captures them (a
 * `timestamp` group); otherwise every row carries the file's modification
 * time. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../agent/mt_agent.h"
#include "../common/mt_buf.h"
#include "../common/mt_json.h"
#include "mt_cli.h"

struct imp {
    struct mt_store *store;
    double first_ts, last_ts;
};

static void on_row(void *ctx, const char *json, size_t len)
{
    struct imp *im = ctx;
    mt_store_append(im->store, im->store->history, json, len);
    const char *t = strstr(json, "\"_timestamp\":");
    const char *r = strstr(json, "\"_runtime\":");
    if (t && r) {
        double ts = strtod(t + 13, NULL);
        if (!im->first_ts)
            im->first_ts = ts - strtod(r + 11, NULL); /* the run's start */
        im->last_ts = ts;
    }
}

static void on_console(void *ctx, uint32_t pid, int stream, const char *line, size_t len,
                       int newline)
{
    struct imp *im = ctx;
    (void)pid, (void)stream;
    if (fwrite(line, 1, len, im->store->output) != len ||
        (newline && putc('\n', im->store->output) == EOF))
        im->store->write_errors++;
}

static int usage(void)
{
    fputs(mt_cli_usage("import"), stderr);
    return 2;
}

static int write_run_json(struct mt_store *s, const struct mt_config *cfg, const char *id,
                          const char *project, const char *name, const char *file,
                          const char *program, double start, double end, mt_parse *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "project", project);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddItemToObject(o, "group", *cfg->group ? cJSON_CreateString(cfg->group)
                                                  : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "job_type", cJSON_CreateString(*cfg->job_type ? cfg->job_type
                                                                          : "import"));
    cJSON *tags = cJSON_CreateArray();
    char *t = mt_xstrdup(cfg->tags);
    for (char *save = NULL, *tok = t; tok && *tok; tok = save) {
        save = strchr(tok, ',');
        if (save)
            *save++ = '\0';
        if (*tok)
            cJSON_AddItemToArray(tags, cJSON_CreateString(tok));
    }
    free(t);
    char *captured = mt_parse_tags_json(p);
    cJSON *ct = cJSON_Parse(captured);
    free(captured);
    cJSON *it;
    cJSON_ArrayForEach(it, ct)
        cJSON_AddItemToArray(tags, cJSON_CreateString(it->valuestring));
    cJSON_Delete(ct);
    cJSON_AddItemToObject(o, "tags", tags);
    cJSON_AddStringToObject(o, "state", "finished");
    cJSON_AddNumberToObject(o, "start_time", start);
    cJSON_AddNumberToObject(o, "end_time", end);
    cJSON_AddNumberToObject(o, "runtime", end - start);
    cJSON_AddNullToObject(o, "exit_code");
    cJSON_AddNullToObject(o, "signal");
    cJSON_AddItemToObject(o, "command", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "program", program ? cJSON_CreateString(program)
                                                : cJSON_CreateNull());
    char *config = mt_parse_config_json(p), *metrics = mt_parse_metrics_json(p);
    cJSON_AddItemToObject(o, "config", mt_json_parse_literal(config));
    cJSON_AddItemToObject(o, "metrics", cJSON_Parse(metrics));
    char *axes = mt_parse_axes_json(p);
    cJSON_AddItemToObject(o, "axes", cJSON_Parse(axes));
    free(axes);
    free(config);
    free(metrics);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "capture", "import");
    char abs[4096];
    cJSON_AddStringToObject(meta, "imported_from", realpath(file, abs) ? abs : file);
    cJSON_AddStringToObject(meta, "rules", mt_parse_rules(p));
    cJSON_AddItemToObject(o, "metadata", meta);
    char *text = mt_json_print_literal(o, 1);
    cJSON_Delete(o);
    int rc = mt_store_replace(s, "run.json", text, strlen(text));
    free(text);
    return rc;
}

int mt_cmd_import(int argc, char **argv)
{
    const char *program = NULL, *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *var = NULL;
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            var = "METRICTAP_CONFIG";
        else if (strcmp(a, "--project") == 0)
            var = "METRICTAP_PROJECT";
        else if (strcmp(a, "--name") == 0)
            var = "METRICTAP_NAME";
        else if (strcmp(a, "--tags") == 0)
            var = "METRICTAP_TAGS";
        else if (strcmp(a, "--dir") == 0)
            var = "METRICTAP_DIR";
        else if (strcmp(a, "--program") == 0 && i + 1 < argc) {
            program = argv[++i];
            continue;
        } else if (a[0] == '-' && a[1])
            return usage();
        else if (!file) {
            file = a;
            continue;
        } else
            return usage();
        if (i + 1 >= argc)
            return usage();
        setenv(var, argv[++i], 1);
    }
    if (!file)
        return usage();
    struct mt_config cfg;
    mt_cli_load_config(&cfg); /* prints the error and exits 2 */
    char err[4096];
    int result = 1, fd = -1, store_open = 0;
    mt_parse *p = NULL;
    struct mt_index *ix = NULL;
    struct mt_store store;
    memset(&store, 0, sizeof store);
    struct imp im = { .store = &store };
    char id[16], name[512];
    const char *project = *cfg.project ? cfg.project : "uncategorized";
    fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "metrictap: %s: %s\n", file, strerror(errno));
        goto out;
    }
    if (strchr(project, '/') || project[0] == '.') {
        fprintf(stderr, "metrictap: bad project name \"%s\"\n", project);
        goto out;
    }
    mt_run_make_id(id);
    if (*cfg.id)
        snprintf(id, sizeof id, "%.15s", cfg.id);
    int exists = 0;
    if (mt_store_open(&store, cfg.dir, project, id, &exists, err, sizeof err) != 0) {
        fprintf(stderr, "metrictap: %s\n", err);
        goto out;
    }
    store_open = 1;
    if (exists) {
        fprintf(stderr, "metrictap: run %s already exists in project %s\n", id, project);
        goto out;
    }
    double mtime = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
    struct mt_parse_opts opts = { .cfg = &cfg, .program = program, .start_unix = mtime,
                                  .log_time = 1 };
    struct mt_parse_sink sink = { .ctx = &im, .row = on_row, .console = on_console };
    p = mt_parse_create(&opts, &sink, err, sizeof err);
    if (!p) {
        fprintf(stderr, "metrictap: %s\n", err);
        result = 2;
        goto out;
    }
    static char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        mt_parse_log_bytes(p, file, mtime, buf, (size_t)n);
    if (n < 0) {
        fprintf(stderr, "metrictap: %s: %s\n", file, strerror(errno));
        goto out;
    }
    mt_parse_close_file(p, file, mtime);
    mt_parse_flush(p, mtime);
    double start = im.first_ts ? im.first_ts : mtime, end = im.last_ts ? im.last_ts : mtime;
    if (*cfg.name)
        snprintf(name, sizeof name, "%s", cfg.name);
    else {
        const char *base = strrchr(file, '/');
        snprintf(name, sizeof name, "%s-%s", base ? base + 1 : file, id);
    }
    struct mt_parse_stats ps;
    mt_parse_stats(p, &ps);
    char fields[512];
    snprintf(fields, sizeof fields, "\"source\":\"import\",\"rules\":\"%s\"", mt_parse_rules(p));
    mt_store_event(&store, start, "start", fields);
    snprintf(fields, sizeof fields,
             "\"state\":\"finished\",\"rows\":%llu,\"lines\":%llu,\"lines_truncated\":%llu,"
             "\"keys_dropped\":%llu",
             (unsigned long long)ps.rows, (unsigned long long)ps.lines,
             (unsigned long long)ps.lines_truncated, (unsigned long long)ps.keys_dropped);
    mt_store_event(&store, end, "finish", fields);
    mt_store_flush(&store);
    char *summary = mt_parse_summary_json(p), *config = mt_parse_config_json(p);
    int rc = mt_store_replace(&store, "summary.json", summary, strlen(summary));
    if (rc == 0)
        rc = write_run_json(&store, &cfg, id, project, name, file, program, start, end, p);
    ix = mt_index_open(store.root, err, sizeof err);
    if (ix) {
        struct mt_index_run r = {
            .id = id, .project = project, .name = name, .group = cfg.group,
            .job_type = *cfg.job_type ? cfg.job_type : "import", .state = "finished",
            .dir = store.dir, .tags = cfg.tags, .config_json = config, .summary_json = summary,
            .start_time = start, .end_time = end, .runtime = end - start, .exit_code = -1,
        };
        if (mt_index_put(ix, &r) != 0)
            rc = -1;
    } else {
        fprintf(stderr, "metrictap: %s\n", err);
        rc = -1;
    }
    free(summary);
    free(config);
    if (rc != 0 || store.write_errors) {
        fprintf(stderr, "metrictap: cannot write the run in %s\n", store.dir);
        goto out;
    }
    printf("imported %s as run %s in %s (%llu rows)\n", file, id, store.dir,
           (unsigned long long)ps.rows);
    result = 0;
out:
    if (fd >= 0)
        close(fd);
    mt_parse_destroy(p);
    mt_index_close(ix);
    if (store_open)
        mt_store_close(&store);
    mt_config_free(&cfg);
    return result;
}
