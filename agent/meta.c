/* What the agent records about a run besides its output: metadata (code,
 * binary, cluster, host) gathered once the program is running, and the system
 * metrics thread. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_redact.h"
#include "mt_agent.h"
#include "mt_meta.h"
#include "mt_sys.h"

extern char **environ;

static cJSON *code_json(const struct mt_agent *a)
{
    cJSON *code = cJSON_CreateObject();
    cJSON_AddBoolToObject(code, "disabled", a->cfg.code_disabled);
    cJSON *globs = cJSON_AddArrayToObject(code, "ignore_globs");
    size_t n = 0;
    char **list = mt_meta_globs_split(a->cfg.ignore_globs, &n);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(globs, cJSON_CreateString(list[i]));
    mt_meta_globs_free(list);
    return code;
}

/* The run store itself is no untracked source file of the program. */
static void drop_store_files(cJSON *git, const char *cwd, const char *store_root)
{
    cJSON *list = cJSON_GetObjectItem(git, "untracked");
    size_t n = strlen(cwd);
    if (!cJSON_IsArray(list) || strncmp(store_root, cwd, n) != 0 || store_root[n] != '/')
        return;
    const char *rel = store_root + n + 1;
    size_t rlen = strlen(rel);
    for (int i = cJSON_GetArraySize(list) - 1; i >= 0; i--) {
        const char *f = cJSON_GetStringValue(cJSON_GetArrayItem(list, i));
        if (f && strncmp(f, rel, rlen) == 0 && (f[rlen] == '/' || f[rlen] == '\0'))
            cJSON_DeleteItemFromArray(list, i);
    }
}

/* Runs git and reads the binary: tens of milliseconds, so the agent does it
 * after the program has been told to go. */
void mt_run_collect_metadata(struct mt_agent *a)
{
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddItemToObject(meta, "code", code_json(a));
    if (a->cwd) {
        struct mt_meta_git_opts go = {
            .dir = a->cwd, .run_dir = a->store.dir, .code_disabled = a->cfg.code_disabled,
        };
        cJSON *git = mt_meta_git_json(&go);
        if (git) {
            drop_store_files(git, a->cwd, a->store.root);
            cJSON_AddItemToObject(meta, "git", git);
        }
    }
    if (a->ncommand > 0) {
        char path[4096];
        const char *prog = a->command[0];
        if (!strchr(prog, '/') && mt_meta_which(prog, getenv("PATH"), path, sizeof path) == 0)
            prog = path;
        char abs[4096];
        if (prog[0] != '/' && a->cwd) {
            snprintf(abs, sizeof abs, "%s/%s", a->cwd, prog);
            prog = abs;
        }
        cJSON *bin = mt_meta_binary_json(prog);
        if (bin)
            cJSON_AddItemToObject(meta, "binary", bin);
    }
    cJSON_AddItemToObject(meta, "cluster", mt_meta_cluster_json(&a->cluster));
    cJSON *host = mt_meta_host_json(NULL, NULL);
    if (host)
        cJSON_AddItemToObject(meta, "host", host);
    cJSON_Delete(a->meta);
    a->meta = meta;
}

static void emit_system_row(void *ctx, const char *row)
{
    struct mt_agent *a = ctx;
    /* The sampler's own thread: one whole line per call, flushed at once
     * (a row every 15 s is no load). */
    if (fputs(row, a->store.system) == EOF || putc('\n', a->store.system) == EOF ||
        fflush(a->store.system) == EOF)
        a->store.write_errors++;
}

void mt_run_start_system_metrics(struct mt_agent *a)
{
    if (a->cfg.system_interval <= 0)
        return;
    struct mt_sys_opts o = {
        .procfs_root = NULL, .root_pid = a->root_pid, .disk_path = a->store.dir,
        .nvml_path = getenv("METRICTAP_NVML_PATH"),
        .interval_ms = (unsigned)(a->cfg.system_interval * 1000.0 + 0.5),
        .window_ms = (unsigned)(a->cfg.system_window * 1000.0 + 0.5),
        .start_unix = a->start_unix,
    };
    a->sys = mt_sys_thread_start(&o, emit_system_row, a);
    if (!a->sys && errno) {
        char fields[128];
        snprintf(fields, sizeof fields, "\"message\":\"cannot start system metrics: %s\"",
                 strerror(errno));
        mt_store_event(&a->store, mt_now_unix(), "warning", fields);
    }
}

void mt_run_stop_system_metrics(struct mt_agent *a)
{
    mt_sys_thread_stop(a->sys);
    a->sys = NULL;
}
