/* Live native stacks: see mt_stack.h. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libunwind-ptrace.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "mt_stack.h"
#include "mt_stack_internal.h"
#include "mt_symbolize.h"

/* libunwind's own search of a remote table (exported; its ptrace and
 * coredump accessors use it), for the tables stack_ehframe.c makes. */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
                                              unw_dyn_info_t *di, unw_proc_info_t *pi,
                                              int need_unwind_info, void *arg);

/* How long a seized thread may take to reach its stop.  A thread that is
 * about to enter uninterruptible sleep may not stop for a long time; it is
 * then left seized and let go once it stops (pending, below). */
#define STOP_WAIT_NS 500000000ull
#define MAPS_MAX (8u << 20)
#define PENDING_MAX 64
#define CAP_SYS_PTRACE_BIT 19

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads a small /proc file whole; returns its length (-1 when unreadable). */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

static char *read_all(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = mt_xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max)
                break;
            cap *= 2;
            buf = mt_xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- tracees that did not stop in time ---- */

static __thread pid_t pending[PENDING_MAX];
static __thread size_t npending;

/* Lets go of a seized tracee that has stopped: 1 done (or gone), 0 not yet. */
static int release_if_stopped(pid_t tid)
{
    int status;
    pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
    if (r == 0)
        return 0;
    if (r < 0 || !WIFSTOPPED(status))
        return 1; /* gone */
    int sig = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
    ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)sig);
    return 1;
}

size_t mt_stack_pending(void)
{
    return npending;
}

void mt_stack_release_pending(void)
{
    size_t k = 0;
    for (size_t i = 0; i < npending; i++)
        if (!release_if_stopped(pending[i]))
            pending[k++] = pending[i];
    npending = k;
}

/* ---- unwind tables for files without .eh_frame_hdr (stack_ehframe.c) ---- */

/* The made tables live at addresses no user process has (above the x86-64
 * user half); the accessor below answers reads there, the rest goes to the
 * tracee's memory through libunwind's ptrace accessor. */
#define EHTAB_FAKE_BASE 0xffff900000000000ull
#define EHTABS 8

static __thread struct mt_ehtab ehtabs[EHTABS];
static __thread size_t nehtabs;
/* The maps of the process being unwound (read before its threads are held). */
static __thread const char *cur_maps;
static __thread size_t cur_maps_len;

/* The load bias of the file mapped at `addr`, and its path. */
static int module_of(uint64_t addr, char *path, size_t pathsz, uint64_t *bias)
{
    const char *p = cur_maps, *end = cur_maps ? cur_maps + cur_maps_len : NULL;
    char want[512] = "";
    uint64_t first_start = 0;
    /* Pass 1: the file holding addr; pass 2: that file's offset-0 mapping. */
    for (int pass = 0; pass < 2; pass++) {
        for (p = cur_maps; p && p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *eol = nl ? nl : end;
            char line[700];
            size_t n = (size_t)(eol - p) < sizeof line - 1 ? (size_t)(eol - p) : sizeof line - 1;
            memcpy(line, p, n);
            line[n] = '\0';
            p = nl ? nl + 1 : end;
            unsigned long long lo, hi, off;
            int at = 0;
            if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &lo, &hi, &off, &at) < 3 || at <= 0 ||
                line[at] != '/')
                continue;
            if (pass == 0 && addr >= lo && addr < hi) {
                snprintf(want, sizeof want, "%s", line + at);
                break;
            }
            if (pass == 1 && off == 0 && strcmp(line + at, want) == 0) {
                first_start = lo;
                break;
            }
        }
        if (!want[0])
            return -1;
    }
    if (!first_start)
        return -1;
    snprintf(path, pathsz, "%s", want);
    /* ELF files are linked at page-aligned addresses: a non-PIE executable
     * at its own vaddr (bias 0), a PIE or library at 0. */
    int fd = open(want, O_RDONLY | O_CLOEXEC);
    uint64_t lowest = 0;
    if (fd >= 0) {
        Elf64_Ehdr eh;
        if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && eh.e_type == ET_EXEC)
            lowest = first_start; /* fixed addresses: no bias */
        close(fd);
    }
    *bias = lowest ? 0 : first_start;
    return 0;
}

static struct mt_ehtab *ehtab_for(uint64_t ip)
{
    for (size_t i = 0; i < nehtabs; i++)
        if (ip >= ehtabs[i].lo && ip < ehtabs[i].hi)
            return &ehtabs[i];
    char path[512];
    uint64_t bias;
    if (module_of(ip, path, sizeof path, &bias) != 0)
        return NULL;
    for (size_t i = 0; i < nehtabs; i++)
        if (strcmp(ehtabs[i].path, path) == 0 && ehtabs[i].bias == bias)
            return NULL; /* made before, and ip is in none of its FDEs */
    size_t slot = nehtabs < EHTABS ? nehtabs++ : EHTABS - 1;
    mt_ehtab_free(&ehtabs[slot]);
    if (mt_ehtab_build(path, bias, &ehtabs[slot]) != 0)
        ehtabs[slot].lo = ehtabs[slot].hi = 0;
    snprintf(ehtabs[slot].path, sizeof ehtabs[slot].path, "%s", path);
    ehtabs[slot].bias = bias;
    struct mt_ehtab *t = &ehtabs[slot];
    return ip >= t->lo && ip < t->hi ? t : NULL;
}

static int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi, int need,
                          void *arg)
{
    int rc = _UPT_find_proc_info(as, ip, pi, need, arg);
    if (rc >= 0)
        return rc;
    struct mt_ehtab *t = ehtab_for(ip);
    if (!t)
        return rc;
    unw_dyn_info_t di;
    memset(&di, 0, sizeof di);
    di.start_ip = t->lo;
    di.end_ip = t->hi;
    di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    di.u.rti.segbase = t->segbase;
    di.u.rti.table_data = EHTAB_FAKE_BASE + ((uint64_t)(t - ehtabs) << 32);
    di.u.rti.table_len = t->n * sizeof *t->ent / sizeof(unw_word_t);
    return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi, need, arg);
}

/* The snapshot's accessors (below). */
static int snap_access_mem(uint64_t addr, unw_word_t *val);
static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
                      void *arg);
static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
                        void *arg);
static int resume(unw_addr_space_t as, unw_cursor_t *c, void *arg);

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
                      void *arg)
{
    if (addr >= EHTAB_FAKE_BASE && !write) {
        uint64_t k = (addr - EHTAB_FAKE_BASE) >> 32, off = (addr - EHTAB_FAKE_BASE) & 0xffffffffu;
        if (k >= nehtabs || off + sizeof *val > ehtabs[k].n * sizeof *ehtabs[k].ent)
            return -UNW_EINVAL;
        memcpy(val, (const char *)ehtabs[k].ent + off, sizeof *val);
        return 0;
    }
    (void)as;
    (void)arg;
    if (write)
        return -UNW_EINVAL;
    return snap_access_mem(addr, val);
}

static unw_accessors_t accessors(void)
{
    unw_accessors_t a = _UPT_accessors;
    a.find_proc_info = find_proc_info;
    a.access_mem = access_mem;
    a.access_reg = access_reg;
    a.access_fpreg = access_fpreg;
    a.resume = resume;
    return a;
}

/* ---- holding one thread ---- */

/* Waits for the seized thread's stop: 1 stopped (status set), 0 not in
 * time, -1 gone.  Spins on the scheduler first: the stop usually comes in
 * microseconds, and every one of them is the program's. */
static int wait_stop(pid_t tid, int *status)
{
    uint64_t t0 = mono_ns();
    for (unsigned i = 0;; i++) {
        pid_t r = waitpid(tid, status, __WALL | WNOHANG);
        if (r == tid)
            return WIFSTOPPED(*status) ? 1 : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (i < 20) {
            sched_yield();
            continue;
        }
        if (mono_ns() - t0 > STOP_WAIT_NS)
            return 0;
        /* A sleep, not a spin: on a busy machine the thread to stop may be
         * waiting for the very CPU this would spin on. */
        struct timespec nap = { 0, 10000 };
        nanosleep(&nap, NULL);
    }
}

/* ---- the snapshot a thread is unwound from, after it was let go ---- */

/* The registers and the top of the stack are copied while the thread is
 * held; the walk itself (reading unwind tables, the slow part: milliseconds
 * for the first thread of a process) runs after the detach, on the copy.
 * Code and unwind tables do not change, so they are read live. */
#define STACK_COPY_MAX (512u << 10)
#define RED_ZONE 128u

struct snapshot {
    pid_t tid;
    struct user_regs_struct regs;
    uint64_t lo;       /* address of mem[0] */
    size_t len;
    char *mem;         /* STACK_COPY_MAX + RED_ZONE bytes */
};

static __thread struct snapshot snap;

/* The end of the mapping that holds addr (the stack's top), 0 if none. */
static uint64_t mapping_end(uint64_t addr)
{
    const char *p = cur_maps, *end = cur_maps ? cur_maps + cur_maps_len : NULL;
    while (p && p < end) {
        unsigned long long lo, hi;
        if (sscanf(p, "%llx-%llx", &lo, &hi) == 2 && addr >= lo && addr < hi)
            return hi;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static int read_live(uint64_t addr, void *out, size_t n)
{
    struct iovec local = { out, n }, remote = { (void *)(uintptr_t)addr, n };
    return process_vm_readv(snap.tid, &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* While the thread is held: its registers and stack. */
static int take_snapshot(pid_t tid)
{
    snap.tid = tid;
    snap.len = 0;
    struct iovec io = { &snap.regs, sizeof snap.regs };
    if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &io) != 0)
        return -1;
    uint64_t sp = snap.regs.rsp, top = mapping_end(sp);
    if (!top || sp < RED_ZONE)
        return 0; /* no copy: the walk reads the stack live */
    snap.lo = sp - RED_ZONE;
    size_t want = top - snap.lo > STACK_COPY_MAX + RED_ZONE ? STACK_COPY_MAX + RED_ZONE
                                                             : (size_t)(top - snap.lo);
    struct iovec local = { snap.mem, want }, remote = { (void *)(uintptr_t)snap.lo, want };
    ssize_t got = process_vm_readv(tid, &local, 1, &remote, 1, 0);
    snap.len = got > 0 ? (size_t)got : 0;
    return 0;
}

static int snap_access_mem(uint64_t addr, unw_word_t *val)
{
    if (addr >= snap.lo && addr + sizeof *val <= snap.lo + snap.len) {
        memcpy(val, snap.mem + (addr - snap.lo), sizeof *val);
        return 0;
    }
    return read_live(addr, val, sizeof *val) == 0 ? 0 : -UNW_EINVAL;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
                      void *arg)
{
    (void)as;
    (void)arg;
    const struct user_regs_struct *r = &snap.regs;
    if (write)
        return -UNW_EREADONLYREG;
    switch (reg) {
    case UNW_X86_64_RAX: *val = r->rax; break;
    case UNW_X86_64_RDX: *val = r->rdx; break;
    case UNW_X86_64_RCX: *val = r->rcx; break;
    case UNW_X86_64_RBX: *val = r->rbx; break;
    case UNW_X86_64_RSI: *val = r->rsi; break;
    case UNW_X86_64_RDI: *val = r->rdi; break;
    case UNW_X86_64_RBP: *val = r->rbp; break;
    case UNW_X86_64_RSP: *val = r->rsp; break;
    case UNW_X86_64_R8: *val = r->r8; break;
    case UNW_X86_64_R9: *val = r->r9; break;
    case UNW_X86_64_R10: *val = r->r10; break;
    case UNW_X86_64_R11: *val = r->r11; break;
    case UNW_X86_64_R12: *val = r->r12; break;
    case UNW_X86_64_R13: *val = r->r13; break;
    case UNW_X86_64_R14: *val = r->r14; break;
    case UNW_X86_64_R15: *val = r->r15; break;
    case UNW_X86_64_RIP: *val = r->rip; break;
    default: return -UNW_EBADREG;
    }
    return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
                        void *arg)
{
    (void)as; (void)reg; (void)val; (void)write; (void)arg;
    return -UNW_EBADREG;
}

static int resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
    (void)as; (void)c; (void)arg;
    return -UNW_EINVAL;
}

static void unwind(unw_addr_space_t as, struct mt_stack_thread *t)
{
    /* _UPT's find_proc_info reads the process's maps and ELF files; it
     * needs no stopped thread (memory goes through access_mem). */
    void *ui = _UPT_create(t->tid);
    unw_cursor_t c;
    if (!ui) {
        t->err = ENOMEM;
        snprintf(t->why, sizeof t->why, "libunwind: cannot create the ptrace accessors");
        return;
    }
    int rc = unw_init_remote(&c, as, ui);
    if (rc < 0) {
        t->err = EIO;
        snprintf(t->why, sizeof t->why, "libunwind: cannot start the unwind (%d)", rc);
    } else {
        do {
            unw_word_t ip = 0;
            if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
                break;
            t->ip[t->nframes++] = ip;
        } while (t->nframes < MT_STACK_MAX_FRAMES && unw_step(&c) > 0);
    }
    _UPT_destroy(ui);
}

/* Seizes, stops, copies and lets go of one thread, then unwinds the copy.
 * Returns 0, or the errno of the seize (EPERM: refused; ESRCH: gone). */
static int hold(unw_addr_space_t as, struct mt_stack_thread *t)
{
    if (ptrace(PTRACE_SEIZE, t->tid, NULL, NULL) != 0)
        return errno;
    uint64_t t0 = mono_ns();
    if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) != 0) {
        int e = errno;
        /* Not stopped, so no detach; it goes when it stops or exits. */
        if (npending < PENDING_MAX)
            pending[npending++] = t->tid;
        return e;
    }
    int status = 0;
    int w = wait_stop(t->tid, &status);
    if (w <= 0) {
        if (w == 0 && npending < PENDING_MAX)
            pending[npending++] = t->tid;
        t->err = w == 0 ? ETIMEDOUT : ESRCH;
        snprintf(t->why, sizeof t->why, "%s",
                 w == 0 ? "did not stop within 0.5 s (entering uninterruptible sleep?)"
                        : "exited while being stopped");
        return 0;
    }
    /* A signal-delivery stop (no event) came first: the signal is passed on
     * at the detach, so the program gets it as it would have. */
    int sig = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
    int copied = take_snapshot(t->tid);
    ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)sig);
    t->held_ns = mono_ns() - t0;
    if (copied != 0) {
        t->err = errno;
        snprintf(t->why, sizeof t->why, "cannot read its registers: %s", strerror(errno));
        return 0;
    }
    unwind(as, t);
    return 0;
}

/* comm, state and wait channel of one thread, before it is held. */
static void describe_thread(const char *task_dir, struct mt_stack_thread *t)
{
    char path[600], buf[1024];
    snprintf(path, sizeof path, "%s/comm", task_dir);
    if (read_small(path, buf, sizeof buf) > 0) {
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(t->name, sizeof t->name, "%s", buf);
    }
    snprintf(path, sizeof path, "%s/stat", task_dir);
    t->state = '?';
    if (read_small(path, buf, sizeof buf) > 0) {
        const char *close_paren = strrchr(buf, ')');
        if (close_paren && close_paren[1] == ' ' && close_paren[2])
            t->state = close_paren[2];
    }
    snprintf(path, sizeof path, "%s/wchan", task_dir);
    if (read_small(path, buf, sizeof buf) > 0 && strcmp(buf, "0") != 0)
        snprintf(t->wchan, sizeof t->wchan, "%s", buf);
}

static int cmp_tid(const void *a, const void *b)
{
    pid_t x = ((const struct mt_stack_thread *)a)->tid, y = ((const struct mt_stack_thread *)b)->tid;
    return (x > y) - (x < y);
}

/* Every thread of one process.  Returns 1 when the process is gone. */
static int take_proc(const char *proc_root, struct mt_stack_dump *d, struct mt_stack_proc *p)
{
    char dir[256], path[600];
    snprintf(dir, sizeof dir, "%s/%d/task", proc_root, (int)p->pid);
    DIR *tasks = opendir(dir);
    if (!tasks)
        return 1;
    size_t cap = 16;
    p->threads = mt_xcalloc(cap, sizeof *p->threads);
    struct dirent *de;
    while ((de = readdir(tasks)) != NULL) {
        char *end;
        long tid = strtol(de->d_name, &end, 10);
        if (*end || tid <= 0)
            continue;
        if (p->nthreads == cap) {
            cap *= 2;
            p->threads = mt_xrealloc(p->threads, cap * sizeof *p->threads);
        }
        struct mt_stack_thread *t = &p->threads[p->nthreads++];
        memset(t, 0, sizeof *t);
        t->tid = (pid_t)tid;
    }
    closedir(tasks);
    qsort(p->threads, p->nthreads, sizeof *p->threads, cmp_tid);
    snprintf(path, sizeof path, "%s/%d/exe", proc_root, (int)p->pid);
    ssize_t n = readlink(path, p->exe, sizeof p->exe - 1);
    p->exe[n > 0 ? n : 0] = '\0';

    /* The maps first: the made unwind tables need them while threads are held. */
    snprintf(path, sizeof path, "%s/%d/maps", proc_root, (int)p->pid);
    p->maps = read_all(path, MAPS_MAX, &p->maps_len);
    cur_maps = p->maps;
    cur_maps_len = p->maps_len;
    unw_accessors_t acc = accessors();
    unw_addr_space_t as = unw_create_addr_space(&acc, 0);
    if (as)
        unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
    size_t kept = 0;
    for (size_t i = 0; i < p->nthreads; i++) {
        struct mt_stack_thread *t = &p->threads[i];
        snprintf(path, sizeof path, "%s/%d", dir, (int)t->tid);
        describe_thread(path, t);
        if (t->state == 'Z' || t->state == 'X')
            continue; /* exiting: nothing to walk */
        int e = 0;
        if (p->err) {
            e = p->err; /* one refusal says it for every thread */
        } else if (t->state == 'D') {
            t->err = EAGAIN;
            snprintf(t->why, sizeof t->why,
                     "in uninterruptible sleep (D): not held, it would not stop");
            /* Where in the kernel it waits (a hung filesystem, a device). */
            snprintf(path, sizeof path, "%s/%d/stack", dir, (int)t->tid);
            if (read_small(path, t->kstack, sizeof t->kstack) < 0)
                t->kstack[0] = '\0';
        } else if (!as) {
            t->err = ENOMEM;
            snprintf(t->why, sizeof t->why, "libunwind: cannot create an address space");
        } else {
            e = hold(as, t);
            if (e == ESRCH)
                continue; /* the thread ended meanwhile */
            if (e) {
                p->err = e;
                mt_stack_why_refused(proc_root, p->pid, e, p->why, sizeof p->why);
            }
        }
        if (e) {
            t->err = e;
            snprintf(t->why, sizeof t->why, "refused");
            d->refused++;
        } else if (!t->err) {
            d->held++;
            d->held_total_ns += t->held_ns;
            if (t->held_ns > d->held_max_ns)
                d->held_max_ns = t->held_ns;
        }
        d->threads++;
        p->threads[kept++] = *t;
    }
    p->nthreads = kept;
    if (as)
        unw_destroy_addr_space(as);
    cur_maps = NULL;
    return kept == 0 && !p->err;
}

/* What a dumping thread keeps (the copy buffer, the made tables) goes with
 * the thread: a key's destructor runs in it, where its TLS still is. */
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_done(void *unused)
{
    (void)unused;
    free(snap.mem);
    snap.mem = NULL;
    for (size_t i = 0; i < nehtabs; i++)
        mt_ehtab_free(&ehtabs[i]);
    nehtabs = 0;
}

static void make_thread_key(void)
{
    pthread_key_create(&thread_key, thread_done);
}

int mt_stack_take(const char *proc_root, const pid_t *pids, size_t npids, struct mt_stack_dump *d)
{
    memset(d, 0, sizeof *d);
    mt_stack_release_pending();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    d->taken_unix = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    d->procs = mt_xcalloc(npids ? npids : 1, sizeof *d->procs);
    /* The stack copy's buffer, touched now: page faults while a thread is
     * held would be its time. */
    if (!snap.mem) {
        snap.mem = mt_xmalloc(STACK_COPY_MAX + RED_ZONE);
        memset(snap.mem, 0, STACK_COPY_MAX + RED_ZONE);
        pthread_once(&thread_key_once, make_thread_key);
        pthread_setspecific(thread_key, snap.mem); /* freed when the thread ends */
    }
    int refused = 0;
    for (size_t i = 0; i < npids; i++) {
        struct mt_stack_proc *p = &d->procs[d->nprocs];
        memset(p, 0, sizeof *p);
        p->pid = pids[i];
        if (take_proc(proc_root, d, p)) {
            free(p->threads);
            free(p->maps);
            continue;
        }
        refused += p->err != 0;
        d->nprocs++;
    }
    return refused;
}

void mt_stack_dump_free(struct mt_stack_dump *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nprocs; i++) {
        free(d->procs[i].threads);
        free(d->procs[i].maps);
    }
    free(d->procs);
    memset(d, 0, sizeof *d);
}

/* ---- why a process refused ---- */

static int status_field(const char *proc_root, pid_t pid, const char *key, char *out, size_t n)
{
    char path[256], buf[8192];
    if (pid > 0)
        snprintf(path, sizeof path, "%s/%d/status", proc_root, (int)pid);
    else
        snprintf(path, sizeof path, "%s/self/status", proc_root);
    if (read_small(path, buf, sizeof buf) <= 0)
        return -1;
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            const char *v = line + klen + 1;
            v += strspn(v, " \t");
            snprintf(out, n, "%.*s", (int)strcspn(v, "\n"), v);
            return 0;
        }
    }
    return -1;
}

static int have_cap_sys_ptrace(const char *proc_root)
{
    char v[64];
    if (status_field(proc_root, 0, "CapEff", v, sizeof v) != 0)
        return geteuid() == 0;
    return (strtoull(v, NULL, 16) >> CAP_SYS_PTRACE_BIT) & 1;
}

void mt_stack_why_refused(const char *proc_root, pid_t pid, int err, char *out, size_t outsz)
{
    char v[256], path[256];
    if (err != EPERM) {
        snprintf(out, outsz, "ptrace failed: %s", strerror(err));
        return;
    }
    if (status_field(proc_root, pid, "TracerPid", v, sizeof v) == 0 && strtol(v, NULL, 10) != 0) {
        snprintf(out, outsz, "it is already traced by pid %s (a debugger?)", v);
        return;
    }
    int cap = have_cap_sys_ptrace(proc_root);
    unsigned ruid = 0, euid = 0, suid = 0;
    if (!cap && status_field(proc_root, pid, "Uid", v, sizeof v) == 0 &&
        sscanf(v, "%u %u %u", &ruid, &euid, &suid) == 3 &&
        (ruid != geteuid() || euid != geteuid() || suid != geteuid())) {
        snprintf(out, outsz,
                 "it runs as uid %u and this is uid %u (ptrace needs the same user or "
                 "CAP_SYS_PTRACE)", euid, (unsigned)geteuid());
        return;
    }
    snprintf(path, sizeof path, "%s/sys/kernel/yama/ptrace_scope", proc_root);
    char scope[16];
    if (read_small(path, scope, sizeof scope) > 0) {
        int s = (int)strtol(scope, NULL, 10);
        if (s >= 3) {
            snprintf(out, outsz, "kernel.yama.ptrace_scope is %d: ptrace is off on this host", s);
            return;
        }
        if (s == 2 && !cap) {
            snprintf(out, outsz,
                     "kernel.yama.ptrace_scope is 2: only CAP_SYS_PTRACE may attach");
            return;
        }
        if (s == 1 && !cap) {
            snprintf(out, outsz,
                     "kernel.yama.ptrace_scope is 1: only its ancestors and the tracer it "
                     "names may attach (the run's agent, unless stack.enabled is false or the "
                     "process does not load the shim)");
            return;
        }
    }
    struct stat st;
    snprintf(path, sizeof path, "%s/%d", proc_root, (int)pid);
    if (!cap && stat(path, &st) == 0 && st.st_uid != geteuid()) {
        snprintf(out, outsz,
                 "it is not dumpable (setuid, or PR_SET_DUMPABLE 0): only CAP_SYS_PTRACE "
                 "may attach");
        return;
    }
    if (!cap) {
        snprintf(out, outsz, "it holds capabilities this process lacks (attaching needs "
                             "CAP_SYS_PTRACE)");
        return;
    }
    if (status_field(proc_root, 0, "Seccomp", v, sizeof v) == 0 && strtol(v, NULL, 10) != 0) {
        snprintf(out, outsz, "a seccomp filter of this process forbids ptrace");
        return;
    }
    snprintf(out, outsz, "ptrace refused (EPERM) by a security module or the container");
}

/* ---- the processes of a tree ---- */

size_t mt_stack_tree(const char *proc_root, pid_t root, int skip_root, pid_t *out, size_t cap)
{
    DIR *dir = opendir(proc_root);
    size_t n = 0, all_cap = 1024, nall = 0;
    pid_t (*all)[2] = mt_xmalloc(all_cap * sizeof *all);
    struct dirent *de;
    while (dir && (de = readdir(dir)) != NULL) {
        char *end, path[300], buf[1024];
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof path, "%s/%ld/stat", proc_root, pid);
        if (read_small(path, buf, sizeof buf) <= 0)
            continue;
        const char *p = strrchr(buf, ')');
        int ppid;
        if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
            continue;
        if (nall == all_cap) {
            all_cap *= 2;
            all = mt_xrealloc(all, all_cap * sizeof *all);
        }
        all[nall][0] = (pid_t)pid;
        all[nall][1] = (pid_t)ppid;
        nall++;
    }
    if (dir)
        closedir(dir);
    /* Breadth first from the root: out[] is also the queue. */
    if (!skip_root && n < cap)
        out[n++] = root;
    size_t head = n;
    for (pid_t parent = root;;) {
        for (size_t i = 0; i < nall && n < cap; i++)
            if (all[i][1] == parent && all[i][0] != root)
                out[n++] = all[i][0];
        if (head >= n)
            break;
        parent = out[head++];
    }
    free(all);
    return n;
}
