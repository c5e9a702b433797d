/* Crash victims (issue 3 item 9).  argv[1] picks how it dies; every mode
 * prints to stdout and stderr first.  The functions that crash have names
 * the test looks for in crash.txt, and are kept out of line and out of tail
 * position so they show up at -O2 as well. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int *volatile null_pointer;   /* volatile: the compiler cannot see it is NULL */
volatile int sink;

__attribute__((noinline)) int victim_crash_here(int *p)
{
    return *p + 1;            /* SIGSEGV, address 0 */
}

__attribute__((noinline)) int victim_caller(int x)
{
    int r = victim_crash_here(null_pointer);
    sink = r;                 /* not a tail call: victim_caller stays on the stack */
    return r + x;
}

__attribute__((noinline)) void victim_abort_here(void)
{
    abort();
}

__attribute__((noinline)) int victim_abort_caller(int x)
{
    victim_abort_here();
    sink = x;
    return x;
}

__attribute__((noinline)) int victim_recurse(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    return victim_recurse(depth + 1) + frame[0]; /* never a loop: uses the result */
}

static void *victim_overflow_thread(void *arg)
{
    (void)arg;
    sink = victim_recurse(0);
    return NULL;
}

static void *victim_thread_main(void *arg)
{
    (void)arg;
    sink = victim_caller(7);
    return NULL;
}

/* The program's own SIGSEGV handler, installed in main (after metrictap's). */
static void own_handler_exit(int sig)
{
    static const char msg[] = "own handler: caught SIGSEGV, exiting 42\n";
    (void)sig;
    ssize_t w = write(1, msg, sizeof msg - 1);
    (void)w;
    _exit(42);
}

static void own_handler_reraise(int sig)
{
    static const char msg[] = "own handler: caught SIGSEGV, dying of it\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "segv";
    printf("victim %s: epoch 1 loss=0.5\n", mode);
    fflush(stdout);
    fprintf(stderr, "victim %s: about to die\n", mode);
    printf("unflushed line, lost on a pipe when the process dies\n");
    if (strcmp(mode, "segv") == 0)
        return victim_caller(argc);
    if (strcmp(mode, "abort") == 0)
        return victim_abort_caller(argc);
    if (strcmp(mode, "overflow") == 0)
        return victim_recurse(0);
    if (strcmp(mode, "thread") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, victim_thread_main, NULL);
        pthread_join(t, NULL);
        return 0;
    }
    if (strcmp(mode, "thread-overflow") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, victim_overflow_thread, NULL);
        pthread_join(t, NULL);
        return 0;
    }
    if (strcmp(mode, "own-exit") == 0 || strcmp(mode, "own-reraise") == 0) {
        signal(SIGSEGV, strcmp(mode, "own-exit") == 0 ? own_handler_exit : own_handler_reraise);
        return victim_caller(argc);
    }
    if (strcmp(mode, "child") == 0) {  /* a forked worker crashes; the parent fails */
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            return victim_caller(argc);
        int status = 0;
        waitpid(pid, &status, 0);
        printf("worker died of signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return 3;
    }
    return 0;
}
