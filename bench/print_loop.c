/* The loops of the capture benchmark: N formatted metric lines with printf.
 * With no WORK it is printf and nothing else, the print-bound extreme, as a
 * legacy trainer's inner loop would print; with WORK, that many square roots
 * before each line, a trainer's shape (8000 make about 40,000 lines a second
 * on the 2-core VM).  Prints the loop's own wall time, the process's CPU
 * time and how often it was preempted on stderr at the end, so the bench can
 * time the program itself, wrapped or not.
 *   print_loop N [WORK] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile double sink; /* keeps the work from being optimized away */

static void work_for(long i, int work)
{
    double s = 0;
    for (int k = 1; k <= work; k++)
        s += sqrt((double)k * (double)i + 1.0);
    sink = s;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
    int work = argc > 2 ? atoi(argv[2]) : 0;
    double loss = 2.5, t0 = now();
    for (long i = 0; i < n; i++) {
        if (work)
            work_for(i, work);
        loss *= 0.999999;
        printf("step %ld loss=%.6f acc=%.4f lr=%g\n", i, loss, 1.0 - loss / 3.0, 0.001);
    }
    fflush(stdout);
    double elapsed = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* Involuntary switches: times another task took this one's CPU (under
     * `metrictap run ... | cat`, mostly the reader placed beside it). */
    fprintf(stderr, "elapsed_s=%.6f cpu_s=%.6f ivcsw=%ld\n", elapsed,
            (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
            ru.ru_nivcsw);
    return 0;
}
