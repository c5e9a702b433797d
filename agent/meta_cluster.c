/* Rank, world size and job identity from launcher variables. */
#include "agent/mt_meta.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_get(char *const envp[], const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=')
            return envp[i] + len + 1;
    return NULL;
}

/* A non-negative decimal int, or -1. */
static int env_int(char *const envp[], const char *name)
{
    const char *v = env_get(envp, name);
    char *end;
    long n;
    if (!v || !*v)
        return -1;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || n < 0 || n > 1 << 30)
        return -1;
    return (int)n;
}

/* Launchers in order of precedence: the variable for rank, local rank and
 * world size. */
static const struct { const char *rank, *local, *size; } launchers[] = {
    {"RANK", "LOCAL_RANK", "WORLD_SIZE"},                                     /* torchrun */
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE"},
    {"PMI_RANK", "MPI_LOCALRANKID", "PMI_SIZE"},                              /* MPICH, Intel MPI */
    {"PMIX_RANK", NULL, NULL},
    {"SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"},
};

int mt_meta_cluster_from_env(char *const envp[], struct mt_meta_cluster *c)
{
    const char *v;
    int found = 0;
    memset(c, 0, sizeof *c);
    c->rank = c->local_rank = c->world_size = -1;
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++) {
        int r = env_int(envp, launchers[i].rank);
        if (c->rank < 0 && r >= 0) {
            c->rank = r;
            c->rank_from = launchers[i].rank;
        }
        if (c->local_rank < 0 && launchers[i].local)
            c->local_rank = env_int(envp, launchers[i].local);
        if (c->world_size < 0 && launchers[i].size)
            c->world_size = env_int(envp, launchers[i].size);
    }
    if ((v = env_get(envp, "SLURM_JOB_ID")) && *v)
        snprintf(c->slurm_job_id, sizeof c->slurm_job_id, "%s", v);
    if ((v = env_get(envp, "SLURM_STEP_ID")) && *v)
        snprintf(c->slurm_step_id, sizeof c->slurm_step_id, "%s", v);
    if ((v = env_get(envp, "TORCHELASTIC_RUN_ID")) && *v)
        snprintf(c->torchelastic_run_id, sizeof c->torchelastic_run_id, "%s", v);
    if (c->slurm_job_id[0])
        snprintf(c->group, sizeof c->group, "%s", c->slurm_job_id);
    else if (c->torchelastic_run_id[0])
        snprintf(c->group, sizeof c->group, "%s", c->torchelastic_run_id);
    found = c->rank >= 0 || c->world_size >= 0 || c->local_rank >= 0 || c->slurm_job_id[0] ||
            c->torchelastic_run_id[0];
    return found;
}

cJSON *mt_meta_cluster_json(const struct mt_meta_cluster *c)
{
    cJSON *j;
    if (c->rank < 0 && c->world_size < 0 && c->local_rank < 0 && !c->slurm_job_id[0] &&
        !c->torchelastic_run_id[0])
        return NULL;
    if (!(j = cJSON_CreateObject()))
        abort();
    if (c->rank >= 0) {
        cJSON_AddNumberToObject(j, "rank", c->rank);
        cJSON_AddStringToObject(j, "rank_from", c->rank_from);
    }
    if (c->local_rank >= 0)
        cJSON_AddNumberToObject(j, "local_rank", c->local_rank);
    if (c->world_size >= 0)
        cJSON_AddNumberToObject(j, "world_size", c->world_size);
    if (c->slurm_job_id[0])
        cJSON_AddStringToObject(j, "slurm_job_id", c->slurm_job_id);
    if (c->slurm_step_id[0])
        cJSON_AddStringToObject(j, "slurm_step_id", c->slurm_step_id);
    if (c->torchelastic_run_id[0])
        cJSON_AddStringToObject(j, "torchelastic_run_id", c->torchelastic_run_id);
    if (c->group[0])
        cJSON_AddStringToObject(j, "group", c->group);
    return j;
}
