/* A parent and its children taking turns on stdout, faster than the coarse
 * clock ticks (4 ms): the parent prints, starts a child (posix_spawn of
 * itself, or fork), waits for it, prints again.  What a terminal shows is
 * strictly alternating; the run's output.log must show the same order even
 * though each process writes its own ring.
 *   turns spawn|fork N [GATE]
 * With GATE, waits for the file GATE to exist before the turns and creates
 * GATE.done after them (the test holds the agent stopped in between, so that
 * only the records' stamps can order the rings). */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        printf("child %s says loss: 0.%s\n", argv[2], argv[2]);
        return 0;
    }
    int fork_mode = argc > 1 && strcmp(argv[1], "fork") == 0;
    int n = argc > 2 ? atoi(argv[2]) : 50;
    const char *gate = argc > 3 ? argv[3] : NULL;
    struct stat st;
    while (gate && stat(gate, &st) != 0)
        usleep(1000);
    for (int i = 0; i < n; i++) {
        printf("parent %d before\n", i);
        fflush(stdout);
        pid_t pid;
        if (fork_mode) {
            pid = fork();
            if (pid == 0) {
                printf("child %d says loss: 0.%d\n", i, i);
                fflush(stdout);
                _exit(0);
            }
        } else {
            char num[16];
            snprintf(num, sizeof num, "%d", i);
            char *child_argv[] = { argv[0], "child", num, NULL };
            if (posix_spawn(&pid, argv[0], NULL, NULL, child_argv, environ) != 0)
                return 1;
        }
        waitpid(pid, NULL, 0);
        printf("parent %d after\n", i);
        fflush(stdout);
    }
    if (gate) {
        char done[4096];
        snprintf(done, sizeof done, "%s.done", gate);
        fclose(fopen(done, "w"));
    }
    return 0;
}
