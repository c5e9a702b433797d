/* metrictap sync [RUN...|--all]: uploads what each run has pending, several
 * runs at once.  Idempotent: the cursor in upload/<backend>.json and the
 * backend's checks make a second sync send nothing twice. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../agent/mt_store.h"
#include "../agent/mt_upload.h"
#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "select.h"

struct job {
    char dir[PATH_MAX];
    char backend[32];
    int result;
    char msg[1024];
    struct mt_upload_live live;
    volatile int done;
    int told;               /* its first failure was printed */
};

struct pool {
    struct job *jobs;
    size_t n, next;
    const struct mt_upload_opts *opts;
    pthread_mutex_t mu;
};

static int is_run_dir(const char *d)
{
    char p[PATH_MAX + 16];
    struct stat st;
    snprintf(p, sizeof(p), "%s/run.json", d);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int add_job(struct pool *p, size_t *cap, const char *dir)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->jobs[i].dir, dir) == 0)
            return 0;
    if (p->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct job *nj = realloc(p->jobs, nc * sizeof(*nj));
        if (!nj)
            return -ENOMEM;
        p->jobs = nj;
        *cap = nc;
    }
    memset(&p->jobs[p->n], 0, sizeof(p->jobs[0]));
    pthread_mutex_init(&p->jobs[p->n].live.mu, NULL);
    snprintf(p->jobs[p->n].dir, sizeof(p->jobs[0].dir), "%s", dir);
    p->n++;
    return 0;
}

/* Another job for the run of job i (for the next backend). */
static int add_job_dup(struct pool *p, size_t *cap, size_t i)
{
    if (p->n == *cap) {
        size_t nc = *cap * 2;
        struct job *nj = realloc(p->jobs, nc * sizeof(*nj));
        if (!nj)
            return -ENOMEM;
        p->jobs = nj;
        *cap = nc;
    }
    p->jobs[p->n] = p->jobs[i];
    pthread_mutex_init(&p->jobs[p->n].live.mu, NULL);
    p->n++;
    return 0;
}

/* Every root/runs/<project>/<id> (id == NULL: all of them; project NULL:
 * in every project).  Returns how many. */
static int find_runs(const char *root, const char *project, const char *id, struct pool *p,
                     size_t *cap)
{
    char runs[PATH_MAX];
    int found = 0;
    snprintf(runs, sizeof(runs), "%s/runs", root);
    DIR *d = opendir(runs);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || (project && strcmp(project, e->d_name) != 0))
            continue;
        char proj[PATH_MAX];
        snprintf(proj, sizeof(proj), "%s/%.255s", runs, e->d_name);
        DIR *d2 = opendir(proj);
        if (!d2)
            continue;
        struct dirent *r;
        while ((r = readdir(d2))) {
            if (r->d_name[0] == '.' || (id && strcmp(r->d_name, id) != 0))
                continue;
            char rd[PATH_MAX];
            int n = snprintf(rd, sizeof(rd), "%.3800s/%.255s", proj, r->d_name);
            if (n > 0 && (size_t)n < sizeof(rd) && is_run_dir(rd) && add_job(p, cap, rd) == 0)
                found++;
        }
        closedir(d2);
    }
    closedir(d);
    return found;
}

static void *worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n)
            break;
        struct job *j = &p->jobs[i];
        struct mt_upload_opts o = *p->opts;
        snprintf(o.backend, sizeof(o.backend), "%s", j->backend);
        o.live = &j->live;
        j->result = mt_upload_sync_run(j->dir, &o, j->msg, sizeof(j->msg));
        __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* The last part of a run directory: its id. */
static const char *run_id_of(const char *dir)
{
    const char *s = strrchr(dir, '/');
    return s && s[1] ? s + 1 : dir;
}

/* While the jobs run: on a terminal, one line redrawn in place (a bar of
 * the runs done, points sent, runs waiting for their agent, the last
 * failure); elsewhere, one line per job when it first fails, so that a sync
 * to an unreachable server never sits silent for its whole timeout. */
static void watch(struct pool *p, int talk, int tty)
{
    int drawn = 0;
    for (;;) {
        size_t done = 0, waiting = 0;
        unsigned long long points = 0;
        char cause[300] = "";
        for (size_t i = 0; i < p->n; i++) {
            struct job *j = &p->jobs[i];
            done += __atomic_load_n(&j->done, __ATOMIC_ACQUIRE) != 0;
            pthread_mutex_lock(&j->live.mu);
            points += j->live.points_sent;
            waiting += j->live.waiting_for_agent != 0;
            if (j->live.cause[0] && !j->done)
                snprintf(cause, sizeof(cause), "%s", j->live.cause);
            if (talk && !tty && j->live.cause[0] && !j->told) {
                fprintf(stderr, "metrictap: sync: %s: %s: %s; retrying for up to %.0f s\n",
                        j->backend, run_id_of(j->dir), j->live.cause, p->opts->sync_timeout_s);
                j->told = 1;
            }
            pthread_mutex_unlock(&j->live.mu);
        }
        if (talk && tty) {
            enum { W = 20 };
            char bar[W + 1];
            size_t fill = p->n ? done * W / p->n : W;
            for (size_t k = 0; k < W; k++)
                bar[k] = k < fill ? '#' : '-';
            bar[W] = '\0';
            fprintf(stderr, "\rmetrictap: sync [%s] %zu/%zu runs, %llu points sent", bar, done, p->n,
                    points);
            if (waiting)
                fprintf(stderr, ", waiting for %zu run%s agent", waiting,
                        waiting == 1 ? "'s" : "s'");
            if (cause[0])
                fprintf(stderr, ", last failure: %.80s", cause);
            fputs("\033[K", stderr);
            drawn = 1;
        }
        if (done == p->n)
            break;
        usleep(250 * 1000);
    }
    if (drawn)
        fputc('\n', stderr);
}

static int usage(void)
{
    fputs(mt_cli_usage("sync"), stderr);
    return 2;
}

int mt_cmd_sync(int argc, char **argv)
{
    return mt_cli_sync_main(argc, argv, 0);
}

int mt_cli_sync_main(int argc, char **argv, int exporting)
{
    struct mt_config cfg;
    struct mt_upload_opts opts;
    struct pool p = {.mu = PTHREAD_MUTEX_INITIALIZER};
    size_t cap = 0;
    int all = 0, quiet = 0, jobs = 4, result = 0, nbe;
    char err[1024], names[8][32];
    const char *to = NULL;
    const char *project = mt_cli_take_project(&argc, argv);
    struct mt_index *ix = NULL;

    mt_cli_load_config(&cfg);
    mt_upload_opts_init(&opts);
    mt_upload_opts_from_config(&opts, &cfg);
    if (mt_upload_opts_from_env(&opts, err, sizeof(err)) != 0) {
        fprintf(stderr, "metrictap: %s\n", err);
        result = 2;
        goto out;
    }
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--to") == 0)
            to = argv[i + 1];
    nbe = mt_upload_choose(to ? to : cfg.upload_to, &opts, names, 8, err, sizeof(err));
    if (nbe < 0) {
        fprintf(stderr, "metrictap: sync: %s\n", err);
        result = 2;
        goto out;
    }
    if (nbe == 0) {
        fprintf(stderr, "metrictap: sync: nothing to sync to; give --to mlflow,tensorboard,wandb, "
                        "upload.to, or set MLFLOW_TRACKING_URI\n");
        result = 2;
        goto out;
    }
    const char *root = cfg.dir && cfg.dir[0] ? cfg.dir : "metrictap";
    int store_fd = mt_store_dir_fd(root, NULL, NULL, 0, err, sizeof(err));
    if (store_fd < 0 && store_fd != -ENOENT) { /* cursors are written below it */
        fprintf(stderr, "metrictap: %s\n", err);
        result = 1;
        goto out;
    }
    if (store_fd >= 0)
        close(store_fd);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--all") == 0) {
            all = 1;
        } else if (strcmp(a, "--to") == 0 && i + 1 < argc) {
            i++; /* read above */
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "-j") == 0 && i + 1 < argc) {
            jobs = (int)strtol(argv[++i], NULL, 10);
            if (jobs < 1 || jobs > 64) {
                fprintf(stderr, "metrictap: sync: -j %s: give 1 to 64\n", argv[i]);
                result = 2;
                goto out;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            result = usage();
            goto out;
        } else if (a[0] == '-' && !mt_cli_is_run_position(a)) {
            fprintf(stderr, "metrictap: sync: unknown option %s\n", a);
            result = usage();
            goto out;
        } else if (is_run_dir(a)) {
            if (add_job(&p, &cap, a) != 0)
                goto oom;
        } else {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/runs/%s", root, a);
            if (strchr(a, '/') && is_run_dir(path)) {
                if (add_job(&p, &cap, path) != 0)
                    goto oom;
            } else {
                /* An id, prefix, name or position, as every command takes it. */
                char *id = NULL, *dir = NULL;
                if (!ix && !(ix = mt_cli_open_index(&cfg))) {
                    result = 1;
                    continue;
                }
                if (mt_cli_find_run(ix, root, project, a, &id, &dir) != 0)
                    result = 1;
                else if (add_job(&p, &cap, dir) != 0) {
                    free(id);
                    free(dir);
                    goto oom;
                }
                free(id);
                free(dir);
            }
        }
    }
    if (all)
        find_runs(root, project, NULL, &p, &cap);
    if (result != 0 && !p.n)
        goto out; /* no run named exists */
    if (!all && argc < 2) {
        result = usage();
        goto out;
    }
    /* one job per run and backend: each backend has its own cursor and lock */
    size_t nruns = p.n;
    for (int b = 0; b < nbe; b++)
        for (size_t r = 0; r < nruns; r++) {
            if (b > 0) {
                if (add_job_dup(&p, &cap, r) != 0)
                    goto oom;
            }
            snprintf(p.jobs[b == 0 ? r : p.n - 1].backend, sizeof(p.jobs[0].backend), "%s",
                     names[b]);
        }
    opts.quiet = quiet;
    opts.exporting = exporting;
    p.opts = &opts;
    /* A run whose agent died is finished before it is sent (here, not in
     * the workers: a recovery reads the run's config in its directory). */
    for (size_t i = 0; i < p.n; i++)
        mt_cli_settle(p.jobs[i].dir, quiet);
    size_t nt = (size_t)jobs < p.n ? (size_t)jobs : p.n;
    pthread_t th[64];
    size_t started = 0;
    for (size_t i = 0; i < nt; i++)
        if (pthread_create(&th[started], NULL, worker, &p) == 0)
            started++;
    if (!started && p.n)
        worker(&p);
    watch(&p, !quiet && !exporting, isatty(STDERR_FILENO));
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < p.n; i++) {
        struct job *j = &p.jobs[i];
        if (j->result != 0)
            result = 1;
        pthread_mutex_destroy(&j->live.mu);
        if (j->result != 0 || !quiet)
            fprintf(stderr, "metrictap: %s: %s: %s\n", exporting ? "export" : "sync", j->backend,
                    j->msg);
    }
    goto out;
oom:
    fprintf(stderr, "metrictap: sync: out of memory\n");
    result = 1;
out:
    free(p.jobs);
    mt_index_close(ix);
    mt_config_free(&cfg);
    return result;
}
