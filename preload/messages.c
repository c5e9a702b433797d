/* The message writers of glibc and its BSD and assert friends: perror,
 * error, error_at_line, err/errx/warn/warnx and their v-forms, and the
 * assertion failure.  glibc prints them through internal calls no interposer
 * sees, so each message is composed here exactly as glibc composes it,
 * recorded, and then the real function prints it (with "%s" and the composed
 * text, which prints the same bytes).  Those that end the process record
 * the exit first, since they leave through libc's internal exit. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"

extern char *program_invocation_name;
extern char *program_invocation_short_name;
extern void (*error_print_progname)(void);
extern int error_one_per_line;

#define MSG_MAX 4096

struct msg {
    char text[MSG_MAX];
    size_t len;
};

static void msg_add(struct msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(struct msg *m, const char *fmt, ...)
{
    if (m->len >= sizeof m->text - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->text + m->len, sizeof m->text - m->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        m->len += (size_t)n < sizeof m->text - m->len ? (size_t)n : sizeof m->text - m->len - 1;
}

static void msg_addv(struct msg *m, const char *fmt, va_list ap)
{
    if (!fmt || m->len >= sizeof m->text - 1)
        return;
    int n = vsnprintf(m->text + m->len, sizeof m->text - m->len, fmt, ap);
    if (n > 0)
        m->len += (size_t)n < sizeof m->text - m->len ? (size_t)n : sizeof m->text - m->len - 1;
}

/* Every writer here may flush stdout inside libc (error() does), which would
 * hide bytes written inline into its buffer: record those first. */
static int stderr_stream(void)
{
    if (!mt_ring || mt_depth != 0)
        return 0;
    mt_gap_catch_up_all();
    return mt_stream_of_file(stderr);
}

static void record(int stream, const struct msg *m)
{
    if (stream && m->len)
        mt_capture(stream, m->text, m->len, NULL, 0);
}

MT_EXPORT void perror(const char *s)
{
    int saved = errno, stream = stderr_stream();
    if (stream) {
        struct msg m = { .len = 0 };
        if (s && *s)
            msg_add(&m, "%s: ", s);
        msg_add(&m, "%s\n", strerror(saved));
        record(stream, &m);
    }
    errno = saved;
    mt_depth++;
    MT_REAL(perror, "perror")(s);
    mt_depth--;
}

/* error(): "prog: message[: strerror]\n"; error_at_line() writes "prog:"
 * then "file:line: " (glibc's spacing differs between the two). */
static void compose_error(struct msg *m, int errnum, int at_line, const char *file,
                          unsigned line, const char *fmt, va_list ap)
{
    if (!error_print_progname)
        msg_add(m, at_line ? "%s:" : "%s: ", program_invocation_name);
    if (at_line) {
        if (file)
            msg_add(m, "%s:%u: ", file, line);
        else
            msg_add(m, " ");
    }
    msg_addv(m, fmt, ap);
    if (errnum)
        msg_add(m, ": %s", strerror(errnum));
    msg_add(m, "\n");
}

MT_EXPORT void error(int status, int errnum, const char *fmt, ...)
{
    int saved = errno, stream = stderr_stream();
    struct msg body = { .len = 0 }, m = { .len = 0 };
    va_list ap;
    va_start(ap, fmt);
    msg_addv(&body, fmt, ap);
    va_end(ap);
    if (stream) {
        va_start(ap, fmt);
        compose_error(&m, errnum, 0, NULL, 0, fmt, ap);
        va_end(ap);
        record(stream, &m);
        if (status)
            mt_capture_end(MT_REC_EXIT, status & 0xff);
    }
    errno = saved;
    mt_depth++;
    MT_REAL(error, "error")(status, errnum, "%s", body.text);
    mt_depth--;
}

MT_EXPORT void error_at_line(int status, int errnum, const char *file, unsigned line,
                             const char *fmt, ...)
{
    static const char *last_file;
    static unsigned last_line;
    int saved = errno, stream = stderr_stream();
    struct msg body = { .len = 0 }, m = { .len = 0 };
    va_list ap;
    va_start(ap, fmt);
    msg_addv(&body, fmt, ap);
    va_end(ap);
    /* With error_one_per_line, glibc prints nothing for a repeat. */
    int repeat = error_one_per_line && last_file && file && line == last_line &&
                 strcmp(file, last_file) == 0;
    last_file = file;
    last_line = line;
    if (stream && !repeat) {
        va_start(ap, fmt);
        compose_error(&m, errnum, 1, file, line, fmt, ap);
        va_end(ap);
        record(stream, &m);
    }
    if (stream && status)
        mt_capture_end(MT_REC_EXIT, status & 0xff);
    errno = saved;
    mt_depth++;
    MT_REAL(error_at_line, "error_at_line")(status, errnum, file, line, "%s", body.text);
    mt_depth--;
}

/* The BSD family: "prog: message[: strerror(errno)]\n". */
static void bsd_message(int with_errno, int exit_status, int exits, const char *fmt, va_list ap,
                        struct msg *body)
{
    int saved = errno, stream = stderr_stream();
    struct msg m = { .len = 0 };
    va_list copy;
    va_copy(copy, ap);
    msg_addv(body, fmt, ap);
    msg_add(&m, "%s: ", program_invocation_short_name);
    if (fmt) {
        msg_addv(&m, fmt, copy);
        if (with_errno)
            msg_add(&m, ": ");
    }
    va_end(copy);
    if (with_errno)
        msg_add(&m, "%s", strerror(saved));
    msg_add(&m, "\n");
    record(stream, &m);
    if (stream && exits)
        mt_capture_end(MT_REC_EXIT, exit_status & 0xff);
    errno = saved;
}

#define BSD_PAIR(name, vname, field, with_errno)                        \
    MT_EXPORT void vname(const char *fmt, va_list ap)                   \
    {                                                                   \
        struct msg body = { .len = 0 };                                 \
        bsd_message(with_errno, 0, 0, fmt, ap, &body);                  \
        mt_depth++;                                                     \
        MT_REAL(field, #name)(fmt ? "%s" : NULL, body.text);            \
        mt_depth--;                                                     \
    }                                                                   \
    MT_EXPORT void name(const char *fmt, ...)                           \
    {                                                                   \
        va_list ap;                                                     \
        va_start(ap, fmt);                                              \
        vname(fmt, ap);                                                 \
        va_end(ap);                                                     \
    }
BSD_PAIR(warn, vwarn, warn, 1)
BSD_PAIR(warnx, vwarnx, warnx, 0)

#define BSD_EXIT_PAIR(name, vname, field, with_errno)                   \
    MT_EXPORT void vname(int status, const char *fmt, va_list ap)       \
    {                                                                   \
        struct msg body = { .len = 0 };                                 \
        bsd_message(with_errno, status, 1, fmt, ap, &body);             \
        mt_depth++;                                                     \
        MT_REAL(field, #name)(status, fmt ? "%s" : NULL, body.text);    \
        __builtin_unreachable();                                        \
    }                                                                   \
    MT_EXPORT void name(int status, const char *fmt, ...)               \
    {                                                                   \
        va_list ap;                                                     \
        va_start(ap, fmt);                                              \
        vname(status, fmt, ap);                                         \
        va_end(ap);                                                     \
    }
BSD_EXIT_PAIR(err, verr, err, 1)
BSD_EXIT_PAIR(errx, verrx, errx, 0)

/* "prog: file:line: function: <lead><text><trail>\n", as glibc composes both
 * assertion messages before it aborts. */
static void record_assert(const char *file, unsigned line, const char *function,
                          const char *lead, const char *text, const char *trail)
{
    int stream = stderr_stream();
    if (!stream)
        return;
    struct msg m = { .len = 0 };
    const char *prog = program_invocation_short_name;
    msg_add(&m, "%s%s%s:%u: %s%s%s%s%s\n", prog, prog[0] ? ": " : "", file, line,
            function ? function : "", function ? ": " : "", lead, text, trail);
    record(stream, &m);
}

/* "prog: file:line: function: Assertion `expr' failed.\n", then abort. */
MT_EXPORT void __assert_fail(const char *assertion, const char *file, unsigned line,
                             const char *function)
{
    record_assert(file, line, function, "Assertion `", assertion, "' failed.");
    mt_depth++;
    MT_REAL(assert_fail, "__assert_fail")(assertion, file, line, function);
    __builtin_unreachable();
}

MT_EXPORT void __assert_perror_fail(int errnum, const char *file, unsigned line,
                                    const char *function)
{
    record_assert(file, line, function, "Unexpected error: ", strerror(errnum), ".");
    mt_depth++;
    MT_REAL(assert_perror_fail, "__assert_perror_fail")(errnum, file, line, function);
    __builtin_unreachable();
}
