/* metrictap show RUN: one run's identity, state and summary. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"

static void print_json_value(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        printf("%.10g", v->valuedouble);
    else if (cJSON_IsString(v))
        printf("%s", v->valuestring);
    else if (cJSON_IsBool(v))
        printf("%s", cJSON_IsTrue(v) ? "true" : "false");
    else {
        char *s = cJSON_PrintUnformatted(v);
        printf("%s", s ? s : "?");
        free(s);
    }
}

static void print_object(const char *title, const char *json)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    printf("%s:\n", title);
    if (!cJSON_IsObject(o) || !o->child)
        printf("  (none)\n");
    else
        for (cJSON *it = o->child; it; it = it->next) {
            printf("  %-24s ", it->string);
            print_json_value(it);
            putchar('\n');
        }
    cJSON_Delete(o);
}

static int show_run(void *ctx, const struct mt_index_run *r)
{
    (void)ctx;
    char started[64] = "", runtime[32];
    time_t t = (time_t)r->start_time;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S", &tm);
    mt_cli_format_duration(r->runtime, runtime, sizeof runtime);
    printf("run      %s\n", r->id);
    printf("name     %s\n", r->name ? r->name : "");
    printf("project  %s\n", r->project ? r->project : "");
    if (r->group && *r->group)
        printf("group    %s\n", r->group);
    if (r->tags && *r->tags)
        printf("tags     %s\n", r->tags);
    printf("state    %s", r->state ? r->state : "?");
    if (r->exit_code >= 0 && strcmp(r->state ? r->state : "", "running") != 0)
        printf(" (exit code %d)", r->exit_code);
    if (r->signal)
        printf(" (signal %d)", r->signal);
    printf("\nstarted  %s\nruntime  %s\ndir      %s\n", started, runtime, r->dir ? r->dir : "");
    print_object("config", r->config_json);
    print_object("summary", r->summary_json);
    return 0;
}

int mt_cmd_show(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: metrictap show RUN\n");
        return 2;
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
    int rc = mt_index_find(ix, argv[1], show_run, NULL);
    if (rc == 1)
        fprintf(stderr, "metrictap: no run %s in %s\n", argv[1], cfg.dir);
    else if (rc == 2)
        fprintf(stderr, "metrictap: %s matches several runs; give more of the id\n", argv[1]);
    else if (rc < 0)
        fprintf(stderr, "metrictap: cannot read the index in %s\n", cfg.dir);
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
