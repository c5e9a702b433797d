/* Who wrote what: bytes per stream and threads per process of the run, so
 * every record's pid, tid and stream leave a trace in run.json
 * (metadata.capture_counts.processes). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_console.h"
#include "mt_agent.h"

#define MAX_PROCS 4096
#define MAX_TIDS 256

struct mt_procstat {
    uint32_t pid;
    char exe[256];
    uint64_t bytes[4];
    uint64_t elsewhere[MT_ELSEWHERE_KINDS];
    uint32_t ntids, more_tids;
    uint32_t tids[MAX_TIDS];
};

static struct mt_procstat *stat_of(struct mt_agent *a, uint32_t pid, const char *exe)
{
    struct mt_procstat *p = NULL;
    if (a->last_proc < a->nprocs && a->procs[a->last_proc].pid == pid)
        p = &a->procs[a->last_proc];
    for (size_t i = 0; !p && i < a->nprocs; i++)
        if (a->procs[i].pid == pid) {
            p = &a->procs[i];
            a->last_proc = i;
        }
    if (!p) {
        if (a->nprocs == MAX_PROCS) {
            a->procs_untracked++;
            return NULL;
        }
        if (a->nprocs == a->cap_procs) {
            a->cap_procs = a->cap_procs ? a->cap_procs * 2 : 8;
            a->procs = mt_xrealloc(a->procs, a->cap_procs * sizeof *a->procs);
        }
        p = &a->procs[a->nprocs];
        memset(p, 0, sizeof *p);
        p->pid = pid;
        snprintf(p->exe, sizeof p->exe, "%s", exe ? exe : "");
        a->last_proc = a->nprocs++;
    }
    return p;
}

void mt_procstats_not_console(struct mt_agent *a, const char *fields_json)
{
    struct mt_buf b;
    mt_buf_init(&b, strlen(fields_json) + 3);
    mt_buf_addc(&b, '{');
    mt_buf_adds(&b, fields_json);
    mt_buf_addc(&b, '}');
    cJSON *o = cJSON_Parse(b.data);
    mt_buf_free(&b);
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    const cJSON *exe = cJSON_GetObjectItemCaseSensitive(o, "exe");
    struct mt_procstat *p = cJSON_IsNumber(pid) && cJSON_IsString(exe)
                                ? stat_of(a, (uint32_t)pid->valuedouble, exe->valuestring)
                                : NULL;
    for (int k = 0; p && k < MT_ELSEWHERE_KINDS; k++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, mt_elsewhere_name(k));
        if (cJSON_IsNumber(n)) {
            p->elsewhere[k] += (uint64_t)n->valuedouble;
            a->elsewhere_bytes[k] += (uint64_t)n->valuedouble;
        }
    }
    cJSON_Delete(o);
}

void mt_procstats_add(struct mt_agent *a, uint32_t pid, const char *exe, int stream,
                      uint32_t tid, uint32_t len)
{
    struct mt_procstat *p = stat_of(a, pid, exe);
    if (!p)
        return;
    if (stream >= 0 && stream < 4)
        p->bytes[stream] += len;
    for (uint32_t i = 0; i < p->ntids; i++)
        if (p->tids[i] == tid)
            return;
    if (p->ntids < MAX_TIDS)
        p->tids[p->ntids++] = tid;
    else
        p->more_tids++;
}

void mt_procstats_free(struct mt_agent *a)
{
    free(a->procs);
    a->procs = NULL;
    a->nprocs = a->cap_procs = 0;
}

cJSON *mt_procstats_json(const struct mt_agent *a)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < a->nprocs; i++) {
        const struct mt_procstat *p = &a->procs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "pid", p->pid);
        cJSON_AddStringToObject(o, "exe", p->exe);
        cJSON_AddNumberToObject(o, "stdout_bytes", (double)p->bytes[1]);
        cJSON_AddNumberToObject(o, "stderr_bytes", (double)p->bytes[2]);
        cJSON *elsewhere = NULL;
        for (int k = 0; k < MT_ELSEWHERE_KINDS; k++)
            if (p->elsewhere[k]) {
                if (!elsewhere)
                    elsewhere = cJSON_AddObjectToObject(o, "not_console_bytes");
                cJSON_AddNumberToObject(elsewhere, mt_elsewhere_name(k), (double)p->elsewhere[k]);
            }
        cJSON *tids = cJSON_AddArrayToObject(o, "tids");
        for (uint32_t t = 0; t < p->ntids; t++)
            cJSON_AddItemToArray(tids, cJSON_CreateNumber(p->tids[t]));
        if (p->more_tids)
            cJSON_AddNumberToObject(o, "more_tids", p->more_tids);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}
