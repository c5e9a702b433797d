/* The shim's life cycle: join or start a run in the constructor, one ring per
 * process image, a fresh ring in fork children, and passivity on any failure.
 *
 * The first process of a tree (no METRICTAP_CHANNEL in its environment)
 * starts the run's agent and passes the channel to its children through the
 * environment.  Every other process joins that channel quietly: if the run is
 * already over or the channel is gone, it simply stays passive. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_console.h"
#include "../common/mt_rank.h"
#include "../common/mt_spawn.h"
#include "shim.h"

MT_HIDDEN struct mt_ring_header *volatile mt_ring;
MT_HIDDEN struct mt_ctl *mt_ctl;
MT_HIDDEN MT_TLS int mt_depth;

static char channel_dir[512];
static struct mt_rank_info rank_info;

extern char **environ;

/* The one line the shim may print, through the real write. */
static void say_line(const char *what, const char *consequence)
{
    char line[768];
    int n = snprintf(line, sizeof line, "metrictap: %s; %s\n", what, consequence);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    if (n > 0)
        syscall(SYS_write, 2, line, (size_t)n);
}

static void say(const char *what)
{
    say_line(what, "this run is not tracked");
}

static int strict_mode(void)
{
    const char *s = getenv(MT_ENV_STRICT);
    return s && (*s == '1' || *s == 't' || *s == 'y');
}

extern MT_HIDDEN void mt_capture_reset_thread(void);
extern MT_HIDDEN uid_t mt_run_uid(void); /* ids.c */

/* This process image's ring in the run (mt_ctl is mapped): counted among
 * the run's producers, or, when none can be made (/dev/shm full), among the
 * processes that run untracked, which the agent records.  Returns 1 for the
 * run's first such failure, so that one line tells of it. */
static int open_ring(uint32_t flags)
{
    mt_count_producer();
    /* The run's capture.ring_size, as the agent read it from the config (a
     * file, METRICTAP_CAPTURE_RING_SIZE or METRICTAP_RING_SIZE), so that
     * every process of the run has the same. */
    mt_ring = mt_channel_create_ring(channel_dir, mt_ctl_ring_capacity(mt_ctl), flags,
                                     rank_info.rank, rank_info.world_size);
    /* A process that became another user cannot enter the run's private
     * channel: that was told when it changed (ids.c), and is no full tmpfs. */
    if (!mt_ring && geteuid() != mt_run_uid())
        return 0;
    return !mt_ring && atomic_fetch_add(&mt_ctl->rings_failed, 1) == 0;
}

/* A child or fork of a live run that got no ring. */
static void say_untracked(void)
{
    say_line("cannot create a capture ring (is /dev/shm full?)",
             "this process runs untracked, and the run records that");
}

/* stack.enabled (the default): under Yama's ptrace_scope 1 only a process's
 * ancestors may ptrace it, and the agent is none (it is double-forked), so
 * each process of the run names it (mt_stack.h).  Without Yama the call
 * fails harmlessly; errno is kept. */
static void allow_agent_tracer(void)
{
    if (!mt_ctl || !mt_ring || !(mt_ctl->options & MT_CTL_OPT_STACK) || !mt_ctl->agent_pid)
        return;
    int saved = errno;
    prctl(PR_SET_PTRACER, (unsigned long)mt_ctl->agent_pid, 0UL, 0UL, 0UL);
    errno = saved;
}

static void atfork_child(void)
{
    struct mt_ring_header *parent = mt_ring;
    mt_ring = NULL;
    mt_capture_reset_thread();
    if (!parent)
        return;
    munmap(parent, MT_RING_HDR_SIZE + parent->capacity);
    mt_console_forked();
    if (open_ring(0))
        say_untracked();
    mt_record_process();
    allow_agent_tracer(); /* a forked child is a process of its own to Yama */
}

/* Finds metrictap-agent beside this library, unless the environment names it. */
static int agent_path(char *out, size_t size)
{
    const char *env = getenv(MT_ENV_AGENT);
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return 0;
    }
    Dl_info info;
    if (!dladdr((void *)agent_path, &info) || !info.dli_fname)
        return -1;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash)
        snprintf(out, size, "./metrictap-agent");
    else
        snprintf(out, size, "%.*s/metrictap-agent", (int)(slash - info.dli_fname),
                 info.dli_fname);
    return 0;
}

/* The agent gets the program's environment without the preload. */
static char **agent_environment(void)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            env[k++] = environ[i];
    env[k] = NULL;
    return env;
}

static void go_passive(const char *why)
{
    if (*why)
        say(why); /* an empty reason: tracking is disabled on purpose */
    setenv(MT_ENV_OFF, "1", 1); /* children stay quiet instead of repeating this */
    if (strict_mode())
        _exit(125);
}

struct start_ctx {
    char path[1024];
    char **env;
    char pid[32];
    const char *rendezvous; /* or NULL */
};

static int start_agent(void *p, struct mt_agent_answer *ans)
{
    struct start_ctx *c = p;
    char *argv[] = { c->path, "--root-pid", c->pid, "--rendezvous", (char *)c->rendezvous,
                     NULL };
    if (!c->rendezvous)
        argv[3] = NULL;
    return mt_agent_start(c->path, argv, c->env, 10000, ans);
}

static const char *project_from_env(void)
{
    const char *p = getenv("METRICTAP_PROJECT");
    if (!p || !*p)
        p = getenv("WANDB_PROJECT");
    return p && *p ? p : "uncategorized";
}

static void start_run(void)
{
    static struct start_ctx c;
    struct mt_agent_answer ans;
    if (agent_path(c.path, sizeof c.path) != 0) {
        go_passive("cannot locate metrictap-agent");
        return;
    }
    c.env = agent_environment();
    if (!c.env) {
        go_passive("out of memory");
        return;
    }
    snprintf(c.pid, sizeof c.pid, "%d", (int)getpid());
    /* The ranks of a distributed job on this host share one run. */
    char rdv[512];
    int rc, leader = 1;
    if (mt_rank_shares_run(&rank_info)) {
        rc = mt_rank_rendezvous_dir(&rank_info, project_from_env(), rdv, sizeof rdv, ans.error,
                                    sizeof ans.error);
        c.rendezvous = rdv;
        if (rc == 0)
            rc = mt_rank_rendezvous(rdv, start_agent, &c, 20000, &ans, &leader);
    } else {
        rc = start_agent(&c, &ans);
    }
    free(c.env);
    if (rc != 0) {
        go_passive(ans.error);
        return;
    }
    (void)leader; /* a joining rank's root is a primary of the shared run too */
    snprintf(channel_dir, sizeof channel_dir, "%s", ans.channel);
    mt_ctl = mt_channel_map_ctl(channel_dir);
    if (!mt_ctl) {
        go_passive("cannot open the run's capture channel");
        return;
    }
    open_ring(MT_RING_PRIMARY); /* other ranks of a shared run count too */
    if (!mt_ring) {
        go_passive("cannot create a capture ring (is /dev/shm full?)");
        return;
    }
    setenv(MT_ENV_CHANNEL, ans.channel, 1);
    setenv(MT_ENV_RUN_ID, ans.run_id, 1);
    /* What this first process has as stdout and stderr is the run's console
     * for the whole tree (console.c). */
    char console[128];
    mt_console_describe(console, sizeof console);
    setenv(MT_ENV_CONSOLE, console, 1);
}

static void join_run(const char *chan)
{
    snprintf(channel_dir, sizeof channel_dir, "%s", chan);
    mt_ctl = mt_channel_map_ctl(channel_dir);
    if (!mt_ctl)
        return; /* the run is over or its channel is gone: stay quiet */
    if (open_ring(0))
        say_untracked();
}

/* PYTHONUNBUFFERED=1 for a Python image, unless the environment says
 * already, or the run's config turned it off: Python block-buffers a stdout
 * that is a pipe or a file, so its lines would all arrive (and be stamped)
 * at the end.  The bytes are the same; they are written sooner.  Set in the
 * constructor, before the interpreter reads its environment. */
static void python_unbuffered(void)
{
    if (!mt_ctl || !(mt_ctl->options & MT_CTL_OPT_PYTHON_UNBUFFERED) || !mt_ring)
        return;
    const char *exe = strrchr(mt_ring->exe, '/');
    exe = exe ? exe + 1 : mt_ring->exe;
    if (strncmp(exe, "python", 6) != 0 || getenv("PYTHONUNBUFFERED"))
        return;
    setenv("PYTHONUNBUFFERED", "1", 1);
}

/* glibc hands constructors the program's argc, argv and environment. */
__attribute__((constructor)) static void mt_shim_init(int argc, char **argv, char **envp)
{
    (void)envp;
    int saved = errno;
    if (getauxval(AT_SECURE))
        return; /* setuid and friends: do nothing at all */
    mt_resolve_all();
    const char *off = getenv(MT_ENV_OFF);
    if (off && *off == '1')
        goto out;
    mt_rank_from_env(&rank_info);
    const char *chan = getenv(MT_ENV_CHANNEL);
    if (chan && *chan)
        join_run(chan);
    else
        start_run();
    mt_console_init(argc, argv);
    mt_record_process();
    python_unbuffered();
    allow_agent_tracer();
    if (mt_ring)
        mt_watch_init(channel_dir);
    if (mt_ring)
        pthread_atfork(NULL, NULL, atfork_child);
    if (mt_ring)
        mt_crash_install();
out:
    errno = saved;
}
