/* bench/stack.sh's victim: N threads (argv[1]) each blocked a few calls
 * deep in a condition wait, the main thread in pause(), until killed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

static volatile int forever = 1;

__attribute__((noinline)) static void bench_wait_leaf(void)
{
    pthread_mutex_lock(&mu);
    while (forever)
        pthread_cond_wait(&never, &mu);
    pthread_mutex_unlock(&mu);
}

__attribute__((noinline)) static void bench_wait_middle(int depth)
{
    if (depth > 0)
        bench_wait_middle(depth - 1);
    else
        bench_wait_leaf();
    __asm__ volatile("" ::: "memory");
}

static void *worker(void *arg)
{
    (void)arg;
    bench_wait_middle(6);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1;
    for (int i = 1; i < n; i++) { /* the main thread is the n-th */
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
