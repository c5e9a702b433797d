/* The agent's side of `metrictap stack` and the stall watchdog (mt_stack.h
 * does the holding and unwinding).
 *
 * Requests: `metrictap stack RUN` creates stack.req.<tag> in the run's
 * private channel directory; a thread of the agent (at the program's nice,
 * so the threads it holds are let go soon) answers with stack.ans.<tag>, the
 * dump as JSON, published by rename.  Under Yama's ptrace_scope 1 only the
 * agent may attach (the shim names it the tracer), which is why the CLI asks.
 *
 * The watchdog runs on the parse stage's thread (it writes to the store,
 * which is that thread's): when the run printed nothing and its processes
 * used (almost) no CPU for stack.stall_after, it writes stacks.txt, a
 * `stalled` event and the `stalled` marker that ls and show read; output
 * again gives a `resumed` event and removes the marker. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "mt_agent.h"
#include "mt_stack.h"
#include "mt_stack_agent.h"
#include "mt_upload.h"

#define REQ_PREFIX "stack.req."
#define ANS_PREFIX "stack.ans."
/* CPU below this share of the time (all the run's processes together) is
 * "no CPU": a sleeping program's timer ticks and the like. */
#define IDLE_CPU_SHARE 0.02

struct mt_stack_agent {
    pthread_t thread;
    int started;
    _Atomic int stop;
    int ifd;
    int wake_fd;  /* eventfd: the run ends */
    /* the watchdog (parse stage's thread only) */
    double last_tick, quiet_since, seen_output, stalled_since;
    unsigned long long last_cpu;
    size_t last_nprocs;
    int stalled, fired;
};

/* The run's processes: the root and its descendants (without `metrictap
 * run` itself, which is metrictap's). */
static size_t run_pids(const struct mt_agent *a, pid_t *out, size_t cap)
{
    return mt_stack_tree("/proc", a->root_pid, a->launcher, out, cap);
}

/* The dump of the run now, as JSON with the run's id; NULL when off. */
static cJSON *dump_run(struct mt_agent *a)
{
    if (!a->cfg.stack_enabled)
        return NULL;
    /* One dump at a time: the watchdog (parse stage) and a request (the
     * service thread) would otherwise seize the same threads, and the
     * second would read as "already traced". */
    static pthread_mutex_t one_at_a_time = PTHREAD_MUTEX_INITIALIZER;
    pid_t *pids = mt_xcalloc(MT_STACK_MAX_PIDS, sizeof *pids);
    size_t n = run_pids(a, pids, MT_STACK_MAX_PIDS);
    struct mt_stack_dump d;
    pthread_mutex_lock(&one_at_a_time);
    mt_stack_take("/proc", pids, n, &d);
    pthread_mutex_unlock(&one_at_a_time);
    cJSON *j = mt_stack_json(&d);
    cJSON_AddStringToObject(j, "run", a->id);
    mt_stack_dump_free(&d);
    free(pids);
    return j;
}

/* ---- requests ---- */

static int tag_ok(const char *t)
{
    if (!*t || strlen(t) > 64)
        return 0;
    for (; *t; t++)
        if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
              *t == '.' || *t == '-'))
            return 0;
    return 1;
}

static void answer(struct mt_agent *a, int dfd, const char *tag)
{
    cJSON *j = dump_run(a);
    if (!j) {
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "run", a->id);
        cJSON_AddStringToObject(j, "error", "stack.enabled is false for this run");
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char tmp[128], final[128];
    snprintf(tmp, sizeof tmp, ".stack.tmp.%s", tag);
    snprintf(final, sizeof final, ANS_PREFIX "%s", tag);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = text ? strlen(text) : 0, off = 0;
    while (fd >= 0 && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (fd >= 0) {
        close(fd);
        if (off == len)
            renameat(dfd, tmp, dfd, final);
        else
            unlinkat(dfd, tmp, 0);
    }
    free(text);
}

static void answer_requests(struct mt_agent *a)
{
    DIR *d = opendir(a->channel);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, REQ_PREFIX, strlen(REQ_PREFIX)) != 0)
            continue;
        const char *tag = e->d_name + strlen(REQ_PREFIX);
        /* Gone first: a second scan must not answer it twice. */
        char name[256];
        snprintf(name, sizeof name, "%s", e->d_name);
        if (unlinkat(dirfd(d), name, 0) != 0 || !tag_ok(tag))
            continue;
        answer(a, dirfd(d), tag);
    }
    closedir(d);
}

static void *service_main(void *arg)
{
    struct mt_agent *a = arg;
    struct mt_stack_agent *s = a->stack;
    while (!atomic_load(&s->stop)) {
        struct pollfd p[2] = { { .fd = s->wake_fd, .events = POLLIN },
                               { .fd = s->ifd, .events = POLLIN } };
        /* Asleep until a request comes (inotify) or the run ends (wake_fd);
         * every 200 ms without inotify, or while a tracee waits to be let go. */
        int timeout = s->ifd < 0 || mt_stack_pending() ? 200 : -1;
        int n = poll(p, s->ifd >= 0 ? 2 : 1, timeout);
        if (n > 0 && (p[1].revents & POLLIN)) {
            char buf[4096];
            while (read(s->ifd, buf, sizeof buf) > 0)
                ;
        }
        if (atomic_load(&s->stop))
            break;
        if (n == 0 || (n > 0 && (p[1].revents & POLLIN)))
            answer_requests(a);
        mt_stack_release_pending();
    }
    return NULL;
}

void mt_stack_agent_start(struct mt_agent *a)
{
    struct mt_stack_agent *s = mt_xcalloc(1, sizeof *s);
    a->stack = s;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->ifd >= 0 && inotify_add_watch(s->ifd, a->channel, IN_CREATE | IN_MOVED_TO) < 0) {
        close(s->ifd);
        s->ifd = -1; /* polled every 200 ms instead */
    }
    if (s->wake_fd >= 0 && pthread_create(&s->thread, NULL, service_main, a) == 0)
        s->started = 1;
    else
        mt_store_event(&a->store, mt_now_unix(), "agent_error",
                       "\"message\":\"no stack service: metrictap stack cannot answer\"");
}

void mt_stack_agent_stop(struct mt_agent *a)
{
    struct mt_stack_agent *s = a->stack;
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    uint64_t one = 1;
    if (s->wake_fd >= 0 && write(s->wake_fd, &one, sizeof one) != sizeof one)
        (void)0; /* cannot happen for a fresh eventfd; the join would wait */
    if (s->started)
        pthread_join(s->thread, NULL);
    if (s->ifd >= 0)
        close(s->ifd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    if (s->stalled)
        mt_store_remove_file(&a->store, MT_STALLED_MARKER);
    free(s);
    a->stack = NULL;
}

/* ---- the watchdog ---- */

/* utime + stime of every process in clock ticks. */
static unsigned long long cpu_ticks(const pid_t *pids, size_t n)
{
    unsigned long long sum = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pids[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0)
            continue;
        buf[r] = '\0';
        const char *p = strrchr(buf, ')');
        unsigned long long ut, st;
        /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                        &st) == 2)
            sum += ut + st;
    }
    return sum;
}

/* The innermost function of each held thread, the program's own first. */
static void add_functions(cJSON *dump, struct mt_buf *f)
{
    mt_buf_adds(f, ",\"functions\":[");
    int first = 1;
    const cJSON *p, *t, *fr;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(dump, "processes")) {
        const cJSON *exe = cJSON_GetObjectItemCaseSensitive(p, "exe");
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(p, "threads")) {
            const char *own = NULL, *any = NULL;
            cJSON_ArrayForEach(fr, cJSON_GetObjectItemCaseSensitive(t, "frames")) {
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(fr, "function");
                const cJSON *mod = cJSON_GetObjectItemCaseSensitive(fr, "module");
                if (!cJSON_IsString(fn))
                    continue;
                if (!any)
                    any = fn->valuestring;
                if (cJSON_IsString(exe) && cJSON_IsString(mod) &&
                    strcmp(exe->valuestring, mod->valuestring) == 0) {
                    own = fn->valuestring;
                    break;
                }
            }
            const char *name = own ? own : any;
            if (!name)
                continue;
            if (!first)
                mt_buf_addc(f, ',');
            mt_buf_json_string(f, name, strlen(name));
            first = 0;
        }
    }
    mt_buf_addc(f, ']');
}

static void fire(struct mt_agent *a, struct mt_stack_agent *s, double now)
{
    cJSON *dump = dump_run(a);
    if (!dump)
        return;
    struct mt_buf text;
    mt_buf_init(&text, 16u << 20);
    mt_buf_printf(&text, "run %s stalled: no output and no CPU for %.0f s\n\n", a->id,
                  now - s->quiet_since);
    mt_stack_text(dump, &text);
    mt_store_replace(&a->store, "stacks.txt", text.data, text.len);
    char since[64];
    snprintf(since, sizeof since, "%.3f\n", s->quiet_since);
    mt_store_replace(&a->store, MT_STALLED_MARKER, since, strlen(since));
    struct mt_buf f;
    mt_buf_init(&f, 1u << 20);
    const cJSON *procs = cJSON_GetObjectItemCaseSensitive(dump, "processes");
    mt_buf_printf(&f, "\"quiet_s\":%.1f,\"processes\":%d,\"threads\":%d,\"held_max_us\":%.1f,"
                      "\"file\":\"stacks.txt\"",
                  now - s->quiet_since, cJSON_GetArraySize(procs),
                  cJSON_GetObjectItemCaseSensitive(dump, "threads")->valueint,
                  cJSON_GetObjectItemCaseSensitive(dump, "held_max_us")->valuedouble);
    add_functions(dump, &f);
    mt_store_event(&a->store, now, "stalled", f.data);
    mt_buf_free(&f);
    mt_buf_free(&text);
    cJSON_Delete(dump);
    s->stalled = 1;
    s->stalled_since = now;
    s->fired++;
    for (int i = 0; i < a->nuploaders; i++)
        mt_uploader_notify(a->uploaders[i]);
}

void mt_stack_watch_tick(struct mt_agent *a, double now)
{
    struct mt_stack_agent *s = a->stack;
    if (!s || a->recovering || !a->cfg.stack_enabled || a->cfg.stall_after <= 0)
        return;
    /* A twentieth of stall_after between looks (each reads the ppid of
     * every process on the host): 10 s for the default 10 minutes. */
    double period = a->cfg.stall_after / 20;
    period = period < 0.25 ? 0.25 : period > 10 ? 10 : period;
    if (s->last_tick && now - s->last_tick < period)
        return;
    mt_stack_release_pending();
    pid_t pids[256];
    size_t n = run_pids(a, pids, sizeof pids / sizeof *pids);
    unsigned long long cpu = cpu_ticks(pids, n);
    if (!s->last_tick) {
        s->last_tick = s->quiet_since = now;
        s->last_cpu = cpu;
        s->last_nprocs = n;
        s->seen_output = a->last_data_unix;
        return;
    }
    double dt = now - s->last_tick;
    long tck = sysconf(_SC_CLK_TCK);
    double used = cpu >= s->last_cpu ? (double)(cpu - s->last_cpu) / (double)(tck > 0 ? tck : 100)
                                     : 0;
    int output = a->last_data_unix != s->seen_output;
    int busy = used > IDLE_CPU_SHARE * dt || n != s->last_nprocs;
    s->seen_output = a->last_data_unix;
    s->last_cpu = cpu;
    s->last_nprocs = n;
    s->last_tick = now;
    if (output && s->stalled) {
        char f[96];
        snprintf(f, sizeof f, "\"stalled_s\":%.1f", now - s->stalled_since);
        mt_store_event(&a->store, now, "resumed", f);
        mt_store_remove_file(&a->store, MT_STALLED_MARKER);
        s->stalled = 0;
    }
    if (output || busy)
        s->quiet_since = now;
    else if (!s->stalled && n > 0 && now - s->quiet_since >= a->cfg.stall_after)
        fire(a, s, now);
}

int mt_stack_stalled(const char *run_dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" MT_STALLED_MARKER, run_dir);
    return access(path, F_OK) == 0;
}
