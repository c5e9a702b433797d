/* A trainer's shape for the capture benchmark: compute, then one metric line,
 * N times.  WORK square roots per line make it about 40,000 lines a second
 * on the 2-core VM, a busy but real rate (print_loop is the extreme: printf
 * and nothing else).  Prints the loop's wall time on stderr.
 *   train_loop N WORK */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 40000;
    int work = argc > 2 ? atoi(argv[2]) : 8000;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        double s = 0;
        for (int k = 1; k <= work; k++)
            s += sqrt((double)k * (double)i + 1.0);
        printf("step %ld loss=%.6f acc=%.4f\n", i, 1.0 / (1.0 + (double)i), fmod(s, 1.0));
    }
    fflush(stdout);
    fprintf(stderr, "elapsed_s=%.6f\n", now() - t0);
    return 0;
}
