/* The pump: fd-level capture of a program the shim cannot enter (static or
 * Go), run by `metrictap run`.  See mt_capture.h.
 *
 * For each of stdout and stderr the child gets its own channel: a pty when
 * the launcher's fd is a terminal (so the program still sees a terminal and
 * keeps its colours and line buffering), a pipe otherwise.  The pty starts
 * with the terminal's termios minus output processing (OPOST off: no
 * "\n" -> "\r\n"; the real terminal does that once, when we write to it) and
 * its window size; SIGWINCH copies the new size to the pty before it is
 * passed to the child.  The pty is not made the child's controlling
 * terminal: stdin, job control and ^C stay exactly as they were.
 *
 * The main loop reads both channels and pushes every byte into the ring;
 * one writer thread per stream copies the same bytes to the original fd, so
 * a stalled reader there never stops the loop (nor the other stream).  While
 * PUMP_SLACK bytes wait for the reader, that channel is not read, so the
 * program blocks about where it would have without us (and a `| head` still
 * kills it with SIGPIPE); once the reader has taken nothing for PUMP_STALL_S,
 * the channel is read again and what the reader cannot take is held, up to
 * PUMP_HOLD_MAX bytes per stream, then dropped from the copy and counted in
 * the ring's dropped counters (the run still has the bytes), so a forgotten
 * pager never blocks the program for good.  When the original fd's reader is gone (EPIPE, EIO),
 * our end of that channel is closed, so the program's next write there fails
 * just as it would have without us (SIGPIPE on a pipe, EIO on a pty).
 *
 * When fds 1 and 2 are the same file (one terminal, or `2>&1 | tee`), the
 * child gets one channel for both, so their interleaving stays exactly as it
 * was; the ring then labels all of it stdout, since nothing at the fd level
 * can tell them apart.  With two channels, order is kept per stream, and
 * between the streams only as well as the poll that sees them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_channel.h"
#include "../common/mt_ring.h"
#include "mt_capture.h"

#define PUMP_CHUNK    65536u
#define PUMP_HOLD_MAX (16u << 20) /* bytes held per stream for a stalled reader */
#define PUMP_SLACK    65536u      /* held bytes before the channel is not read */
#define PUMP_STALL_S  10.0        /* then, a reader this slow stops throttling */

/* The copy of one stream to the launcher's original fd, by its own thread. */
struct pump_out {
    int fd;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *buf;
    size_t off, len, cap; /* held bytes are buf[off, off+len) */
    int closing;          /* no more bytes will come */
    int broken;           /* writing failed for good: the reader is gone */
    int wake_fd;          /* told when `broken` is set, or a throttled copy moves */
    int throttled;        /* the main loop waits for this copy to move */
    double progress_at;   /* when the copy last moved (or started to wait) */
};

struct pump_stream {
    int stream;   /* MT_STREAM_STDOUT or MT_STREAM_STDERR; also the fd number */
    int absent;   /* the launcher's fd is not open: the child gets it closed */
    int shared;   /* stderr only: same file as stdout, so it uses stdout's channel */
    int is_pty;
    int ours;     /* pty master or pipe read end; -1 once at EOF */
    int theirs;   /* pty slave or pipe write end; -1 once handed over */
    struct pump_out out;
};

struct mt_pump {
    struct pump_stream s[2];
    int wake[2];  /* self-pipe: a writer found its reader gone */
    char describe[96];
};

/* ---- SIGWINCH: the terminal's new size goes to the ptys, then the child ---- */

static volatile sig_atomic_t winch_child;
static int winch_fds[2][2] = { { -1, -1 }, { -1, -1 } }; /* original fd, master */

static void copy_winsize(void)
{
    for (int i = 0; i < 2; i++) {
        struct winsize ws;
        if (winch_fds[i][1] >= 0 && ioctl(winch_fds[i][0], TIOCGWINSZ, &ws) == 0)
            ioctl(winch_fds[i][1], TIOCSWINSZ, &ws);
    }
}

static void on_winch(int sig)
{
    int saved = errno;
    copy_winsize();
    if (winch_child > 0)
        kill((pid_t)winch_child, sig);
    errno = saved;
}

/* ---- the writer threads ---- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w, n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Someone left the fd non-blocking: wait until it takes more. */
            struct pollfd pf = { .fd = fd, .events = POLLOUT };
            poll(&pf, 1, 1000);
            continue;
        }
        return -1;
    }
    return 0;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *writer_main(void *arg)
{
    struct pump_out *o = arg;
    char *chunk = malloc(PUMP_CHUNK);
    for (;;) {
        pthread_mutex_lock(&o->lock);
        while (!o->len && !o->closing)
            pthread_cond_wait(&o->cond, &o->lock);
        if (!o->len || !chunk) {
            pthread_mutex_unlock(&o->lock);
            break;
        }
        size_t n = o->len < PUMP_CHUNK ? o->len : PUMP_CHUNK;
        memcpy(chunk, o->buf + o->off, n);
        o->off += n;
        o->len -= n;
        pthread_mutex_unlock(&o->lock);
        if (write_all(o->fd, chunk, n) != 0) {
            pthread_mutex_lock(&o->lock);
            o->broken = 1;
            o->len = 0;
            pthread_mutex_unlock(&o->lock);
            ssize_t w = write(o->wake_fd, "x", 1);
            (void)w;
            break;
        }
        pthread_mutex_lock(&o->lock);
        o->progress_at = mono_s();
        int tell = o->throttled && o->len < PUMP_SLACK;
        pthread_mutex_unlock(&o->lock);
        if (tell) {
            ssize_t w = write(o->wake_fd, "x", 1);
            (void)w;
        }
    }
    free(chunk);
    return NULL;
}

/* Holds `n` bytes for the writer; what does not fit under the cap is dropped
 * from the copy and counted in the ring. */
static void hold(struct pump_out *o, const char *p, size_t n, struct mt_ring_header *ring)
{
    size_t dropped = 0;
    pthread_mutex_lock(&o->lock);
    if (o->broken) {
        pthread_mutex_unlock(&o->lock);
        return; /* the reader is gone; the program learns it on its next write */
    }
    if (o->off + o->len + n > o->cap && o->off) {
        memmove(o->buf, o->buf + o->off, o->len);
        o->off = 0;
    }
    if (o->len + n > o->cap && o->cap < PUMP_HOLD_MAX) {
        size_t cap = o->cap ? o->cap : PUMP_CHUNK;
        while (cap < o->len + n && cap < PUMP_HOLD_MAX)
            cap *= 2;
        if (cap > PUMP_HOLD_MAX)
            cap = PUMP_HOLD_MAX;
        char *nb = realloc(o->buf, cap);
        if (nb)
            o->buf = nb, o->cap = cap;
    }
    size_t room = o->cap - o->off - o->len;
    if (n > room) {
        dropped = n - room;
        n = room;
    }
    memcpy(o->buf + o->off + o->len, p, n);
    if (!o->len)
        o->progress_at = mono_s(); /* the stall clock starts with waiting bytes */
    o->len += n;
    pthread_cond_signal(&o->cond);
    pthread_mutex_unlock(&o->lock);
    if (dropped && ring) {
        atomic_fetch_add(&ring->dropped_records, 1);
        atomic_fetch_add(&ring->dropped_bytes, dropped);
    }
}

/* ---- set-up ---- */

static int open_pty(struct pump_stream *s, char *err, size_t errsz)
{
    char name[128];
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof name) != 0) {
        snprintf(err, errsz, "cannot open a pty: %s", strerror(errno));
        if (m >= 0)
            close(m);
        return -1;
    }
    int sl = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (sl < 0) {
        snprintf(err, errsz, "cannot open %s: %s", name, strerror(errno));
        close(m);
        return -1;
    }
    struct termios t;
    if (tcgetattr(s->stream, &t) != 0 && tcgetattr(sl, &t) != 0)
        cfmakeraw(&t);
    t.c_oflag &= ~(tcflag_t)OPOST; /* bytes pass unchanged; the real terminal translates */
    tcsetattr(sl, TCSANOW, &t);
    struct winsize ws;
    if (ioctl(s->stream, TIOCGWINSZ, &ws) == 0)
        ioctl(m, TIOCSWINSZ, &ws);
    s->ours = m;
    s->theirs = sl;
    s->is_pty = 1;
    return 0;
}

static int open_pipe(struct pump_stream *s, char *err, size_t errsz)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errsz, "cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    s->ours = fds[0];
    s->theirs = fds[1];
    return 0;
}

static int same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino && sa.st_rdev == sb.st_rdev;
}

struct mt_pump *mt_pump_create(char *err, size_t errsz)
{
    struct mt_pump *p = calloc(1, sizeof *p);
    int ok = 0;
    if (!p) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    p->wake[0] = p->wake[1] = -1;
    for (int i = 0; i < 2; i++) {
        struct pump_stream *s = &p->s[i];
        s->stream = i + 1;
        s->ours = s->theirs = s->out.fd = -1;
        pthread_mutex_init(&s->out.lock, NULL);
        pthread_cond_init(&s->out.cond, NULL);
    }
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errsz, "cannot create a pipe: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        struct pump_stream *s = &p->s[i];
        s->out.wake_fd = p->wake[1];
        if (fcntl(s->stream, F_GETFD) < 0) {
            s->absent = 1;
            continue;
        }
        if (i == 1 && !p->s[0].absent && same_file(1, 2)) {
            s->shared = 1;
            continue;
        }
        s->out.fd = s->stream;
        if (isatty(s->stream) ? open_pty(s, err, errsz) : open_pipe(s, err, errsz))
            goto out;
        fcntl(s->ours, F_SETFL, fcntl(s->ours, F_GETFL) | O_NONBLOCK);
    }
    int pty1 = p->s[0].is_pty, pty2 = p->s[1].is_pty;
    if (p->s[1].shared || p->s[0].absent || p->s[1].absent)
        snprintf(p->describe, sizeof p->describe, "%s", pty1 || pty2 ? "a pty" : "a pipe");
    else if (pty1 == pty2)
        snprintf(p->describe, sizeof p->describe, "%s", pty1 ? "ptys" : "pipes");
    else
        snprintf(p->describe, sizeof p->describe, "a %s for stdout and a %s for stderr",
                 pty1 ? "pty" : "pipe", pty2 ? "pty" : "pipe");
    ok = 1;
out:
    if (!ok) {
        mt_pump_destroy(p);
        return NULL;
    }
    return p;
}

const char *mt_pump_describe(const struct mt_pump *p)
{
    return p->describe;
}

void mt_pump_child(struct mt_pump *p)
{
    for (int i = 0; i < 2; i++) {
        struct pump_stream *s = &p->s[i];
        if (s->absent) {
            close(s->stream);
        } else if (s->shared) {
            dup2(p->s[0].theirs, s->stream);
        } else if (s->theirs == s->stream) {
            fcntl(s->stream, F_SETFD, 0); /* dup2 onto itself would keep CLOEXEC */
        } else {
            dup2(s->theirs, s->stream);
        }
    }
}

/* ---- the loop ---- */

static uint64_t mono_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void push(struct mt_ring_header *ring, struct mt_ctl *ctl, int stream, pid_t child,
                 const char *data, size_t n)
{
    if (!ring)
        return;
    uint32_t max = mt_ring_max_payload(ring->capacity);
    uint32_t meta = MT_REC_META(MT_REC_DATA, stream, (uint32_t)child & 0xffffffu);
    uint64_t ts = mono_coarse_ns();
    for (size_t off = 0; off < n; off += max) {
        size_t len = n - off < max ? n - off : max;
        mt_ring_push(ring, meta, ts, data + off, (uint32_t)len);
    }
    if (ctl)
        mt_ctl_ring_bell(ctl);
}

static void start_writers(struct mt_pump *p)
{
    for (int i = 0; i < 2; i++) {
        struct pump_out *o = &p->s[i].out;
        if (p->s[i].absent || p->s[i].shared)
            continue;
        /* The writers take no signals: SIGWINCH and forwarded signals are
         * handled by the main thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        o->started = pthread_create(&o->thread, NULL, writer_main, o) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!o->started)
            o->broken = 1; /* no copy possible; pass the bytes to the ring only */
    }
}

int mt_pump_run(struct mt_pump *p, pid_t child, struct mt_ring_header *ring,
                struct mt_ctl *ctl)
{
    int status = 0, exited = 0;
    char *buf = malloc(PUMP_CHUNK);
    for (int i = 0; i < 2; i++)
        if (p->s[i].theirs >= 0) {
            close(p->s[i].theirs);
            p->s[i].theirs = -1;
        }
    /* The original fd's reader may vanish; we want EPIPE, not to die. */
    signal(SIGPIPE, SIG_IGN);
    int any_pty = 0;
    for (int i = 0; i < 2; i++)
        if (p->s[i].is_pty) {
            winch_fds[i][0] = p->s[i].stream;
            winch_fds[i][1] = p->s[i].ours;
            any_pty = 1;
        }
    if (any_pty) {
        winch_child = child;
        struct sigaction sa = { .sa_handler = on_winch, .sa_flags = SA_RESTART };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGWINCH, &sa, NULL);
        copy_winsize(); /* in case it changed since the ptys were made */
    }
    start_writers(p);
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    while (!exited || p->s[0].ours >= 0 || p->s[1].ours >= 0) {
        struct pollfd pf[4];
        int n = 0, idx[2] = { -1, -1 }, timeout = (!exited && pidfd < 0) ? 50 : -1;
        double now = mono_s();
        for (int i = 0; i < 2; i++) {
            struct pump_out *o = &p->s[i].out;
            pthread_mutex_lock(&o->lock);
            double stalled = now - o->progress_at;
            o->throttled = o->len >= PUMP_SLACK && !o->broken && stalled < PUMP_STALL_S;
            int throttled = o->throttled;
            pthread_mutex_unlock(&o->lock);
            if (throttled) {
                int ms = (int)((PUMP_STALL_S - stalled) * 1000.0) + 1;
                timeout = timeout < 0 || ms < timeout ? ms : timeout;
            }
            if (p->s[i].ours >= 0 && !throttled) {
                idx[i] = n;
                pf[n++] = (struct pollfd){ .fd = p->s[i].ours, .events = POLLIN };
            }
        }
        pf[n++] = (struct pollfd){ .fd = p->wake[0], .events = POLLIN };
        int pid_slot = -1;
        if (!exited && pidfd >= 0) {
            pid_slot = n;
            pf[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
        }
        int rc = poll(pf, (nfds_t)n, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2 && rc > 0; i++) {
            struct pump_stream *s = &p->s[i];
            if (idx[i] < 0 || !pf[idx[i]].revents || !buf)
                continue;
            ssize_t r = read(s->ours, buf, PUMP_CHUNK);
            if (r > 0) {
                push(ring, ctl, s->stream, child, buf, (size_t)r);
                hold(&s->out, buf, (size_t)r, ring);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                /* EOF; on a pty, EIO once every slave fd is closed */
                close(s->ours);
                s->ours = -1;
                if (s->is_pty)
                    winch_fds[i][1] = -1;
            }
        }
        char drain[16];
        while (read(p->wake[0], drain, sizeof drain) > 0)
            ;
        for (int i = 0; i < 2; i++) {
            struct pump_stream *s = &p->s[i];
            pthread_mutex_lock(&s->out.lock);
            int broken = s->out.broken;
            pthread_mutex_unlock(&s->out.lock);
            if (broken && s->ours >= 0 && s->out.started) {
                /* The reader is gone: so is this channel, for the program. */
                if (s->is_pty)
                    winch_fds[i][1] = -1;
                close(s->ours);
                s->ours = -1;
            }
        }
        if (!exited && (pidfd < 0 || (pid_slot >= 0 && pf[pid_slot].revents))) {
            pid_t w = waitpid(child, &status, WNOHANG);
            if (w == child || (w < 0 && errno == ECHILD)) {
                exited = 1;
                winch_child = 0;
            }
        }
    }
    if (!exited) {
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
    }
    winch_child = 0;
    if (pidfd >= 0)
        close(pidfd);
    free(buf);
    return status;
}

void mt_pump_destroy(struct mt_pump *p)
{
    if (!p)
        return;
    for (int i = 0; i < 2; i++) {
        struct pump_stream *s = &p->s[i];
        struct pump_out *o = &s->out;
        if (o->started) {
            pthread_mutex_lock(&o->lock);
            o->closing = 1;
            pthread_cond_signal(&o->cond);
            pthread_mutex_unlock(&o->lock);
            pthread_join(o->thread, NULL);
        }
        if (s->is_pty)
            winch_fds[i][1] = -1;
        if (s->ours >= 0)
            close(s->ours);
        if (s->theirs >= 0)
            close(s->theirs);
        free(o->buf);
        pthread_mutex_destroy(&o->lock);
        pthread_cond_destroy(&o->cond);
    }
    if (p->wake[0] >= 0)
        close(p->wake[0]);
    if (p->wake[1] >= 0)
        close(p->wake[1]);
    free(p);
}
