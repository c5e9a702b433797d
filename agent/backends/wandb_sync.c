/* Handing a W&B offline run directory to W&B's own client: `wandb sync DIR`,
 * bounded in time, its output read.  0.31's `wandb sync` exits 0 even when it
 * could not read the file (FORMATS.md 1.5c), so the output is checked for
 * W&B's "ERROR" lines as well as the exit status. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mt_wandb.h"

#define OUTPUT_MAX (64 << 10) /* the tail of the client's output that is kept */

extern char **environ;

int mt_wandb__find(const char *command, char *out, size_t outsz)
{
    if (command && *command) {
        snprintf(out, outsz, "%s", command);
        return access(out, X_OK) == 0 ? 0 : -ENOENT;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(out, outsz, "%.*s/wandb", (int)n, n ? path : ".");
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        path += n;
        path += *path == ':';
    }
    out[0] = '\0';
    return -ENOENT;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The line of the output that says what went wrong: W&B's first ERROR line,
 * else its last non-empty line. */
static void pick_message(const char *outp, char *msg, size_t msgsz)
{
    const char *err = strstr(outp, "ERROR");
    const char *line = NULL;
    if (err) {
        line = err;
        while (line > outp && line[-1] != '\n')
            line--;
    } else {
        const char *end = outp + strlen(outp);
        while (end > outp && (end[-1] == '\n' || end[-1] == ' '))
            end--;
        line = end;
        while (line > outp && line[-1] != '\n')
            line--;
    }
    size_t n = strcspn(line, "\n");
    snprintf(msg, msgsz, "%.*s", (int)(n < 900 ? n : 900), line);
}

int mt_wandb__sync(const char *wandb, const char *dir, double timeout_s, char *msg, size_t msgsz)
{
    int pfd[2] = {-1, -1}, result = -1, status = 0;
    pid_t pid = -1;
    char *outp = calloc(1, OUTPUT_MAX + 1);
    size_t outn = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if (!outp || pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(msg, msgsz, "cannot start %s: %s", wandb, strerror(errno));
        free(outp);
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawnattr_init(&attr);
    /* its own process group, so that a timeout stops the client and what it started */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    char *argv[] = {(char *)wandb, "sync", (char *)dir, NULL};
    int rc = posix_spawn(&pid, wandb, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pfd[1]);
    if (rc != 0) {
        snprintf(msg, msgsz, "cannot start %s: %s", wandb, strerror(rc));
        goto out;
    }
    double deadline = mono_s() + timeout_s;
    int timed_out = 0;
    for (;;) {
        double left = deadline - mono_s();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {pfd[0], POLLIN, 0};
        int pr = poll(&p, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        char buf[4096];
        ssize_t r = read(pfd[0], buf, sizeof(buf));
        if (r <= 0)
            break;
        if (outn + (size_t)r > OUTPUT_MAX) { /* keep the tail */
            size_t drop = outn + (size_t)r - OUTPUT_MAX;
            if (drop > outn)
                drop = outn;
            memmove(outp, outp + drop, outn - drop);
            outn -= drop;
        }
        memcpy(outp + outn, buf, (size_t)r < OUTPUT_MAX ? (size_t)r : OUTPUT_MAX);
        outn += (size_t)r < OUTPUT_MAX ? (size_t)r : OUTPUT_MAX;
        outp[outn] = '\0';
    }
    if (timed_out) {
        kill(-pid, SIGTERM);
        for (int i = 0; i < 50 && waitpid(pid, &status, WNOHANG) == 0; i++)
            usleep(100000);
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        snprintf(msg, msgsz, "`wandb sync` did not finish in %.0f s; stopped", timeout_s);
        goto out;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strstr(outp, "ERROR")) {
        char line[1000];
        pick_message(outp, line, sizeof(line));
        if (WIFEXITED(status))
            snprintf(msg, msgsz, "`wandb sync` exit %d: %s", WEXITSTATUS(status), line);
        else
            snprintf(msg, msgsz, "`wandb sync` killed by signal %d: %s", WTERMSIG(status), line);
        goto out;
    }
    pick_message(outp, msg, msgsz);
    result = 0;
out:
    close(pfd[0]);
    free(outp);
    return result;
}
