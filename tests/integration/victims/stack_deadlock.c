#define _GNU_SOURCE
/* Two threads deadlocked on two mutexes, each in a function of its own
 * (tests/integration/test_stack.py).  Prints a line; the main thread then
 * waits in read() on stdin, and once a line comes prints "after N" and exits
 * 3 (the deadlocked threads with it), so a test sees it carry on. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;

__attribute__((noinline, noclone)) static void victim_take_b_after_a(void)
{
    pthread_mutex_lock(&lock_a);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(&lock_b); /* never returns */
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline, noclone)) static void victim_take_a_after_b(void)
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

/* Blocked in read() on stdin (a pipe from the test) until a line comes. */
__attribute__((noinline, noclone)) static ssize_t victim_main_waits(char *buf, size_t n)
{
    ssize_t r = read(0, buf, n);
    __asm__ volatile("" ::: "memory");
    return r;
}

int main(void)
{
    pthread_t t1, t2;
    pthread_barrier_init(&both_hold_one, NULL, 2);
    pthread_create(&t1, NULL, worker_ab, NULL);
    pthread_create(&t2, NULL, worker_ba, NULL);
    pthread_setname_np(t1, "loader-ab");
    pthread_setname_np(t2, "loader-ba");
    printf("deadlocked\n");
    fflush(stdout);
    char buf[64];
    ssize_t r = victim_main_waits(buf, sizeof buf);
    printf("after %zd\n", r);
    fflush(stdout);
    _exit(3);
}
