/* metrictap recover RUN... | --all
 *
 * Finishes runs whose agent is gone (agent/mt_recover.h): what reached the
 * journal is parsed into output.log and history, and the run gets the state
 * its records prove.  `show`, `sync` and `reindex` do the same for the runs
 * they touch (mt_cli_settle); this command does it on its own. */
#include <cjson/cJSON.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../agent/mt_recover.h"
#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "select.h"

int mt_cli_settle(const char *run_dir, int quiet)
{
    char msg[1024];
    int rc = mt_recover_run(run_dir, NULL, msg, sizeof msg);
    if (rc == MT_RECOVER_DONE && !quiet)
        fprintf(stderr, "metrictap: recovered %s\n", msg);
    else if (rc == MT_RECOVER_ERROR)
        fprintf(stderr, "metrictap: cannot recover %s: %s\n", run_dir, msg);
    return rc;
}

void mt_cli_settle_store(const char *store, int quiet)
{
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "%s/runs/*/*/run.json", store);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *dir = g.gl_pathv[i];
        *strrchr(dir, '/') = '\0';
        char jpath[4096];
        snprintf(jpath, sizeof jpath, "%s/run.json", dir);
        size_t len = 0;
        char *text = mt_index_read_file(jpath, 1 << 22, &len);
        /* Cheap first: only a run still marked running can need it. */
        cJSON *run = text && strstr(text, "running") ? cJSON_Parse(text) : NULL;
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(run, "state");
        if (cJSON_IsString(state) && strcmp(state->valuestring, "running") == 0 &&
            strcmp(mt_recover_state_to_show(dir, "running"), "running") != 0)
            mt_cli_settle(dir, quiet);
        cJSON_Delete(run);
        free(text);
    }
    globfree(&g);
}

void mt_cli_format_count(double v, char *out, size_t n)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%.0f", v);
    size_t len = strlen(raw), k = 0;
    for (size_t i = 0; i < len && k + 2 < n; i++) {
        out[k++] = raw[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len)
            out[k++] = ',';
    }
    out[k] = '\0';
}

static double count_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int mt_cli_drops_line(const cJSON *run, char *out, size_t n)
{
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(run, "metadata"), "capture_counts");
    if (!cJSON_IsObject(counts))
        return 0;
    double dropped = count_of(counts, "dropped_records");
    double cut = count_of(counts, "lines_truncated");
    double lost = count_of(counts, "lines_lost_write");
    double outlived = count_of(counts, "processes_outlived");
    if (!dropped && !cut && !lost && !outlived)
        return 0;
    struct mt_buf b;
    mt_buf_init(&b, 4096);
    char x[32], y[32];
    if (dropped) {
        mt_cli_format_count(dropped, x, sizeof x);
        mt_cli_format_count(dropped + count_of(counts, "records"), y, sizeof y);
        mt_buf_printf(&b, "%s of %s writes were dropped (", x, y);
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(counts, "dropped_reasons"), *r;
        int first = 1;
        cJSON_ArrayForEach(r, why) {
            mt_cli_format_count(r->valuedouble, x, sizeof x);
            mt_buf_printf(&b, "%s%s: %s", first ? "" : ", ", r->string, x);
            first = 0;
        }
        if (first)
            mt_buf_adds(&b, "see events.jsonl");
        mt_buf_adds(&b, ")");
    }
    if (lost) {
        mt_cli_format_count(lost, x, sizeof x);
        mt_buf_printf(&b, "%s%s lines could not be written to the store (disk full?)",
                      b.len ? "; " : "", x);
    }
    if (cut) {
        mt_cli_format_count(cut, x, sizeof x);
        mt_buf_printf(&b, "%s%s lines were cut at capture.line_max", b.len ? "; " : "", x);
    }
    if (outlived) {
        mt_cli_format_count(outlived, x, sizeof x);
        mt_buf_printf(&b, "%s%s processes outlived capture.linger", b.len ? "; " : "", x);
    }
    snprintf(out, n, "%s", b.data);
    mt_buf_free(&b);
    return 1;
}

int mt_cmd_recover(int argc, char **argv)
{
    const char *project = mt_cli_take_project(&argc, argv);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: metrictap recover [--project P] RUN... | --all\n"
                        "  finishes runs whose agent is gone: parses what their journal holds\n"
                        "  and records the state it proves\n");
        return 2;
    }
    struct mt_config cfg;
    mt_cli_load_config(&cfg);
    int rc = 0;
    if (strcmp(argv[1], "--all") == 0) {
        mt_cli_settle_store(cfg.dir, 0);
        mt_config_free(&cfg);
        return 0;
    }
    struct mt_index *ix = mt_cli_open_index(&cfg);
    for (int i = 1; ix && i < argc; i++) {
        char *id = NULL, *dir = NULL;
        if (mt_cli_find_run(ix, cfg.dir, project, argv[i], &id, &dir) != 0) {
            rc = 1;
            continue;
        }
        char msg[1024];
        int r = mt_recover_run(dir, NULL, msg, sizeof msg);
        if (r == MT_RECOVER_DONE)
            fprintf(stderr, "metrictap: recovered %s\n", msg);
        else if (r == MT_RECOVER_NOTHING)
            fprintf(stderr, "metrictap: run %s is complete; nothing to recover\n", id);
        else {
            fprintf(stderr, "metrictap: %s\n", msg);
            rc = 1;
        }
        free(id);
        free(dir);
    }
    if (!ix)
        rc = 1;
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc;
}
