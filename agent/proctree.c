/* The run's processes as the shim describes them (MT_REC_PROC, MT_REC_FDS),
 * and which of them is the trainer.
 *
 * The trainer is the process whose lines produced the metrics, not a shell,
 * launcher or relay around it: its command line is the run's config, its
 * name picks the preset and names the run.  A relay (tee, grep, cat...)
 * prints what it read from a pipe, so the lines it puts on the console are
 * the output of whoever writes the other end of that pipe: found by the
 * identity of the pipe (the relay's fd 0 is the writer's fd 1 or 2).  Where
 * no metric is ever printed, the first process that is not a wrapper is the
 * trainer (README "Which process is the trainer"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/mt_buf.h"
#include "../common/mt_redact.h"
#include "mt_agent.h"

#define MAX_PROCS 4096
#define MAX_ARGS 512
#define ORIGIN_DEPTH 16

struct mt_proc {
    uint32_t pid, ppid;
    uint64_t seq;        /* order in which images appeared */
    char **argv;
    int argc;
    char exe[256];
    char program[128];   /* what presets and names see (see program_name) */
    int wrapper;         /* a shell, launcher or relay (is_wrapper), or a shell script:
                            passes a trainer's output on, or starts it */
    int options;         /* its command line's options are hyper-parameters */
    int have_fds;
    struct mt_fd_id fd[3];
};

/* Shells, launchers and relays: they pass a trainer's output on (or start
 * it) and are never the trainer themselves.  Basenames; `python -m X` and
 * scripts are named after X and the script. */
static int is_wrapper(const char *program)
{
    static const char *const names[] = {
        "sh", "bash", "dash", "zsh", "ksh", "fish", "env", "timeout", "nice", "ionice", "stdbuf",
        "nohup", "time", "taskset", "numactl", "setsid", "setpriv", "sudo", "su", "runuser",
        "chrt", "flock", "xargs", "script", "unbuffer", "parallel", "srun", "mpirun", "mpiexec",
        "tee", "cat", "grep", "egrep", "fgrep", "sed", "awk", "gawk", "mawk", "head", "tail",
        "tr", "cut", "sort", "uniq", "less", "more", "ts", "pv", "strace", "ltrace", "valgrind",
        "pyenv", "conda", "mamba", "micromamba", "uv", "poetry", "pipenv", "torchrun",
        "accelerate", "deepspeed", "horovodrun", "torch.distributed.run",
        "torch.distributed.launch", "metrictap",
        /* the utilities shells and launchers ask things of: never trainers */
        "readlink", "realpath", "dirname", "basename", "uname", "which", "whereis", "type",
        "mkdir", "rm", "cp", "mv", "ln", "ls", "touch", "chmod", "date", "hostname", "id",
        "whoami", "expr", "test", "[", "true", "false", "printf", "echo", "sleep", "find",
        "wc", "seq", "mktemp", "getconf", "nproc", "git", "locale", "tput", "stty", "ps",
        "pgrep", "kill", "wait", NULL,
    };
    for (int i = 0; names[i]; i++)
        if (strcmp(program, names[i]) == 0)
            return 1;
    return 0;
}

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int is_shell(const char *name)
{
    static const char *const names[] = { "sh", "bash", "dash", "zsh", "ksh", "fish", NULL };
    for (int i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

static int interpreter(const char *name)
{
    static const char *const prefixes[] = { "python", "perl", "ruby", "node", "Rscript",
                                            "julia", "bash", "sh", "dash", "zsh", NULL };
    for (int i = 0; prefixes[i]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], n) == 0 &&
            (!name[n] || (name[n] >= '0' && name[n] <= '9') || name[n] == '.'))
            return 1;
    }
    return 0;
}

/* The name a process goes by: its executable's, or for an interpreter the
 * script or module it runs (`python train.py` is "train", `python -m
 * torch.distributed.run` is "torch.distributed.run"). */
static void program_name(const struct mt_proc *p, char *out, size_t size)
{
    const char *exe = p->argc > 0 ? base(p->argv[0]) : base(p->exe);
    if (!*exe)
        exe = base(p->exe);
    snprintf(out, size, "%s", exe);
    if (!interpreter(exe) && !interpreter(base(p->exe)))
        return;
    for (int i = 1; i < p->argc; i++) {
        const char *a = p->argv[i];
        if (strcmp(a, "-m") == 0 && i + 1 < p->argc) {
            snprintf(out, size, "%s", p->argv[i + 1]);
            return;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "-e") == 0 || strcmp(a, "-") == 0)
            return; /* inline code: the interpreter's own name */
        if (a[0] == '-') {
            /* options with a separate value */
            if ((strcmp(a, "-X") == 0 || strcmp(a, "-W") == 0 || strcmp(a, "-o") == 0) &&
                i + 1 < p->argc)
                i++;
            continue;
        }
        snprintf(out, size, "%s", base(a));
        char *dot = strrchr(out, '.');
        if (dot && (strcmp(dot, ".py") == 0 || strcmp(dot, ".sh") == 0 ||
                    strcmp(dot, ".pl") == 0 || strcmp(dot, ".rb") == 0 ||
                    strcmp(dot, ".js") == 0 || strcmp(dot, ".R") == 0))
            *dot = '\0';
        return;
    }
}

static struct mt_proc *find(struct mt_agent *a, uint32_t pid)
{
    for (size_t i = a->nproctree; i-- > 0;)
        if (a->proctree[i].pid == pid)
            return &a->proctree[i];
    return NULL;
}

static void free_argv(struct mt_proc *p)
{
    for (int i = 0; i < p->argc; i++)
        free(p->argv[i]);
    free(p->argv);
    p->argv = NULL;
    p->argc = 0;
}

void mt_proctree_image(struct mt_agent *a, uint32_t pid, const char *exe, const char *data,
                       size_t len)
{
    struct mt_rec_proc rp;
    if (len < sizeof rp)
        return;
    memcpy(&rp, data, sizeof rp);
    struct mt_proc *p = find(a, pid);
    if (!p) {
        if (a->nproctree == MAX_PROCS) {
            a->proctree_dropped++;
            return;
        }
        if (a->nproctree == a->cap_proctree) {
            a->cap_proctree = a->cap_proctree ? a->cap_proctree * 2 : 16;
            a->proctree = mt_xrealloc(a->proctree, a->cap_proctree * sizeof *a->proctree);
        }
        p = &a->proctree[a->nproctree++];
        memset(p, 0, sizeof *p);
        p->pid = pid;
    }
    /* A new image of a pid (exec) replaces what the old one was. */
    free_argv(p);
    p->have_fds = 0;
    p->seq = ++a->proctree_seq;
    p->ppid = rp.ppid;
    snprintf(p->exe, sizeof p->exe, "%s", exe ? exe : "");
    p->argv = mt_xcalloc(MAX_ARGS + 1, sizeof *p->argv);
    for (size_t off = sizeof rp; off < len && p->argc < MAX_ARGS;) {
        size_t n = strnlen(data + off, len - off);
        p->argv[p->argc++] = mt_xstrndup(data + off, n);
        off += n + 1;
    }
    /* Secrets in flags never reach the store (nor the config). */
    char **clean = mt_redact_argv(p->argv);
    if (clean) {
        free_argv(p);
        p->argv = clean;
        while (p->argv[p->argc])
            p->argc++;
    }
    program_name(p, p->program, sizeof p->program);
    p->options = !is_wrapper(p->program);
    p->wrapper = !p->options || is_shell(base(p->exe));
}

void mt_proctree_fds(struct mt_agent *a, uint32_t pid, const char *data, size_t len)
{
    struct mt_proc *p = find(a, pid);
    struct mt_rec_fds f;
    if (!p || len < sizeof f)
        return;
    memcpy(&f, data, sizeof f);
    memcpy(p->fd, f.fd, sizeof p->fd);
    p->have_fds = 1;
}

/* The most recent process other than `not` whose stdout or stderr is the
 * pipe `id`; a non-wrapper wins over a wrapper. */
static struct mt_proc *writer_of(struct mt_agent *a, const struct mt_fd_id *id, uint32_t not)
{
    struct mt_proc *best = NULL;
    for (size_t i = 0; i < a->nproctree; i++) {
        struct mt_proc *p = &a->proctree[i];
        if (p->pid == not || !p->have_fds)
            continue;
        int writes = 0;
        for (int fd = 1; fd <= 2; fd++)
            writes |= p->fd[fd].type == id->type && p->fd[fd].dev == id->dev &&
                      p->fd[fd].ino == id->ino;
        if (!writes)
            continue;
        if (!best || (best->wrapper && !p->wrapper) ||
            (best->wrapper == p->wrapper && p->seq > best->seq))
            best = p;
    }
    return best;
}

/* The trainer behind pid's output: pid itself, or, when pid is a relay
 * reading a pipe, the writer at the pipe's other end (and so on up). */
static struct mt_proc *origin(struct mt_agent *a, uint32_t pid)
{
    struct mt_proc *p = find(a, pid);
    for (int depth = 0; p && p->wrapper && p->have_fds && depth < ORIGIN_DEPTH; depth++) {
        if (p->fd[0].type != S_IFIFO)
            break;
        struct mt_proc *w = writer_of(a, &p->fd[0], p->pid);
        if (!w)
            break;
        p = w;
    }
    return p;
}

const char *mt_proctree_program_of(struct mt_agent *a, uint32_t pid)
{
    if (a->cfg.program && *a->cfg.program)
        return a->cfg.program; /* --program: as if every line came from it */
    struct mt_proc *p = origin(a, pid);
    return p ? p->program : NULL;
}

char *const *mt_proctree_argv_of(struct mt_agent *a, uint32_t pid, int *argc)
{
    struct mt_proc *p = origin(a, pid);
    if (!p || !p->options) /* a shell's or relay's is not the trainer's */
        return NULL;
    *argc = p->argc;
    return p->argv;
}

/* Makes p the run's trainer: its options become the config, its name the
 * program and (unless one was given, or the run resumed) the run's name. */
static void adopt(struct mt_agent *a, const struct mt_proc *p, const char *why)
{
    a->trainer_pid = p->pid;
    a->trainer_seq = p->seq;
    /* A shell's or relay's options (sh -c '...') are not hyper-parameters. */
    mt_parse_set_argv(a->parse, p->options ? p->argc : 0, p->options ? p->argv : NULL);
    free(a->program);
    a->program = mt_xstrdup(p->program);
    free(a->trainer_command);
    struct mt_buf cmd;
    mt_buf_init(&cmd, 1 << 16);
    for (int i = 0; i < p->argc; i++) {
        if (i)
            mt_buf_addc(&cmd, ' ');
        mt_buf_adds(&cmd, p->argv[i]);
    }
    a->trainer_command = cmd.data ? cmd.data : mt_xstrdup("");
    if (!*a->cfg.name && !a->resumed) {
        char name[256];
        if (strcmp(a->cfg.ranks, "per-rank") == 0 && a->cluster.rank >= 0)
            snprintf(name, sizeof name, "%s-rank%d-%s", p->program, a->cluster.rank, a->id);
        else
            snprintf(name, sizeof name, "%s-%s", p->program, a->id);
        free(a->name);
        a->name = mt_xstrdup(name);
    }
    char fields[512];
    struct mt_buf b;
    mt_buf_init(&b, sizeof fields);
    mt_buf_printf(&b, "\"pid\":%u,\"program\":", p->pid);
    mt_buf_json_string(&b, p->program, strlen(p->program));
    mt_buf_printf(&b, ",\"why\":\"%s\"", why);
    mt_store_event(&a->store, mt_now_unix(), "trainer", b.data);
    mt_buf_free(&b);
    a->run_json_dirty = 1;
}

void mt_proctree_metrics_from(struct mt_agent *a, uint32_t pid)
{
    if (a->trainer_fixed || !pid)
        return;
    struct mt_proc *p = origin(a, pid);
    if (!p)
        return;
    a->trainer_fixed = 1; /* the first process to print metrics: README */
    if (p->seq != a->trainer_seq)
        adopt(a, p, "printed the first metric");
}

void mt_proctree_settle(struct mt_agent *a)
{
    if (a->trainer_fixed)
        return;
    for (size_t i = 0; i < a->nproctree; i++)
        if (!a->proctree[i].wrapper) {
            if (a->proctree[i].seq != a->trainer_seq)
                adopt(a, &a->proctree[i], "first process that is not a wrapper");
            return;
        }
}

int mt_program_is_wrapper(const char *program)
{
    return program && is_wrapper(base(program));
}

void mt_proctree_free(struct mt_agent *a)
{
    for (size_t i = 0; i < a->nproctree; i++)
        free_argv(&a->proctree[i]);
    free(a->proctree);
    a->proctree = NULL;
    a->nproctree = a->cap_proctree = 0;
    free(a->trainer_command);
    a->trainer_command = NULL;
}
