/* Prints numbered lines, a thousand at a time as fast as printf goes, until
 * stdin has data, then says how many (tests/integration/test_stack.py: dumps
 * taken meanwhile lose no line).  A short pause after each thousand keeps it
 * near 2-3M lines a second: flat out (10M short lines a second here) it
 * outran the drain's writes into the page cache on a loaded 2-core machine
 * and lost lines to a full ring whether or not a dump was taken, which is
 * not what this test is about (bench/burst.sh measures that). */
#include <poll.h>
#include <stdio.h>
#include <time.h>

__attribute__((noinline, noclone)) static long victim_print_loop(void)
{
    long i = 0;
    for (;;) {
        for (int k = 0; k < 1000; k++, i++)
            printf("line %ld\n", i);
        struct pollfd p = { .fd = 0, .events = POLLIN };
        if (poll(&p, 1, 0) > 0)
            return i;
        struct timespec pause = { 0, 250000 };
        nanosleep(&pause, NULL);
    }
}

int main(void)
{
    long n = victim_print_loop();
    printf("printed %ld\n", n);
    return 0;
}
