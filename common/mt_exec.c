/* Child processes with a timeout; see mt_exec.h. */
#include "common/mt_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads what is there into buf (keeping a NUL), discarding past the end. */
static int drain(int fd, char *buf, size_t size, size_t *len, int *truncated)
{
    char scratch[4096];
    ssize_t n;
    if (buf && *len + 1 < size)
        n = read(fd, buf + *len, size - 1 - *len);
    else
        n = read(fd, scratch, sizeof scratch);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    if (buf && *len + 1 < size) {
        *len += (size_t)n;
        buf[*len] = '\0';
    } else if (truncated) {
        *truncated = 1;
    }
    return 1;
}

int mt_exec_run(struct mt_exec *x)
{
    int result = 0, outp[2] = {-1, -1}, errp[2] = {-1, -1}, devnull = -1, status = 0;
    int spawned = 0, fa_init = 0, timed_out = 0;
    size_t err_len = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    long deadline = now_ms() + (x->timeout_ms > 0 ? x->timeout_ms : 10000);

    x->exit_code = -1;
    x->out_len = 0;
    x->out_truncated = 0;
    if (x->out && x->out_size)
        x->out[0] = '\0';
    if (x->err && x->err_size)
        x->err[0] = '\0';
    if ((x->out_fd < 0 && pipe2(outp, O_CLOEXEC) != 0) || pipe2(errp, O_CLOEXEC) != 0 ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        result = -errno;
        goto out;
    }
    if ((result = -posix_spawn_file_actions_init(&fa)) != 0)
        goto out;
    fa_init = 1;
    posix_spawn_file_actions_adddup2(&fa, devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, x->out_fd >= 0 ? x->out_fd : outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    result = -posix_spawnp(&pid, x->argv[0], &fa, NULL, x->argv, x->envp ? x->envp : environ);
    if (result != 0)
        goto out;
    spawned = 1;
    if (outp[1] >= 0) {
        close(outp[1]);
        outp[1] = -1;
    }
    close(errp[1]);
    errp[1] = -1;

    /* Read both pipes until EOF or the deadline. */
    while (outp[0] >= 0 || errp[0] >= 0) {
        struct pollfd pf[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
        long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int n = poll(pf, 2, (int)left);
        if (n < 0 && errno != EINTR) {
            result = -errno;
            break;
        }
        if (n <= 0)
            continue;
        if (pf[0].revents && !drain(outp[0], x->out, x->out_size, &x->out_len, &x->out_truncated)) {
            close(outp[0]);
            outp[0] = -1;
        }
        if (pf[1].revents && !drain(errp[0], x->err, x->err_size, &err_len, NULL)) {
            close(errp[0]);
            errp[0] = -1;
        }
    }
    /* Then wait for the exit, still within the deadline. */
    while (!timed_out) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            spawned = 0;
            break;
        }
        if (w < 0 && errno != EINTR) {
            result = -errno;
            spawned = 0;
            break;
        }
        if (now_ms() >= deadline) {
            timed_out = 1;
            break;
        }
        struct timespec ts = {0, 2 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (timed_out) {
        kill(pid, SIGKILL);
        result = -ETIMEDOUT;
    } else if (result == 0) {
        x->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        /* glibc before 2.24 (and valgrind) report an exec failure as a
         * silent exit 127 instead of an error from posix_spawnp. */
        if (x->exit_code == 127 && x->out_len == 0 && err_len == 0)
            result = -ENOENT;
    }
out:
    if (spawned)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    if (devnull >= 0)
        close(devnull);
    return result;
}
