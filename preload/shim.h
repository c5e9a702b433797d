/* The shim's internal interface, shared by the files of preload/ only.
 *
 * What is recorded: a write to fd 1 or 2 is output only when that fd is the
 * run's console, the open file its first process had as stdout or stderr
 * (console.c states the rule: pipes, /dev/null and $(...) are counted, a
 * regular file is followed as a file instead).
 *
 * Rules for everything here: no allocation and no lock on the capture path,
 * errno preserved, and a failure anywhere turns the shim passive rather than
 * disturbing the program. */
#ifndef MT_SHIM_H
#define MT_SHIM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/single_threaded.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../common/mt_ring.h"
#include "../common/mt_channel.h"

#define MT_HIDDEN __attribute__((visibility("hidden")))
#define MT_EXPORT __attribute__((visibility("default")))
#define MT_TLS __attribute__((tls_model("initial-exec"))) __thread

/* The real libc functions, resolved in the constructor or on first use. */
struct mt_real {
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*pwrite)(int, const void *, size_t, off_t);
    int (*vfprintf)(FILE *, const char *, va_list);
    int (*vfprintf_chk)(FILE *, int, const char *, va_list);
    int (*vdprintf)(int, const char *, va_list);
    int (*vdprintf_chk)(int, int, const char *, va_list);
    int (*puts)(const char *);
    int (*fputs)(const char *, FILE *);
    int (*fputs_unlocked)(const char *, FILE *);
    size_t (*fwrite)(const void *, size_t, size_t, FILE *);
    size_t (*fwrite_unlocked)(const void *, size_t, size_t, FILE *);
    int (*fputc)(int, FILE *);
    int (*fputc_unlocked)(int, FILE *);
    int (*putc)(int, FILE *);
    int (*putc_unlocked)(int, FILE *);
    int (*putchar)(int);
    int (*putchar_unlocked)(int);
    int (*io_putc)(int, FILE *);
    void (*exit)(int);
    void (*exit_)(int);
    void (*Exit)(int);
    int (*libc_start_main)(int (*)(int, char **, char **), int, char **, void (*)(void),
                           void (*)(void), void (*)(void), void *);
    /* io_open.c */
    int (*open)(const char *, int, ...);
    int (*open64)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*openat64)(int, const char *, int, ...);
    int (*open_2)(const char *, int);
    int (*open64_2)(const char *, int);
    int (*openat_2)(int, const char *, int);
    int (*openat64_2)(int, const char *, int);
    int (*creat)(const char *, mode_t);
    int (*creat64)(const char *, mode_t);
    FILE *(*fopen)(const char *, const char *);
    FILE *(*fopen64)(const char *, const char *);
    FILE *(*freopen)(const char *, const char *, FILE *);
    FILE *(*freopen64)(const char *, const char *, FILE *);
    /* messages.c */
    void (*perror)(const char *);
    void (*error)(int, int, const char *, ...);
    void (*error_at_line)(int, int, const char *, unsigned, const char *, ...);
    void (*warn)(const char *, ...);
    void (*warnx)(const char *, ...);
    void (*err)(int, const char *, ...);
    void (*errx)(int, const char *, ...);
    void (*assert_fail)(const char *, const char *, unsigned, const char *);
    void (*assert_perror_fail)(int, const char *, unsigned, const char *);
    /* gaps.c */
    int (*overflow)(FILE *, int);
    int (*fflush)(FILE *);
    int (*fclose)(FILE *);
    /* console.c */
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*close)(int);
    int (*close_range)(unsigned, unsigned, int);
};

extern MT_HIDDEN struct mt_real mt_real;
MT_HIDDEN void mt_resolve_all(void);
MT_HIDDEN void *mt_resolve(const char *name);

/* Resolve on first use: another library's constructor may call us before ours. */
#define MT_REAL(fn, name)                              \
    ({                                                 \
        if (__builtin_expect(!mt_real.fn, 0))          \
            mt_real.fn = mt_resolve(name);             \
        mt_real.fn;                                    \
    })

/* Capture state. */
extern MT_HIDDEN struct mt_ring_header *volatile mt_ring; /* NULL: passive */
extern MT_HIDDEN struct mt_ctl *mt_ctl;
/* This process is one of several in its run: stamp records with the fine
 * clock (capture.c). */
extern MT_HIDDEN int mt_fine_clock;
/* Counts this process image among the run's producers (once mt_ctl is
 * mapped); the second one switches every producer to the fine clock. */
MT_HIDDEN void mt_count_producer(void);
extern MT_HIDDEN MT_TLS int mt_depth; /* >0 inside an interposer: record nothing */

/* What fds 1 and 2 are (console.c, which states the rule): MT_FD_CONSOLE,
 * or the enum mt_elsewhere kind of file they are instead.  Cached as
 * gen << 8 | class; a call that changes fd 1 or 2 bumps mt_fd_gen. */
#define MT_FD_CONSOLE 0xff
extern MT_HIDDEN _Atomic uint64_t mt_fd_seen[3];
extern MT_HIDDEN _Atomic uint32_t mt_fd_gen;
MT_HIDDEN int mt_fd_class_slow(int fd);

static inline int mt_fd_class(int fd)
{
    uint64_t s = atomic_load_explicit(&mt_fd_seen[fd], memory_order_relaxed);
    if (__builtin_expect((uint32_t)(s >> 8) == atomic_load_explicit(&mt_fd_gen, memory_order_relaxed), 1))
        return (int)(s & 0xff);
    return mt_fd_class_slow(fd);
}

static inline void mt_fd_changed(void)
{
    atomic_fetch_add_explicit(&mt_fd_gen, 1, memory_order_release);
}

/* Counts bytes of fd 1 or 2 that did not go to the console (enum mt_elsewhere). */
MT_HIDDEN void mt_count_elsewhere(int kind, size_t n);

/* console.c: the argv of this image (from the constructor); after a fork. */
MT_HIDDEN void mt_console_init(int argc, char **argv);
MT_HIDDEN void mt_console_forked(void);
/* Records this process image (argv, parent, fds 0-2) in its ring. */
MT_HIDDEN void mt_record_process(void);
MT_HIDDEN void mt_record_fds(void);

/* Which captured stream an fd is (1 or 2), or 0 when the shim does not look
 * at it.  Classifies the fd before the caller writes (console.c), so that a
 * regular file is announced from where this write begins. */
static inline int mt_stream_of_fd(int fd)
{
    if (fd != 1 && fd != 2)
        return 0;
    mt_fd_class(fd);
    return fd;
}

/* glibc's flag for a stream whose write failed (_IO_ERR_SEEN). */
static inline int mt_file_failed(const FILE *fp)
{
    return (fp->_flags & 0x20) != 0;
}

static inline int mt_stream_of_file(FILE *fp)
{
    return mt_stream_of_fd(fp->_fileno);
}

/* Bytes that glibc's inline putc_unlocked & co. put straight into the buffer of
 * stdout or stderr, between interposed calls (gaps.c).  catch_up records
 * what appeared since the last mark; mark notes where the buffer is now.
 * Single-threaded programs only: with threads the FILE lock would be needed.
 * Every stdio wrapper does both, so the usual case (nothing new) is inline. */
struct mt_gap {
    FILE *fp;
    char *mark; /* write pointer after our last look */
    char *base; /* the buffer the mark points into */
};
extern MT_HIDDEN struct mt_gap mt_gaps[3]; /* by stream: 1 stdout, 2 stderr */

MT_HIDDEN void mt_gap_record(FILE *fp, int stream);

static inline int mt_gap_tracked(int stream)
{
    return stream >= 1 && stream <= 2 && __libc_single_threaded;
}

static inline void mt_gap_mark(FILE *fp, int stream)
{
    if (!mt_gap_tracked(stream))
        return;
    struct mt_gap *g = &mt_gaps[stream];
    g->fp = fp;
    g->mark = fp->_IO_write_ptr;
    g->base = fp->_IO_write_base;
}

static inline void mt_gap_catch_up(FILE *fp, int stream)
{
    if (!mt_gap_tracked(stream))
        return;
    struct mt_gap *g = &mt_gaps[stream];
    if (g->fp != fp || g->mark != fp->_IO_write_ptr || g->base != fp->_IO_write_base)
        mt_gap_record(fp, stream);
}

MT_HIDDEN void mt_gap_catch_up_all(void);

/* Records bytes the program wrote to `stream`.  Splits what one record cannot
 * hold.  Async-signal-safe. */
MT_HIDDEN void mt_capture(int stream, const void *a, size_t alen, const void *b, size_t blen);

/* Loads the run's watched-file globs (<channel>/watch, written by the agent)
 * and resolves the open() family; from the constructor (io_open.c). */
MT_HIDDEN void mt_watch_init(const char *channel_dir);

/* Records the process's end. kind is MT_REC_EXIT or MT_REC_SIGNAL. */
MT_HIDDEN void mt_capture_end(int kind, int value);

/* Installs the chained crash handlers (crash.c); called once the ring is set. */
MT_HIDDEN void mt_crash_install(void);

#endif
