/* Victim: process trees.  "fork": 3 workers forked (no exec) each print
 * lines; "spawn": a posix_spawn'ed child; "threads": 8 threads print N lines
 * each concurrently. */
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
#define PER_THREAD 2000

static void *thread_main(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < PER_THREAD; i++)
        printf("thread %ld line %d loss=%d.5\n", id, i, i);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "fork";
    printf("parent starts %s\n", mode);
    fflush(stdout);
    if (!strcmp(mode, "fork")) {
        for (int w = 0; w < 3; w++) {
            pid_t pid = fork();
            if (pid == 0) {
                for (int i = 0; i < 5; i++)
                    printf("worker %d step %d\n", w, i);
                fflush(stdout);
                _exit(0);
            }
            waitpid(pid, NULL, 0);
        }
    } else if (!strcmp(mode, "spawn")) {
        pid_t pid;
        char *args[] = { "/bin/echo", "spawned child loss: 0.125", NULL };
        if (posix_spawn(&pid, "/bin/echo", NULL, NULL, args, environ) == 0)
            waitpid(pid, NULL, 0);
    } else if (!strcmp(mode, "threads")) {
        pthread_t th[8];
        for (long t = 0; t < 8; t++)
            pthread_create(&th[t], NULL, thread_main, (void *)t);
        for (int t = 0; t < 8; t++)
            pthread_join(th[t], NULL);
    }
    printf("parent ends\n");
    return 0;
}
