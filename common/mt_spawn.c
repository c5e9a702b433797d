/* mt_spawn: see mt_spawn.h. */
#include "mt_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 64

static void set_error(struct mt_agent_answer *ans, const char *what, int err)
{
    if (err)
        snprintf(ans->error, sizeof ans->error, "%s: %s", what, strerror(err));
    else
        snprintf(ans->error, sizeof ans->error, "%s", what);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads the agent's one answer line into buf; returns its length or -1. */
static int read_answer(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t used = 0;
    long deadline = now_ms() + timeout_ms;
    while (used + 1 < size) {
        long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        ssize_t got = read(fd, buf + used, size - 1 - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        used += (size_t)got;
        if (memchr(buf, '\n', used))
            break;
    }
    buf[used] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    return (int)used;
}

/* "OK <run_id> <channel> <run_dir>" or "ERR <message>" */
static int parse_answer(char *line, struct mt_agent_answer *ans)
{
    if (strncmp(line, MT_ANSWER_OK " ", 3) == 0) {
        char *id = line + 3, *chan = strchr(id, ' ');
        if (!chan)
            return -1;
        *chan++ = '\0';
        char *dir = strchr(chan, ' ');
        if (!dir)
            return -1;
        *dir++ = '\0';
        snprintf(ans->run_id, sizeof ans->run_id, "%s", id);
        snprintf(ans->channel, sizeof ans->channel, "%s", chan);
        snprintf(ans->run_dir, sizeof ans->run_dir, "%s", dir);
        return 0;
    }
    if (strcmp(line, "OFF") == 0)
        ans->error[0] = '\0'; /* tracking is disabled: no message */
    else if (strncmp(line, MT_ANSWER_ERR " ", 4) == 0)
        set_error(ans, line + 4, 0);
    else
        set_error(ans, "the agent gave no answer", 0);
    return -1;
}

int mt_agent_start(const char *agent_path, char *const argv[], char *const envp[],
                   int timeout_ms, struct mt_agent_answer *ans)
{
    char *args[MAX_ARGS + 3];
    int pipefd[2] = { -1, -1 };
    int result = -1, argc = 0, err;
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    int fa_ready = 0;

    memset(ans, 0, sizeof *ans);
    if (access(agent_path, X_OK) != 0) {
        snprintf(ans->error, sizeof ans->error, "cannot run the agent %s: %s", agent_path,
                 strerror(errno));
        return -1;
    }
    args[argc++] = argv[0];
    args[argc++] = "--status-fd";
    args[argc++] = "3";
    for (int i = 1; argv[i] && argc < MAX_ARGS; i++)
        args[argc++] = argv[i];
    args[argc] = NULL;

    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        set_error(ans, "cannot create a pipe for the agent", errno);
        goto out;
    }
    if ((err = posix_spawn_file_actions_init(&fa)) != 0) {
        set_error(ans, "cannot start the agent", err);
        goto out;
    }
    fa_ready = 1;
    /* The agent must not hold the program's stdout or stderr: a reader of the
     * program's pipe would never see end-of-file. */
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 3);
    if ((err = posix_spawn(&pid, agent_path, &fa, NULL, args, envp)) != 0) {
        set_error(ans, "cannot start the agent", err);
        pid = -1;
        goto out;
    }
    close(pipefd[1]);
    pipefd[1] = -1;

    char line[2048];
    if (read_answer(pipefd[0], line, sizeof line, timeout_ms) < 0) {
        set_error(ans, "the agent did not answer in time", 0);
        goto out;
    }
    result = parse_answer(line, ans);
out:
    if (pid > 0) {
        /* The intermediate process exits as soon as the agent is detached. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (fa_ready)
        posix_spawn_file_actions_destroy(&fa);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    return result;
}
