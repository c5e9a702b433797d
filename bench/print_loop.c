/* The print-bound loop of the capture benchmark: N formatted metric lines
 * with printf, as a legacy trainer's inner loop would print them.
 *   print_loop N */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
    double loss = 2.5;
    for (long i = 0; i < n; i++) {
        loss *= 0.999999;
        printf("step %ld loss=%.6f acc=%.4f lr=%g\n", i, loss, 1.0 - loss / 3.0, 0.001);
    }
    return 0;
}
