/* Silent and idle in a named function until stdin has a line
 * (tests/integration/test_stack.py, the stall watchdog): prints "sleeping",
 * waits, prints "woke", waits again until stdin closes, prints "bye". */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline, noclone)) static ssize_t victim_sleeps(char *buf, size_t n)
{
    ssize_t r = read(0, buf, n);
    __asm__ volatile("" ::: "memory");
    return r;
}

int main(void)
{
    char buf[64];
    printf("sleeping\n");
    fflush(stdout);
    victim_sleeps(buf, sizeof buf);
    printf("woke\n");
    fflush(stdout);
    while (victim_sleeps(buf, sizeof buf) > 0)
        ;
    printf("bye\n");
    return 0;
}
