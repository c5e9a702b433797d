#define _GNU_SOURCE
/* Two threads deadlocked on two mutexes, each in a function of its own
 * (tests/integration/test_stack.py).  Prints a line, then hangs until killed;
 * with an argument N it instead waits N seconds in a condition wait that
 * times out, prints "after" and exits 3, so a test sees it carry on. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;

__attribute__((noinline)) static void victim_take_b_after_a(void)
{
    pthread_mutex_lock(&lock_a);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(&lock_b); /* never returns */
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void victim_take_a_after_b(void)
{
    pthread_mutex_lock(&lock_b);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(&lock_a); /* never returns */
    __asm__ volatile("" ::: "memory");
}

static void *worker_ab(void *arg)
{
    (void)arg;
    victim_take_b_after_a();
    return NULL;
}

static void *worker_ba(void *arg)
{
    (void)arg;
    victim_take_a_after_b();
    return NULL;
}

__attribute__((noinline)) static void victim_main_waits(int seconds)
{
    if (seconds <= 0) {
        for (;;)
            pause();
    }
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&m);
    while (pthread_cond_timedwait(&c, &m, &until) == 0)
        ;
    pthread_mutex_unlock(&m);
}

int main(int argc, char **argv)
{
    pthread_t t1, t2;
    pthread_barrier_init(&both_hold_one, NULL, 2);
    pthread_create(&t1, NULL, worker_ab, NULL);
    pthread_create(&t2, NULL, worker_ba, NULL);
    pthread_setname_np(t1, "loader-ab");
    pthread_setname_np(t2, "loader-ba");
    printf("deadlocked\n");
    fflush(stdout);
    victim_main_waits(argc > 1 ? atoi(argv[1]) : 0);
    printf("after\n");
    fflush(stdout);
    _exit(3);
}
