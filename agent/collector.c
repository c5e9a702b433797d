/* The collector: finds each process's ring in the run's channel, drains it
 * into the parsers and the store, and notices when processes are gone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_console.h"
#include "mt_agent.h"
#include "mt_journal.h"
#include "mt_symbolize.h"
#include "mt_tail.h"

/* A notice for events.jsonl, written by the parse stage in its place among
 * the records (the drain writes no store file itself). */
static void journal_event(struct mt_agent *a, const char *name, const char *fields)
{
    char rec[512];
    int n = snprintf(rec, sizeof rec, "%s%c%s", name, '\0', fields);
    if (n > 0 && (size_t)n < sizeof rec)
        mt_journal_put(a->journal, 0, MT_REC_META(MT_JREC_EVENT, 0, 0), mt_now_mono_ns(), rec,
                       (uint32_t)n);
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int mt_pid_is_dead(int pidfd, pid_t pid)
{
    if (pidfd >= 0) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
    }
    return kill(pid, 0) != 0 && errno == ESRCH;
}

int mt_collector_open(struct mt_agent *a, char *err, size_t errsz)
{
    a->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (a->inotify_fd < 0 ||
        inotify_add_watch(a->inotify_fd, a->channel, IN_MOVED_TO | IN_CREATE) < 0) {
        snprintf(err, errsz, "cannot watch the channel %s: %s", a->channel, strerror(errno));
        return -1;
    }
    return 0;
}

static void add_ring(struct mt_agent *a, const char *name)
{
    for (size_t i = 0; i < a->nrings; i++)
        if (strcmp(a->rings[i].name, name) == 0)
            return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", a->channel, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    void *mem = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= MT_RING_HDR_SIZE)
        mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mem == MAP_FAILED)
        return;
    if (mt_ring_validate(mem, (uint64_t)st.st_size) != 0) {
        munmap(mem, (size_t)st.st_size);
        unlink(path);
        journal_event(a, "bad_ring", "");
        return;
    }
    if (a->nrings == a->cap_rings) {
        a->cap_rings = a->cap_rings ? a->cap_rings * 2 : 16;
        a->rings = mt_xrealloc(a->rings, a->cap_rings * sizeof *a->rings);
    }
    struct mt_ring_slot *s = &a->rings[a->nrings++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ring = mem;
    s->size = (size_t)st.st_size;
    s->pid = s->ring->pid;
    s->created_ns = s->ring->created_ns;
    s->pidfd = open_pidfd((pid_t)s->pid);
    /* The journal names the ring once; its records then carry its id. */
    s->source = ++a->nsources;
    mt_journal_put(a->journal, 0, MT_REC_META(MT_JREC_SOURCE, 0, s->source), s->created_ns,
                   s->ring, (uint32_t)sizeof *s->ring);
    /* Another rank's root joined the run: the run now waits for it too. */
    if (s->ring->flags & MT_RING_PRIMARY)
        mt_primary_add(a, (pid_t)s->pid, (s->ring->flags & MT_RING_LAUNCHER) != 0,
                       s->ring->rank);
    /* Of two rings of one pid, the older belonged to the image before an
     * exec.  readdir's order is not creation order: compare their times. */
    for (size_t i = 0; i + 1 < a->nrings; i++) {
        struct mt_ring_slot *o = &a->rings[i];
        if (o->pid != s->pid)
            continue;
        if (o->created_ns <= s->created_ns)
            o->superseded = 1;
        else
            s->superseded = 1;
    }
}

void mt_collector_scan(struct mt_agent *a)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int any = a->nrings == 0;
    ssize_t n;
    while ((n = read(a->inotify_fd, buf, sizeof buf)) > 0)
        any = 1;
    if (!any)
        return;
    DIR *d = opendir(a->channel);
    if (!d)
        return;
    /* Names first, then rings: add_ring works out which of two rings of
     * one pid is the newer from their headers. */
    struct dirent *e;
    char (*names)[64] = NULL;
    size_t count = 0, cap = 0;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "ring.", 5) != 0)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            names = mt_xrealloc(names, cap * sizeof *names);
        }
        snprintf(names[count++], 64, "%s", e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < count; i++)
        add_ring(a, names[i]);
    free(names);
}

static void handle_record(struct mt_agent *a, struct mt_ring_slot *s, const struct mt_rec_view *v)
{
    double ts = mt_agent_unix_of(a, v->ts_ns);
    switch (v->kind) {
    case MT_REC_DATA:
        if (v->stream < 4)
            a->stream_bytes[v->stream] += v->len;
        mt_procstats_add(a, s->pid, s->ring->exe, (int)v->stream, v->aux, v->len);
        a->last_data_unix = ts;
        mt_parse_bytes(mt_parser_for_ring(a, s->ring), s->pid, (int)v->stream, ts, v->data,
                       v->len);
        a->console_label[0] = '\0';
        break;
    case MT_REC_EXIT:
    case MT_REC_SIGNAL:
        /* The drain noted the end as it went by, so the run's end does not
         * wait for the parse stage; a recovery has no drain. */
        if (a->recovering)
            mt_collector_note_end(a, s->pid, v->kind, v->aux);
        break;
    case MT_REC_FILE_OPEN:
        mt_tail_announce(a->tail, s->pid, v->data, v->len, ts);
        break;
    case MT_REC_PROC:
        mt_proctree_image(a, s->pid, s->ring->exe, v->data, v->len);
        break;
    case MT_REC_FDS:
        mt_proctree_fds(a, s->pid, v->data, v->len);
        if (!a->trainer_fixed)
            mt_proctree_settle(a);
        break;
    case MT_REC_CRASH:
        mt_symbolize_store(&a->store, ts, s->pid, s->ring->exe, v);
        break;
    case MT_REC_USER:
        mt_untracked_user(a, s->pid, s->ring->exe, v);
        break;
    default:
        break;
    }
}

/* Bytes a process wrote to fd 1 or 2 that were not the console (console.c),
 * told once its ring retires, as a not_console event through the journal:
 * the parse stage adds them to the run's counts and the writer's. */
static void count_elsewhere(struct mt_agent *a, struct mt_ring_slot *s)
{
    struct mt_buf b;
    mt_buf_init(&b, 1024);
    mt_buf_printf(&b, "\"pid\":%u,\"exe\":", s->pid);
    mt_buf_json_string(&b, s->ring->exe, strnlen(s->ring->exe, sizeof s->ring->exe));
    int any = 0;
    for (int k = 0; k < MT_ELSEWHERE_KINDS; k++) {
        uint64_t n = atomic_load_explicit(&s->ring->elsewhere_bytes[k], memory_order_relaxed);
        if (n == s->seen_elsewhere[k])
            continue;
        mt_buf_printf(&b, ",\"%s\":%llu", mt_elsewhere_name(k),
                      (unsigned long long)(n - s->seen_elsewhere[k]));
        s->seen_elsewhere[k] = n;
        any = 1;
    }
    if (any)
        journal_event(a, "not_console", b.data);
    mt_buf_free(&b);
}

/* What the journal refused since the last report, as dropped events that
 * travel through the journal themselves (processes' notices always do). */
void mt_collector_report_journal_drops(struct mt_agent *a)
{
    struct mt_journal_counts *c = mt_journal_counts(a->journal);
    for (int i = 0; i < MT_JDROP_N; i++) {
        uint64_t r = atomic_load(&c->dropped_records[i]), b = atomic_load(&c->dropped_bytes[i]);
        if (r == a->journal_drops_told[i])
            continue;
        char fields[256];
        snprintf(fields, sizeof fields, "\"records\":%llu,\"bytes\":%llu,\"reason\":\"%s\"",
                 (unsigned long long)(r - a->journal_drops_told[i]),
                 (unsigned long long)(b - a->journal_drop_bytes_told[i]), mt_jdrop_reason[i]);
        journal_event(a, "dropped", fields);
        a->journal_drops_told[i] = r;
        a->journal_drop_bytes_told[i] = b;
    }
}

void mt_collector_handle(struct mt_agent *a, struct mt_ring_slot *s, const struct mt_rec_view *v)
{
    handle_record(a, s, v);
}

void mt_collector_note_end(struct mt_agent *a, uint32_t pid, uint32_t kind, uint32_t aux)
{
    int code = kind == MT_REC_EXIT ? (int)(aux & 0xff) : -1;
    int sig = kind == MT_REC_SIGNAL ? (int)aux : 0;
    for (size_t i = 0; i < a->nprimaries; i++) {
        struct mt_primary *p = &a->primaries[i];
        if (p->pid != (pid_t)pid)
            continue;
        p->have_end = 1;
        p->exit_code = code;
        p->exit_signal = sig;
        if (p->launcher)
            p->done = 1;
    }
    if ((pid_t)pid == a->root_pid) {
        a->have_end = 1;
        a->exit_code = code;
        a->exit_signal = sig;
    }
    a->last_have_end = 1;
    a->last_exit_code = code;
    a->last_exit_signal = sig;
}

static void report_drops(struct mt_agent *a, struct mt_ring_slot *s)
{
    uint64_t r = atomic_load(&s->ring->dropped_records);
    uint64_t b = atomic_load(&s->ring->dropped_bytes);
    uint64_t u = atomic_load(&s->ring->dropped_unbacked);
    if (r == s->seen_drop_records)
        return;
    /* Records dropped because /dev/shm had no memory for the ring are told
     * apart: the cure is a bigger /dev/shm (docker --shm-size), not a
     * bigger ring. */
    const char *why = u != s->seen_drop_unbacked
                          ? "no memory for the capture ring: /dev/shm is full"
                          : "capture ring full";
    char fields[320];
    snprintf(fields, sizeof fields,
             "\"pid\":%u,\"records\":%llu,\"bytes\":%llu,\"reason\":\"%s\"", s->pid,
             (unsigned long long)(r - s->seen_drop_records),
             (unsigned long long)(b - s->seen_drop_bytes), why);
    journal_event(a, "dropped", fields); /* counted where the parse stage reads it */
    s->seen_drop_records = r;
    s->seen_drop_bytes = b;
    s->seen_drop_unbacked = u;
}

/* Takes records from all rings in timestamp order, so the output of a process
 * tree interleaves as it was written.  Returns the records handled. */
size_t mt_collector_drain(struct mt_agent *a)
{
    size_t handled = 0;
    while (handled < MT_DRAIN_BUDGET) {
        struct mt_ring_slot *best = NULL;
        for (size_t i = 0; i < a->nrings; i++) {
            struct mt_ring_slot *s = &a->rings[i];
            if (s->corrupt)
                continue;
            if (!s->has_view) {
                int rc = mt_ring_peek(s->ring, &s->view);
                if (rc < 0) {
                    s->corrupt = 1;
                    journal_event(a, "bad_ring", "");
                }
                s->has_view = rc == 1;
            }
            if (s->has_view && (!best || s->view.ts_ns < best->view.ts_ns))
                best = s;
        }
        if (!best)
            break;
        /* Persist, then parse: the record goes to the journal as it is. */
        const struct mt_rec_view *v = &best->view;
        if (v->kind == MT_REC_EXIT || v->kind == MT_REC_SIGNAL)
            mt_collector_note_end(a, best->pid, v->kind, v->aux);
        mt_journal_put(a->journal, best->source, MT_REC_META(v->kind, v->stream, v->aux),
                       v->ts_ns, v->data, v->len);
        mt_ring_consume(best->ring);
        best->has_view = 0;
        handled++;
    }
    for (size_t i = 0; i < a->nrings; i++)
        report_drops(a, &a->rings[i]);
    return handled;
}

static void retire(struct mt_agent *a, size_t i)
{
    struct mt_ring_slot *s = &a->rings[i];
    count_elsewhere(a, s);
    uint64_t left = mt_ring_pending(s->ring);
    if (left) {
        /* Reserved by a process that died before publishing: lost. */
        char fields[160];
        snprintf(fields, sizeof fields,
                 "\"pid\":%u,\"bytes\":%llu,\"reason\":\"process died while writing\"",
                 s->pid, (unsigned long long)left);
        journal_event(a, "dropped", fields);
    }
    int pid_has_newer = 0;
    for (size_t j = 0; j < a->nrings; j++)
        if (j != i && a->rings[j].pid == s->pid)
            pid_has_newer = 1;
    /* The parse stage ends the process's partial lines when it gets here
     * (stream 1: close them; 0: a newer image of the pid goes on). */
    mt_journal_put(a->journal, 0, MT_REC_META(MT_JREC_CLOSE, !pid_has_newer, s->source),
                   mt_now_mono_ns(), NULL, 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", a->channel, s->name);
    unlink(path);
    munmap(s->ring, s->size);
    if (s->pidfd >= 0)
        close(s->pidfd);
    /* Keep the rest in creation order. */
    memmove(&a->rings[i], &a->rings[i + 1], (a->nrings - i - 1) * sizeof *a->rings);
    a->nrings--;
}

void mt_collector_reap(struct mt_agent *a)
{
    for (size_t i = 0; i < a->nrings; i++) {
        struct mt_ring_slot *s = &a->rings[i];
        if (!s->dead)
            s->dead = mt_pid_is_dead(s->pidfd, (pid_t)s->pid);
        /* A launcher writes nothing after the exit status it reports. */
        if (s->ring->flags & MT_RING_LAUNCHER)
            for (size_t k = 0; k < a->nprimaries; k++)
                if (a->primaries[k].pid == (pid_t)s->pid && a->primaries[k].have_end)
                    s->superseded = 1;
        /* Retire a ring once nothing more can come: its process is gone (or
         * has exec'ed into a newer ring) and it has been drained. */
        int idle = s->corrupt || mt_ring_pending(s->ring) == 0;
        if ((s->dead || s->superseded) && (idle || s->dead)) {
            struct mt_rec_view v;
            if (!s->corrupt && (s->has_view || mt_ring_peek(s->ring, &v) == 1))
                continue; /* drain first */
            retire(a, i);
            i--;
        }
    }
}

struct mt_primary *mt_primary_add(struct mt_agent *a, pid_t pid, int launcher, int rank)
{
    for (size_t i = 0; i < a->nprimaries; i++)
        if (a->primaries[i].pid == pid) {
            if (rank >= 0)
                a->primaries[i].rank = rank;
            return &a->primaries[i];
        }
    if (a->nprimaries == sizeof a->primaries / sizeof *a->primaries)
        return NULL;
    struct mt_primary *p = &a->primaries[a->nprimaries++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->pidfd = open_pidfd(pid);
    p->launcher = launcher;
    p->rank = rank;
    p->exit_code = -1;
    return p;
}

/* Have all the processes the run waits for ended? */
int mt_primaries_done(struct mt_agent *a)
{
    int all = 1;
    for (size_t i = 0; i < a->nprimaries; i++) {
        struct mt_primary *p = &a->primaries[i];
        if (!p->done && mt_pid_is_dead(p->pidfd, p->pid))
            p->done = 1;
        all &= p->done;
    }
    return all;
}

int mt_collector_all_done(const struct mt_agent *a)
{
    return a->nrings == 0;
}

uint64_t mt_collector_fullest(const struct mt_agent *a)
{
    uint64_t most = 0;
    for (size_t i = 0; i < a->nrings; i++) {
        uint64_t n = a->rings[i].corrupt ? 0 : mt_ring_pending(a->rings[i].ring);
        if (n > most)
            most = n;
    }
    return most;
}

uint64_t mt_collector_pending(const struct mt_agent *a)
{
    uint64_t n = 0;
    for (size_t i = 0; i < a->nrings; i++)
        if (!a->rings[i].corrupt)
            n += mt_ring_pending(a->rings[i].ring);
    return n;
}

void mt_collector_close(struct mt_agent *a)
{
    while (a->nrings)
        retire(a, a->nrings - 1);
    free(a->rings);
    a->rings = NULL;
    if (a->inotify_fd >= 0)
        close(a->inotify_fd);
}
