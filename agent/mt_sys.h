/* mt_sys: the system metrics sampler.
 *
 * Reads /proc (under a root the caller gives, so tests use fixture trees),
 * statvfs of one path, and NVML through dlopen, and averages samples over a
 * window into one JSON row:
 *
 *   {"_timestamp": unix float, "_runtime": seconds,
 *    "system.cpu_percent", "system.proc.cpu_percent" (% of one core, can be
 *    above 100), "system.memory_percent", "system.memory_used_mb",
 *    "system.proc.memory_rss_mb", "system.disk.usage_percent",
 *    "system.disk.used_mb", "system.disk.available_mb",
 *    "system.proc.disk_read_bytes", "system.proc.disk_write_bytes",
 *    "system.network.sent_bytes", "system.network.recv_bytes",
 *    "system.proc.threads", "system.proc.fds",
 *    "system.gpu.<i>.utilization_percent", ".memory_used_mb",
 *    ".memory_total_mb", ".memory_percent", ".temperature_c",
 *    ".power_watts", ".power_percent"}
 *
 * MB is 1e6 bytes.  Gauges are the mean of the window's samples that had the
 * value; the four byte counters are totals since mt_sys_create (the last
 * value in the window), built from saturating deltas, so a process leaving
 * the tree or a counter reset never makes them go backwards.  A key whose
 * source is missing (no /proc field, unreadable /proc/<pid>/io, no NVML, a
 * GPU field NVML calls "not supported") is left out of the row, never an error.
 *
 * The process tree is root_pid and every process whose ppid chain reaches it
 * (found by scanning <procfs_root>/<pid>/stat).  CPU of reaped children is
 * counted through their parent's cutime/cstime.
 *
 * Cost: no allocation per sample (buffers are made in create and reused, the
 * process table grows only when the machine has more processes than ever
 * before); each sample opens, reads and closes small files.  See
 * mt_sys_sample_cost_us and bench/agent_footprint.c. */
#ifndef MT_SYS_H
#define MT_SYS_H

#include <stddef.h>
#include <sys/types.h>

#define MT_SYS_MAX_GPUS 16

struct mt_sys_opts {
    const char *procfs_root;  /* default "/proc" */
    pid_t root_pid;           /* 0: no process-tree metrics */
    const char *disk_path;    /* NULL: no disk metrics (the run store's dir) */
    const char *nvml_path;    /* NULL: "libnvidia-ml.so.1"; "" : no GPU */
    unsigned interval_ms;     /* sampling interval; 0 disables (thread) */
    unsigned window_ms;       /* averaging window; < interval: one sample */
    double start_unix;        /* run start, for _runtime */
};

/* Defaults of DESIGN.md: 2 s sampling, 15 s windows. */
#define MT_SYS_DEFAULT_INTERVAL_MS 2000u
#define MT_SYS_DEFAULT_WINDOW_MS   15000u

struct mt_sys;

/* Makes a sampler and takes the baseline snapshot (counters start here, and
 * the first mt_sys_sample already yields CPU percentages; the baseline's time
 * is the real clock at create, so a caller passing its own clock should
 * discard the first window).  Copies the strings
 * of opts.  NULL on failure (out of memory).  An absent NVML is not one. */
struct mt_sys *mt_sys_create(const struct mt_sys_opts *opts);
void mt_sys_destroy(struct mt_sys *s);

/* Takes one sample at now_unix and adds it to the current window.  0. */
int mt_sys_sample(struct mt_sys *s, double now_unix);

/* Writes the current window's row (NUL-terminated JSON object, no newline)
 * into buf and starts a new window.  Returns its length, 0 when the window
 * holds no sample (nothing written), -ENOSPC when buf is too small (the
 * window is kept).  2048 bytes + 256 per GPU always suffice. */
int mt_sys_window_json(struct mt_sys *s, double now_unix, char *buf, size_t size);

/* Number of GPUs NVML reported (0 without NVML). */
unsigned mt_sys_gpu_count(const struct mt_sys *s);

/* Mean cost of one mt_sys_sample in microseconds over n samples (wall
 * clock, CLOCK_MONOTONIC); the samples go into the current window. */
double mt_sys_sample_cost_us(struct mt_sys *s, unsigned n);

/* The sampling thread: samples every interval_ms and calls emit(ctx, row)
 * at the end of each window_ms (on the sampler thread; row is valid during
 * the call only).  Windows end on multiples of window_ms from the start, with
 * a sample taken there.  Returns NULL with errno 0 when opts->interval_ms is
 * 0 (disabled), NULL with errno set on failure.  The thread blocks all
 * signals. */
struct mt_sys_thread;
struct mt_sys_thread *mt_sys_thread_start(const struct mt_sys_opts *opts,
                                          void (*emit)(void *ctx, const char *row),
                                          void *ctx);
/* Stops the thread: takes a last sample, emits the partial last window (if
 * it holds a sample) and joins.  Accepts NULL. */
void mt_sys_thread_stop(struct mt_sys_thread *t);

#endif
