/* metrictap ls: the runs table, read from the index. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"

static int print_row(void *ctx, const struct mt_index_run *r)
{
    (void)ctx;
    char created[32], runtime[32];
    time_t t = (time_t)r->start_time;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%d %H:%M", &tm);
    mt_cli_format_duration(r->runtime, runtime, sizeof runtime);
    printf("%-10s %-28.28s %-9s %-16s %9s  %-20.20s %s\n", r->id, r->name ? r->name : "",
           r->state ? r->state : "", created, runtime, r->tags ? r->tags : "",
           r->group ? r->group : "");
    return 0;
}

int mt_cmd_ls(int argc, char **argv)
{
    const char *project = NULL;
    size_t limit = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--project") == 0 && i + 1 < argc)
            project = argv[++i];
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
            limit = (size_t)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: metrictap ls [--project P] [--limit N]\n");
            return 2;
        }
    }
    struct mt_config cfg;
    mt_cli_load_config(&cfg);
    char err[1024];
    struct mt_index *ix = mt_index_open(cfg.dir, err, sizeof err);
    if (!ix) {
        fprintf(stderr, "metrictap: %s\n", err);
        mt_config_free(&cfg);
        return 1;
    }
    printf("%-10s %-28s %-9s %-16s %9s  %-20s %s\n", "ID", "NAME", "STATE", "CREATED",
           "RUNTIME", "TAGS", "GROUP");
    int rc = mt_index_list(ix, project, limit, print_row, NULL);
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
