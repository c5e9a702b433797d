/* What capture costs the print loop, measured inside one process, so that
 * the machine's swings (on the 2-core VM the loop's time doubles from one
 * second to the next) hit both sides alike.  Run under `metrictap run`:
 * blocks of the print loop alternate between printf as the program sees it
 * (the shim's) and glibc's own printf called directly, and each captured
 * block is timed against the direct block before it.  The agent drains
 * each captured block while it is printed, so its interference counts on
 * the captured side; a pause before every block lets it catch up.  (The bytes
 * of direct blocks reach the agent later as a "gap", so output.log is not
 * meaningful here.)  Run unwrapped, both sides are glibc's printf: a control
 * that should read 1.00.
 *   capture_inproc BLOCKS LINES_PER_BLOCK > file
 * Prints "ratio_median=R q1=A q3=B pairs=N" on stderr. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int blocks = argc > 1 ? atoi(argv[1]) : 400;
    long lines = argc > 2 ? atol(argv[2]) : 50000;
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    int (*direct)(const char *, ...) = libc ? (int (*)(const char *, ...))dlsym(libc, "printf") : NULL;
    if (!direct) {
        fprintf(stderr, "capture_inproc: cannot find glibc's printf\n");
        return 1;
    }
    double *ratio = calloc((size_t)blocks, sizeof *ratio), prev = 0, loss = 2.5;
    int n = 0;
    long i = 0;
    double pause = 0.02;
    for (int b = 0; b < blocks; b++) {
        int captured = b & 1;
        /* The agent falls behind while a captured block prints a million
         * lines a second; every block starts once it has had time to catch
         * up, so that a direct block is not timed beside the agent's
         * backlog, and every block starts after the same kind of pause. */
        struct timespec nap = { 0, (long)(pause * 1e9) };
        nanosleep(&nap, NULL);
        double t0 = now();
        for (long k = 0; k < lines; k++, i++) {
            loss *= 0.999999;
            if (captured)
                printf("step %ld loss=%.6f acc=%.4f lr=%g\n", i, loss, 1.0 - loss / 3.0, 0.001);
            else
                direct("step %ld loss=%.6f acc=%.4f lr=%g\n", i, loss, 1.0 - loss / 3.0, 0.001);
        }
        double dt = now() - t0;
        if (captured && b > 1)
            ratio[n++] = dt / prev;
        if (captured && 3 * dt > pause)
            pause = 3 * dt < 0.9 ? 3 * dt : 0.9;
        prev = dt;
    }
    fflush(stdout);
    qsort(ratio, (size_t)n, sizeof *ratio, by_value);
    fprintf(stderr, "ratio_median=%.4f q1=%.4f q3=%.4f pairs=%d lines=%ld\n", ratio[n / 2],
            ratio[n / 4], ratio[3 * n / 4], n, lines);
    return 0;
}
