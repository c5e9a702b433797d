/* metrictap run [options] -- CMD ARGS...
 *
 * Starts the run's agent, runs CMD with the shim preloaded as a child, waits
 * for it, hands its exact wait status to the agent through a ring of its own,
 * waits (bounded) for the agent to finish the run, and exits exactly as CMD
 * did: same code, or the same signal.  Prints nothing of its own unless -v.
 * When tracking cannot start, one line on stderr and CMD runs untracked
 * (or, with --strict, nothing runs and the exit code is 125). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_channel.h"
#include "../common/mt_console.h"
#include "../common/mt_rank.h"
#include "../common/mt_ring.h"
#include "../common/mt_spawn.h"
#include <cjson/cJSON.h>

#include "../agent/mt_meta.h"
#include "../agent/mt_recover.h"
#include "../common/mt_index.h"
#include "../agent/mt_store.h"
#include "../config/mt_config.h"
#include "mt_capture.h"
#include "../agent/mt_upload.h"
#include "mt_cli.h"

extern char **environ;

#define END_WAIT_EXTRA_S 10.0 /* beyond the upload flush timeout */

static volatile pid_t child_pid;

static void forward_signal(int sig)
{
    if (child_pid > 0)
        kill(child_pid, sig);
}

/* Flags that become METRICTAP_* variables, so the agent and any nested
 * `metrictap` see the same settings with the documented precedence. */
static const struct {
    const char *flag, *var;
} flag_vars[] = {
    { "--project", "METRICTAP_PROJECT" },   { "--name", "METRICTAP_NAME" },
    { "--tags", "METRICTAP_TAGS" },         { "--group", "METRICTAP_GROUP" },
    { "--job-type", "METRICTAP_JOB_TYPE" }, { "--notes", "METRICTAP_NOTES" },
    { "--id", "METRICTAP_ID" },             { "--resume", "METRICTAP_RESUME" },
    { "--config", "METRICTAP_CONFIG" },     { "-c", "METRICTAP_CONFIG" },
    { "--dir", "METRICTAP_DIR" },           { "--mode", "METRICTAP_MODE" },
    { "--program", "METRICTAP_PROGRAM" },
    { "--to", "METRICTAP_UPLOAD_TO" },      { "--tensorboard-dir", "METRICTAP_TENSORBOARD_DIR" },
    { NULL, NULL },
};

static int usage(void)
{
    fputs(mt_cli_usage("run"), stderr);
    return 2;
}

/* A TensorBoard logdir or W&B directory that cannot be written: said once
 * here, where the user sees it (the agent's stderr is /dev/null). */
static void check_backends(const struct mt_config *cfg)
{
    struct mt_upload_opts o;
    char err[1024];
    mt_upload_opts_init(&o);
    mt_upload_opts_from_config(&o, cfg);
    if (mt_upload_opts_from_env(&o, err, sizeof err) == 0)
        mt_upload_preflight(cfg->upload_to, &o);
}

static char **environment_without_preload(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; env && i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            env[k++] = environ[i];
    return env;
}

static int set_preload(const char *shim)
{
    const char *old = getenv("LD_PRELOAD");
    if (!old || !*old)
        return setenv("LD_PRELOAD", shim, 1);
    size_t n = strlen(shim) + strlen(old) + 2;
    char *both = malloc(n);
    if (!both)
        return -1;
    snprintf(both, n, "%s:%s", shim, old);
    int rc = setenv("LD_PRELOAD", both, 1);
    free(both);
    return rc;
}

/* Runs CMD in place of this process, untracked. */
static int exec_untracked(char **cmd)
{
    setenv(MT_ENV_OFF, "1", 1);
    execvp(cmd[0], cmd);
    fprintf(stderr, "metrictap: %s: %s\n", cmd[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

static void fail_open(const char *why, int strict, char **cmd)
{
    if (*why)
        fprintf(stderr, "metrictap: %s; this run is not tracked\n", why);
    if (strict)
        exit(125);
    exit(exec_untracked(cmd));
}

/* --resume must / never are promises about the store: break them before the
 * program starts, not after (under bare LD_PRELOAD the agent fails open). */
static void check_resume(const struct mt_config *cfg)
{
    const char *project = *cfg->project ? cfg->project : "uncategorized";
    int must = strcmp(cfg->resume, "must") == 0, never = strcmp(cfg->resume, "never") == 0;
    if (!must && !never)
        return;
    if (!*cfg->id) {
        if (must) {
            fprintf(stderr, "metrictap: --resume must needs the run's --id\n");
            exit(2);
        }
        return;
    }
    int exists = mt_store_run_exists(cfg->dir, project, cfg->id);
    if (must && !exists) {
        fprintf(stderr,
                "metrictap: run %s does not exist in project %s under %s (--resume must); "
                "the program was not started\n",
                cfg->id, project, cfg->dir);
        exit(1);
    }
    if (never && exists) {
        fprintf(stderr,
                "metrictap: run %s already exists in project %s under %s (--resume never); "
                "the program was not started\n",
                cfg->id, project, cfg->dir);
        exit(1);
    }
}

struct start_ctx {
    char *agent;
    char **argv, **env;
};

static int start_agent(void *p, struct mt_agent_answer *ans)
{
    struct start_ctx *c = p;
    return mt_agent_start(c->agent, c->argv, c->env, 10000, ans);
}

/* A command that cannot run makes no run: say so as a shell would (127 not
 * found, 126 not executable) before anything is started. */
static void check_runnable(const char *prog)
{
    char path[4096];
    if (strchr(prog, '/'))
        snprintf(path, sizeof path, "%s", prog);
    else if (mt_meta_which(prog, getenv("PATH"), path, sizeof path) != 0) {
        fprintf(stderr, "metrictap: %s: %s\n", prog, strerror(ENOENT));
        exit(127);
    }
    if (access(path, X_OK) != 0) {
        int e = errno;
        fprintf(stderr, "metrictap: %s: %s\n", prog, strerror(e));
        exit(e == ENOENT ? 127 : 126);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for the agent's save: 1 if the agent died first.  Past a second,
 * one metrictap: line says what it is waiting for (updated in place on a
 * terminal).  The bound moves on while the parse makes progress. */
static int wait_for_save(struct mt_ctl *ctl, double bound_s)
{
    double start = now_s(), deadline = start + bound_s, next_print = start + 1.0;
    uint64_t last_parsed = 0;
    int printed = 0, tty = isatty(2);
    while (!atomic_load(&ctl->finished) && !atomic_load(&ctl->saved) && now_s() < deadline) {
        if (kill((pid_t)ctl->agent_pid, 0) != 0 && errno == ESRCH) {
            if (printed && tty)
                fputc('\n', stderr);
            return 1;
        }
        uint64_t parsed = atomic_load(&ctl->parsed_records);
        uint64_t total = atomic_load(&ctl->journal_records);
        double t = now_s();
        if (parsed != last_parsed && deadline < t + END_WAIT_EXTRA_S)
            deadline = t + END_WAIT_EXTRA_S;
        last_parsed = parsed;
        /* Only a backlog is worth a line: a run shared by ranks also waits
         * a moment for late ones, with nothing left to parse. */
        if (t >= next_print && (tty || !printed) && total >= parsed + 1000) {
            char a[32], b[32];
            mt_cli_format_count((double)parsed, a, sizeof a);
            mt_cli_format_count((double)total, b, sizeof b);
            fprintf(stderr, "%smetrictap: saving the run: %s of %s records parsed...%s",
                    tty ? "\r" : "", a, b, tty ? "" : "\n");
            printed = 1;
            next_print = t + 0.2;
        }
        usleep(2000);
    }
    if (printed && tty)
        fprintf(stderr, "\rmetrictap: saving the run: done%-40s\n", "");
    return 0;
}

/* Alive and not a zombie (the agent is not our child: where nobody reaps
 * orphans, its exit leaves one). */
static int process_alive(pid_t pid)
{
    if (kill(pid, 0) != 0)
        return 0;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return !(p && p[1] == ' ' && p[2] == 'Z');
}

/* --wait-upload: the agent exits once every backend has flushed (or given
 * up, each within its own bound), so its exit is the upload's end.  Says
 * what it waits for past a second, and one line when an upload did not
 * complete.  `bound_s` only guards against an agent that never exits. */
static void wait_for_upload(struct mt_ctl *ctl, const char *run_dir, double bound_s)
{
    double start = now_s();
    int told = 0;
    while (process_alive((pid_t)ctl->agent_pid) && now_s() < start + bound_s) {
        if (!told && now_s() > start + 1.0) {
            fprintf(stderr, "metrictap: waiting for the upload to finish (--wait-upload)\n");
            told = 1;
        }
        usleep(20 * 1000);
    }
    char state[1024];
    mt_cli_upload_column(run_dir, state, sizeof state);
    if (strstr(state, "failed") || strstr(state, "pending") || strstr(state, "uploading"))
        fprintf(stderr, "metrictap: upload: %s; `metrictap sync` sends the rest\n", state);
}

/* One line at the end when any output was dropped or cut. */
static void tell_drops(const char *run_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/run.json", run_dir);
    char *text = mt_index_read_file(path, 64 << 20, NULL);
    cJSON *run = text ? cJSON_Parse(text) : NULL;
    free(text);
    char line[1024];
    if (run && mt_cli_drops_line(run, line, sizeof line))
        fprintf(stderr, "metrictap: %s; see README \"Caps\"\n", line);
    cJSON_Delete(run);
}

/* Exits the way the child did. */
static void exit_like(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        fflush(NULL);
        raise(sig);
        exit(128 + sig);
    }
    exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

int mt_cmd_run(int argc, char **argv)
{
    int verbose = 0, strict = 0, i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-')
            break; /* the command starts here */
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            verbose = 1;
            continue;
        }
        if (strcmp(a, "--strict") == 0) {
            strict = 1;
            setenv("METRICTAP_STRICT", "1", 1);
            continue;
        }
        if (strcmp(a, "--watch") == 0 || strncmp(a, "--watch=", 8) == 0) {
            const char *glob = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (!glob || mt_capture_add_watch(glob) != 0) {
                fprintf(stderr, "metrictap run: --watch needs a glob without commas\n");
                return usage();
            }
            continue;
        }
        if (strcmp(a, "--wait-upload") == 0) {
            setenv("METRICTAP_UPLOAD_WAIT", "true", 1);
            continue;
        }
        if (strcmp(a, "--offline") == 0) {
            setenv("METRICTAP_MODE", "offline", 1);
            continue;
        }
        int known = 0;
        for (int k = 0; flag_vars[k].flag; k++) {
            size_t n = strlen(flag_vars[k].flag);
            if (strncmp(a, flag_vars[k].flag, n) == 0 && a[n] == '=') {
                setenv(flag_vars[k].var, a + n + 1, 1);
                known = 1;
            } else if (strcmp(a, flag_vars[k].flag) == 0) {
                if (i + 1 >= argc)
                    return usage();
                setenv(flag_vars[k].var, argv[++i], 1);
                known = 1;
            }
            if (known)
                break;
        }
        if (!known) {
            fprintf(stderr, "metrictap run: unknown option %s\n", a);
            return usage();
        }
    }
    if (i >= argc)
        return usage();
    char **cmd = argv + i;
    if (getenv("METRICTAP_STRICT") && *getenv("METRICTAP_STRICT") == '1')
        strict = 1;

    struct mt_config cfg;
    char err[1024];
    if (mt_config_load(&cfg, NULL, err, sizeof err) != 0)
        fail_open(err, strict, cmd);
    if (strcmp(cfg.mode, "disabled") == 0)
        exit(exec_untracked(cmd));
    check_resume(&cfg);
    check_runnable(cmd[0]);
    check_backends(&cfg);

    char shim[4096], agent[4096];
    if (mt_cli_find_beside("libmetrictap.so", shim, sizeof shim) != 0)
        fail_open("cannot find libmetrictap.so beside the metrictap command", strict, cmd);
    const char *agent_env = getenv(MT_ENV_AGENT);
    if (agent_env && *agent_env)
        snprintf(agent, sizeof agent, "%s", agent_env);
    else if (mt_cli_find_beside("metrictap-agent", agent, sizeof agent) != 0)
        fail_open("cannot find metrictap-agent beside the metrictap command", strict, cmd);

    /* The agent's argv: its own flags, then the command line for run.json. */
    struct mt_rank_info ri;
    mt_rank_from_env(&ri);
    char rdv[512] = "";
    if (mt_rank_shares_run(&ri) &&
        mt_rank_rendezvous_dir(&ri, *cfg.project ? cfg.project : "uncategorized", rdv,
                               sizeof rdv, err, sizeof err) != 0)
        fail_open(err, strict, cmd);
    int ncmd = argc - i;
    char **aargv = calloc((size_t)ncmd + 8, sizeof *aargv);
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
    int k = 0;
    aargv[k++] = agent;
    aargv[k++] = "--launcher-pid";
    aargv[k++] = pidbuf;
    if (*rdv) {
        aargv[k++] = "--rendezvous";
        aargv[k++] = rdv;
    }
    aargv[k++] = "--";
    for (int c = 0; c < ncmd && k < 60; c++)
        aargv[k++] = cmd[c];
    aargv[k] = NULL;
    struct start_ctx sc = { agent, aargv, environment_without_preload() };
    struct mt_agent_answer ans;
    int leader = 1;
    /* The ranks of a distributed job on this host share one run: the first
     * starts the agent, the others join its channel. */
    int rc = *rdv ? mt_rank_rendezvous(rdv, start_agent, &sc, 20000, &ans, &leader)
                  : start_agent(&sc, &ans);
    free(sc.env);
    free(aargv);
    if (rc != 0)
        fail_open(ans.error, strict, cmd);

    /* Static and Go programs ignore the shim: capture them from here. */
    char why[64];
    struct mt_pump *pump = NULL;
    if (mt_capture_needs_pump(cmd[0], why, sizeof why) && !(pump = mt_pump_create(err, sizeof err)))
        fail_open(err, strict, cmd);
    struct mt_ctl *ctl = mt_channel_map_ctl(ans.channel);
    /* Our ring holds only the program's end, unless it carries the
     * program's output: then it is the size of the run's other rings. */
    uint64_t ring_cap = pump && ctl ? mt_ctl_ring_capacity(ctl) : MT_RING_MIN_CAPACITY;
    struct mt_ring_header *ring =
        ctl ? mt_channel_create_ring(ans.channel, ring_cap, MT_RING_PRIMARY | MT_RING_LAUNCHER,
                                     ri.rank, ri.world_size)
            : NULL;
    if (!ring)
        fail_open("cannot open the run's capture channel", strict, cmd);
    if (verbose)
        fprintf(stderr, "metrictap: run %s in %s\n", ans.run_id, ans.run_dir);

    setenv(MT_ENV_CHANNEL, ans.channel, 1);
    setenv(MT_ENV_RUN_ID, ans.run_id, 1);
    /* The program gets our stdout and stderr: they are the run's console. */
    char console[128];
    mt_console_describe(console, sizeof console);
    setenv(MT_ENV_CONSOLE, console, 1);
    if (!pump && set_preload(shim) != 0)
        fail_open("cannot set LD_PRELOAD", strict, cmd);

    /* Like system(): the terminal's ^C and ^\ reach the child directly; a
     * signal sent to us alone is passed on. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int forwarded[] = { SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
    for (size_t s = 0; s < sizeof forwarded / sizeof *forwarded; s++) {
        struct sigaction sa = { .sa_handler = forward_signal };
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(forwarded[s], &sa, NULL);
    }

    if (pump)
        fprintf(stderr, "metrictap: %s %s; capturing its output through %s\n", cmd[0], why,
                mt_pump_describe(pump));
    pid_t pid = fork();
    if (pid < 0)
        fail_open("cannot fork", strict, cmd);
    if (pid == 0) {
        if (pump)
            mt_pump_child(pump);
        /* A static program loads no shim to name the agent its tracer. */
        if (pump && ctl && (ctl->options & MT_CTL_OPT_STACK))
            prctl(PR_SET_PTRACER, (unsigned long)ctl->agent_pid, 0UL, 0UL, 0UL);
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        for (size_t s = 0; s < sizeof forwarded / sizeof *forwarded; s++)
            signal(forwarded[s], SIG_DFL);
        execvp(cmd[0], cmd);
        int e = errno;
        fprintf(stderr, "metrictap: %s: %s\n", cmd[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    child_pid = pid;
    int status = 0;
    if (pump)
        status = mt_pump_run(pump, pid, ring, ctl);
    while (!pump && waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = 1 << 8;
            break;
        }

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (WIFSIGNALED(status))
        mt_ring_push(ring, MT_REC_META(MT_REC_SIGNAL, 0, WTERMSIG(status)), now_ns, NULL, 0);
    else
        mt_ring_push(ring, MT_REC_META(MT_REC_EXIT, 0, WEXITSTATUS(status)), now_ns, NULL, 0);
    mt_ctl_ring_bell(ctl);

    /* Wait for the agent to write the run's end, so the run is complete when
     * we return; bounded, since the program's exit must not hang on us: the
     * bound moves on while the agent is still parsing a backlog. */
    int agent_gone = 0;
    /* A rank that joined another's run does not wait for the whole job. */
    if (leader)
        agent_gone = wait_for_save(ctl, cfg.upload_flush_timeout + END_WAIT_EXTRA_S);
    if (agent_gone) {
        /* It died: record the end ourselves, from its journal and the exit
         * status we saw; nobody else will clear its channel off /dev/shm. */
        mt_channel_remove(ans.channel, ctl);
        struct mt_recover_opts ro = {
            .have_status = 1,
            .exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            .exit_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
        };
        char msg[1024];
        int r = mt_recover_run(ans.run_dir, &ro, msg, sizeof msg);
        if (r == MT_RECOVER_ERROR || (verbose && r == MT_RECOVER_DONE))
            fprintf(stderr, "metrictap: the agent died; %s\n", msg);
    }
    if (leader && cfg.upload_wait && !agent_gone)
        wait_for_upload(ctl, ans.run_dir, cfg.upload_flush_timeout + cfg.wandb_sync_timeout + 60);
    if (verbose)
        fprintf(stderr, "metrictap: run %s %s\n", ans.run_id,
                atomic_load(&ctl->finished) || agent_gone ? "saved"
                : atomic_load(&ctl->saved) ? "saved; processes that outlive the program are "
                                             "still captured (capture.linger)"
                                           : "still being saved by the agent");
    if (leader)
        tell_drops(ans.run_dir);
    mt_config_free(&cfg);
    mt_pump_destroy(pump);
    exit_like(status);
    return 1;
}
