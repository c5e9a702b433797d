/* Victim: every C entry point that prints, in one run.  argv[1] picks how it
 * ends: "return", "exit", "_exit", "error", "err", "errx", "assert", "abort". */
#include <assert.h>
#include <err.h>
#include <errno.h>
#include <error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static void via_vprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void via_vwarn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarnx(fmt, ap);
    va_end(ap);
}

int main(int argc, char **argv)
{
    const char *end = argc > 1 ? argv[1] : "return";
    printf("printf loss=%.3f\n", 0.25);
    fprintf(stdout, "fprintf acc=%d%%\n", 91);
    fprintf(stderr, "fprintf to stderr %s\n", "x");
    via_vprintf("vprintf step=%d\n", 3);
    dprintf(1, "dprintf fd1 %d\n", 1);
    fflush(stdout);
    dprintf(2, "dprintf fd2 %d\n", 2);
    puts("puts line");
    fputs("fputs line\n", stdout);
    fputs("fputs stderr\n", stderr);
    fwrite("fwrite line\n", 1, 12, stdout);
    putc('p', stdout);
    putchar('q');
    fputc('\n', stdout);
    putc_unlocked('u', stdout);
    putchar_unlocked('v');
    fputc_unlocked('w', stdout);
    fputs_unlocked(" unlocked\n", stdout);
    fwrite_unlocked("fwrite_unlocked\n", 1, 16, stdout);
    for (int i = 0; i < 3000; i++) /* inline writes that fill the buffer */
        putchar_unlocked('a' + i % 26);
    putchar_unlocked('\n');
    errno = ENOENT;
    perror("perror here");
    errno = EACCES;
    warn("warn %d", 1);
    warnx("warnx %d", 2);
    via_vwarn("vwarnx %s", "three");
    error(0, EINVAL, "error() message %d", 4);
    error_at_line(0, 0, "file.c", 42, "error_at_line %s", "five");
    fflush(stdout);
    write(1, "write fd1\n", 10);
    write(2, "write fd2\n", 10);
    struct iovec iov[2] = { { "writev ", 7 }, { "fd1\n", 4 } };
    writev(1, iov, 2);
    off_t off = lseek(1, 0, SEEK_CUR); /* at the end, so a file keeps every byte */
    if (off < 0 || pwrite(1, "pwrite fd1\n", 11, off) != 11)
        write(1, "pwrite refused\n", 15);
    else
        lseek(1, 11, SEEK_CUR);
    printf("the end, no newline");
    if (!strcmp(end, "exit"))
        exit(4);
    if (!strcmp(end, "_exit")) {
        fflush(stdout);
        printf("lost in the buffer after _exit\n");
        _exit(5);
    }
    if (!strcmp(end, "error"))
        error(6, 0, "fatal error() %s", "bye");
    if (!strcmp(end, "err")) {
        errno = EPERM;
        err(7, "err %s", "bye");
    }
    if (!strcmp(end, "errx"))
        errx(8, "errx %s", "bye");
    if (!strcmp(end, "assert")) {
        fflush(stdout);
        assert(argc == 42);
    }
    if (!strcmp(end, "abort")) {
        fflush(stdout);
        abort();
    }
    return 0;
}
