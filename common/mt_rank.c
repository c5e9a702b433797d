/* mt_rank: see mt_rank.h. */
#include "mt_rank.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mt_channel.h"

static int env_int(const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        char *end;
        if (!v || !*v)
            continue;
        long n = strtol(v, &end, 10);
        if (*end == '\0' && n >= 0 && n < (1L << 24)) {
            *out = (int)n;
            return 0;
        }
    }
    return -1;
}

void mt_rank_from_env(struct mt_rank_info *ri)
{
    static const char *const ranks[] = { "RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK",
                                         "SLURM_PROCID", NULL };
    static const char *const sizes[] = { "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                         "SLURM_NTASKS", NULL };
    static const char *const groups[] = { "METRICTAP_GROUP", "WANDB_RUN_GROUP", "SLURM_JOB_ID",
                                          "TORCHELASTIC_RUN_ID", NULL };
    memset(ri, 0, sizeof *ri);
    ri->rank = ri->world_size = -1;
    env_int(ranks, &ri->rank);
    env_int(sizes, &ri->world_size);
    for (int i = 0; groups[i]; i++) {
        const char *v = getenv(groups[i]);
        if (v && *v) {
            snprintf(ri->group, sizeof ri->group, "%s", v);
            break;
        }
    }
    const char *mode = getenv("METRICTAP_RANKS");
    snprintf(ri->mode, sizeof ri->mode, "%s", mode && *mode ? mode : "zero");
}

int mt_rank_shares_run(const struct mt_rank_info *ri)
{
    return ri->rank >= 0 && ri->world_size > 1 && ri->group[0] &&
           strcmp(ri->mode, "per-rank") != 0;
}

void mt_rank_rendezvous_dir(const struct mt_rank_info *ri, const char *project, char *out,
                            unsigned long size)
{
    /* FNV-1a of project and group: a short, safe directory name. */
    uint64_t h = 1469598103934665603ull;
    for (const char *s = project ? project : ""; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *s = ri->group; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    snprintf(out, size, "/dev/shm/metrictap-rdv-%u-%016llx", (unsigned)getuid(),
             (unsigned long long)h);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int write_answer(const char *dir, const char *line)
{
    char tmp[600], path[600];
    snprintf(tmp, sizeof tmp, "%s/.answer.%d", dir, (int)getpid());
    snprintf(path, sizeof path, "%s/answer", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(line);
    int ok = write(fd, line, n) == (ssize_t)n;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Reads "OK id channel run_dir" or "ERR message" left by the leader. */
static int read_answer(const char *dir, struct mt_agent_answer *ans)
{
    char path[600], line[2048];
    snprintf(path, sizeof path, "%s/answer", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1; /* not yet */
    ssize_t n = read(fd, line, sizeof line - 1);
    close(fd);
    if (n <= 0)
        return 1;
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "ERR ", 4) == 0) {
        snprintf(ans->error, sizeof ans->error, "%s", line + 4);
        return -1;
    }
    char id[64], chan[512], rd[1024];
    if (sscanf(line, "OK %63s %511s %1023s", id, chan, rd) != 3)
        return 1;
    snprintf(ans->run_id, sizeof ans->run_id, "%s", id);
    snprintf(ans->channel, sizeof ans->channel, "%s", chan);
    snprintf(ans->run_dir, sizeof ans->run_dir, "%s", rd);
    return 0;
}

static void remove_stale(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/answer", dir);
    unlink(path);
    rmdir(dir);
}

int mt_rank_rendezvous(const char *dir, mt_rank_start_fn start, void *ctx, int timeout_ms,
                       struct mt_agent_answer *ans, int *leader)
{
    *leader = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (mkdir(dir, 0700) == 0) {
            *leader = 1;
            char line[2200];
            int rc = start(ctx, ans);
            if (rc == 0)
                snprintf(line, sizeof line, "OK %s %s %s\n", ans->run_id, ans->channel,
                         ans->run_dir);
            else
                snprintf(line, sizeof line, "ERR %s\n", ans->error);
            write_answer(dir, line);
            return rc;
        }
        if (errno != EEXIST) {
            snprintf(ans->error, sizeof ans->error, "cannot create %s: %s", dir,
                     strerror(errno));
            return -1;
        }
        long deadline = now_ms() + timeout_ms;
        int rc;
        while ((rc = read_answer(dir, ans)) == 1 && now_ms() < deadline) {
            struct timespec nap = { 0, 10 * 1000000L };
            nanosleep(&nap, NULL);
        }
        if (rc < 0)
            return -1;
        if (rc == 0) {
            struct mt_ctl *ctl = mt_channel_map_ctl(ans->channel);
            if (ctl) { /* the run is open; the caller maps it for itself */
                munmap(ctl, MT_CTL_SIZE);
                return 0;
            }
        }
        /* The leader's run is over (or it died before answering): a stale
         * rendezvous from an earlier job of the same group.  Clear it and
         * hold the election again. */
        remove_stale(dir);
    }
    snprintf(ans->error, sizeof ans->error, "cannot join the run of the group's other ranks");
    return -1;
}
