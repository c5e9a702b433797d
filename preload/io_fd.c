/* Interposers for the fd-level writers: what C++ without stdio sync, Fortran,
 * Python and Rust use.  write() runs in signal handlers too, so nothing here
 * allocates or locks.
 *
 * These record at any depth: glibc's stdio never calls the exported write,
 * so a write() made while an interposed stdio call is running comes from a
 * signal handler (or a callback) of the program's, and is output like any
 * other.  Only the bytes the call reports as written are recorded, and fd 1
 * or 2 is classified before the call (console.c), so a regular file is
 * followed from where this write begins. */
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

MT_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    int stream = mt_ring ? mt_stream_of_fd(fd) : 0;
    ssize_t (*real)(int, const void *, size_t) = mt_real.write;
    ssize_t rc = real ? real(fd, buf, n) : syscall(SYS_write, fd, buf, n);
    if (stream && rc > 0)
        mt_capture(stream, buf, (size_t)rc, NULL, 0);
    else if (stream && rc < 0 && n)
        mt_count_elsewhere(MT_ELSEWHERE_FAILED, n);
    return rc;
}

MT_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int stream = mt_ring ? mt_stream_of_fd(fd) : 0;
    ssize_t rc = MT_REAL(pwrite, "pwrite")(fd, buf, n, off);
    if (stream && rc > 0)
        mt_capture(stream, buf, (size_t)rc, NULL, 0);
    else if (stream && rc < 0 && n)
        mt_count_elsewhere(MT_ELSEWHERE_FAILED, n);
    return rc;
}

MT_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
    __attribute__((alias("pwrite")));

MT_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    int stream = mt_ring ? mt_stream_of_fd(fd) : 0;
    ssize_t (*real)(int, const struct iovec *, int) = mt_real.writev;
    ssize_t rc = real ? real(fd, iov, cnt) : syscall(SYS_writev, fd, iov, cnt);
    if (!stream || rc <= 0) {
        if (stream && rc < 0)
            for (int i = 0; i < cnt; i++)
                mt_count_elsewhere(MT_ELSEWHERE_FAILED, iov[i].iov_len);
        return rc;
    }
    /* One record for the whole call when it fits, so a line is never split. */
    char joined[4096];
    size_t left = (size_t)rc, used = 0;
    for (int i = 0; i < cnt && left; i++) {
        size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
        if ((size_t)rc <= sizeof joined) {
            memcpy(joined + used, iov[i].iov_base, take);
            used += take;
        } else {
            mt_capture(stream, iov[i].iov_base, take, NULL, 0);
        }
        left -= take;
    }
    if (used)
        mt_capture(stream, joined, used, NULL, 0);
    return rc;
}
