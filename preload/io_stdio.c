/* Interposers for the stdio entry points.
 *
 * glibc's stdio flushes through an internal write no interposer sees, so output
 * is recorded here, when the program hands it to stdio.  For the printf family
 * the new bytes are read straight out of the FILE's buffer: the write pointer
 * before and after the real call brackets exactly what it formatted, unless a
 * flush intervened, in which case (line-buffered and unbuffered streams mostly)
 * the call is formatted once more into a scratch buffer.  Copying beats
 * re-formatting by ~2x on a print-bound loop; see REFERENCE.md. */
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>

#include "shim.h"

/* glibc's headers may define some of these as macros at -O2. */
#undef putc
#undef putchar
#undef fputc
#undef putc_unlocked
#undef putchar_unlocked
#undef fputc_unlocked
#undef fwrite_unlocked
#undef fputs_unlocked

#define SCRATCH 4096

/* A call during which the stream's write failed (its error flag came on:
 * a full disk, a hung-up terminal) is not taken as output: its bytes are
 * counted as failed instead.  `was` is the flag before the call. */
static inline int failed_now(FILE *fp, int was, size_t n)
{
    if (was || !mt_file_failed(fp))
        return 0;
    mt_count_elsewhere(MT_ELSEWHERE_FAILED, n);
    return 1;
}

/* Formats the call again when the buffer could not be read. */
static void capture_reformatted(int stream, int expect, const char *fmt, va_list ap)
{
    char small[SCRATCH];
    if (expect < (int)sizeof small) {
        int n = vsnprintf(small, sizeof small, fmt, ap);
        if (n > 0)
            mt_capture(stream, small, (size_t)(n < expect ? n : expect), NULL, 0);
        return;
    }
    /* Rare and large: a private mapping keeps malloc out of the picture. */
    size_t size = (size_t)expect + 1;
    char *big = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED)
        return;
    int n = vsnprintf(big, size, fmt, ap);
    if (n > 0)
        mt_capture(stream, big, (size_t)(n < expect ? n : expect), NULL, 0);
    munmap(big, size);
}

/* flag < 0: plain vfprintf; otherwise the FORTIFY variant with that flag. */
static int capture_vfprintf(FILE *fp, int flag, const char *fmt, va_list ap)
{
    int stream = (mt_ring && mt_depth == 0 && fp) ? mt_stream_of_file(fp) : 0;
    if (!stream)
        return flag < 0 ? MT_REAL(vfprintf, "vfprintf")(fp, fmt, ap)
                        : MT_REAL(vfprintf_chk, "__vfprintf_chk")(fp, flag, fmt, ap);
    mt_depth++;
    va_list again;
    va_copy(again, ap);
    /* Holding the FILE's own (recursive) lock keeps other threads' output out
     * of the bracket; the real call takes the same lock anyway.  A program
     * with one thread needs no lock (glibc skips its own then too). */
    int lock = !__libc_single_threaded;
    if (lock)
        flockfile(fp);
    mt_gap_catch_up(fp, stream);
    char *before = fp->_IO_write_ptr, *base = fp->_IO_write_base;
    char *buf = fp->_IO_buf_base, *end = fp->_IO_buf_end;
    int was_failed = mt_file_failed(fp);
    int n = flag < 0 ? mt_real.vfprintf(fp, fmt, ap) : mt_real.vfprintf_chk(fp, flag, fmt, ap);
    char *after = fp->_IO_write_ptr;
    mt_gap_mark(fp, stream);
    if (n > 0 && failed_now(fp, was_failed, (size_t)n)) {
        if (lock)
            funlockfile(fp);
    } else if (n > 0 && !before && fp->_IO_write_base && after - fp->_IO_write_base == n) {
        /* The stream's first output: glibc made its buffer during the call
         * and wrote from its start.  Formatting again would also run the
         * program's own printf handlers (register_printf_specifier) twice. */
        mt_capture(stream, fp->_IO_write_base, (size_t)n, NULL, 0);
        if (lock)
            funlockfile(fp);
    } else if (n > 0 && before && after - before == n && fp->_IO_write_base == base) {
        mt_capture(stream, before, (size_t)n, NULL, 0);
        if (lock)
            funlockfile(fp);
    } else if (n > 0 && before && buf && fp->_IO_buf_base == buf && fp->_IO_write_base == buf &&
               before > buf && before <= end && after <= before &&
               (end - before) + (after - buf) == n) {
        /* The buffer filled up once during the call: glibc copied up to its
         * end, wrote it out and put the rest at its start.  Both parts are
         * still there (the rest did not reach `before`): no second format. */
        mt_capture(stream, before, (size_t)(end - before), buf, (size_t)(after - buf));
        if (lock)
            funlockfile(fp);
    } else {
        if (lock)
            funlockfile(fp);
        if (n > 0)
            capture_reformatted(stream, n, fmt, again);
    }
    va_end(again);
    mt_depth--;
    return n;
}

MT_EXPORT int vfprintf(FILE *fp, const char *fmt, va_list ap)
{
    return capture_vfprintf(fp, -1, fmt, ap);
}

MT_EXPORT int vprintf(const char *fmt, va_list ap)
{
    return capture_vfprintf(stdout, -1, fmt, ap);
}

MT_EXPORT int fprintf(FILE *fp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = capture_vfprintf(fp, -1, fmt, ap);
    va_end(ap);
    return n;
}

MT_EXPORT int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = capture_vfprintf(stdout, -1, fmt, ap);
    va_end(ap);
    return n;
}

MT_EXPORT int __vfprintf_chk(FILE *fp, int flag, const char *fmt, va_list ap)
{
    return capture_vfprintf(fp, flag, fmt, ap);
}

MT_EXPORT int __vprintf_chk(int flag, const char *fmt, va_list ap)
{
    return capture_vfprintf(stdout, flag, fmt, ap);
}

MT_EXPORT int __fprintf_chk(FILE *fp, int flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = capture_vfprintf(fp, flag, fmt, ap);
    va_end(ap);
    return n;
}

MT_EXPORT int __printf_chk(int flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = capture_vfprintf(stdout, flag, fmt, ap);
    va_end(ap);
    return n;
}

/* dprintf writes to an fd through libc's internal write: format it again. */
static int capture_vdprintf(int fd, int flag, const char *fmt, va_list ap)
{
    int stream = (mt_ring && mt_depth == 0) ? mt_stream_of_fd(fd) : 0;
    if (!stream)
        return flag < 0 ? MT_REAL(vdprintf, "vdprintf")(fd, fmt, ap)
                        : MT_REAL(vdprintf_chk, "__vdprintf_chk")(fd, flag, fmt, ap);
    mt_depth++;
    va_list again;
    va_copy(again, ap);
    int n = flag < 0 ? mt_real.vdprintf(fd, fmt, ap) : mt_real.vdprintf_chk(fd, flag, fmt, ap);
    if (n > 0)
        capture_reformatted(stream, n, fmt, again);
    va_end(again);
    mt_depth--;
    return n;
}

MT_EXPORT int vdprintf(int fd, const char *fmt, va_list ap)
{
    return capture_vdprintf(fd, -1, fmt, ap);
}

MT_EXPORT int dprintf(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = capture_vdprintf(fd, -1, fmt, ap);
    va_end(ap);
    return n;
}

MT_EXPORT int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap)
{
    return capture_vdprintf(fd, flag, fmt, ap);
}

MT_EXPORT int __dprintf_chk(int fd, int flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = capture_vdprintf(fd, flag, fmt, ap);
    va_end(ap);
    return n;
}

/* ---- string and byte writers: the data is in hand, no buffer tricks ---- */

static inline int stream_for(FILE *fp)
{
    return (mt_ring && mt_depth == 0 && fp) ? mt_stream_of_file(fp) : 0;
}

MT_EXPORT int puts(const char *s)
{
    int stream = stream_for(stdout);
    if (stream)
        mt_gap_catch_up(stdout, stream);
    int was_failed = stream ? mt_file_failed(stdout) : 0;
    mt_depth++;
    int rc = MT_REAL(puts, "puts")(s);
    mt_depth--;
    if (stream && rc >= 0 && !failed_now(stdout, was_failed, strlen(s) + 1))
        mt_capture(stream, s, strlen(s), "\n", 1);
    if (stream)
        mt_gap_mark(stdout, stream);
    return rc;
}

#define FPUTS_LIKE(name, field)                                   \
    MT_EXPORT int name(const char *s, FILE *fp)                   \
    {                                                             \
        int stream = stream_for(fp);                              \
        if (stream)                                               \
            mt_gap_catch_up(fp, stream);                          \
        int was_failed = stream ? mt_file_failed(fp) : 0;         \
        mt_depth++;                                               \
        int rc = MT_REAL(field, #name)(s, fp);                    \
        mt_depth--;                                               \
        if (stream && rc >= 0 && !failed_now(fp, was_failed, strlen(s))) \
            mt_capture(stream, s, strlen(s), NULL, 0);            \
        if (stream)                                               \
            mt_gap_mark(fp, stream);                              \
        return rc;                                                \
    }
FPUTS_LIKE(fputs, fputs)
FPUTS_LIKE(fputs_unlocked, fputs_unlocked)

#define FWRITE_LIKE(name, field)                                                 \
    MT_EXPORT size_t name(const void *p, size_t size, size_t n, FILE *fp)        \
    {                                                                            \
        int stream = stream_for(fp);                                             \
        if (stream)                                                              \
            mt_gap_catch_up(fp, stream);                                         \
        int was_failed = stream ? mt_file_failed(fp) : 0;                        \
        mt_depth++;                                                              \
        size_t done = MT_REAL(field, #name)(p, size, n, fp);                     \
        mt_depth--;                                                              \
        if (stream && done && !failed_now(fp, was_failed, done * size))          \
            mt_capture(stream, p, done * size, NULL, 0);                         \
        if (stream)                                                              \
            mt_gap_mark(fp, stream);                                             \
        return done;                                                             \
    }
FWRITE_LIKE(fwrite, fwrite)
FWRITE_LIKE(fwrite_unlocked, fwrite_unlocked)

#define PUTC_LIKE(name, field)                                    \
    MT_EXPORT int name(int c, FILE *fp)                           \
    {                                                             \
        int stream = stream_for(fp);                              \
        if (stream)                                               \
            mt_gap_catch_up(fp, stream);                          \
        int was_failed = stream ? mt_file_failed(fp) : 0;         \
        mt_depth++;                                               \
        int rc = MT_REAL(field, #name)(c, fp);                    \
        mt_depth--;                                               \
        if (stream && rc != EOF && !failed_now(fp, was_failed, 1)) { \
            char ch = (char)c;                                    \
            mt_capture(stream, &ch, 1, NULL, 0);                  \
        }                                                         \
        if (stream)                                               \
            mt_gap_mark(fp, stream);                              \
        return rc;                                                \
    }
PUTC_LIKE(fputc, fputc)
PUTC_LIKE(fputc_unlocked, fputc_unlocked)
PUTC_LIKE(putc, putc)
PUTC_LIKE(putc_unlocked, putc_unlocked)
PUTC_LIKE(_IO_putc, io_putc)

#define PUTCHAR_LIKE(name, field)                                 \
    MT_EXPORT int name(int c)                                     \
    {                                                             \
        int stream = stream_for(stdout);                          \
        if (stream)                                               \
            mt_gap_catch_up(stdout, stream);                      \
        int was_failed = stream ? mt_file_failed(stdout) : 0;     \
        mt_depth++;                                               \
        int rc = MT_REAL(field, #name)(c);                        \
        mt_depth--;                                               \
        if (stream && rc != EOF && !failed_now(stdout, was_failed, 1)) { \
            char ch = (char)c;                                    \
            mt_capture(stream, &ch, 1, NULL, 0);                  \
        }                                                         \
        if (stream)                                               \
            mt_gap_mark(stdout, stream);                          \
        return rc;                                                \
    }
PUTCHAR_LIKE(putchar, putchar)
PUTCHAR_LIKE(putchar_unlocked, putchar_unlocked)
