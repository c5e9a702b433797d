/* metrictap-agent: the per-run collector.
 *
 *   metrictap-agent --status-fd FD (--root-pid PID | --launcher-pid PID) [-- CMD...]
 *
 * Started by the shim of a run's first process or by `metrictap run` (see
 * common/mt_spawn.h).  It detaches (so it is never the program's child), sets
 * up the run in the store and the capture channel, answers on FD, then drains
 * the rings until the root process is gone, and writes the run's end. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <cjson/cJSON.h>

#include "../common/mt_buf.h"
#include "../common/mt_json.h"
#include "../common/mt_rank.h"
#include "../common/mt_redact.h"
#include "../common/mt_spawn.h"
#include "mt_agent.h"
#include "mt_indexer.h"
#include "mt_journal.h"
#include "mt_recover.h"
#include "mt_stack_agent.h"
#include "mt_tail.h"

extern char **environ;
#include "mt_upload.h"

#define SHARED_LINGER_S 2.0 /* how long a run shared by ranks waits for late ones */
/* A child forked just before its parent exits makes its ring a moment
 * later (daemon(): the parent _exits at once): the end waits that long. */
#define LATE_RING_S 0.1
#define INDEX_LINGER_S 10.0  /* the index thread, once the launcher is gone */
#define BUSY_NAP_WINDOW_S 0.05 /* after output, nap between batches this long */
#define BUSY_NAP_NS 500000       /* the shortest nap between batches */
#define FLOW_NAP_MAX_NS 20000000 /* the longest, while output flows */
/* The fastest a ring fills: the longest nap leaves it half empty even when a
 * burst starts at once at this rate (print loops here fill one at 0.25-0.65
 * GB/s). */
#define RING_FILL_PEAK_BPS 4e8
#define IDLE_NAP_MS 250 /* the longest sleep once output has been quiet a while */

static void answer(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer(int fd, const char *fmt, ...)
{
    if (fd < 0)
        return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
}

/* ---- set-up ---- */

static char *read_proc_file(pid_t pid, const char *name, size_t *len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        mt_buf_add(&b, chunk, (size_t)n);
    close(fd);
    *len = b.len;
    return b.data;
}

static void command_from_proc(struct mt_agent *a)
{
    size_t len = 0;
    char *raw = read_proc_file(a->root_pid, "cmdline", &len);
    if (!raw)
        return;
    int n = 0;
    for (size_t i = 0; i < len; i++)
        if (raw[i] == '\0')
            n++;
    a->command = mt_xcalloc((size_t)n + 1, sizeof *a->command);
    for (size_t i = 0; i < len && a->ncommand < n; i += strlen(raw + i) + 1)
        a->command[a->ncommand++] = mt_xstrdup(raw + i);
    free(raw);
}

static char *proc_cwd(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cwd", (int)pid);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n <= 0)
        return getcwd(buf, sizeof buf) ? mt_xstrdup(buf) : NULL;
    buf[n] = '\0';
    return mt_xstrdup(buf);
}

static int make_channel(struct mt_agent *a, char *err, size_t errsz)
{
    const char *bases[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
    char path[512];
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        if (!bases[i] || !*bases[i])
            continue;
        snprintf(path, sizeof path, "%s/metrictap-%s-XXXXXX", bases[i], a->id);
        if (mkdtemp(path))
            break;
        path[0] = '\0';
    }
    if (!path[0]) {
        snprintf(err, errsz, "cannot create a capture channel: %s", strerror(errno));
        return -1;
    }
    a->channel = mt_xstrdup(path);
    char ctl_path[600];
    snprintf(ctl_path, sizeof ctl_path, "%s/ctl", path);
    int fd = open(ctl_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    void *mem = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, MT_CTL_SIZE) == 0)
        mem = mmap(NULL, MT_CTL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    if (mem == MAP_FAILED) {
        snprintf(err, errsz, "cannot create %s: %s", ctl_path, strerror(errno));
        return -1;
    }
    a->ctl = mem;
    a->ctl->agent_pid = (uint32_t)getpid();
    a->ctl->ring_capacity = mt_ring_capacity_for(a->cfg.ring_size);
    a->ctl->options = (a->cfg.python_unbuffered ? MT_CTL_OPT_PYTHON_UNBUFFERED : 0) |
                      (a->cfg.stack_enabled ? MT_CTL_OPT_STACK : 0);
    a->ctl->magic = MT_CTL_MAGIC;
    return 0;
}

static void remove_channel(struct mt_agent *a)
{
    if (a->channel)
        mt_channel_remove(a->channel, a->ctl);
}

/* The last _step and runtime of a resumed run. */
static void load_resume_point(struct mt_agent *a)
{
    char *summary = mt_store_read(&a->store, "summary.json", NULL);
    if (summary) {
        mt_parse_restore_summary(a->parse, summary);
        free(summary);
    }
}

static uint64_t last_step_of(struct mt_store *s, double *runtime)
{
    size_t len = 0;
    char *hist = mt_store_read(s, "history.jsonl", &len);
    uint64_t next = 0;
    if (!hist)
        return 0;
    /* The last complete line holds the highest _step. */
    size_t end = len;
    while (end > 0 && hist[end - 1] != '\n')
        end--; /* ignore a torn last line */
    if (end > 0) {
        size_t start = end - 1;
        while (start > 0 && hist[start - 1] != '\n')
            start--;
        const char *p = strstr(hist + start, "\"_step\":");
        if (p && p < hist + end)
            next = strtoull(p + 8, NULL, 10) + 1;
        const char *r = strstr(hist + start, "\"_runtime\":");
        if (r && r < hist + end)
            *runtime = strtod(r + 11, NULL);
    }
    free(hist);
    return next;
}

/* A resumed run keeps its first start, name, config and count of resumptions,
 * and its runtime continues from where it stopped. */
static void load_previous_run(struct mt_agent *a)
{
    char *text = mt_store_read(&a->store, "run.json", NULL);
    cJSON *old = mt_json_parse_literal(text); /* the config keeps its numbers' text */
    free(text);
    a->resumed = 1;
    if (!cJSON_IsObject(old)) {
        cJSON_Delete(old);
        return;
    }
    cJSON *v;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(old, "resumed")))
        a->resumed = v->valueint + 1;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(old, "start_time")))
        a->created_unix = v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(old, "runtime")) &&
        v->valuedouble > a->runtime_offset)
        a->runtime_offset = v->valuedouble;
    if (!*a->cfg.name && cJSON_IsString(v = cJSON_GetObjectItem(old, "name"))) {
        free(a->name);
        a->name = mt_xstrdup(v->valuestring);
    }
    if (cJSON_IsObject(v = cJSON_GetObjectItem(old, "config")))
        a->prev_config = cJSON_DetachItemViaPointer(old, v);
    cJSON_Delete(old);
}

/* In the store's checked directory, by its fd: the link is ours, made
 * under a fresh name and renamed over the old one. */
static void link_latest(struct mt_agent *a)
{
    char tmp[64], target[4096];
    int root = a->store.root_fd;
    snprintf(tmp, sizeof tmp, ".latest-run.%d", (int)getpid());
    snprintf(target, sizeof target, "runs/%s/%s", a->project, a->id);
    unlinkat(root, tmp, 0);
    if (symlinkat(target, root, tmp) == 0 && renameat(root, tmp, root, "latest-run") != 0)
        unlinkat(root, tmp, 0);
}

static int setup(struct mt_agent *a, char *err, size_t errsz, int *off)
{
    if (mt_config_load(&a->cfg, NULL, err, errsz) != 0)
        return -1;
    if (strcmp(a->cfg.mode, "disabled") == 0) {
        *off = 1;
        return -1;
    }
    a->project = mt_xstrdup(*a->cfg.project ? a->cfg.project : "uncategorized");
    if (strchr(a->project, '/') || strcmp(a->project, "..") == 0 || a->project[0] == '.') {
        snprintf(err, errsz, "bad project name \"%s\": it may not contain '/' or start with '.'",
                 a->project);
        return -1;
    }
    if (*a->cfg.id) {
        if (strlen(a->cfg.id) > 64 || strchr(a->cfg.id, '/') || a->cfg.id[0] == '.') {
            snprintf(err, errsz, "bad run id \"%s\"", a->cfg.id);
            return -1;
        }
        snprintf(a->id, sizeof a->id, "%.15s", a->cfg.id);
    } else {
        mt_run_make_id(a->id);
    }
    int exists = mt_store_run_exists(a->cfg.dir, a->project, a->id);
    const char *resume = a->cfg.resume;
    if (exists && strcmp(resume, "never") == 0) {
        snprintf(err, errsz, "run %s already exists in project %s (resume is \"never\")", a->id,
                 a->project);
        return -1;
    }
    if (!exists && strcmp(resume, "must") == 0) {
        snprintf(err, errsz, "run %s does not exist in project %s (resume is \"must\")", a->id,
                 a->project);
        return -1;
    }
    if (mt_store_open(&a->store, a->cfg.dir, a->project, a->id, &exists, err, errsz) != 0)
        return -1;
    /* Held for the agent's life: readers tell a run whose agent is gone. */
    a->agent_lock = mt_store_hold_agent_lock(a->store.dir);
    if (a->agent_lock < 0) {
        snprintf(err, errsz, "run %s is being written by another agent", a->id);
        return -1;
    }
    a->journal = mt_journal_create(&a->store, a->cfg.journal_max, a->cfg.keep_journal, err,
                                   errsz);
    if (!a->journal)
        return -1;
    if (!a->command)
        command_from_proc(a);
    if (a->command) { /* secrets in flags never reach the store */
        char **clean = mt_redact_argv(a->command);
        for (int k = 0; k < a->ncommand; k++)
            free(a->command[k]);
        free(a->command);
        a->command = clean;
    }
    mt_meta_cluster_from_env(environ, &a->cluster);
    a->group = mt_xstrdup(*a->cfg.group ? a->cfg.group : a->cluster.group);
    if (a->ncommand > 0) {
        const char *slash = strrchr(a->command[0], '/');
        a->program = mt_xstrdup(slash ? slash + 1 : a->command[0]);
    }
    a->cwd = proc_cwd(a->root_pid);
    if (*a->cfg.name)
        a->name = mt_xstrdup(a->cfg.name);
    else {
        char name[256];
        if (strcmp(a->cfg.ranks, "per-rank") == 0 && a->cluster.rank >= 0)
            snprintf(name, sizeof name, "%s-rank%d-%s", a->program ? a->program : "run",
                     a->cluster.rank, a->id);
        else
            snprintf(name, sizeof name, "%s-%s", a->program ? a->program : "run", a->id);
        a->name = mt_xstrdup(name);
    }
    double prev_runtime = 0;
    a->start_unix = mt_now_unix();
    a->created_unix = a->start_unix;
    if (exists) {
        a->first_step = last_step_of(&a->store, &prev_runtime);
        a->runtime_offset = prev_runtime;
        load_previous_run(a);
    }
    a->start_mono_ns = mt_now_mono_ns();
    if (make_channel(a, err, errsz) != 0)
        return -1;
    /* A shell or launcher's options are not the run's config: the trainer's
     * are, once its process shows itself (proctree.c). */
    int root_wraps = mt_program_is_wrapper(a->program);
    struct mt_parse_opts po = {
        .cfg = &a->cfg, .program = *a->cfg.program ? a->cfg.program : a->program,
        .start_unix = a->start_unix,
        .first_step = a->first_step, .runtime_offset = a->runtime_offset,
        .argv = root_wraps ? NULL : a->command, .argc = a->ncommand, /* parse: config */
    };
    struct mt_parse_sink sink = mt_agent_sink(a);
    a->parse = mt_parse_create(&po, &sink, err, errsz);
    if (!a->parse)
        return -1;
    if (exists)
        load_resume_point(a);
    if (mt_collector_open(a, err, errsz) != 0)
        return -1;
    a->tail = mt_tail_create(a->cfg.files_watch, a->cwd, a->channel, a->parse, &a->store, err,
                             errsz);
    if (!a->tail)
        return -1;
    /* The index is written from a thread of its own: a busy or damaged
     * index.sqlite must not hold up the program's start. */
    a->indexer = mt_indexer_start(a->store.root);
    a->state = "running";
    a->exit_code = -1;
    if (exists) {
        char fields[128];
        snprintf(fields, sizeof fields,
                 "\"first_step\":%llu,\"runtime_offset\":%.3f,\"resumption\":%d",
                 (unsigned long long)a->first_step, a->runtime_offset, a->resumed);
        mt_store_event(&a->store, a->start_unix, "resume", fields);
    }
    mt_store_event(&a->store, a->start_unix, "start", NULL);
    if (mt_recover_write_meta(a) != 0) {
        snprintf(err, errsz, "cannot write %s/%s/meta: %s", a->store.dir, MT_JOURNAL_DIR,
                 strerror(errno));
        return -1;
    }
    if (mt_run_write_json(a) != 0) {
        snprintf(err, errsz, "cannot write %s/run.json: %s", a->store.dir, strerror(errno));
        return -1;
    }
    mt_run_update_index(a);
    link_latest(a);
    a->root_pidfd = (int)syscall(SYS_pidfd_open, a->root_pid, 0);
    mt_primary_add(a, a->root_pid, a->launcher, -1);
    return 0;
}

/* ---- upload (agent/upload.c), one uploader per backend ---- */

static void upload_error(struct mt_agent *a, const char *backend, const char *err)
{
    struct mt_buf f;
    mt_buf_init(&f, 2048);
    mt_buf_adds(&f, "\"backend\":");
    mt_buf_json_string(&f, backend, strlen(backend));
    mt_buf_adds(&f, ",\"message\":");
    mt_buf_json_string(&f, err, strlen(err));
    mt_store_event(&a->store, mt_now_unix(), "upload_error", f.data);
    mt_buf_free(&f);
}

/* Starts an uploader for each chosen backend that the mode lets run.
 * MLFLOW_TRACKING_URI counts below METRICTAP_UPLOAD_URL and above the files. */
static void upload_start(struct mt_agent *a)
{
    struct mt_upload_opts o;
    char err[1024], names[8][32];
    mt_upload_opts_init(&o);
    mt_upload_opts_from_config(&o, &a->cfg);
    if (mt_upload_opts_from_env(&o, err, sizeof err) != 0) {
        upload_error(a, o.backend, err);
        return;
    }
    int n = mt_upload_choose(a->cfg.upload_to, &o, names, 8, err, sizeof err);
    if (n < 0)
        upload_error(a, "", err);
    o.quiet = 1;
    for (int i = 0; i < n && a->nuploaders < MT_AGENT_UPLOADERS; i++) {
        snprintf(o.backend, sizeof o.backend, "%s", names[i]);
        if (!mt_upload_wanted(&o))
            continue;
        struct mt_uploader *u = mt_uploader_start(a->store.dir, &o, err, sizeof err);
        if (u)
            a->uploaders[a->nuploaders++] = u;
        else
            upload_error(a, names[i], err);
    }
}

/* Flushes every backend at once, each for at most its timeout. */
static void upload_finish(struct mt_agent *a)
{
    for (int i = 0; i < a->nuploaders; i++)
        mt_uploader_finish_begin(a->uploaders[i], -1);
    for (int i = 0; i < a->nuploaders; i++)
        mt_uploader_finish(a->uploaders[i], -1);
    a->nuploaders = 0;
}

/* ---- the loop ---- */

/* How long the drain naps between batches while output flows: until the
 * fullest ring would be a quarter full at the rate it filled since the last
 * batch.  Each wakeup costs the program more than the copying it does: the
 * drain reading right behind the producer pulls the lines it is writing over
 * to the other core, and on a KVM guest a vCPU that halts and wakes every
 * 500 us keeps its host thread polling.  Inside one process (capture_inproc,
 * 2-core VM), a print-bound loop to a file ran 1.24-1.35x captured with
 * 500 us naps, 1.20-1.34x with 2 and 5 ms, 1.12-1.15x with 20 ms.  A 16 MiB
 * ring filling at 256 MB/s gets 16 ms naps; a small ring keeps short ones. */
static long flow_nap_ns(const struct mt_agent *a, double since_last_s)
{
    double cap = (double)a->ctl->ring_capacity, fill = (double)mt_collector_fullest(a);
    double nap = cap / 2 / RING_FILL_PEAK_BPS;
    if (fill > 0 && since_last_s > 0 && cap / 4 / (fill / since_last_s) < nap)
        nap = cap / 4 / (fill / since_last_s);
    long ns = (long)(nap * 1e9);
    return ns < BUSY_NAP_NS ? BUSY_NAP_NS : ns > FLOW_NAP_MAX_NS ? FLOW_NAP_MAX_NS : ns;
}

static void busy_nap(long ns)
{
    struct timespec nap = { 0, ns };
    nanosleep(&nap, NULL);
}

/* The drain: rings to the journal, and who is still alive.  Everything
 * else happens on the parse stage's thread (parse_stage.c). */
static void run_loop(struct mt_agent *a)
{
    double root_gone_at = 0, last_busy = 0, last_drop_report = 0;
    uint64_t journaled_at_root_end = 0;
    struct mt_journal_counts *jc = mt_journal_counts(a->journal);
    double last_drain = 0;
    long nap_ns = BUSY_NAP_NS;
    for (;;) {
        mt_collector_scan(a);
        double before = mt_now_unix();
        if (last_drain)
            nap_ns = flow_nap_ns(a, before - last_drain);
        size_t drained = mt_collector_drain(a);
        last_drain = before;
        if (drained)
            mt_journal_commit(a->journal);
        mt_collector_reap(a);
        atomic_store(&a->ctl->journal_records, atomic_load(&jc->records));
        double now = mt_now_unix();
        if (now - last_drop_report >= 1.0) {
            mt_collector_report_journal_drops(a);
            last_drop_report = now;
        }
        /* The run waits for its root and every rank that joined it: a
         * launcher's exit record is its end (it then waits for us); a
         * preloaded root may still print from atexit handlers, so for it only
         * its death counts. */
        if (!mt_primaries_done(a))
            root_gone_at = 0; /* (another rank may have joined meanwhile) */
        else if (!root_gone_at) {
            root_gone_at = now;
            journaled_at_root_end = atomic_load(&jc->records);
        }
        /* The program's part is saved: `metrictap run` may return while the
         * capture goes on for processes that outlive it. */
        if (root_gone_at && !atomic_load(&a->ctl->saved) && !mt_collector_all_done(a) &&
            now - root_gone_at >= LATE_RING_S &&
            atomic_load(&jc->parsed_records) >= journaled_at_root_end)
            atomic_store(&a->ctl->saved, 1);
        /* A run shared by ranks stays open a moment for a rank that is still
         * on its way to the rendezvous; processes that outlive the root are
         * followed while they live, up to capture.linger. */
        double linger = a->rendezvous ? SHARED_LINGER_S : LATE_RING_S;
        if (root_gone_at && now - root_gone_at >= linger &&
            (mt_collector_all_done(a) || now - root_gone_at > a->cfg.linger + linger))
            break;
        if (drained) {
            last_busy = now;
            if (drained < MT_DRAIN_BUDGET) {
                /* Caught up.  Draining again at once would read right behind
                 * the producers, pulling the cache line they are writing
                 * over to this core on nearly every record (measured on a
                 * 16-core host: the print loop 1.29x slower to a file); a
                 * nap lets a batch build up, for at most FLOW_NAP_MAX_NS of
                 * latency. */
                busy_nap(nap_ns);
            }
            continue;
        }
        if (now - last_busy < BUSY_NAP_WINDOW_S) {
            /* Output is flowing: nap briefly instead of asking producers to
             * ring the bell (a syscall on their side) every time we catch up. */
            busy_nap(nap_ns);
            continue;
        }
        unsigned bell = mt_ctl_sleep_begin(a->ctl);
        if (mt_collector_pending(a) == 0)
            /* Data rings the bell, so a long nap costs no latency; what it
             * delays is noticing a death, by at most IDLE_NAP_MS. */
            mt_ctl_sleep(a->ctl, bell,
                         root_gone_at ? 10 : now - last_busy > 1.0 ? IDLE_NAP_MS : 50);
        else
            atomic_store(&a->ctl->sleeping, 0);
    }
}

static void remove_rendezvous(struct mt_agent *a)
{
    if (a->rendezvous)
        mt_rank_remove_place(a->rendezvous); /* only if it is ours */
}

static void finish(struct mt_agent *a)
{
    mt_run_stop_system_metrics(a);
    if (mt_collector_drain(a))
        mt_journal_commit(a->journal);
    /* Processes still running now are cut off (capture.linger): counted. */
    for (size_t i = 0; i < a->nrings; i++)
        if (!a->rings[i].dead && !a->rings[i].superseded &&
            !mt_pid_is_dead(a->rings[i].pidfd, (pid_t)a->rings[i].pid))
            a->outlived++;
    atomic_store(&a->ctl->closed, 1);
    remove_rendezvous(a);
    mt_collector_close(a);
    mt_collector_report_journal_drops(a);
    mt_journal_end(a->journal);
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    a->drain_cpu_s = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
    mt_parse_stage_stop(a); /* parses what is left of the journal */
    mt_stack_agent_stop(a);
    double now = mt_now_unix();
    mt_tail_finish(a->tail, now);
    mt_parse_flush(a->parse, now);
    mt_proctree_settle(a);
    uint32_t untracked = atomic_load(&a->ctl->rings_failed);
    if (untracked) {
        char uf[160];
        snprintf(uf, sizeof uf,
                 "\"processes\":%u,\"reason\":\"no capture ring: /dev/shm is full\"", untracked);
        mt_store_event(&a->store, now, "untracked", uf);
    }
    if (a->outlived) {
        char of[200];
        snprintf(of, sizeof of,
                 "\"processes\":%llu,\"after_s\":%.1f,\"reason\":\"still running after "
                 "capture.linger; their later output is not captured\"",
                 (unsigned long long)a->outlived, a->cfg.linger);
        mt_store_event(&a->store, now, "outlived", of);
    }
    mt_run_write_end(a, now);
    atomic_store(&a->ctl->finished, 1);
    remove_channel(a);
    /* The program and its launcher are gone: flush for a bounded time, the
     * rest is left to `metrictap sync`. */
    upload_finish(a);
}

static void usage(void)
{
    fputs("usage: metrictap-agent --status-fd FD (--root-pid PID | --launcher-pid PID)"
          " [-- CMD...]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static struct mt_agent agent;
    struct mt_agent *a = &agent;
    int status_fd = -1, i;
    a->exit_code = -1;
    a->root_pidfd = -1;
    a->inotify_fd = -1;
    a->agent_lock = -1;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--status-fd") == 0)
            status_fd = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--root-pid") == 0)
            a->root_pid = (pid_t)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--launcher-pid") == 0) {
            a->root_pid = (pid_t)strtol(argv[++i], NULL, 10);
            a->launcher = 1;
        } else if (strcmp(argv[i], "--rendezvous") == 0)
            a->rendezvous = mt_xstrdup(argv[++i]);
        else
            usage();
    }
    if (a->root_pid <= 0)
        usage();
    if (i < argc) {
        a->ncommand = argc - i;
        a->command = mt_xcalloc((size_t)a->ncommand + 1, sizeof *a->command);
        for (int k = 0; k < a->ncommand; k++)
            a->command[k] = mt_xstrdup(argv[i + k]);
    }
    if (status_fd >= 0)
        fcntl(status_fd, F_SETFD, FD_CLOEXEC);
    /* Detach: the spawner reaps this process; the child is the agent. */
    pid_t pid = fork();
    if (pid < 0) {
        answer(status_fd, MT_ANSWER_ERR " cannot start the agent: %s", strerror(errno));
        return 1;
    }
    if (pid > 0)
        _exit(0);
    /* A process group of its own keeps the terminal's ^C and ^Z away from
     * the agent, but it stays in the program's session: where the kernel
     * groups the CPU by session (autogroup, on by default), a session of its
     * own would compete with the program's as an equal, whatever its nice.
     * Measured on the 2-core VM with bench/capture_inproc: the agent's own
     * session slowed the print loop 1.23-1.30x, this 1.15-1.19x, and the
     * agent pinned to the other core 1.11x. */
    setpgid(0, 0);
    /* The drain (this thread) keeps the program's nice: it needs about an
     * eighth of the CPU the print loop does (perf: 0.1 s for 2,000,000
     * lines), and at nice 10 on a machine busy with other work it got too
     * little of the second CPU to keep up (measured: 0.5M of 2M lines
     * dropped under a load of 2.4 on the 2-core VM, 0 at nice 0).  When the
     * CPUs are contended training still wins where it matters: the parse
     * stage, the agent's real work, runs at nice 19 (parse_stage.c) and its
     * lag only delays. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    /* Still on the program's terminal, but in a background group: a message
     * on stderr must not stop the agent (SIGTTOU under `stty tostop`). */
    signal(SIGTTOU, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTSTP, SIG_IGN);
    umask(077);

    char err[1024] = "";
    int off = 0;
    if (setup(a, err, sizeof err, &off) != 0) {
        if (off)
            answer(status_fd, "OFF");
        else
            answer(status_fd, MT_ANSWER_ERR " %s", err);
        remove_channel(a);
        return 1;
    }
    answer(status_fd, MT_ANSWER_OK " %s %s %s", a->id, a->channel, a->store.dir);
    if (status_fd >= 0)
        close(status_fd);
    /* The program runs now; what takes time is gathered while it does. */
    mt_run_start_system_metrics(a);
    upload_start(a);
    mt_stack_agent_start(a);
    /* The parse stage gathers the metadata (git, the binary's sha256: tens
     * of milliseconds, 0.7 s measured once) before it parses: the drain
     * must run from the first record, or a burst fills the ring first. */
    if (mt_parse_stage_start(a, err, sizeof err) != 0) {
        /* Nothing was promised about metrics yet; the program runs on. */
        mt_store_event(&a->store, mt_now_unix(), "agent_error", "\"message\":\"no parse stage\"");
        return 1;
    }
    run_loop(a);
    finish(a);
    mt_tail_destroy(a->tail);
    mt_indexer_stop(a->indexer, INDEX_LINGER_S);
    mt_parse_destroy(a->parse);
    mt_parse_destroy(a->parse_console);
    mt_procstats_free(a);
    mt_proctree_free(a);
    mt_journal_destroy(a->journal);
    mt_store_close(&a->store);
    mt_store_unlock(a->agent_lock);
    mt_config_free(&a->cfg);
    return 0;
}
