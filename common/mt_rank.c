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
#include "mt_safefs.h"

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

/* The user's private directory for meeting places: $XDG_RUNTIME_DIR/metrictap
 * when XDG_RUNTIME_DIR is the user's own and private (as systemd makes it),
 * else /dev/shm/metrictap-<uid>, else /tmp/metrictap-<uid>; each made 0700
 * and checked (ours, no access for others, no link) before it is used.  A
 * place someone else made first is passed over. */
static int private_base(char *out, size_t size, char *err, size_t errsz)
{
    char cand[3][400];
    int n = 0;
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/') {
        int fd = mt_safefs_open_dir(xdg, MT_SAFEFS_PRIVATE, err, errsz);
        if (fd >= 0) {
            close(fd);
            snprintf(cand[n++], sizeof cand[0], "%.380s/metrictap", xdg);
        }
    }
    snprintf(cand[n++], sizeof cand[0], "/dev/shm/metrictap-%u", (unsigned)geteuid());
    snprintf(cand[n++], sizeof cand[0], "/tmp/metrictap-%u", (unsigned)geteuid());
    for (int i = 0; i < n; i++) {
        int fd = mt_safefs_open_dir(cand[i], MT_SAFEFS_CREATE | MT_SAFEFS_PRIVATE, err, errsz);
        if (fd >= 0) {
            close(fd);
            snprintf(out, size, "%s", cand[i]);
            return 0;
        }
    }
    return -1;
}

int mt_rank_rendezvous_dir(const struct mt_rank_info *ri, const char *project, char *out,
                           unsigned long size, char *err, unsigned long errsz)
{
    char base[400], why[400];
    /* FNV-1a of project and group: a short, safe directory name. */
    uint64_t h = 1469598103934665603ull;
    for (const char *s = project ? project : ""; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *s = ri->group; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    if (private_base(base, sizeof base, why, sizeof why) != 0) {
        snprintf(err, errsz, "no private place for the ranks to meet (%s)", why);
        return -1;
    }
    snprintf(out, size, "%s/rdv-%016llx", base, (unsigned long long)h);
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The meeting place, checked: ours, private, no link (its parent is too). */
static int open_place(const char *dir)
{
    return mt_safefs_open_dir(dir, MT_SAFEFS_PRIVATE, NULL, 0);
}

static int write_answer(const char *dir, const char *line)
{
    char tmp[64];
    int dfd = open_place(dir);
    if (dfd < 0)
        return -1;
    snprintf(tmp, sizeof tmp, ".answer.%d", (int)getpid());
    unlinkat(dfd, tmp, 0);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd >= 0) {
        size_t n = strlen(line);
        int ok = write(fd, line, n) == (ssize_t)n;
        close(fd);
        if (ok && renameat(dfd, tmp, dfd, "answer") == 0)
            rc = 0;
        else
            unlinkat(dfd, tmp, 0);
    }
    close(dfd);
    return rc;
}

/* A word of the answer: printable, no space, at most `max` bytes. */
static int word_ok(const char *w, size_t max, int path)
{
    size_t n = strlen(w);
    if (!n || n > max || (path && w[0] != '/'))
        return 0;
    for (; *w; w++)
        if ((unsigned char)*w <= ' ' || (unsigned char)*w >= 0x7f)
            return 0;
    return 1;
}

/* Reads "OK id channel run_dir" or "ERR ..." left by the leader.  The
 * place and the file are checked first; an ERR's text is not repeated (the
 * leader printed it), and an OK is taken only when well formed. */
static int read_answer(const char *dir, struct mt_agent_answer *ans)
{
    char line[2048];
    int dfd = open_place(dir);
    if (dfd < 0)
        return 2; /* not ours: never read, never joined */
    int fd = mt_safefs_openat(dfd, dir, "answer", O_RDONLY | O_NONBLOCK, 0, NULL, 0);
    close(dfd);
    if (fd == -ENOENT)
        return 1; /* not yet */
    if (fd < 0)
        return 2;
    ssize_t n = read(fd, line, sizeof line - 1);
    close(fd);
    if (n <= 0)
        return 1;
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "ERR ", 4) == 0) {
        snprintf(ans->error, sizeof ans->error,
                 "the first rank of this group could not start the run (its own message says why)");
        return -1;
    }
    char id[64], chan[512], rd[1024];
    if (sscanf(line, "OK %63s %511s %1023s", id, chan, rd) != 3 || !word_ok(id, 63, 0) ||
        !word_ok(chan, 511, 1) || !word_ok(rd, 1023, 1))
        return 1;
    snprintf(ans->run_id, sizeof ans->run_id, "%s", id);
    snprintf(ans->channel, sizeof ans->channel, "%s", chan);
    snprintf(ans->run_dir, sizeof ans->run_dir, "%s", rd);
    return 0;
}

void mt_rank_remove_place(const char *dir)
{
    int dfd = open_place(dir);
    if (dfd < 0)
        return; /* not ours: left alone */
    unlinkat(dfd, "answer", 0);
    close(dfd);
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
        if (rc == 2) {
            snprintf(ans->error, sizeof ans->error,
                     "the ranks' meeting place %s is not private to you", dir);
            return -1;
        }
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
        mt_rank_remove_place(dir);
    }
    snprintf(ans->error, sizeof ans->error, "cannot join the run of the group's other ranks");
    return -1;
}
