/* Bench rows for the system sampler (issue 5):
 *
 *   agent_footprint [--samples N] [--idle SECONDS] [--interval-ms MS] [--window-ms MS]
 *
 * First the cost of one mt_sys_sample on the real /proc (this process's tree,
 * the current directory's filesystem, NVML when present), averaged over N
 * samples.  Then, with --idle, the sampler thread alone for SECONDS at the
 * given interval, and this process's peak RSS and CPU over that time.  Prints
 * "name value unit" lines. */
#include "agent/mt_sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned rows;
static void count_row(void *ctx, const char *row)
{
    (void)ctx;
    (void)row;
    rows++;
}

int main(int argc, char **argv)
{
    unsigned samples = 200, interval = 2000, window = 15000;
    double idle = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--samples") == 0)
            samples = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--idle") == 0)
            idle = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--interval-ms") == 0)
            interval = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--window-ms") == 0)
            window = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--samples N] [--idle S] [--interval-ms MS] [--window-ms MS]\n",
                    argv[0]);
            return 2;
        }
    }
    struct mt_sys_opts o = {.root_pid = getpid(), .disk_path = ".", .interval_ms = interval,
                            .window_ms = window, .start_unix = now_s(CLOCK_REALTIME)};
    if (samples) {
        struct mt_sys *s = mt_sys_create(&o);
        if (!s)
            return 1;
        mt_sys_sample_cost_us(s, 5);   /* warm up */
        printf("sys_sample_cost %.1f us\n", mt_sys_sample_cost_us(s, samples));
        printf("sys_gpus %u count\n", mt_sys_gpu_count(s));
        mt_sys_destroy(s);
    }
    if (idle > 0) {
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        double t0 = now_s(CLOCK_MONOTONIC);
        struct mt_sys_thread *t = mt_sys_thread_start(&o, count_row, NULL);
        struct timespec ts = {(time_t)idle, (long)((idle - (time_t)idle) * 1e9)};
        while (nanosleep(&ts, &ts) != 0) {}
        mt_sys_thread_stop(t);
        double wall = now_s(CLOCK_MONOTONIC) - t0;
        getrusage(RUSAGE_SELF, &r1);
        double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                     ((r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) / 1e6;
        printf("sys_thread_rows %u rows\n", rows);
        printf("sys_thread_cpu %.4f %%core\n", 100 * cpu / wall);
        printf("sys_peak_rss %.2f MiB\n", r1.ru_maxrss / 1024.0);
    }
    return 0;
}
