/* mt_sys: samples, windows, JSON rows and the sampling thread; see mt_sys.h. */
#include "agent/mt_sys.h"
#include "agent/sys_nvml.h"
#include "agent/sys_proc.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { AGG_MEAN, AGG_LAST };

enum {
    M_CPU, M_PROC_CPU, M_MEM_PCT, M_MEM_USED, M_PROC_RSS, M_DISK_PCT, M_DISK_USED,
    M_DISK_AVAIL, M_READ, M_WRITE, M_SENT, M_RECV, M_THREADS, M_FDS, M_COUNT
};

/* The names are a contract with the backends: keep them. */
static const struct { const char *name; int agg; } metrics[M_COUNT] = {
    [M_CPU] = {"system.cpu_percent", AGG_MEAN},
    [M_PROC_CPU] = {"system.proc.cpu_percent", AGG_MEAN},
    [M_MEM_PCT] = {"system.memory_percent", AGG_MEAN},
    [M_MEM_USED] = {"system.memory_used_mb", AGG_MEAN},
    [M_PROC_RSS] = {"system.proc.memory_rss_mb", AGG_MEAN},
    [M_DISK_PCT] = {"system.disk.usage_percent", AGG_MEAN},
    [M_DISK_USED] = {"system.disk.used_mb", AGG_MEAN},
    [M_DISK_AVAIL] = {"system.disk.available_mb", AGG_MEAN},
    [M_READ] = {"system.proc.disk_read_bytes", AGG_LAST},
    [M_WRITE] = {"system.proc.disk_write_bytes", AGG_LAST},
    [M_SENT] = {"system.network.sent_bytes", AGG_LAST},
    [M_RECV] = {"system.network.recv_bytes", AGG_LAST},
    [M_THREADS] = {"system.proc.threads", AGG_MEAN},
    [M_FDS] = {"system.proc.fds", AGG_MEAN},
};

enum { G_UTIL, G_MEM_USED, G_MEM_TOTAL, G_MEM_PCT, G_TEMP, G_POWER, G_POWER_PCT, G_COUNT };
static const char *const gpu_names[G_COUNT] = {
    "utilization_percent", "memory_used_mb", "memory_total_mb", "memory_percent",
    "temperature_c", "power_watts", "power_percent",
};

struct acc { double sum; unsigned n; };

struct mt_sys {
    struct mt_sys_opts o;
    char *procfs_root, *disk_path;
    struct mt_sys_proc *proc;
    struct mt_sys_nvml *nvml;
    long clk_tck;
    struct mt_sys_raw prev;
    double prev_t;
    uint64_t total[M_COUNT];             /* byte counters since create */
    struct acc acc[M_COUNT];
    struct acc gacc[MT_SYS_MAX_GPUS][G_COUNT];
    unsigned samples;                    /* in the current window */
};

static uint64_t sat_delta(uint64_t now, uint64_t before)
{
    return now > before ? now - before : 0;
}

static void add(struct acc *a, int agg, double v)
{
    if (agg == AGG_LAST) {
        a->sum = v;
        a->n = 1;
    } else {
        a->sum += v;
        a->n++;
    }
}

static double real_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct mt_sys *mt_sys_create(const struct mt_sys_opts *opts)
{
    struct mt_sys *s = calloc(1, sizeof *s);
    int ok = 0;
    if (!s)
        goto out;
    s->o = *opts;
    s->procfs_root = strdup(opts->procfs_root ? opts->procfs_root : "/proc");
    if (!s->procfs_root)
        goto out;
    if (opts->disk_path && !(s->disk_path = strdup(opts->disk_path)))
        goto out;
    s->o.procfs_root = s->procfs_root;
    s->o.disk_path = s->disk_path;
    s->o.nvml_path = NULL;   /* used here only */
    if (!(s->proc = mt_sys_proc_create(s->procfs_root)))
        goto out;
    if (!opts->nvml_path || opts->nvml_path[0])
        s->nvml = mt_sys_nvml_open(opts->nvml_path);
    s->clk_tck = sysconf(_SC_CLK_TCK);
    if (s->clk_tck <= 0)
        s->clk_tck = 100;
    mt_sys_proc_read(s->proc, s->o.root_pid, s->disk_path, &s->prev);
    s->prev_t = real_s();
    ok = 1;
out:
    if (!ok) {
        mt_sys_destroy(s);
        s = NULL;
    }
    return s;
}

void mt_sys_destroy(struct mt_sys *s)
{
    if (!s)
        return;
    mt_sys_nvml_close(s->nvml);
    mt_sys_proc_destroy(s->proc);
    free(s->procfs_root);
    free(s->disk_path);
    free(s);
}

unsigned mt_sys_gpu_count(const struct mt_sys *s)
{
    return s ? mt_sys_nvml_count(s->nvml) : 0;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int mt_sys_sample(struct mt_sys *s, double now_unix)
{
    struct mt_sys_raw cur;
    const struct mt_sys_raw *pr = &s->prev;
    mt_sys_proc_read(s->proc, s->o.root_pid, s->disk_path, &cur);
    unsigned both = cur.have & pr->have;

    if (both & MT_RAW_CPU) {
        uint64_t dt = sat_delta(cur.cpu_total, pr->cpu_total);
        uint64_t di = sat_delta(cur.cpu_idle, pr->cpu_idle);
        if (dt > 0 && di <= dt)
            add(&s->acc[M_CPU], AGG_MEAN, 100.0 * (double)(dt - di) / (double)dt);
    }
    if (both & MT_RAW_TREE) {
        /* Wall time between samples on the caller's clock (the baseline's is
         * the real clock at create); a clock that went back gives no value. */
        double wall = now_unix - s->prev_t;
        if (wall > 0) {
            double jiffies = (double)sat_delta(cur.tree_cpu, pr->tree_cpu);
            add(&s->acc[M_PROC_CPU], AGG_MEAN, 100.0 * jiffies / ((double)s->clk_tck * wall));
        }
    }
    if (cur.have & MT_RAW_MEM) {
        double used = (double)(cur.mem_total - cur.mem_avail);
        add(&s->acc[M_MEM_PCT], AGG_MEAN, 100.0 * used / (double)cur.mem_total);
        add(&s->acc[M_MEM_USED], AGG_MEAN, used / 1e6);
    }
    if (cur.have & MT_RAW_TREE) {
        add(&s->acc[M_PROC_RSS], AGG_MEAN, (double)cur.tree_rss / 1e6);
        add(&s->acc[M_THREADS], AGG_MEAN, (double)cur.tree_threads);
    }
    if (cur.have & MT_RAW_FDS)
        add(&s->acc[M_FDS], AGG_MEAN, (double)cur.tree_fds);
    if (cur.have & MT_RAW_DISK) {
        double tot = (double)(cur.disk_used + cur.disk_avail);
        if (tot > 0)
            add(&s->acc[M_DISK_PCT], AGG_MEAN, 100.0 * (double)cur.disk_used / tot);
        add(&s->acc[M_DISK_USED], AGG_MEAN, (double)cur.disk_used / 1e6);
        add(&s->acc[M_DISK_AVAIL], AGG_MEAN, (double)cur.disk_avail / 1e6);
    }
    if (both & MT_RAW_IO) {
        s->total[M_READ] += sat_delta(cur.tree_read, pr->tree_read);
        s->total[M_WRITE] += sat_delta(cur.tree_write, pr->tree_write);
    }
    if (both & MT_RAW_NET) {
        s->total[M_SENT] += sat_delta(cur.net_tx, pr->net_tx);
        s->total[M_RECV] += sat_delta(cur.net_rx, pr->net_rx);
    }
    if (cur.have & MT_RAW_IO) {
        add(&s->acc[M_READ], AGG_LAST, (double)s->total[M_READ]);
        add(&s->acc[M_WRITE], AGG_LAST, (double)s->total[M_WRITE]);
    }
    if (cur.have & MT_RAW_NET) {
        add(&s->acc[M_SENT], AGG_LAST, (double)s->total[M_SENT]);
        add(&s->acc[M_RECV], AGG_LAST, (double)s->total[M_RECV]);
    }
    /* A field missing now keeps its previous value as the base, so a counter
     * that comes back does not count everything since boot. */
    unsigned keep = pr->have & ~cur.have;
    struct mt_sys_raw old = *pr;
    s->prev = cur;
    if (keep & MT_RAW_CPU) { s->prev.cpu_total = old.cpu_total; s->prev.cpu_idle = old.cpu_idle; }
    if (keep & MT_RAW_IO) { s->prev.tree_read = old.tree_read; s->prev.tree_write = old.tree_write; }
    if (keep & MT_RAW_NET) { s->prev.net_tx = old.net_tx; s->prev.net_rx = old.net_rx; }
    if (keep & MT_RAW_TREE) s->prev.tree_cpu = old.tree_cpu;
    s->prev.have |= keep & (MT_RAW_CPU | MT_RAW_IO | MT_RAW_NET | MT_RAW_TREE);
    s->prev_t = now_unix;

    for (unsigned i = 0; i < mt_sys_nvml_count(s->nvml); i++) {
        struct mt_sys_gpu g;
        struct acc *a = s->gacc[i];
        mt_sys_nvml_read(s->nvml, i, &g);
        if (g.have & MT_GPU_UTIL)
            add(&a[G_UTIL], AGG_MEAN, g.util_pct);
        if (g.have & MT_GPU_MEM) {
            add(&a[G_MEM_USED], AGG_MEAN, g.mem_used_mb);
            add(&a[G_MEM_TOTAL], AGG_MEAN, g.mem_total_mb);
            add(&a[G_MEM_PCT], AGG_MEAN, g.mem_pct);
        }
        if (g.have & MT_GPU_TEMP)
            add(&a[G_TEMP], AGG_MEAN, g.temp_c);
        if (g.have & MT_GPU_POWER)
            add(&a[G_POWER], AGG_MEAN, g.power_w);
        if (g.have & MT_GPU_POWER_PCT)
            add(&a[G_POWER_PCT], AGG_MEAN, g.power_pct);
    }
    s->samples++;
    return 0;
}

/* Appends to buf at *len; false when it no longer fits. */
static int put(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (*len >= size)
        return 0;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *len)
        return 0;
    *len += (size_t)n;
    return 1;
}

static int put_value(char *buf, size_t size, size_t *len, int agg, const struct acc *a)
{
    if (agg == AGG_LAST)
        return put(buf, size, len, "%.0f", a->sum);
    return put(buf, size, len, "%.10g", a->sum / a->n);
}

int mt_sys_window_json(struct mt_sys *s, double now_unix, char *buf, size_t size)
{
    size_t len = 0;
    int ok = 1;
    if (s->samples == 0)
        return 0;
    ok &= put(buf, size, &len, "{\"_timestamp\":%.6f,\"_runtime\":%.6f", now_unix,
              s->o.start_unix > 0 ? now_unix - s->o.start_unix : 0.0);
    for (int m = 0; m < M_COUNT; m++) {
        if (!s->acc[m].n)
            continue;
        ok &= put(buf, size, &len, ",\"%s\":", metrics[m].name);
        ok &= put_value(buf, size, &len, metrics[m].agg, &s->acc[m]);
    }
    for (unsigned i = 0; i < mt_sys_nvml_count(s->nvml); i++) {
        for (int g = 0; g < G_COUNT; g++) {
            if (!s->gacc[i][g].n)
                continue;
            ok &= put(buf, size, &len, ",\"system.gpu.%u.%s\":", i, gpu_names[g]);
            ok &= put_value(buf, size, &len, AGG_MEAN, &s->gacc[i][g]);
        }
    }
    ok &= put(buf, size, &len, "}");
    if (!ok) {
        if (size)
            buf[0] = '\0';
        return -ENOSPC;
    }
    memset(s->acc, 0, sizeof s->acc);
    memset(s->gacc, 0, sizeof s->gacc);
    s->samples = 0;
    return (int)len;
}

double mt_sys_sample_cost_us(struct mt_sys *s, unsigned n)
{
    double t0, t1;
    if (n == 0)
        return 0;
    t0 = mono_s();
    for (unsigned i = 0; i < n; i++)
        mt_sys_sample(s, real_s());
    t1 = mono_s();
    return (t1 - t0) * 1e6 / n;
}

/* ---- the sampling thread ---- */

#define ROW_SIZE (2048 + 256 * MT_SYS_MAX_GPUS)

struct mt_sys_thread {
    struct mt_sys *s;
    void (*emit)(void *ctx, const char *row);
    void *ctx;
    unsigned interval_ms, window_ms;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, started;
    char row[ROW_SIZE];
};

static void emit_window(struct mt_sys_thread *t)
{
    if (mt_sys_window_json(t->s, real_s(), t->row, sizeof t->row) > 0)
        t->emit(t->ctx, t->row);
}

static void *sampler_main(void *arg)
{
    struct mt_sys_thread *t = arg;
    struct timespec t0, due_ts;
    uint64_t next_sample = t->interval_ms, next_window = t->window_ms;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        uint64_t due = next_sample < next_window ? next_sample : next_window;
        uint64_t ns = (uint64_t)t0.tv_nsec + (due % 1000) * 1000000ull;
        due_ts.tv_sec = t0.tv_sec + (time_t)(due / 1000) + (time_t)(ns / 1000000000ull);
        due_ts.tv_nsec = (long)(ns % 1000000000ull);
        int rc = pthread_cond_timedwait(&t->cv, &t->mu, &due_ts);
        if (t->stop)
            break;
        if (rc != ETIMEDOUT)
            continue;   /* spurious wake-up: wait for the same deadline */
        pthread_mutex_unlock(&t->mu);
        mt_sys_sample(t->s, real_s());
        if (due >= next_window)
            emit_window(t);
        /* Catch up after a stall (suspend, a stopped process): one sample,
         * at most one row, then back on the grid. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t elapsed = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000 +
                           (uint64_t)((now.tv_nsec - t0.tv_nsec) / 1000000);
        while (next_sample <= due || next_sample <= elapsed)
            next_sample += t->interval_ms;
        while (next_window <= due || next_window <= elapsed)
            next_window += t->window_ms;
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    mt_sys_sample(t->s, real_s());
    emit_window(t);
    return NULL;
}

struct mt_sys_thread *mt_sys_thread_start(const struct mt_sys_opts *opts,
                                          void (*emit)(void *ctx, const char *row),
                                          void *ctx)
{
    struct mt_sys_thread *t = NULL;
    pthread_condattr_t ca;
    pthread_attr_t attr;
    sigset_t all, old;
    int err = 0;
    if (opts->interval_ms == 0) {
        errno = 0;
        return NULL;
    }
    if (!(t = calloc(1, sizeof *t))) {
        err = ENOMEM;
        goto out;
    }
    t->emit = emit;
    t->ctx = ctx;
    t->interval_ms = opts->interval_ms;
    t->window_ms = opts->window_ms < opts->interval_ms ? opts->interval_ms : opts->window_ms;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!(t->s = mt_sys_create(opts))) {
        err = ENOMEM;
        goto out;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&t->th, &attr, sampler_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err == 0)
        t->started = 1;
out:
    if (err) {
        mt_sys_thread_stop(t);
        errno = err;
        return NULL;
    }
    return t;
}

void mt_sys_thread_stop(struct mt_sys_thread *t)
{
    if (!t)
        return;
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->th, NULL);
    }
    mt_sys_destroy(t->s);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
