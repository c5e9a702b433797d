/* Prints numbered lines as fast as it can until stdin has data, then says how
 * many (tests/integration/test_stack.py: dumps taken meanwhile lose no line). */
#include <poll.h>
#include <stdio.h>

__attribute__((noinline, noclone)) static long victim_print_loop(void)
{
    long i = 0;
    for (;;) {
        for (int k = 0; k < 1000; k++, i++)
            printf("line %ld\n", i);
        struct pollfd p = { .fd = 0, .events = POLLIN };
        if (poll(&p, 1, 0) > 0)
            return i;
    }
}

int main(void)
{
    long n = victim_print_loop();
    printf("printed %ld\n", n);
    return 0;
}
