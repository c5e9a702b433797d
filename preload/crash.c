/* The crash handler: on SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP and
 * SIGSYS it records raw instruction pointers and the maps lines they fall in
 * (one MT_REC_CRASH record, common/mt_crash.h), then hands the signal on
 * exactly as if we had never been there, so exit statuses and the program's
 * own handlers are unchanged.  The agent symbolizes.
 *
 * Installed from the constructor, chained: the disposition found there is kept
 * and restored before the signal is delivered again.  A signal the program
 * ignores is left alone; a handler the program installs later replaces ours
 * (then we report nothing, and `metrictap run` still reports the signal).
 *
 * The handler is async-signal-safe: no malloc, no stdio, no lock of ours.
 * Unwinding is the DWARF (.eh_frame) unwinder of GCC's libgcc_eh.a, linked
 * statically and hidden.  (DESIGN.md names libunwind; Debian's libunwind.a is
 * not position-independent and cannot go into a shared object.)  With glibc
 * 2.35+ it finds code through _dl_find_object, which takes no lock, and it
 * allocates nothing; its one-time set-up is warmed up in the constructor.  It
 * walks through the kernel's signal frame into the interrupted code; where it
 * stops at the first frame (code without CFI), the frame-pointer chain from the
 * context's rbp is taken instead.  A fault while unwinding a corrupt stack is
 * caught (SA_NODEFER + siglongjmp) and the frames found so far are kept.
 *
 * Stack overflows: the main thread gets an alternate signal stack (mmap'ed,
 * with a guard page) when it has none.  Other threads have none unless the
 * program gave them one, so an overflow there kills the process with SIGSEGV
 * before any handler runs: it is not reported here (the exit status is still
 * right, and `metrictap run` reports the signal). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <unwind.h>

#include "../common/mt_crash.h"
#include "shim.h"

static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS };
#define NCRASH ((int)(sizeof crash_signals / sizeof *crash_signals))

#define ALT_STACK_SIZE (64u << 10)
#define OWNER_WAIT_MS 2000 /* how long a second crashing thread waits for the first */
#define MAPS_LINE_MAX 4352 /* a maps line: PATH_MAX and the fields before it */

static struct sigaction prev_action[NCRASH];
static unsigned char installed[NCRASH];

static MT_TLS int crash_depth;           /* >0: this thread is inside the handler */
static MT_TLS sigjmp_buf *volatile crash_jmp; /* where a fault while unwinding goes */

static _Atomic int crash_owner;    /* tid of the thread reporting, 0 none */
static _Atomic int crash_reported; /* this process image has sent its report */

/* The record is built here, not on the (alternate) stack. */
static union {
    struct mt_crash_hdr hdr;
    char bytes[sizeof(struct mt_crash_hdr) + MT_CRASH_MAX_FRAMES * 8 + MT_CRASH_MAX_MAPS];
} record;
static char maps_chunk[4096];

static int slot_of(int sig)
{
    for (int i = 0; i < NCRASH; i++)
        if (crash_signals[i] == sig)
            return i;
    return -1;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t hex_prefix(const char *p, const char *end, const char **stop)
{
    uint64_t v = 0;
    for (; p < end; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else
            break;
        v = v << 4 | (uint64_t)d;
    }
    *stop = p;
    return v;
}

/* Does the maps line [line, end) contain one of the ips? */
static int line_wanted(const char *line, const char *end, const uint64_t *ips, uint32_t n)
{
    const char *p;
    uint64_t lo = hex_prefix(line, end, &p);
    if (p >= end || *p != '-')
        return 0;
    uint64_t hi = hex_prefix(p + 1, end, &p);
    for (uint32_t i = 0; i < n; i++)
        if (ips[i] >= lo && ips[i] < hi)
            return 1;
    return 0;
}

/* Copies the lines of /proc/self/maps that hold one of the ips to out (at
 * most cap bytes, whole lines).  Lines are assembled in `line`, since a read
 * may end mid-line.  Returns the bytes written; *cut when something did not fit. */
static uint32_t read_maps(char *out, uint32_t cap, const uint64_t *ips, uint32_t n, int *cut)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    static char line[MAPS_LINE_MAX];
    uint32_t len = 0, used = 0;
    int overlong = 0;
    for (;;) {
        ssize_t got = syscall(SYS_read, fd, maps_chunk, sizeof maps_chunk);
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++) {
            char c = maps_chunk[i];
            if (len < sizeof line)
                line[len++] = c;
            else
                overlong = 1;
            if (c != '\n')
                continue;
            if (!overlong && line_wanted(line, line + len, ips, n)) {
                if (used + len <= cap) {
                    memcpy(out + used, line, len);
                    used += len;
                } else {
                    *cut = 1;
                }
            }
            len = 0;
            overlong = 0;
        }
    }
    syscall(SYS_close, fd);
    return used;
}

/* The DWARF walk: frames before the signal's (this handler, the kernel's
 * trampoline) are skipped; recording starts at the interrupted pc. */
static struct walk {
    uint64_t *ips;
    uint64_t pc;
    uint32_t n;
    int started;
} walk;

static _Unwind_Reason_Code on_frame(struct _Unwind_Context *ctx, void *arg)
{
    struct walk *w = arg;
    int before = 0;
    uint64_t ip = (uint64_t)_Unwind_GetIPInfo(ctx, &before);
    if (!w->started) {
        if (ip != w->pc)
            return _URC_NO_REASON;
        w->started = 1;
    }
    if (w->n >= MT_CRASH_MAX_FRAMES || ip == 0)
        return _URC_END_OF_STACK;
    w->ips[w->n++] = ip;
    return _URC_NO_REASON;
}

/* The frame-pointer chain from the context's rbp: for code the DWARF walk
 * cannot get through (no CFI).  Reads are guarded by crash_jmp. */
static void walk_frame_pointers(const ucontext_t *uc, struct walk *w)
{
#if defined(__x86_64__)
    uint64_t fp = (uint64_t)uc->uc_mcontext.gregs[REG_RBP];
    while (w->n < MT_CRASH_MAX_FRAMES && fp && !(fp & 7)) {
        const uint64_t *frame = (const uint64_t *)(uintptr_t)fp;
        uint64_t next = frame[0], ret = frame[1];
        if (!ret)
            break;
        w->ips[w->n++] = ret;
        if (next <= fp)
            break; /* stacks grow down: callers' frames are above */
        fp = next;
    }
#else
    (void)uc, (void)w;
#endif
}

/* Collects the frames from the signal's context into ips; returns how many. */
static uint32_t unwind(void *uctx, uint64_t *ips, uint32_t *flags)
{
    const ucontext_t *uc = uctx;
    sigjmp_buf jb;
    memset(&walk, 0, sizeof walk);
    walk.ips = ips;
#if defined(__x86_64__)
    walk.pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
#endif
    crash_jmp = &jb;
    if (sigsetjmp(jb, 0) == 0) {
        _Unwind_Backtrace(on_frame, &walk);
        if (walk.n <= 1) {
            /* Nothing past the faulting frame: its pc and the fp chain. */
            *flags |= walk.n ? MT_CRASH_UNWIND_FP : MT_CRASH_UNWIND_NONE | MT_CRASH_UNWIND_FP;
            if (walk.n == 0 && walk.pc)
                ips[walk.n++] = walk.pc;
            walk_frame_pointers(uc, &walk);
        }
    } else {
        *flags |= MT_CRASH_UNWIND_FAULTED;
        if (walk.n == 0 && walk.pc)
            ips[walk.n++] = walk.pc;
    }
    crash_jmp = NULL;
    return walk.n;
}

/* Builds and pushes this crash's record.  Only one thread reports; another
 * one crashing meanwhile waits (bounded) so the process does not die before
 * the first report is out. */
static void report(int sig, siginfo_t *info, void *uctx, int idx)
{
    struct mt_ring_header *r = mt_ring;
    if (!r)
        return;
    int me = (int)syscall(SYS_gettid), none = 0;
    if (!atomic_compare_exchange_strong(&crash_owner, &none, me)) {
        struct timespec nap = { 0, 1000000 };
        for (int i = 0; i < OWNER_WAIT_MS && !atomic_load(&crash_reported); i++)
            syscall(SYS_nanosleep, &nap, NULL);
        return;
    }
    struct mt_crash_hdr *h = &record.hdr;
    memset(h, 0, sizeof *h);
    h->magic = MT_CRASH_MAGIC;
    h->version = MT_CRASH_VERSION;
    h->hdr_size = sizeof *h;
    h->pid = (uint32_t)getpid();
    h->tid = (uint32_t)me;
    h->signo = sig;
    h->code = info ? info->si_code : 0;
    if (info && (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
                 sig == SIGTRAP))
        h->addr = (uint64_t)(uintptr_t)info->si_addr;
    if (info && info->si_code <= 0)
        h->sender_pid = (uint32_t)info->si_pid;
    uint32_t flags = 0;
    uint64_t *ips = (uint64_t *)(record.bytes + sizeof *h);
    uint32_t n = unwind(uctx, ips, &flags);
    if (installed[idx] && (prev_action[idx].sa_flags & SA_SIGINFO ||
                           prev_action[idx].sa_handler != SIG_DFL))
        flags |= MT_CRASH_CHAINED;
    char *maps = (char *)(ips + n);
    uint32_t room = mt_ring_max_payload(r->capacity);
    uint32_t fixed = (uint32_t)sizeof *h + n * 8u;
    uint32_t cap = room > fixed ? room - fixed : 0;
    if (cap > MT_CRASH_MAX_MAPS)
        cap = MT_CRASH_MAX_MAPS;
    int cut = 0;
    h->maps_len = read_maps(maps, cap, ips, n, &cut);
    if (cut)
        flags |= MT_CRASH_MAPS_CUT;
    h->nframes = n;
    h->flags = flags;
    mt_ring_push(r, MT_REC_META(MT_REC_CRASH, 0, (uint32_t)sig), mono_ns(), record.bytes,
                 fixed + h->maps_len);
    /* The process dies of this signal unless a handler of its own comes next:
     * say so, for runs with no launcher to report the wait status (the agent
     * only counts it from the run's root process). */
    if (!(flags & MT_CRASH_CHAINED))
        mt_ring_push(r, MT_REC_META(MT_REC_SIGNAL, 0, (uint32_t)sig), mono_ns(), NULL, 0);
    if (mt_ctl)
        mt_ctl_ring_bell(mt_ctl);
    atomic_store(&crash_reported, 1);
}

/* Puts the disposition we found back and delivers the signal to it again:
 * a fault re-executes the faulting instruction when we return; anything else
 * (abort's raise, kill, a trap) is queued again with the same siginfo. */
static void hand_on(int sig, siginfo_t *info, int idx)
{
    sigaction(sig, &prev_action[idx], NULL);
    installed[idx] = 0;
    int fault = info && info->si_code > 0 &&
                (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL);
    if (fault)
        return;
    pid_t pid = getpid();
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (!info || syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, info) != 0)
        syscall(SYS_tgkill, pid, tid, sig);
}

static void crash_handler(int sig, siginfo_t *info, void *uctx)
{
    int saved = errno;
    int idx = slot_of(sig);
    if (crash_depth > 0) {
        /* A fault inside our own reporting (the unwinder met a corrupt stack). */
        if (crash_jmp)
            siglongjmp(*crash_jmp, 1);
        if (idx >= 0)
            hand_on(sig, info, idx);
        errno = saved;
        return;
    }
    if (idx < 0)
        return;
    crash_depth++;
    if (!atomic_load(&crash_reported))
        report(sig, info, uctx, idx);
    crash_depth--;
    hand_on(sig, info, idx);
    errno = saved;
}

/* The main thread's alternate stack, so a stack overflow can be reported. */
static void ensure_alt_stack(void)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return; /* the program (or a library) has one: keep it */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, ALT_STACK_SIZE + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        return;
    mprotect(mem, page, PROT_NONE); /* guard: overflowing it faults, not corrupts */
    stack_t ss = { .ss_sp = mem + page, .ss_size = ALT_STACK_SIZE, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0)
        munmap(mem, ALT_STACK_SIZE + page);
}

/* A fork child reports its own crash, even if its parent survived one. */
static void crash_atfork_child(void)
{
    atomic_store(&crash_owner, 0);
    atomic_store(&crash_reported, 0);
}

MT_HIDDEN void mt_crash_install(void)
{
    int saved = errno;
    pthread_atfork(NULL, NULL, crash_atfork_child);
    /* Warm the unwinder: its first use initialises a table under pthread_once. */
    uint64_t warm[4];
    struct walk w = { .ips = warm, .started = 1 };
    _Unwind_Backtrace(on_frame, &w);
    ensure_alt_stack();
    for (int i = 0; i < NCRASH; i++) {
        struct sigaction old, sa;
        if (sigaction(crash_signals[i], NULL, &old) != 0)
            continue;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
            continue; /* ignored on purpose: leave it so */
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = crash_handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        if (sigaction(crash_signals[i], &sa, &prev_action[i]) == 0)
            installed[i] = 1;
    }
    errno = saved;
}
