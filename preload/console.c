/* What counts as console output, and the process's own record.
 *
 * THE RULE.  A write by any process of the run to its fd 1 or 2 is console
 * output when that fd is one of the open files the run's first process had
 * as stdout and stderr when it started (METRICTAP_CONSOLE, common/
 * mt_console.h): the terminal, or the pipe or file the user's own shell
 * redirected them to.  Everything else is not output a person saw, and is
 * not recorded as output:
 *   - a pipe or socket (`./train | tee log` inside the tree, `$(...)`, a
 *     Python wrapper's subprocess pipe): plumbing; whoever reads it and
 *     prints to the console is recorded instead, once;
 *   - /dev/null, /dev/zero, another terminal or device: nobody saw it;
 *   - a regular file (`./train > train.log` inside a wrapper): the trainer's
 *     log; announced to the agent once (MT_REC_FILE_OPEN), which follows the
 *     file as a watched file, so its lines are parsed once from the file;
 *   - a closed fd, /dev/full, or a stdio stream that failed during the call:
 *     nothing was written.
 * What is not recorded is counted by kind (the ring header's
 * elsewhere_bytes) and reported in the run's metadata.capture_counts.
 * Without METRICTAP_CONSOLE (a process whose environment was rebuilt), fds 1
 * and 2 are taken for the console, as before.
 *
 * The classification of fds 1 and 2 is cached, and the cache is invalidated
 * by the calls that change what an fd is: dup2, dup3, close, close_range and
 * freopen.  A fd closed then reused by open/pipe is covered by the close.
 *
 * Each process image also records itself once: its argv and parent
 * (MT_REC_PROC) and what its fds 0-2 are (MT_REC_FDS, again after a dup2 onto
 * one of them), so that the agent can tell the trainer from the shells and
 * relays around it (the process whose lines produced the metrics, or the
 * writer at the other end of the pipe a relay such as tee read). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_console.h"
#include "shim.h"

MT_HIDDEN _Atomic uint64_t mt_fd_seen[3];
MT_HIDDEN _Atomic uint32_t mt_fd_gen = 1;

static struct mt_console console;
static int console_known;
static pid_t self_pid;           /* of this image or fork: a vfork child differs */
static int saved_argc;
static char **saved_argv;
static struct mt_fd_id announced[3]; /* the file last announced for fd 1 and 2 */

MT_HIDDEN void mt_console_init(int argc, char **argv)
{
    saved_argc = argc;
    saved_argv = argv;
    console_known = mt_console_parse(getenv(MT_ENV_CONSOLE), &console) == 0;
    self_pid = (pid_t)syscall(SYS_getpid);
}

MT_HIDDEN void mt_console_forked(void)
{
    self_pid = (pid_t)syscall(SYS_getpid);
    memset(announced, 0, sizeof announced);
    mt_fd_changed();
}

static void push(uint32_t kind, const void *a, uint32_t alen, const void *b, uint32_t blen)
{
    struct mt_ring_header *r = mt_ring;
    if (!r)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    mt_ring_push2(r, MT_REC_META(kind, 0, 0), now, a, alen, b, blen);
    if (mt_ctl)
        mt_ctl_ring_bell(mt_ctl);
}

/* Tells the agent that fd's regular file is this process's output: it follows
 * the file from its current size (the caller classifies before writing). */
static void announce_file(int fd, const struct mt_fd_id *id)
{
    struct mt_fd_id *last = &announced[fd];
    if (last->dev == id->dev && last->ino == id->ino && last->type)
        return;
    *last = *id;
    char link[32], path[PATH_MAX + 1 + sizeof(uint64_t)];
    memcpy(link, "/proc/self/fd/", 14);
    link[14] = (char)('0' + fd);
    link[15] = '\0';
    ssize_t n = readlink(link, path, PATH_MAX);
    if (n <= 1 || path[0] != '/')
        return;
    path[n] = '\0';
    if (n > 10 && memcmp(path + n - 10, " (deleted)", 10) == 0)
        return; /* nothing the agent could follow */
    struct stat st;
    uint64_t size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    memcpy(path + n + 1, &size, sizeof size);
    push(MT_REC_FILE_OPEN, path, (uint32_t)(n + 1 + sizeof size), NULL, 0);
}

MT_HIDDEN int mt_fd_class_slow(int fd)
{
    int saved = errno;
    uint32_t gen = atomic_load_explicit(&mt_fd_gen, memory_order_acquire);
    struct mt_fd_id id;
    int cls;
    if (mt_fd_identify(fd, &id) != 0) {
        errno = saved;
        return MT_ELSEWHERE_CLOSED; /* not cached: the fd may be reused without a close */
    }
    int kind = mt_elsewhere_of(&id);
    if (kind == MT_ELSEWHERE_FAILED)
        cls = kind; /* /dev/full, even as the console: nothing reached anyone */
    else if (!console_known || mt_console_has(&console, &id))
        cls = MT_FD_CONSOLE;
    else
        cls = kind;
    if (cls == MT_ELSEWHERE_FILE)
        announce_file(fd, &id);
    atomic_store_explicit(&mt_fd_seen[fd], (uint64_t)gen << 8 | (uint64_t)cls,
                          memory_order_relaxed);
    errno = saved;
    return cls;
}

MT_HIDDEN void mt_count_elsewhere(int kind, size_t n)
{
    struct mt_ring_header *r = mt_ring;
    if (r && n && kind >= 0 && kind < MT_ELSEWHERE_KINDS)
        atomic_fetch_add_explicit(&r->elsewhere_bytes[kind], n, memory_order_relaxed);
}

/* ---- the process's own record ---- */

#define PROC_RECORD_MAX 16384

MT_HIDDEN void mt_record_fds(void)
{
    if (!mt_ring || (pid_t)syscall(SYS_getpid) != self_pid)
        return; /* a vfork child shares our memory and our ring: not ours to tell */
    struct mt_rec_fds f;
    for (int fd = 0; fd < 3; fd++)
        mt_fd_identify(fd, &f.fd[fd]);
    push(MT_REC_FDS, &f, sizeof f, NULL, 0);
}

MT_HIDDEN void mt_record_process(void)
{
    if (!mt_ring)
        return;
    char buf[PROC_RECORD_MAX];
    struct mt_rec_proc p = { .ppid = (uint32_t)getppid(), .argc = (uint32_t)saved_argc };
    size_t max = mt_ring_max_payload(mt_ring->capacity);
    if (max > sizeof buf)
        max = sizeof buf;
    size_t used = sizeof p;
    for (int i = 0; i < saved_argc && saved_argv && saved_argv[i]; i++) {
        size_t n = strlen(saved_argv[i]) + 1;
        if (used + n > max) {
            p.truncated = (uint32_t)(saved_argc - i);
            break;
        }
        memcpy(buf + used, saved_argv[i], n);
        used += n;
    }
    memcpy(buf, &p, sizeof p);
    push(MT_REC_PROC, buf, (uint32_t)used, NULL, 0);
    mt_record_fds();
}

/* ---- the calls that change what fds 1 and 2 are ---- */

/* After a dup onto fd 0, 1 or 2: that fd is another file now. */
static int duped(int rc, int newfd)
{
    if (rc >= 0 && newfd >= 0 && newfd <= 2) {
        int saved = errno;
        mt_fd_changed();
        mt_record_fds();
        errno = saved;
    }
    return rc;
}

MT_EXPORT int dup2(int oldfd, int newfd)
{
    return duped(MT_REAL(dup2, "dup2")(oldfd, newfd), newfd);
}

MT_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    return duped(MT_REAL(dup3, "dup3")(oldfd, newfd, flags), newfd);
}

MT_EXPORT int close(int fd)
{
    int (*real)(int) = mt_real.close;
    int rc = real ? real(fd) : (int)syscall(SYS_close, fd);
    if (fd >= 0 && fd <= 2)
        mt_fd_changed();
    return rc;
}

MT_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    int (*real)(unsigned, unsigned, int) = MT_REAL(close_range, "close_range");
    int rc = real ? real(first, last, flags) : (int)syscall(SYS_close_range, first, last, flags);
    if (first <= 2)
        mt_fd_changed();
    return rc;
}
