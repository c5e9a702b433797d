/* Answers each SIGUSR1 with a "u" on stdout while it waits in read() on
 * stdin (tests/integration/test_stack.py): a signal that arrives while a dump
 * holds the thread must still reach the handler, once. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_usr1(int sig)
{
    (void)sig;
    if (write(1, "u", 1) != 1)
        _exit(9);
}

__attribute__((noinline, noclone)) static ssize_t victim_signal_wait(char *buf, size_t n)
{
    ssize_t r = read(0, buf, n);
    __asm__ volatile("" ::: "memory");
    return r;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    ssize_t r = victim_signal_wait(buf, sizeof buf);
    printf("\nread %zd\n", r);
    return 0;
}
