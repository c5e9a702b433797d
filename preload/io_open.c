/* Interposers for the open() family: reporting watched files to the agent.
 *
 * When the program opens a file for writing (O_WRONLY, O_RDWR or O_CREAT;
 * fopen modes with w, a or +) and its absolute path matches one of the run's
 * watch globs, one MT_REC_FILE_OPEN record goes into the ring: the absolute
 * path, a NUL, and the file's size right after the open as a native uint64
 * (where the agent's tailer starts, so old contents of an appended file are
 * not taken for new output).  The agent then tails the file itself.
 *
 * The globs are absolute (the agent resolved them against the run's start
 * directory) and sit in a static buffer loaded once in the constructor.  A
 * relative path is made absolute against the cwd at call time (or the
 * directory of openat's fd) in stack buffers: nothing here allocates, locks
 * or changes errno, and with no globs or no run an open costs one branch. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_glob.h"
#include "shim.h"

#define WATCH_BUF   16384
#define WATCH_MAX   64
#define WATCH_FILE  "watch"

static char watch_buf[WATCH_BUF];
static const char *watch_globs[WATCH_MAX];
static int watch_n;

MT_HIDDEN void mt_watch_init(const char *channel_dir)
{
    char path[600];
    size_t n = strlen(channel_dir);
    if (n + sizeof "/" WATCH_FILE > sizeof path)
        return;
    memcpy(path, channel_dir, n);
    memcpy(path + n, "/" WATCH_FILE, sizeof "/" WATCH_FILE);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* nothing is watched */
    size_t len = 0;
    ssize_t r;
    while (len < sizeof watch_buf - 1 &&
           (r = read(fd, watch_buf + len, sizeof watch_buf - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    watch_buf[len] = '\0';
    /* One absolute glob per line. */
    int count = 0;
    for (char *p = watch_buf; *p && count < WATCH_MAX;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (*p == '/')
            watch_globs[count++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }
    watch_n = count;
}

static int writes_flags(int flags)
{
#ifdef O_PATH
    if (flags & O_PATH)
        return 0;
#endif
#ifdef O_TMPFILE
    if ((flags & O_TMPFILE) == O_TMPFILE)
        return 0; /* no name yet */
#endif
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT);
}

static int writes_mode(const char *mode)
{
    return mode && (strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+'));
}

/* "/proc/self/fd/N" without snprintf. */
static void fd_link(int fd, char out[40])
{
    static const char pre[] = "/proc/self/fd/";
    char digits[16];
    int n = 0;
    unsigned v = (unsigned)fd;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < (int)sizeof digits);
    memcpy(out, pre, sizeof pre - 1);
    int k = sizeof pre - 1;
    while (n)
        out[k++] = digits[--n];
    out[k] = '\0';
}

/* Reports `path` (as passed to an open of `dirfd`) if it is watched; `fd`
 * is the descriptor the open returned. */
static void report(int dirfd, const char *path, int fd)
{
    if (__builtin_expect(!watch_n, 1) || !mt_ring || mt_depth || !path || !*path || fd < 0)
        return;
    int saved = errno;
    char base[PATH_MAX], abs[PATH_MAX + 16];
    if (path[0] != '/') {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base))
                goto out;
        } else {
            char link[40];
            fd_link(dirfd, link);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0)
                goto out;
            base[n] = '\0';
        }
    }
    int len = mt_glob_absolute(path[0] == '/' ? "/" : base, path, abs, PATH_MAX);
    if (len <= 0)
        goto out;
    int hit = 0;
    for (int i = 0; i < watch_n && !hit; i++)
        hit = mt_glob_match(watch_globs[i], abs);
    if (!hit)
        goto out;
    struct stat st;
    uint64_t size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    memcpy(abs + len + 1, &size, sizeof size); /* after the path's NUL */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    struct mt_ring_header *r = mt_ring;
    if (r) {
        mt_ring_push(r, MT_REC_META(MT_REC_FILE_OPEN, 0, 0),
                     (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, abs,
                     (uint32_t)len + 1 + (uint32_t)sizeof size);
        if (mt_ctl)
            mt_ctl_ring_bell(mt_ctl);
    }
out:
    errno = saved;
}

static inline mode_t mode_arg(int flags, va_list ap)
{
#ifdef O_TMPFILE
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
#else
    if (flags & O_CREAT)
#endif
        return (mode_t)va_arg(ap, int);
    return 0;
}

/* The real open when it cannot be resolved (an early call): the system call. */
static int raw_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

#define OPEN_BODY(field, name, dirfd_expr, call_real)                     \
    va_list ap;                                                          \
    va_start(ap, flags);                                                 \
    mode_t mode = mode_arg(flags, ap);                                   \
    va_end(ap);                                                          \
    int fd;                                                              \
    if (MT_REAL(field, name))                                            \
        fd = call_real;                                                  \
    else                                                                 \
        fd = raw_openat(dirfd_expr, path, flags, mode);                  \
    if (writes_flags(flags))                                             \
        report(dirfd_expr, path, fd);                                    \
    return fd

MT_EXPORT int open(const char *path, int flags, ...)
{
    OPEN_BODY(open, "open", AT_FDCWD, mt_real.open(path, flags, mode));
}

MT_EXPORT int open64(const char *path, int flags, ...)
{
    OPEN_BODY(open64, "open64", AT_FDCWD, mt_real.open64(path, flags, mode));
}

MT_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(openat, "openat", dirfd, mt_real.openat(dirfd, path, flags, mode));
}

MT_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(openat64, "openat64", dirfd, mt_real.openat64(dirfd, path, flags, mode));
}

/* The _FORTIFY_SOURCE forms, called when the flags are not a constant. */
MT_EXPORT int __open_2(const char *path, int flags)
{
    int fd = MT_REAL(open_2, "__open_2") ? mt_real.open_2(path, flags)
                                         : raw_openat(AT_FDCWD, path, flags, 0);
    if (writes_flags(flags))
        report(AT_FDCWD, path, fd);
    return fd;
}

MT_EXPORT int __open64_2(const char *path, int flags)
{
    int fd = MT_REAL(open64_2, "__open64_2") ? mt_real.open64_2(path, flags)
                                             : raw_openat(AT_FDCWD, path, flags, 0);
    if (writes_flags(flags))
        report(AT_FDCWD, path, fd);
    return fd;
}

MT_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    int fd = MT_REAL(openat_2, "__openat_2") ? mt_real.openat_2(dirfd, path, flags)
                                             : raw_openat(dirfd, path, flags, 0);
    if (writes_flags(flags))
        report(dirfd, path, fd);
    return fd;
}

MT_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    int fd = MT_REAL(openat64_2, "__openat64_2") ? mt_real.openat64_2(dirfd, path, flags)
                                                 : raw_openat(dirfd, path, flags, 0);
    if (writes_flags(flags))
        report(dirfd, path, fd);
    return fd;
}

MT_EXPORT int creat(const char *path, mode_t mode)
{
    int fd = MT_REAL(creat, "creat")
                 ? mt_real.creat(path, mode)
                 : raw_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    report(AT_FDCWD, path, fd);
    return fd;
}

MT_EXPORT int creat64(const char *path, mode_t mode)
{
    int fd = MT_REAL(creat64, "creat64")
                 ? mt_real.creat64(path, mode)
                 : raw_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    report(AT_FDCWD, path, fd);
    return fd;
}

static void report_file(const char *path, const char *mode, FILE *fp)
{
    if (fp && writes_mode(mode))
        report(AT_FDCWD, path, fp->_fileno);
}

MT_EXPORT FILE *fopen(const char *path, const char *mode)
{
    FILE *(*real)(const char *, const char *) = MT_REAL(fopen, "fopen");
    if (!real) {
        errno = ENOSYS;
        return NULL;
    }
    FILE *fp = real(path, mode);
    report_file(path, mode, fp);
    return fp;
}

MT_EXPORT FILE *fopen64(const char *path, const char *mode)
{
    FILE *(*real)(const char *, const char *) = MT_REAL(fopen64, "fopen64");
    if (!real) {
        errno = ENOSYS;
        return NULL;
    }
    FILE *fp = real(path, mode);
    report_file(path, mode, fp);
    return fp;
}

MT_EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
    FILE *(*real)(const char *, const char *, FILE *) = MT_REAL(freopen, "freopen");
    if (!real) {
        errno = ENOSYS;
        return NULL;
    }
    FILE *fp = real(path, mode, stream);
    mt_fd_changed(); /* stdout or stderr may be another file now (console.c) */
    if (path)
        report_file(path, mode, fp);
    return fp;
}

MT_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
    FILE *(*real)(const char *, const char *, FILE *) = MT_REAL(freopen64, "freopen64");
    if (!real) {
        errno = ENOSYS;
        return NULL;
    }
    FILE *fp = real(path, mode, stream);
    mt_fd_changed(); /* stdout or stderr may be another file now (console.c) */
    if (path)
        report_file(path, mode, fp);
    return fp;
}
